"""The one reader of project.toml: the template's answers, typed and checked by rules.py.

The launcher, the notebook-instance tool and LocalTrainer all read project.toml through
``read_project_file``; every value passes the same rule the template checked it with, so a value
edited by hand later is refused the same way (naming the file, the table and the key).

Standard library only (tomllib), like rules.py: the launcher's environment has no TensorFlow.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:  # as part of the package (trainer, launcher with src/ on sys.path) or as a plain module
    from template_runtime import rules
except ImportError:  # pragma: no cover - loaded by file path
    import rules  # type: ignore[no-redef]

FILE_NAME = "project.toml"
# How an unrendered template file starts a placeholder (split so this file holds no placeholder itself).
TEMPLATE_MARKER = "{" + "{ cookiecutter."


class ProjectFileError(ValueError):
    """project.toml is missing, not TOML, or holds a value its rule refuses; the message says which."""


class UnrenderedTemplateError(ProjectFileError):
    """The file is the template's own project.toml, with its Jinja placeholders still in it."""


@dataclass(frozen=True)
class ProjectFile:
    """project.toml's values, every one checked."""

    path: Path
    name: str
    slug: str
    description: str
    author: str
    region: str
    bucket: str
    image_uri: str
    instance_type: str
    algorithm: str
    entry_point: str
    build_key: str
    build_folder: str
    executable: str


# (table, key) -> (ProjectFile field, rule); every entry is required.
FIELDS: dict[tuple[str, str], tuple[str, Callable[[object, str], object]]] = {
    ("project", "name"): ("name", rules.free_text),
    ("project", "slug"): ("slug", rules.project_slug),
    ("project", "description"): ("description", rules.free_text),
    ("project", "author"): ("author", rules.free_text),
    ("aws", "region"): ("region", rules.region),
    ("aws", "s3_bucket"): ("bucket", rules.bucket),
    ("aws", "ecr_image_uri"): ("image_uri", rules.ecr_image_uri),
    ("aws", "instance_type"): ("instance_type", rules.training_instance_type),
    ("training", "algorithm"): ("algorithm", rules.algorithm),
    ("training", "entry_point"): ("entry_point", rules.entry_point),
    ("unity_build", "zip_key"): ("build_key", rules.build_zip_key),
    ("unity_build", "folder"): ("build_folder", rules.build_folder),
    ("unity_build", "executable"): ("executable", rules.executable),
}


def read_project_file(path: str | Path) -> ProjectFile:
    """Read and check ``path`` (a project.toml); ProjectFileError names every problem at once."""
    path = Path(path)
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
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProjectFileError(f"{path} is not valid TOML ({error}): fix the line it names") from None
    values, problems = {}, []
    for (table, key), (attribute, rule) in FIELDS.items():
        where = f"[{table}] {key}"
        section = data.get(table)
        if not isinstance(section, dict):
            keys = ", ".join(k for t, k in FIELDS if t == table)
            problems.append(f"the table [{table}] is missing: add it, with {keys}")
        elif key not in section:
            problems.append(f"{where} is missing: add it (see the template's {FILE_NAME})")
        else:
            try:
                values[attribute] = rule(section[key], where)
            except rules.RuleError as error:
                problems.append(str(error))
    problems = list(dict.fromkeys(problems))  # a missing table once, not once per key
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


def _image_in_region(values: dict) -> None:
    rules.ecr_image_uri(values["image_uri"], "[aws] ecr_image_uri", values["region"])


def _folder_holds_no_zip(values: dict) -> None:
    rules.build_folder(values["build_folder"], "[unity_build] folder", values["build_key"])
