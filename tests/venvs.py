"""Build each baked project's venv once per requirement set, and share it across tests and runs.

A venv is keyed by the Python version and the full text of its requirement files (following
``-r`` includes) and build constraints, so an edited pin gets a fresh venv and an unchanged one
is reused. Venvs live in ``.venvs/`` at the template root (or $TEMPLATE_VENV_CACHE).
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


def requirement_texts(requirements: Path) -> list[str]:
    """The file's text followed by the text of every file it includes with ``-r``."""
    texts = [requirements.read_text(encoding="utf-8")]
    for line in texts[0].splitlines():
        line = line.strip()
        if line.startswith(("-r ", "--requirement ")):
            texts += requirement_texts(requirements.parent / line.split(maxsplit=1)[1])
    return texts


def venv_key(requirements: Path, constraints: Path) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for text in [*requirement_texts(requirements), constraints.read_text(encoding="utf-8")]:
        digest.update(text.encode())
    return f"{requirements.stem}-{digest.hexdigest()[:12]}"


def venv_for(requirements: Path, constraints: Path) -> Path:
    """Return a venv holding ``requirements``, creating it the first time (about a minute)."""
    path = VENV_ROOT / venv_key(requirements, constraints)
    if (path / COMPLETE_MARK).exists():
        return path
    shutil.rmtree(path, ignore_errors=True)  # a build that was interrupted half-way
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    env = {**os.environ, "PIP_CONSTRAINT": str(constraints), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        check=True,
        env=env,
    )
    # The baked Makefile treats this stamp as "installed"; the mark says the build finished.
    (path / ".installed").touch()
    (path / COMPLETE_MARK).touch()
    return path
