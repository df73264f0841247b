"""Hyperparameter ranges for a tuning job, checked against the entry point's config keys and types.

A range is written ``key=low:high[:scaling]`` (a number key: Integer for an int default, Continuous
for a float default) or ``key=a,b,c`` (Categorical, any key), on the command line (``--range``) or
in project.toml's ``[tuning.ranges]`` table, which also takes TOML lists (``seed = [0, 1, 2]``) and
tables (``learning_rate = {min = 1e-4, max = 1e-3, scaling = "log"}``). Every value is converted
with template_runtime.config.coerce, the function the trainer applies to SM_HPS, so a value the
trainer would refuse is refused here first, naming the range.

What the training jobs receive: SageMaker passes a tuned value as text (``"0.00031"``, ``"3"``) and
a categorical value exactly as listed, so categorical values are sent JSON-encoded like every other
hyperparameter (``'"relu"'``, ``"true"``, ``"2"``): the job decodes them back to the key's type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from launcher.entry_points import EntryPoint
from launcher.errors import LaunchError
from launcher.runtime import runtime_module

SCALINGS = {"auto": "Auto", "linear": "Linear", "log": "Logarithmic", "reverselog": "ReverseLogarithmic"}
MAX_RANGES_PER_KIND = 30  # ParameterRanges: at most 30 ranges of each kind (botocore's model)
MAX_CATEGORICAL_VALUES = 30  # CategoricalParameterRange.Values
KINDS = ("Integer", "Continuous", "Categorical")


@dataclass(frozen=True)
class ParameterRange:
    """One tuned hyperparameter, as CreateHyperParameterTuningJob's ParameterRanges carry it."""

    name: str
    kind: str  # "Integer", "Continuous" or "Categorical"
    min_value: str = ""  # Integer / Continuous: the bounds as sent (text)
    max_value: str = ""
    scaling: str = "Auto"
    values: tuple[str, ...] = ()  # Categorical: each value JSON-encoded, as the job receives it

    def as_request(self) -> dict:
        if self.kind == "Categorical":
            return {"Name": self.name, "Values": list(self.values)}
        return {
            "Name": self.name,
            "MinValue": self.min_value,
            "MaxValue": self.max_value,
            "ScalingType": self.scaling,
        }

    @property
    def choices(self) -> int | None:
        """How many values a grid search takes from it (None: not a grid range)."""
        return len(self.values) if self.kind == "Categorical" else None

    def describe(self) -> str:
        if self.kind == "Categorical":
            return f"{self.name} in {{{', '.join(self.values)}}}"
        scale = "" if self.scaling == "Auto" else f", {self.scaling.lower()}"
        return f"{self.name} in [{self.min_value}, {self.max_value}] ({self.kind.lower()}{scale})"


def parse_range(text: str, entry: EntryPoint, source: str = "--range") -> ParameterRange:
    """``key=low:high[:scaling]`` or ``key=a,b,c`` from the command line."""
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not key or not spec:
        raise LaunchError(
            f"{source} {text!r}: expected KEY=LOW:HIGH[:log] or KEY=A,B,C, "
            "e.g. --range learning_rate=1e-4:1e-3:log or --range seed=0,1,2"
        )
    return range_from_value(key, spec, entry, f"{source} {key}")


def range_from_value(key: str, value: object, entry: EntryPoint, where: str) -> ParameterRange:
    """A range given as text (the command-line syntax), a TOML list (categorical) or a TOML table."""
    _check_key(key, entry, where)
    if isinstance(value, str):
        if "," in value or ":" not in value:
            values = [part.strip() for part in value.split(",")]
            return _categorical(key, values, entry, where, from_text=True)
        parts = [part.strip() for part in value.split(":")]
        if len(parts) not in (2, 3):
            raise LaunchError(f"{where}={value!r}: write LOW:HIGH or LOW:HIGH:SCALING (one or two colons)")
        return _numeric(key, parts[0], parts[1], parts[2] if len(parts) == 3 else "auto", entry, where)
    if isinstance(value, list | tuple):
        return _categorical(key, list(value), entry, where, from_text=False)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"min", "max", "scaling"})
        if unknown or "min" not in value or "max" not in value:
            raise LaunchError(
                f"{where}={dict(value)!r}: a range table has min, max and optionally scaling "
                f"(auto, linear, log, reverselog){'; unknown: ' + ', '.join(unknown) if unknown else ''}"
            )
        return _numeric(key, value["min"], value["max"], value.get("scaling", "auto"), entry, where)
    raise LaunchError(
        f'{where}={value!r} is not a range: write "LOW:HIGH", "A,B,C", a list or '
        "{min = ..., max = ...} (to fix a value, set it as a hyperparameter instead)"
    )


def ranges_from(
    cli: Sequence[str], table: Mapping[str, object], entry: EntryPoint, table_name: str
) -> dict[str, ParameterRange]:
    """project.toml's ranges, each overridden by a --range of the same key."""
    ranges: dict[str, ParameterRange] = {}
    if not isinstance(table, Mapping):
        raise LaunchError(f"{table_name} must be a table of key = range lines")
    for key, value in table.items():
        ranges[key] = range_from_value(key, value, entry, f"{table_name} {key}")
    for text in cli:
        found = parse_range(text, entry)
        ranges[found.name] = found
    return ranges


