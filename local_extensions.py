"""Jinja filters the template needs beyond cookiecutter's built-ins.

cookiecutter puts the template folder on sys.path and loads these through
``_extensions`` in cookiecutter.json. Each filter turns a free-text answer
(project name, description, author) into text that stays inert in one kind of
file; JSON, Python, TOML and YAML use cookiecutter's own ``jsonify``.
"""

from __future__ import annotations

import re
import shlex

from cookiecutter.utils import simple_filter


@simple_filter
def shell_quote(value: object) -> str:
    """Quote a value as one shell word, so it cannot end the string or run code."""
    return shlex.quote(str(value))


@simple_filter
def markdown_inline(value: object) -> str:
    """Fold a value onto one line and escape Markdown/HTML so it shows as typed."""
    text = " ".join(str(value).split())
    text = re.sub(r"([\\`*_{}\[\]<>()#+!|~%])", r"\\\1", text)
    return text
