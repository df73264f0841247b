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

ELEMENT_TYPES: dict[str, tuple[type, type]] = {
    "additional_args": (list, str),  # the player's command line: text only ("4", not 4)
    "hidden_sizes": (list, int),  # layer sizes: whole numbers (64.7, true and "a" are refused)
    "env_parameters": (dict, float),  # name -> value sent through the EnvironmentParametersChannel
}
"""The container and element type of list and dict keys; the launcher checks hyperparameters with
these too. A list or dict key not named here takes the element type its default's elements share."""

INT_LIMIT = 2**63 - 1
"""Whole numbers must fit in 64 bits (NumPy and TensorFlow take no more)."""
SEED_LIMIT = 2**31 - 1
"""Unity takes the seed as a signed 32-bit int (UnityRLInitializationInputProto.seed)."""
UNITY_BASE_PORT, LAST_PORT = 5005, 65535
"""A Unity build listens on 5005 + worker_id (each parallel instance on the next id)."""
MAX_WORKER_ID = LAST_PORT - UNITY_BASE_PORT
SHOWN_MAX = 120


class ConfigError(ValueError):
    """A config value, hyperparameter or command-line argument is wrong; the message names it."""


class _Refused(Exception):
    """Why a value is refused; ``coerce`` and ``validate_config`` add the source, key and value."""


def in_sagemaker_job() -> bool:
    """SageMaker sets these in every training container."""
    return bool(os.environ.get("SM_TRAINING_ENV") or os.environ.get("SM_MODEL_DIR"))


