"""What a training script accepts, read from its source without importing it.

The launcher's environment has no TensorFlow or mlagents, so a training script cannot be imported
here. template_runtime.entry_point reads its ``config`` literal, its trainer class and the metrics it
declares (the same reader the trainer's own command line uses); trainer.py's ``DEFAULT_CONFIG``
adds the keys every script has. Hyperparameters are checked and converted with
template_runtime.config.coerce, the very function the trainer applies to SM_HPS in the job, so a
value has the same type on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from launcher.errors import LaunchError
from launcher.runtime import rules, runtime_module


@dataclass(frozen=True)
class EntryPoint:
    """A training script in src/: its config keys with their defaults, and the metrics it reports."""

    name: str
    path: Path
    config: dict[str, object]
    metric_names: tuple[str, ...] = field(default=())
    comments: dict[str, str] = field(default_factory=dict)
    distributed: bool = False  # trains on several instances (its trainer class: ``distributed = True``)

    def hyperparameters(
        self, values: Mapping[str, object], source: str = "hyperparameters"
    ) -> dict[str, object]:
        """``values`` checked against this script's config: known keys, each of its default's type."""
        coerce = runtime_module("config").coerce
        checked = {}
        for key, value in values.items():
            if key not in self.config:
                raise LaunchError(
                    f"{source}: {key!r} is not a config key of {self.name} "
                    f"(known: {', '.join(sorted(self.config))}). "
                    f"Fix the name, or add the key to the config dict in src/{self.name}"
                )
            try:
                checked[key] = coerce(key, value, self.config[key], f"{source} for {self.name}")
            except ValueError as error:  # template_runtime.config.ConfigError
                raise LaunchError(str(error)) from None
        return checked


def available(source_dir: Path) -> list[str]:
    """The training scripts in ``source_dir``: every file that follows the entry-point contract."""
    return runtime_module("entry_point").find_entry_points(source_dir)


def load_entry_point(name: str, source_dir: Path) -> EntryPoint:
    """Read ``source_dir/name``; the error says what is wrong and names the scripts that do exist."""
    reader = runtime_module("entry_point")
    try:
        rules.entry_point(name, "entry_point")
    except rules.RuleError as error:
        raise LaunchError(f"{error}; available: {', '.join(available(source_dir)) or 'none'}") from None
    path = source_dir / name
    if not path.is_file():
        raise LaunchError(
            f"entry_point={name!r}: {path} does not exist. "
            f"Available: {', '.join(available(source_dir)) or 'none'}; "
            "set entry_point (or [training] entry_point in project.toml) to one of them"
        )
    try:
        info = reader.read_entry_point(path)
        defaults, default_comments = reader.read_defaults(source_dir)
    except reader.EntryPointError as error:
        raise LaunchError(f"entry_point={name!r} cannot be launched: {error}") from None
    metrics = runtime_module("metrics")
    try:
        names = metrics.check_names((*metrics.BASE_METRICS, *info.metrics), f"{name}: metrics")
    except metrics.MetricNameError as error:
        raise LaunchError(str(error)) from None
    return EntryPoint(
        name=name,
        path=path,
        config={**defaults, **info.config},
        metric_names=names,
        comments={**default_comments, **info.comments},
        distributed=info.distributed,
    )
