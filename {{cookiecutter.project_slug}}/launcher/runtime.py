"""The template runtime's standard-library modules, which the launcher shares with the trainer.

``rules`` (every rule for settings) and ``project_file`` (the one reader of project.toml), and
``config`` (how a value is converted), ``entry_point`` (what a training script is) and ``metrics``
(which metrics exist, how a metric line is read) live with the job's code in src/template_runtime/,
so the launcher, ``make notebook``, the trainer and the template's pre-generation hook accept and
refuse exactly the same values. They need only the standard library (botocore, when installed,
lists the instance types), so importing them works in the launcher's, the notebook tool's or a
bare Python's environment alike. src/ goes at the end of sys.path, so nothing in it can shadow an
installed package.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

SOURCE_DIR = Path(__file__).resolve().parent.parent / "src"
if not any(Path(entry or ".").resolve() == SOURCE_DIR for entry in sys.path):
    sys.path.append(str(SOURCE_DIR))

from template_runtime import project_file, rules  # noqa: E402

__all__ = ["SOURCE_DIR", "project_file", "rules", "runtime_module"]


def runtime_module(name: str) -> ModuleType:
    """``template_runtime.<name>`` from this repository's src/ (a clear error if it is missing)."""
    try:
        return importlib.import_module(f"template_runtime.{name}")
    except ImportError as error:
        from launcher.errors import LaunchError

        raise LaunchError(
            f"cannot import template_runtime.{name} from {SOURCE_DIR}: {error}. The launcher applies the "
            "training code's own rules from src/template_runtime/: restore it from the template"
        ) from None
