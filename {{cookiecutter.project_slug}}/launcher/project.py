"""project.toml: the answers given to the template, read at run time (nothing else embeds them).

Read through template_runtime.project_file, the one reader of the file, so every value is checked
by the same rule the template applied (naming the file, the table and the key when it fails).
"""

from __future__ import annotations

from pathlib import Path

from launcher.errors import LaunchError
from launcher.runtime import SOURCE_DIR, project_file

REPO_ROOT = SOURCE_DIR.parent
"""SOURCE_DIR (src/) is uploaded as the job's code; the entry point is a file in it."""
DEFAULT_PROJECT_FILE = REPO_ROOT / "project.toml"

# What the launcher takes from project.toml; every one is required.
LAUNCHER_FIELDS = (
    "slug",
    "region",
    "bucket",
    "image_uri",
    "instance_type",
    "entry_point",
    "build_key",
    "build_folder",
    "executable",
)
ProjectConfig = project_file.ProjectFile
"""The launcher's defaults, as project.toml gives them (each field of LAUNCHER_FIELDS is set)."""

__all__ = ["DEFAULT_PROJECT_FILE", "REPO_ROOT", "SOURCE_DIR", "ProjectConfig", "read_project"]


def read_project(path: str | Path | None = None) -> ProjectConfig:
    """Read project.toml (or ``path``); every missing or refused entry is named in the error."""
    file = Path(path) if path else DEFAULT_PROJECT_FILE
    try:
        return project_file.read_project_file(file, LAUNCHER_FIELDS)
    except project_file.ProjectFileError as error:  # the unrendered template's file too: it says so
        raise LaunchError(str(error)) from None
