"""The template runtime's standard-library modules, imported from src/ for the launcher.

The launcher's environment has no TensorFlow or mlagents, but the rules it must apply are the
runtime's own: how a config value is converted (``config``), what an entry point is
(``entry_point``), which metrics exist and how a metric line is read (``metrics``). Importing those
modules from src/template_runtime/ (src/ goes at the end of sys.path, so it shadows nothing the
launcher installed) keeps one copy of each rule.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from launcher.errors import LaunchError
from launcher.project import SOURCE_DIR


def runtime_module(name: str) -> ModuleType:
    """``template_runtime.<name>`` from this repository's src/."""
    if str(SOURCE_DIR) not in sys.path:
        sys.path.append(str(SOURCE_DIR))
    try:
        return importlib.import_module(f"template_runtime.{name}")
    except ImportError as error:
        raise LaunchError(
            f"cannot import template_runtime.{name} from {SOURCE_DIR}: {error}. The launcher applies the "
            "training code's own rules from src/template_runtime/: restore it from the template"
        ) from None
