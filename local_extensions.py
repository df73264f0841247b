"""Jinja filters the template needs beyond cookiecutter's built-ins.

cookiecutter puts the template folder on sys.path and loads these through
``_extensions`` in cookiecutter.json. Each filter turns a free-text answer
(project name, description, author) into text that stays inert in one kind of
file: ``toml_string`` for TOML, ``yaml_string`` for YAML, ``shell_quote`` for shell,
``markdown_inline`` for Markdown; JSON and Python use cookiecutter's own ``jsonify``.

``rendering_dir()`` (a global, from ``RenderingDir``) is the working directory at the moment a file
is rendered. cookiecutter and cruft both render the hooks from inside the template folder (its
``run_hook_from_repo_dir`` works in ``repo_dir``), so the pre-generation hook can find the
template's rules.py when cruft, which calls cookiecutter's generate_files itself, passes no
``_repo_dir``.
"""

from __future__ import annotations

import os
import re
import shlex
import unicodedata

from cookiecutter.utils import simple_filter
from jinja2.ext import Extension

# TOML's short escapes; every other character that must (or had better) be escaped becomes \uXXXX.
_TOML_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
# Escaped although TOML would take them raw: C1 controls, line/paragraph separators, the invisible
# format characters (bidi overrides, zero-width spaces) and unassigned code points (U+FFFF ...), so
# the file shows what the value holds and YAML, which refuses some of them raw, reads it too.
_TOML_ESCAPED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cn"}


def toml_basic_string(value: object) -> str:
    """``value`` as a TOML basic string ("..."), which tomllib reads back exactly.

    Quotes and backslashes get backslashes, control characters their TOML escapes (\\b \\t \\n \\f
    \\r or \\uXXXX), invisible format characters \\uXXXX or \\UXXXXXXXX; everything else, emoji and
    other characters outside the Basic Multilingual Plane included, is written as itself (never as
    a JSON surrogate pair, which is not TOML). A lone surrogate cannot be written: ValueError.
    """
    out = []
    for char in str(value):
        if char in _TOML_SHORT_ESCAPES:
            out.append(_TOML_SHORT_ESCAPES[char])
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ValueError(f"a lone surrogate (U+{ord(char):04X}) cannot be written to a TOML file")
        elif unicodedata.category(char) in _TOML_ESCAPED_CATEGORIES:
            out.append(f"\\u{ord(char):04X}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@simple_filter
def toml_string(value: object) -> str:
    """A TOML basic string for a value (see toml_basic_string)."""
    return toml_basic_string(value)


@simple_filter
def yaml_string(value: object) -> str:
    """A YAML double-quoted string: YAML takes exactly TOML's escapes (and non-BMP characters raw).

    cookiecutter's ``jsonify`` would write an emoji as a JSON surrogate pair, which YAML parsers
    read as two lone surrogates.
    """
    return toml_basic_string(value)


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


class RenderingDir(Extension):
    """The global ``rendering_dir()``: the working directory while a template file is rendered."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["rendering_dir"] = os.getcwd
