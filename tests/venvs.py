"""Build each baked project's venv once per lock, and share it across tests and runs.

A venv is the project's hashed lock (requirements/locks/<set>.txt, see the rendered
requirements/lock.py) installed the way the rendered Makefile installs it: locks/build.txt first
(pip < 24.1, setuptools 65.5, wheel: what gym 0.20's sdist needs), then the set's lock with
``--require-hashes --no-build-isolation``. It is keyed by the Python version and the text of both
locks, so a refreshed lock gets a fresh venv and an unchanged one is reused. Venvs live in
``.venvs/`` at the template root (or $TEMPLATE_VENV_CACHE).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
VENV_ROOT = Path(os.environ.get("TEMPLATE_VENV_CACHE", TEMPLATE_DIR / ".venvs"))
COMPLETE_MARK = ".complete"


def venv_key(lock: Path, build_lock: Path) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for path in (lock, build_lock):
        digest.update(path.read_bytes())
    return f"{lock.stem}-lock-{digest.hexdigest()[:12]}"


def venv_for(lock: Path, build_lock: Path) -> Path:
    """Return a venv holding ``lock``, creating it the first time (one to two minutes)."""
    path = VENV_ROOT / venv_key(lock, build_lock)
    if (path / COMPLETE_MARK).exists():
        return path
    shutil.rmtree(path, ignore_errors=True)  # a build that was interrupted half-way
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--require-hashes"]
    subprocess.run([*pip, "--no-deps", "-r", str(build_lock)], check=True, env=env)
    subprocess.run([*pip, "--no-build-isolation", "-r", str(lock)], check=True, env=env)
    # The baked Makefile treats this stamp as "installed"; the mark says the build finished.
    (path / ".installed").touch()
    (path / COMPLETE_MARK).touch()
    return path
