"""What a training script accepts, read from its source without importing it.

The launcher's environment has no TensorFlow or mlagents, so ``src/*_trainer.py`` cannot be
imported here. Its ``config`` dict and trainer.py's ``DEFAULT_CONFIG`` are literals, so ``ast``
reads them; hyperparameters are then checked and converted with template_runtime.config.coerce (stdlib
only, loaded from src/), the very function the trainer applies to SM_HPS in the job, so a value
has the same type on both sides. The names passed to ``log_metrics(...)`` give the job's metric
definitions.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from launcher.errors import LaunchError
from launcher.runtime import rules

UNKNOWN = None
"""The default of a config key whose value is not a literal: any value is accepted for it."""


@dataclass(frozen=True)
class EntryPoint:
    """A training script in src/: its config keys with their defaults, and the metrics it logs."""

    name: str
    path: Path
    config: dict[str, object]
    metric_names: tuple[str, ...] = field(default=())

    def hyperparameters(
        self, values: Mapping[str, object], source: str = "hyperparameters"
    ) -> dict[str, object]:
        """``values`` checked against this script's config: known keys, each of its default's type."""
        coerce = _trainer_config(self.path.parent).coerce
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
    """The training scripts in ``source_dir`` (files named *_trainer.py)."""
    return sorted(p.name for p in source_dir.glob("*_trainer.py"))


def load_entry_point(name: str, source_dir: Path) -> EntryPoint:
    """Read ``source_dir/name``; the error names the scripts that do exist."""
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
    script = _parse(path)
    trainer_file = source_dir / "trainer.py"
    trainer = _parse(trainer_file) if trainer_file.is_file() else ast.Module(body=[], type_ignores=[])
    config = {**_literal_dict(trainer, "DEFAULT_CONFIG"), **_literal_dict(script, "config")}
    metrics = _metric_names(script) + _metric_names(trainer)
    return EntryPoint(name=name, path=path, config=config, metric_names=tuple(dict.fromkeys(metrics)))


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as error:
        raise LaunchError(
            f"{path} does not parse ({error.msg}, line {error.lineno}): fix the script first"
        ) from None


def _literal_dict(tree: ast.Module, name: str) -> dict[str, object]:
    """The module-level ``name = {...}``: literal values as they are, anything else as UNKNOWN."""
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and isinstance(
            node.value, ast.Dict
        ):
            result = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    try:
                        result[key.value] = ast.literal_eval(value)
                    except ValueError:
                        result[key.value] = UNKNOWN
            return result
    return {}


def _metric_names(tree: ast.Module) -> list[str]:
    """Keyword names of every ``log_metrics(step, name=value, ...)`` call."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if called == "log_metrics":
                names += [kw.arg for kw in node.keywords if kw.arg]
    return names


_loaded: dict[Path, ModuleType] = {}


def _trainer_config(source_dir: Path) -> ModuleType:
    """src/template_runtime/config.py, imported from its file under a private name (stdlib only)."""
    path = (source_dir / "template_runtime" / "config.py").resolve()
    if path not in _loaded:
        if not path.is_file():
            raise LaunchError(
                f"{path} is missing: it converts hyperparameters the way the trainer does; restore it"
            )
        spec = importlib.util.spec_from_file_location(f"_launcher_trainer_config_{len(_loaded)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[path] = module
    return _loaded[path]
