"""The template runtime's standard-library pieces, which the launcher shares with the trainer.

``rules`` (every rule for settings) and ``project_file`` (the one reader of project.toml) live
with the job's code in src/template_runtime/, so the launcher, ``make notebook``, the trainer and
the template's own pre-generation hook accept and refuse exactly the same values. They need only
the standard library (botocore, when installed, lists the instance types), so importing them here
works in the launcher's, the notebook tool's or a bare Python's environment alike. src/ goes at
the end of sys.path, so nothing in it can shadow an installed package.
"""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent.parent / "src"
if not any(Path(entry or ".").resolve() == SOURCE_DIR for entry in sys.path):
    sys.path.append(str(SOURCE_DIR))

from template_runtime import project_file, rules  # noqa: E402

__all__ = ["SOURCE_DIR", "project_file", "rules"]
