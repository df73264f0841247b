"""Package the simulated player as a zip laid out like a Unity Linux player build.

    python -m unity_sim.package_build --name 3DBall --out builds    # writes builds/3DBall.zip

The zip holds, at its root, what Unity's Linux build writes (so the code that handles a user's
real build handles this one unchanged):

    3DBall.x86_64        the launcher (/bin/sh, mode 755 recorded in the zip); it execs
                         "${UNITY_SIM_PYTHON:-python3}" 3DBall_Data/Python/unity_sim/player.py "$@"
    UnityPlayer.so       a placeholder for the engine library a real build ships
    3DBall_Data/         app.info (company, product), boot.config, and Python/ with this package
                         and mlagents_fastpath.py (src/template_runtime/fastpath.py, when present)

Extract with something that restores modes (``unzip``, or ``zipfile`` plus a chmod from
``ZipInfo.external_attr``), or chmod the launcher yourself. The zip is reproducible: same sources,
same bytes (fixed timestamps, sorted entries).
"""

from __future__ import annotations

import argparse
import re
import stat
import sys
import zipfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
FASTPATH_SOURCE = PACKAGE_DIR.parent / "src" / "template_runtime" / "fastpath.py"
PLAYER_MODULES = ("__init__.py", "academy.py", "ball_balance.py", "clock.py", "player.py", "wire.py")
"""What the player needs at run time (package_build itself stays out of the build)."""
BUILD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
"""No dots: mlagents-envs deletes ".app", ".exe", ".x86" from anywhere in the path it is given."""
ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)
EXECUTABLE, REGULAR, DIRECTORY = 0o755, 0o644, 0o755

LAUNCHER = """#!/bin/sh
# Simulated Unity ML-Agents player "{name}" (made by unity_sim.package_build). Set UNITY_SIM_PYTHON
# to a Python with grpcio, protobuf, numpy and mlagents-envs if python3 on PATH lacks them.
here=$(cd "$(dirname "$0")" && pwd)
exec "${{UNITY_SIM_PYTHON:-python3}}" "$here/{name}_Data/Python/unity_sim/player.py" "$@"
"""
PLACEHOLDER = (
    "Placeholder for Unity's engine library. This build is simulated: the program is\n"
    "{name}_Data/Python/unity_sim/player.py, started by {name}.x86_64.\n"
)
BOOT_CONFIG = "gfx-enable-gfx-jobs=1\nwait-for-native-debugger=0\nplayer-connection-ip=\n"


def build_files(name: str) -> dict[str, tuple[bytes, int]]:
    """Every file of the build: archive path -> (content, permission bits)."""
    data = f"{name}_Data"
    files = {
        f"{name}.x86_64": (LAUNCHER.format(name=name).encode(), EXECUTABLE),
        "UnityPlayer.so": (PLACEHOLDER.format(name=name).encode(), REGULAR),
        f"{data}/app.info": (f"unity_sim\n{name}".encode(), REGULAR),
        f"{data}/boot.config": (BOOT_CONFIG.encode(), REGULAR),
    }
    for module in PLAYER_MODULES:
        files[f"{data}/Python/unity_sim/{module}"] = ((PACKAGE_DIR / module).read_bytes(), REGULAR)
    if FASTPATH_SOURCE.is_file():
        files[f"{data}/Python/mlagents_fastpath.py"] = (FASTPATH_SOURCE.read_bytes(), REGULAR)
    return files


def package_build(name: str = "3DBall", out_dir: str | Path = "builds") -> Path:
    """Write ``<out_dir>/<name>.zip`` and return its path (parent folders are created)."""
    if not BUILD_NAME.fullmatch(name):
        raise ValueError(
            f"build name {name!r} must start with a letter or digit and use only letters, digits, "
            "'_' or '-' (it becomes the file name <name>.x86_64)"
        )
    out_path = Path(out_dir) / f"{name}.zip"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    files = build_files(name)
    folders = sorted(_parents(files))
    tmp_path = out_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            _write(archive, folder, b"", DIRECTORY, is_dir=True)
        for path in sorted(files):
            content, mode = files[path]
            _write(archive, path, content, mode)
    tmp_path.replace(out_path)  # never leave a half-written zip under the real name
    return out_path


def _parents(files: dict[str, tuple[bytes, int]]) -> set[str]:
    """Every ancestor folder of every file, as 'a/', 'a/b/'."""
    folders = set()
    for path in files:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]) + "/")
    return folders


def _write(archive: zipfile.ZipFile, path: str, content: bytes, mode: int, is_dir: bool = False) -> None:
    """Add one entry with Unix permission bits in external_attr, so unzip restores them."""
    info = zipfile.ZipInfo(path, date_time=ZIP_TIMESTAMP)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    kind = stat.S_IFDIR if is_dir else stat.S_IFREG
    info.external_attr = (kind | mode) << 16 | (0x10 if is_dir else 0)
    info.compress_type = zipfile.ZIP_STORED if is_dir else zipfile.ZIP_DEFLATED
    archive.writestr(info, content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Package the simulated Unity player as <out>/<name>.zip.")
    parser.add_argument("--name", default="3DBall", help="build and executable name (default 3DBall)")
    parser.add_argument("--out", default="builds", help="output folder (default builds)")
    arguments = parser.parse_args(argv)
    try:
        path = package_build(arguments.name, arguments.out)
    except ValueError as error:
        parser.error(str(error))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