def check_counts(ranges: Mapping[str, ParameterRange]) -> None:
    for kind in KINDS:
        count = sum(1 for r in ranges.values() if r.kind == kind)
        if count > MAX_RANGES_PER_KIND:
            raise LaunchError(
                f"{count} {kind.lower()} ranges: SageMaker takes at most {MAX_RANGES_PER_KIND} of each kind"
            )


def decoded(value: str) -> object:
    """A categorical value as the trainer receives it (JSON-decoded)."""
    return json.loads(value)


# ----------------------------------------------------------------------------------------------


def _check_key(key: str, entry: EntryPoint, where: str) -> None:
    if key.startswith("sagemaker_") or key.startswith("_tuning"):
        raise LaunchError(f"{where}: {key!r} is a name SageMaker reserves; it cannot be tuned")
    if key not in entry.config:
        raise LaunchError(
            f"{where}: {key!r} is not a config key of {entry.name} "
            f"(known: {', '.join(sorted(entry.config))}). "
            f"Fix the name, or add the key to the config dict in src/{entry.name}"
        )


def _coerce(key: str, value: object, like: object, where: str) -> object:
    try:
        return runtime_module("config").coerce(key, value, like, where)
    except ValueError as error:  # template_runtime.config.ConfigError
        raise LaunchError(str(error)) from None


def _numeric(
    key: str, low: object, high: object, scaling: object, entry: EntryPoint, where: str
) -> ParameterRange:
    like = entry.config[key]
    shown = f"{where}={low}:{high}"
    if isinstance(like, bool | str | list | dict):
        kind = {bool: "true or false", str: "text", list: "a list", dict: "a JSON object"}[type(like)]
        raise LaunchError(
            f"{shown}: {key} is {kind} (default {like!r}), so it has no LOW:HIGH range: "
            f"list the values to try instead, e.g. --range {key}="
            + (",".join(["true", "false"]) if isinstance(like, bool) else "A,B")
        )
    if like is None:  # not a literal default: the bounds' own spelling decides
        like = 0 if all(_looks_integral(v) for v in (low, high)) else 0.0
    integer = isinstance(like, int)
    low_value, high_value = (_coerce(key, v, like, where) for v in (low, high))
    if not all(math.isfinite(v) for v in (low_value, high_value)):
        raise LaunchError(f"{shown}: the bounds must be finite numbers")
    if not low_value < high_value:
        raise LaunchError(f"{shown}: LOW must be less than HIGH (swap them, or set a fixed value with --set)")
    scale = SCALINGS.get(str(scaling).strip().lower())
    if scale is None:
        raise LaunchError(f"{shown}:{scaling}: unknown scaling {scaling!r}: use one of {', '.join(SCALINGS)}")
    if scale == "Logarithmic" and low_value <= 0:
        raise LaunchError(f"{shown}:log: a logarithmic range needs LOW > 0 (it is {low_value})")
    if scale == "ReverseLogarithmic" and (integer or low_value < 0 or high_value >= 1):
        raise LaunchError(
            f"{shown}:reverselog: a reverse-logarithmic range is for a float key within [0, 1) "
            "(e.g. gamma=0.9:0.999:reverselog)"
        )
    return ParameterRange(
        name=key,
        kind="Integer" if integer else "Continuous",
        min_value=_number_text(low_value),
        max_value=_number_text(high_value),
        scaling=scale,
    )


def _categorical(key: str, values: list, entry: EntryPoint, where: str, *, from_text: bool) -> ParameterRange:
    like = entry.config[key]
    shown = f"{where}={','.join(map(str, values)) if from_text else values!r}"
    if from_text and isinstance(like, list | dict):
        raise LaunchError(
            f"{shown}: {key} is {'a list' if isinstance(like, list) else 'a JSON object'}: list its values "
            f"in project.toml instead, [tuning.ranges] {key} = [[...], [...]]"
        )
    if len(values) < 2 or any(v == "" for v in values):
        raise LaunchError(
            f"{shown}: a categorical range needs at least two values, none empty "
            f"(to fix one value, use --set {key}=VALUE)"
        )
    if len(values) > MAX_CATEGORICAL_VALUES:
        raise LaunchError(f"{shown}: {len(values)} values; SageMaker takes at most {MAX_CATEGORICAL_VALUES}")
    encoded = [json.dumps(_coerce(key, value, like, where)) for value in values]
    if len(set(encoded)) != len(encoded):
        raise LaunchError(f"{shown}: a value is listed twice")
    return ParameterRange(name=key, kind="Categorical", values=tuple(encoded))


def _looks_integral(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().lstrip("+-").isdigit()


def _number_text(value: int | float) -> str:
    """The bound as sent: ``3``, ``0.0001``, ``1e-05`` (both SDKs pass text through unchanged)."""
    return str(value) if isinstance(value, int) else repr(float(value))
