"""Hashed lock files for every requirement set: `make lock` writes them, the tests check them.

The *.txt files beside this script are the inputs (top-level pins, edited by hand); locks/<set>.txt
are generated from them with `uv pip compile --generate-hashes` (uv.toml beside this script states
gym 0.20's requirements, whose own metadata uv cannot parse) and never edited. Every venv
the Makefile builds, the template's CI and the training image install a lock with
`pip install --require-hashes`, so every machine gets the same transitive versions, byte for byte.

    python requirements/lock.py                 # refresh every lock (needs uv and the package index)
    python requirements/lock.py --only image    # one set (and nothing else)
    python requirements/lock.py --check         # exit 1 naming each lock that is stale (offline)

A lock records a digest of its inputs (their requirement lines, comments left out, following `-r`
and `-c` includes); --check recomputes it, so editing a pin without `make lock` fails the tests.
Subsets are compiled against their superset's lock (image against dev, launcher against
launcher-dev, ...), so what the tests install and what the image holds cannot drift apart.

Why the install is two steps (see install_commands): gym 0.20 ships only as an sdist that needs
setuptools 65.5 to build (build-constraints.txt), and pip does not check hashes of the packages it
puts into an isolated build environment. So locks/build.txt (pip, setuptools, wheel, hashed) goes in
first, then the set's lock with --no-build-isolation: every file that is downloaded, sdists' build
tools included, is checked against a hash. pip must stay < 24.1: newer pips refuse gym 0.20's
metadata ("opencv-python (>=3.)").
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCKS = HERE / "locks"
BUILD_CONSTRAINTS = "build-constraints.txt"
DIGEST_LINE = re.compile(r"^# inputs-digest: (?P<digest>sha256:[0-9a-f]{64})$", re.MULTILINE)
FORMAT = "1"  # bump when the way locks are compiled changes (every lock then reads as stale)
# For the machines the locks are installed on: CPython 3.11, Linux x86_64 (the image, CI, laptops
# running Linux). Hashes cover every file of each pinned version, so other platforms' wheels verify too.
COMPILE_OPTIONS = (
    "--generate-hashes",
    "--python-version",
    "3.11",
    "--python-platform",
    "x86_64-manylinux_2_28",
    "--no-strip-extras",
    "--no-header",
    "--no-annotate",
    "--quiet",
)


@dataclass(frozen=True)
class LockSet:
    name: str
    inputs: tuple[str, ...]
    superset: str | None = None  # compiled within this lock's versions
    build_constraints: bool = True  # the set holds gym (or its tools): pin pip/setuptools/wheel
    installs: str = ""  # who installs it (for the header)


# Order matters: a superset comes before the sets compiled against it.
SETS = (
    LockSet("build", (BUILD_CONSTRAINTS,), None, True, "first, before any training set (see above)"),
    LockSet("dev", ("dev.txt",), None, True, "make setup / make test (.venv), CI"),
    LockSet("image", ("training.txt", "image.txt"), "dev", True, "docker/Dockerfile (CPU image)"),
    LockSet("training", ("training.txt",), "image", True, "a training-only venv"),
    LockSet("image-gpu", ("training-gpu.txt", "image.txt"), "image", True, "docker/Dockerfile (GPU)"),
    LockSet("dev-conservative", ("dev-conservative.txt",), None, True, "make test-conservative"),
    LockSet("launcher-dev", ("launcher-dev.txt",), None, False, "make test-launcher (.venv-launcher)"),
    LockSet("launcher", ("launcher.txt",), "launcher-dev", False, "a launcher-only venv or kernel"),
    LockSet("launcher-v2-dev", ("launcher-v2-dev.txt",), None, False, "make test-launcher-v2"),
    LockSet("launcher-v2", ("launcher-v2.txt",), "launcher-v2-dev", False, "an SDK v2 launcher venv"),
    LockSet("notebook-dev", ("notebook-dev.txt",), None, False, "make test-notebook / make notebook"),
    LockSet("notebook", ("notebook.txt",), "notebook-dev", False, "a boto3-only notebook tool venv"),
)
BY_NAME = {s.name: s for s in SETS}


# ---------------------------------------------------------------------------------------------- reading


def requirement_lines(path: Path, seen: frozenset[Path] = frozenset()) -> list[str]:
    """A file's requirement lines, comments and blanks dropped, `-r`/`-c` includes expanded in place."""
    if path in seen:
        raise ValueError(f"{path} includes itself")
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        option, _, value = line.partition(" ")
        if option in ("-r", "--requirement", "-c", "--constraint"):
            lines.append(f"{option} {value.strip()}")
            lines += requirement_lines(path.parent / value.strip(), seen | {path})
        else:
            lines.append(line)
    return lines