def shown(value: object) -> str:
    """``repr(value)``, cut (with its length said) when it is long."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else f"{text[:SHOWN_MAX]}... ({len(text)} characters)"


def refusal(source: str, key: str, value: object, problem: str) -> ConfigError:
    """The one shape of every config error: ``<source>: <key>=<repr of value> <problem>``."""
    return ConfigError(f"{source}: {key}={shown(value)} {problem}")


def coerce(key: str, value: object, like: object, source: str) -> object:
    """``value`` converted to the type of ``like`` (the key's current value) and checked, or a
    ConfigError naming the source, the key and the value.

    Text converts to the type of ``like`` (``"false"`` to False, ``"3"`` to 3, ``'[64, 64]'`` or
    ``"a b"`` to a list); a bool is never a number; numbers must be finite; list elements and dict
    values take their element type (ELEMENT_TYPES, or the default's); no text may hold a NUL.
    """
    try:
        return check_value(key, _convert(key, value, like))
    except _Refused as problem:
        raise refusal(source, key, value, str(problem)) from None


def _convert(key: str, value: object, like: object) -> object:
    if like is None:  # a default that is not a literal (launcher) or a key only the script has
        if key not in ELEMENT_TYPES:
            return value
        like = ELEMENT_TYPES[key][0]()
    if isinstance(like, bool | int | float | str):
        return _scalar(value, type(like), like)
    if isinstance(like, list):
        return _list(key, value, like)
    if isinstance(like, dict):
        return _dict(key, value, like)
    return value


_WANTED = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _scalar(value: object, kind: type, like: object = None) -> object:
    """``value`` as a ``kind`` (bool, int, float or str)."""
    default = "" if like is None else f" (like the default {shown(like)})"
    wrong = _Refused(f"is not {_WANTED[kind]}{default}; fix the value")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else value
        if isinstance(value, str) and text in _TRUE | _FALSE:
            return text in _TRUE
        if type(value) is int and value in (0, 1):
            return bool(value)
        raise wrong
    if kind is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            _finite(value)
            return str(value)
        raise wrong
    if isinstance(value, bool):
        raise _Refused(
            f"is a bool, not {_WANTED[kind]}: write a number{default} (true/false are not numbers here)"
        )
    if isinstance(value, str):
        value = _number_from_text(value, wrong)
    if not isinstance(value, int | float):
        raise wrong
    if kind is float:
        try:
            number = float(value)
        except OverflowError:
            raise _Refused(f"is too big for a number (at most about 1.8e308){default}") from None
        return _finite(number)
    if isinstance(value, float):
        _finite(value)
        if not value.is_integer():
            raise wrong
        value = int(value)
    if abs(value) > INT_LIMIT:
        raise _Refused(f"is too big: whole numbers must fit in 64 bits (at most {INT_LIMIT})")
    return value


def _number_from_text(text: str, wrong: _Refused) -> int | float:
    stripped = text.strip()
    try:
        return int(stripped)  # exact, even beyond 2**53
    except ValueError:
        pass
    try:
        return float(stripped)  # "1e3", "2.5", and "inf"/"nan", refused by _finite
    except ValueError:
        raise wrong from None


def _finite(number: float) -> float:
    if isinstance(number, float) and not math.isfinite(number):
        raise _Refused("is not a finite number: infinity and NaN cannot be used, give an ordinary number")
    return number


def _element_type(key: str, like: list | dict) -> type | None:
    if key in ELEMENT_TYPES:
        return ELEMENT_TYPES[key][1]
    elements = list(like.values() if isinstance(like, dict) else like)
    kinds = {type(element) for element in elements}
    if len(kinds) == 1 and kinds <= {bool, int, float, str}:
        return kinds.pop()
    return None


def _list(key: str, value: object, like: list) -> list:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else shlex.split(value)
        except ValueError as error:
            raise _Refused(f"is not a JSON list nor space-separated words ({error}); fix the value") from None
    if not isinstance(value, list | tuple):
        raise _Refused(
            f"is not a list (like the default {shown(like)}), e.g. {json.dumps(like or ['a', 'b'])}"
        )
    kind = _element_type(key, like)
    if kind is None:
        return list(value)
    items = []
    for index, element in enumerate(value):
        if kind is str and not isinstance(element, str):
            raise _Refused(
                f"has element {index} = {shown(element)}, which is not text: every element must be a string "
                f"(write {json.dumps(str(element))})"
            )
        try:
            items.append(_scalar(element, kind))
        except _Refused as problem:
            raise _Refused(f"has element {index} = {shown(element)}, which {problem}") from None
    return items


def _dict(key: str, value: object, like: dict) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise _Refused(f'is not a JSON object ({error}); e.g. {{"gravity": 9.8}}') from None
    if not isinstance(value, Mapping):
        raise _Refused('is not a JSON object of names and values, e.g. {"gravity": 9.8}')
    kind = _element_type(key, like)
    result = {}
    for name, element in value.items():
        if not isinstance(name, str) or not name.strip():
            raise _Refused(f"has the name {shown(name)}: every name must be non-empty text")
        if kind is None:
            result[name] = element
            continue
        if kind is float and isinstance(element, str):  # numbers here, not text that looks like one
            raise _Refused(f"has {name!r} = {shown(element)}, which is not a number: write it without quotes")
        try:
            result[name] = _scalar(element, kind)
        except _Refused as problem:
            raise _Refused(f"has {name!r} = {shown(element)}, which {problem}") from None
    return result


def _positive(value: object) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and not value > 0:
        return "must be positive: set it to a number above 0"
    return None


def _seed(value: object) -> str | None:
    if type(value) is int and not 0 <= value <= SEED_LIMIT:
        return f"must be a whole number from 0 to {SEED_LIMIT} (Unity takes a signed 32-bit seed)"
    return None


def _worker_id(value: object) -> str | None:
    if type(value) is int and value < 0:
        return "must be 0 or more"
    if type(value) is int and value > MAX_WORKER_ID:
        return (
            f"must be at most {MAX_WORKER_ID}: the player listens on port {UNITY_BASE_PORT} + worker_id, "
            f"and ports end at {LAST_PORT}"
        )
    return None


KEY_RULES = {"seed": _seed, "worker_id": _worker_id, "timeout_wait": _positive, "time_scale": _positive}
"""Rules of single keys beyond their type (the launcher applies them too, through ``coerce``)."""


def check_value(key: str, value: object) -> object:
    """``value`` itself, or _Refused: text with a NUL, a non-finite number, a key rule broken."""
    _check_plain(value)
    rule = KEY_RULES.get(key)
    problem = rule(value) if rule else None
    if problem:
        raise _Refused(problem)
    return value


def _check_plain(value: object, depth: int = 0) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise _Refused(f"contains a NUL character (position {value.index(chr(0))}): remove it")
    if isinstance(value, float):
        _finite(value)
    if depth < 8 and isinstance(value, list | tuple):
        for element in value:
            _check_plain(element, depth + 1)
    if depth < 8 and isinstance(value, Mapping):
        for name, element in value.items():
            _check_plain(name, depth + 1)
            _check_plain(element, depth + 1)


def merge_config(
    defaults: Mapping, script: Mapping, *overrides: tuple[str, Mapping], sources: dict | None = None
) -> dict:
    """``defaults`` < the script's dict (which may add keys) < each (source, values) override in turn.

    ``sources``, if given, is filled with where each key's value came from ("default", "config
    dict", "project.toml", "SM_HPS", "command line"), for ``validate_config``'s messages.
    """
    merged = dict(defaults)
    origin = dict.fromkeys(defaults, "default")
    for key, value in script.items():
        merged[key] = coerce(key, value, defaults.get(key), "config dict")
        origin[key] = "config dict"
    for source, values in overrides:
        for key, value in values.items():
            if key not in merged:
                raise ConfigError(
                    f"{source}: unknown key {key!r}. Known keys: {', '.join(sorted(merged))}. "
                    "To make a new hyperparameter, add it to the config dict of your training script."
                )
            merged[key] = coerce(key, value, merged[key], source)
            origin[key] = source
    if sources is not None:
        sources.update(origin)
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
    """The job's hyperparameters from SM_HPS (a JSON object), without SageMaker's own ``sagemaker_*`` keys."""
    text = os.environ.get("SM_HPS", "").strip() or "{}"
    try:
        values = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"SM_HPS is not JSON ({error}): {shown(text)}") from error
    if not isinstance(values, dict):
        kind = {list: "a list", str: "a string", bool: "a bool", type(None): "null"}.get(
            type(values), "a number"
        )
        raise ConfigError(
            'SM_HPS must be a JSON object of hyperparameters ({"key": value, ...}), '
            f"not {kind}: {shown(text)}"
        )
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


def validate_config(config: dict, sources: Mapping | None = None) -> None:
    """Catch bad values before anything is downloaded or started: every value's own rules (also for
    defaults, which were never converted) and the rules across keys."""
    where = sources or {}
    for key, value in config.items():
        try:
            check_value(key, value)
        except _Refused as problem:
            raise refusal(where.get(key, "config"), key, value, str(problem)) from None
    instances = config.get("num_envs", 1)
    instances = instances if type(instances) is int and instances > 0 else 1
    worker_id, seed = config.get("worker_id"), config.get("seed")
    if type(worker_id) is int and worker_id + instances - 1 > MAX_WORKER_ID:
        raise refusal(
            where.get("worker_id", "config"),
            "worker_id",
            worker_id,
            f"is too high for num_envs={instances}: instance i listens on port {UNITY_BASE_PORT} + "
            "worker_id + i, "
            f"and ports end at {LAST_PORT}; set worker_id to at most {MAX_WORKER_ID - instances + 1}",
        )
    if type(seed) is int and seed + instances - 1 > SEED_LIMIT:
        raise refusal(
            where.get("seed", "config"),
            "seed",
            seed,
            f"is too high for num_envs={instances}: instance i gets seed + i, and Unity's seed is at most "
            f"{SEED_LIMIT}; set seed to at most {SEED_LIMIT - instances + 1}",
        )
