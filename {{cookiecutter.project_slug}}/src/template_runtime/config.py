"""Config layers for trainer.py: types, the command line, SM_HPS and project.toml.

Support code for ``trainer.py`` (kept apart so it stays readable): ``Trainer.__init__`` merges
DEFAULT_CONFIG < the script's ``config`` dict < project.toml (local runs) < SM_HPS < ``--key value``,
and every value takes the type of the layer below it (``"false"`` becomes the bool False).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

# project_file.ProjectFile field -> config key (project.toml's [unity_build] zip_key, folder, executable
# and [aws] s3_bucket)
PROJECT_SETTINGS = {
    "build_key": "zip_env_name",
    "build_folder": "build_folder",
    "executable": "env_file",
    "bucket": "bucket",
}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """A config value, hyperparameter or command-line argument is wrong; the message names it."""


def in_sagemaker_job() -> bool:
    """SageMaker sets these in every training container."""
    return bool(os.environ.get("SM_TRAINING_ENV") or os.environ.get("SM_MODEL_DIR"))


def coerce(key: str, value: object, like: object, source: str) -> object:
    """``value`` converted to the type of ``like`` (the key's current value), or a ConfigError."""
    if like is None or (type(value) is type(like) and not isinstance(value, list | dict)):
        return value
    if value is None and isinstance(like, str):
        return ""
    try:
        if isinstance(like, bool):
            text = str(value).strip().lower()
            if isinstance(value, int | str) and text in _TRUE | _FALSE:
                return text in _TRUE
        elif isinstance(like, int | float) and not isinstance(value, bool):
            number = float(value) if isinstance(like, float) else _to_int(value)
            if not isinstance(like, float) or math.isfinite(number):
                return number
        elif isinstance(like, str):
            if not isinstance(value, list | dict):
                return str(value)
        elif isinstance(like, list):
            value = json.loads(value) if isinstance(value, str) and value.strip().startswith("[") else value
            if isinstance(value, str | list | tuple):
                return shlex.split(value) if isinstance(value, str) else list(value)
        elif isinstance(like, dict):
            value = json.loads(value) if isinstance(value, str) else value
            if isinstance(value, dict):
                return value
        else:
            return value
    except (TypeError, ValueError):
        pass
    wanted = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "text",
        list: "a JSON list",
        dict: "a JSON object",
    }.get(type(like), type(like).__name__)
    raise ConfigError(f"{source}: {key}={value!r} is not {wanted} (like the default {like!r}); fix the value")


def _to_int(value: object) -> int:
    number = float(value) if not isinstance(value, int) else value
    if number != int(number):
        raise ValueError(value)
    return int(number)


def merge_config(defaults: Mapping, script: Mapping, *overrides: tuple[str, Mapping]) -> dict:
    """``defaults`` < the script's dict (which may add keys) < each (source, values) override in turn."""
    merged = dict(defaults)
    for key, value in script.items():
        merged[key] = coerce(key, value, defaults.get(key), "config dict")
    for source, values in overrides:
        for key, value in values.items():
            if key not in merged:
                raise ConfigError(
                    f"{source}: unknown key {key!r}. Known keys: {', '.join(sorted(merged))}. "
                    "To make a new hyperparameter, add it to the config dict of your training script."
                )
            merged[key] = coerce(key, value, merged[key], source)
    return merged


def parse_cli(argv: Sequence[str], known: Mapping) -> tuple[dict, bool]:
    """``--key value`` hyperparameters (SageMaker passes them this way) and the ``--local`` flag."""
    parser = argparse.ArgumentParser(
        description="Run the trainer. Every config key can be overridden with --key value.",
        allow_abbrev=False,
        exit_on_error=False,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--local", action="store_true", default=False, help="run locally even inside a job")
    for key, value in known.items():
        parser.add_argument(
            f"--{key}", metavar=type(value).__name__.upper(), help=f"default: {value!r}".replace("%", "%%")
        )
    try:
        parsed, extra = parser.parse_known_args(_without_sagemaker_args(argv))
    except argparse.ArgumentError as error:
        raise ConfigError(f"command line: {error}") from error
    if extra:
        raise ConfigError(
            f"command line: unknown argument(s) {' '.join(extra)}. Known keys: {', '.join(sorted(known))}"
        )
    values = vars(parsed)
    return values, values.pop("local")


def _without_sagemaker_args(argv: Sequence[str]) -> list[str]:
    """Drop ``--sagemaker_* value`` pairs, which some SageMaker drivers pass along."""
    kept, i = [], 0
    while i < len(argv):
        if argv[i].startswith("--sagemaker_"):
            takes_value = "=" not in argv[i] and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            i += 2 if takes_value else 1
            continue
        kept.append(argv[i])
        i += 1
    return kept


def read_sm_hps() -> dict:
    """The job's hyperparameters from SM_HPS (JSON), without SageMaker's own ``sagemaker_*`` keys."""
    text = os.environ.get("SM_HPS", "").strip() or "{}"
    try:
        values = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"SM_HPS is not JSON ({error}): {text[:200]!r}") from error
    return {k: v for k, v in values.items() if not k.startswith("sagemaker_")}


def read_project_settings(path: Path, explicit: bool) -> dict:
    """The build settings from the generated repo's project.toml, as config keys.

    Read through template_runtime.project_file (the one reader of the file), so each value is
    checked by the rule the template applied to it. The template's own unrendered project.toml
    gives nothing (the code runs there in the template's tests).
    """
    from template_runtime import project_file  # here, not at the top: the launcher loads this file alone

    if not path.is_file():
        if explicit:
            raise ConfigError(f"project_file {path} does not exist: fix the path, or set project_file to ''")
        return {}
    try:
        found = project_file.read_project_file(path, PROJECT_SETTINGS, optional=PROJECT_SETTINGS)
    except project_file.UnrenderedTemplateError:
        return {}
    except project_file.ProjectFileError as error:
        raise ConfigError(f"project_file: {error}\n(or set project_file to '' to leave it out)") from None
    return {
        key: getattr(found, field)
        for field, key in PROJECT_SETTINGS.items()
        if getattr(found, field) is not None
    }


def validate_config(config: dict) -> None:
    """Catch bad values before anything is downloaded or started."""
    if config["worker_id"] < 0:
        raise ConfigError(f"worker_id={config['worker_id']} must be 0 or more")
    if config["timeout_wait"] <= 0 or config["time_scale"] <= 0:
        raise ConfigError(
            f"timeout_wait={config['timeout_wait']} and time_scale={config['time_scale']} must be positive"
        )
    config["additional_args"] = [str(arg) for arg in config["additional_args"]]
    for name, value in config["env_parameters"].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"env_parameters[{name!r}]={value!r} must be a number (the channel carries floats)"
            )
