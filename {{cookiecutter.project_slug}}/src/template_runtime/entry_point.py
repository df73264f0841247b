"""What a training script offers, read from its source without running it.

The contract of an entry point (any ``src/*.py`` but trainer.py itself): a module-level ``config``
dict literal (its keys are the script's hyperparameters; the runtime adds trainer.py's
``DEFAULT_CONFIG`` under them), a class that subclasses ``Trainer`` or ``LocalTrainer`` (directly or
through another class of the file), optionally declaring the metrics it reports in a class
attribute ``metrics = ("name", ...)`` and whether it trains on several instances in
``distributed = True`` (template_runtime/distributed.py), and a main guard. The launcher reads
scripts this way because its environment has no TensorFlow or mlagents; the trainer's command line
reads them this way to answer ``--help`` and typos before TensorFlow is imported. Standard library
only.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

UNKNOWN = None
"""The default of a config key whose value is not a literal: any value is accepted for it."""
TRAINER_BASES = {"Trainer", "LocalTrainer"}
RUNTIME_FILE = "trainer.py"


class EntryPointError(ValueError):
    """The script does not follow the entry-point contract; the message says what to change."""


@dataclass(frozen=True)
class EntryPointInfo:
    """A training script's config keys (with defaults and comments), trainer class and metrics."""

    path: Path
    config: dict[str, object]
    comments: dict[str, str] = field(default_factory=dict)
    trainer_class: str = ""
    metrics: tuple[str, ...] = ()
    distributed: bool = False  # the trainer class declares ``distributed = True``: instance_count > 1 works

    @property
    def name(self) -> str:
        return self.path.name


def read_entry_point(path: str | Path) -> EntryPointInfo:
    """The script's own ``config`` keys, comments, trainer class and declared metrics."""
    path = Path(path)
    source, tree = _parse(path)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    trainers = [name for name in classes if _is_trainer(name, classes, set())]
    if not trainers:
        raise EntryPointError(
            f"{path} has no Trainer subclass: an entry point defines `class MyTrainer(Trainer)` with a "
            "run() method (src/random_trainer.py is the example to copy)"
        )
    config_node = _module_assignment(tree, "config")
    if config_node is None:
        raise EntryPointError(
            f"{path} has no module-level `config = {{...}}`: an entry point declares its hyperparameters "
            "there (an empty dict is fine)"
        )
    config, lines = _literal_dict(config_node, path, "config")
    trainer = trainers[-1]  # the file's last one: the others are its bases
    return EntryPointInfo(
        path=path,
        config=config,
        comments=_comments(source, lines),
        trainer_class=trainer,
        metrics=_declared_metrics(trainer, classes, path),
        distributed=_declared_distributed(trainer, classes, path),
    )


def read_defaults(source_dir: str | Path) -> tuple[dict[str, object], dict[str, str]]:
    """trainer.py's ``DEFAULT_CONFIG`` (the keys every entry point has) and their comments."""
    path = Path(source_dir) / RUNTIME_FILE
    source, tree = _parse(path)
    node = _module_assignment(tree, "DEFAULT_CONFIG")
    if node is None:
        raise EntryPointError(f"{path} has no DEFAULT_CONFIG dict: restore it from the template")
    defaults, lines = _literal_dict(node, path, "DEFAULT_CONFIG")
    return defaults, _comments(source, lines)


def find_entry_points(source_dir: str | Path) -> list[str]:
    """The file names in ``source_dir`` that follow the contract (any name; trainer.py excluded)."""
    found = []
    for path in sorted(Path(source_dir).glob("*.py")):
        if path.name == RUNTIME_FILE:
            continue
        try:
            read_entry_point(path)
        except EntryPointError:
            continue
        found.append(path.name)
    return found


# ----------------------------------------------------------------------------------------------


def _parse(path: Path) -> tuple[str, ast.Module]:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EntryPointError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EntryPointError(f"{path} cannot be read as UTF-8 text ({error})") from None
    try:
        return source, ast.parse(source, filename=str(path))
    except SyntaxError as error:
        raise EntryPointError(f"{path} does not parse ({error.msg}, line {error.lineno})") from None


def _is_trainer(name: str, classes: dict[str, ast.ClassDef], seen: set[str]) -> bool:
    if name in seen:
        return False
    seen.add(name)
    for base in classes[name].bases:
        base_name = getattr(base, "attr", None) or getattr(base, "id", "")
        if base_name in TRAINER_BASES or (base_name in classes and _is_trainer(base_name, classes, seen)):
            return True
    return False


def _module_assignment(tree: ast.Module, name: str) -> ast.expr | None:
    found = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            found = node.value
    return found


def _literal_dict(node: ast.expr, path: Path, name: str) -> tuple[dict[str, object], dict[str, int]]:
    """The dict's keys with literal values (UNKNOWN for others), and the last line of each entry."""
    if not isinstance(node, ast.Dict):
        raise EntryPointError(
            f"{path}: `{name}` must be a dict literal ({{\"key\": value, ...}}), so the launcher and the "
            f"command line can read its keys without running the script (line {node.lineno})"
        )
    values, lines = {}, {}
    for key, value in zip(node.keys, node.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            where = f"line {value.lineno}"
            raise EntryPointError(
                f"{path}: every key of `{name}` must be a string literal ({where}: "
                f"{'**unpacking' if key is None else ast.unparse(key)}); list the keys one by one"
            )
        try:
            values[key.value] = ast.literal_eval(value)
        except ValueError:
            values[key.value] = UNKNOWN
        lines[key.value] = value.end_lineno or value.lineno
    return values, lines


def _comments(source: str, lines: dict[str, int]) -> dict[str, str]:
    """The comment that ends each entry's last line (``"gamma": 0.99,  # discount``)."""
    by_line: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                by_line[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        return {}
    return {key: by_line[line] for key, line in lines.items() if line in by_line}


def _declared_metrics(trainer: str, classes: dict[str, ast.ClassDef], path: Path) -> tuple[str, ...]:
    """``metrics`` of the trainer class or, if it has none, of its bases in the same file."""
    node = classes[trainer]
    declared = _class_tuple(node, "metrics", path)
    if declared is not None:
        return declared
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            return _declared_metrics(base.id, classes, path)
    return ()


def _class_tuple(node: ast.ClassDef, attribute: str, path: Path) -> tuple[str, ...] | None:
    value = _module_assignment(ast.Module(body=node.body, type_ignores=[]), attribute)
    if value is None:
        return None
    try:
        names = ast.literal_eval(value)
    except ValueError:
        names = None
    if not isinstance(names, tuple | list) or not all(isinstance(n, str) for n in names):
        raise EntryPointError(
            f"{path}: {node.name}.{attribute} must be a literal tuple of names, e.g. "
            f'("policy_loss", "entropy") (line {value.lineno}): the launcher reads it without running it'
        )
    return tuple(names)


def _declared_distributed(trainer: str, classes: dict[str, ast.ClassDef], path: Path) -> bool:
    """``distributed`` of the trainer class or of its bases in the same file (default False)."""
    node = classes[trainer]
    value = _module_assignment(ast.Module(body=node.body, type_ignores=[]), "distributed")
    if value is not None:
        if not (isinstance(value, ast.Constant) and isinstance(value.value, bool)):
            raise EntryPointError(
                f"{path}: {node.name}.distributed must be True or False (line {value.lineno}): the "
                "launcher reads it without running the script"
            )
        return value.value
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            return _declared_distributed(base.id, classes, path)
    return False
