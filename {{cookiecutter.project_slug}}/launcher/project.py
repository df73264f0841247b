"""project.toml: the answers given to the template, read at run time (nothing else embeds them)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from launcher.errors import LaunchError

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = REPO_ROOT / "src"
"""Uploaded as the job's code; the entry point is a file in it."""
DEFAULT_PROJECT_FILE = REPO_ROOT / "project.toml"

# (table, key) -> ProjectConfig field; every one is required.
_FIELDS = {
    ("project", "slug"): "slug",
    ("aws", "region"): "region",
    ("aws", "s3_bucket"): "bucket",
    ("aws", "ecr_image_uri"): "image_uri",
    ("aws", "instance_type"): "instance_type",
    ("training", "entry_point"): "entry_point",
    ("unity_build", "zip_key"): "build_key",
    ("unity_build", "folder"): "build_folder",
    ("unity_build", "executable"): "executable",
}


@dataclass(frozen=True)
class ProjectConfig:
    """The launcher's defaults, as project.toml gives them."""

    path: Path
    slug: str
    region: str
    bucket: str
    image_uri: str
    instance_type: str
    entry_point: str
    build_key: str
    build_folder: str
    executable: str


def read_project(path: str | Path | None = None) -> ProjectConfig:
    """Read project.toml (or ``path``); every missing or empty entry is named in the error."""
    file = Path(path) if path else DEFAULT_PROJECT_FILE
    if not file.is_file():
        raise LaunchError(
            f"project file {file} does not exist: run from the generated repository, or pass its path"
        )
    text = file.read_text(encoding="utf-8")
    if "{{" in text and "cookiecutter" in text:
        raise LaunchError(
            f"{file} is the template's, not a generated repository's: generate the project with cookiecutter "
            "first, and launch from the generated folder"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LaunchError(f"{file} is not valid TOML ({error}): fix the line it names") from error
    values, missing = {}, []
    for (table, key), field in _FIELDS.items():
        value = data.get(table, {}).get(key)
        if not isinstance(value, str) or not value.strip():
            missing.append(f"[{table}] {key}")
        else:
            values[field] = value.strip()
    if missing:
        raise LaunchError(
            f"{file}: {', '.join(missing)} missing or empty: set them (text values) and try again"
        )
    return ProjectConfig(path=file, **values)