def inputs_digest(lock: LockSet, folder: Path = HERE) -> str:
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    files = [*lock.inputs, *([BUILD_CONSTRAINTS] if lock.build_constraints else [])]
    for name in files:
        digest.update(f"file {name}\n".encode())
        for line in requirement_lines(folder / name):
            digest.update(f"{line}\n".encode())
    if lock.superset:
        digest.update(f"within {lock.superset} {inputs_digest(BY_NAME[lock.superset], folder)}\n".encode())
    return "sha256:" + digest.hexdigest()


def recorded_digest(path: Path) -> str | None:
    match = DIGEST_LINE.search(path.read_text(encoding="utf-8")) if path.is_file() else None
    return match["digest"] if match else None


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a lock (or of an input file)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            found[normalize(match[1])] = match[2]
    return found


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def stale(folder: Path = HERE) -> list[str]:
    """One line per lock that is missing or older than its inputs."""
    problems = []
    for lock in SETS:
        path = folder / "locks" / f"{lock.name}.txt"
        recorded = recorded_digest(path)
        if recorded is None:
            problems.append(f"{path.relative_to(folder.parent)} is missing (or has no inputs-digest line)")
        elif recorded != inputs_digest(lock, folder):
            inputs = " + ".join(f"requirements/{name}" for name in lock.inputs)
            problems.append(
                f"{path.relative_to(folder.parent)} is stale: {inputs} changed since it was locked"
            )
    return problems


# ---------------------------------------------------------------------------------------------- writing


def header(lock: LockSet, command: list[str]) -> str:
    inputs = " + ".join(f"requirements/{name}" for name in lock.inputs)
    return (
        f"# Locked {inputs} for CPython 3.11 on Linux x86_64 (installed by: {lock.installs}).\n"
        "# Generated by `make lock` (requirements/lock.py); do not edit: change the inputs, then run it.\n"
        f"# inputs-digest: {inputs_digest(lock)}\n"
        f"#   {shlex.join(command)}\n"
    )


def compile_lock(lock: LockSet, uv: str) -> None:
    output = LOCKS / f"{lock.name}.txt"
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        command = [uv, "pip", "compile", "--config-file", "uv.toml", *COMPILE_OPTIONS]
        if lock.build_constraints:
            # pip, setuptools and wheel at the versions gym's sdist needs, in the lock and for builds.
            command += ["--constraint", BUILD_CONSTRAINTS, "--build-constraints", BUILD_CONSTRAINTS]
        if lock.superset:
            # The superset's versions, without hashes (pip does not take hashes in constraints).
            within = Path(tmp) / f"within-{lock.superset}.txt"
            versions = pins(LOCKS / f"{lock.superset}.txt")
            within.write_text("".join(f"{name}=={version}\n" for name, version in sorted(versions.items())))
            command += ["--constraint", str(within)]
        command += ["--output-file", str(Path(tmp) / "out.txt"), *lock.inputs]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
        print(f"lock: {output.relative_to(HERE.parent)} <- {' + '.join(lock.inputs)}", flush=True)
        subprocess.run(command, cwd=HERE, env=env, check=True)
        shown = [uv.rsplit("/", 1)[-1], *command[1:]]
        shown = [part if not part.startswith(tmp) else f"<{Path(part).name}>" for part in shown]
        body = (Path(tmp) / "out.txt").read_text(encoding="utf-8")
        output.parent.mkdir(exist_ok=True)
        output.write_text(header(lock, shown) + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale locks (offline)")
    parser.add_argument("--only", action="append", choices=sorted(BY_NAME), help="lock only these sets")
    parser.add_argument(
        "--uv", default="uv", help="the uv program to compile with (requirements/lock-tools.txt)"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for problem in problems:
            print(f"lock: {problem}", file=sys.stderr)
        if problems:
            print("lock: run `make lock` and commit requirements/locks/", file=sys.stderr)
        return 1 if problems else 0
    for lock in SETS:
        if not args.only or lock.name in args.only:
            compile_lock(lock, args.uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
