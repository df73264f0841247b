"""The one reader of project.toml: the template's answers, typed and checked by rules.py.

The launcher, the notebook-instance tool and LocalTrainer all read project.toml through
``read_project_file``, each asking for the fields it uses; every value passes the same rule the
template checked it with, so a value edited by hand later is refused the same way (naming the file,
the table and the key).

Standard library only (tomllib), like rules.py: the launcher's environment has no TensorFlow.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from template_runtime import rules

FILE_NAME = "project.toml"
# How an unrendered template file starts a placeholder (split so this file holds no placeholder itself).
TEMPLATE_MARKER = "{" + "{ cookiecutter."


class ProjectFileError(ValueError):
    """project.toml is missing, not TOML, or holds a value its rule refuses; the message says which."""


class UnrenderedTemplateError(ProjectFileError):
    """The file is the template's own project.toml, with its Jinja placeholders still in it."""


@dataclass(frozen=True)
class ProjectFile:
    """project.toml's values, each checked by its rule; None for a field that was not asked for."""

    path: Path
    name: str | None = None
    slug: str | None = None
    description: str | None = None
    author: str | None = None
    region: str | None = None
    bucket: str | None = None
    image_uri: str | None = None
    instance_type: str | None = None
    role_arn: str | None = None  # optional: `make notebook` takes the notebook's role from here
    algorithm: str | None = None
    entry_point: str | None = None
    build_key: str | None = None
    build_folder: str | None = None
    executable: str | None = None


# ProjectFile field -> ((table, key), rule)
FIELDS: dict[str, tuple[tuple[str, str], Callable[[object, str], object]]] = {
    "name": (("project", "name"), rules.free_text),
    "slug": (("project", "slug"), rules.project_slug),
    "description": (("project", "description"), rules.free_text),
    "author": (("project", "author"), rules.free_text),
    "region": (("aws", "region"), rules.region),
    "bucket": (("aws", "s3_bucket"), rules.bucket),
    "image_uri": (("aws", "ecr_image_uri"), rules.ecr_image_uri),
    "instance_type": (("aws", "instance_type"), rules.training_instance_type),
    "role_arn": (("aws", "role_arn"), rules.role_arn),
    "algorithm": (("training", "algorithm"), rules.algorithm),
    "entry_point": (("training", "entry_point"), rules.entry_point),
    "build_key": (("unity_build", "zip_key"), rules.build_zip_key),
    "build_folder": (("unity_build", "folder"), rules.build_folder),
    "executable": (("unity_build", "executable"), rules.executable),
}
# What the template always writes (role_arn is the user's own addition).
RENDERED_FIELDS = tuple(name for name in FIELDS if name != "role_arn")


def where(field: str) -> str:
    """How project.toml spells a field: '[aws] s3_bucket'."""
    (table, key), _ = FIELDS[field]
    return f"[{table}] {key}"


def read_project_file(
    path: str | Path, fields: Iterable[str] = RENDERED_FIELDS, optional: Iterable[str] = ()
) -> ProjectFile:
    """Read ``fields`` of ``path`` (a project.toml), each checked by its rule.

    Every one of ``fields`` must be there, except those also in ``optional`` (None when absent).
    ProjectFileError names the file and every problem at once ([table] key, value, what to do).
    """
    path, fields, optional = Path(path), tuple(fields), set(optional)
    data = _load(path)
    values, problems = {}, []
    for field in fields:
        (table, key), rule = FIELDS[field]
        section = data.get(table, {})
        if not isinstance(section, dict):
            problems.append(
                f"[{table}] is not a table: write it as a [{table}] header with key = value lines"
            )
        elif key in section:
            try:
                values[field] = rule(section[key], where(field))
            except rules.RuleError as error:
                problems.append(str(error))
        elif field not in optional:
            problems.append(f"{where(field)} is missing: add it (the template writes it; see its README)")
    problems = list(dict.fromkeys(problems))  # a broken table once, not once per key
    if not problems:
        for check in (_image_in_region, _folder_holds_no_zip):
            try:
                check(values)
            except rules.RuleError as error:
                problems.append(str(error))
    if problems:
        listed = "".join(f"\n  - {problem}" for problem in problems)
        raise ProjectFileError(f"{path} has values that cannot be used (fix them in the file):{listed}")
    return ProjectFile(path=path, **values)


def read_table(path: str | Path, table: str) -> dict:
    """A free-form table of ``path`` (``[tuning]``: the launcher checks its keys itself); {} if absent."""
    path = Path(path)
    section = _load(path).get(table, {})
    if not isinstance(section, dict):
        raise ProjectFileError(
            f"{path}: [{table}] is not a table: write it as a [{table}] header with key = value lines"
        )
    return section


def _load(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectFileError(
            f"{path} does not exist: run from the generated repository, or give the path of its {FILE_NAME}"
        ) from None
    except IsADirectoryError:
        raise ProjectFileError(f"{path} is a folder: give the path of the {FILE_NAME} file in it") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ProjectFileError(f"{path} cannot be read ({error}): fix the file or its permissions") from None
    if TEMPLATE_MARKER in text:
        raise UnrenderedTemplateError(
            f"{path} is the unrendered template's {FILE_NAME} (it still holds cookiecutter placeholders): "
            "generate a project with cookiecutter and run from the generated folder"
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProjectFileError(f"{path} is not valid TOML ({error}): fix the line it names") from None


def _image_in_region(values: dict) -> None:
    if "image_uri" in values and "region" in values:
        rules.ecr_image_uri(values["image_uri"], where("image_uri"), values["region"])


def _folder_holds_no_zip(values: dict) -> None:
    if "build_folder" in values and "build_key" in values:
        rules.build_folder(values["build_folder"], where("build_folder"), values["build_key"])
