"""Helpers shared by the template's tests: baking with pytest-cookies and reading the result."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_OPTIONS: dict = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
ALGORITHMS: list[str] = TEMPLATE_OPTIONS["algorithm"]
REGIONS: list[str] = TEMPLATE_OPTIONS["aws_region"]

# Jinja left in a rendered file: a cookiecutter placeholder, a statement tag or a comment tag.
# (Code may contain `{{` for other reasons: f-string braces, GitHub Actions' `${{ ... }}`.)
LEFTOVER_JINJA = re.compile(
    r"\{\{-?\s*cookiecutter\b|\{%-?\s*(?:if|elif|else|endif|for|endfor|raw|endraw|set|macro|include|import)\b"
    r"|(?<!\$)\{#-?\s"
)

BINARY_SUFFIXES = {".png", ".zip", ".gz", ".so", ".pb", ".bin"}


def text_files(project: Path) -> Iterator[Path]:
    """Every text file (binary ones hold a NUL byte in their first block)."""
    for path in sorted(project.rglob("*")):
        if path.is_file() and path.suffix not in BINARY_SUFFIXES and b"\0" not in path.read_bytes()[:8192]:
            yield path


def bake(cookies, **answers):
    """Bake the template with ``answers`` over its defaults; return pytest-cookies' Result."""
    return cookies.bake(extra_context=answers, template=str(TEMPLATE_DIR))


@pytest.fixture
def baked_default(cookies):
    result = bake(cookies)
    assert result.exit_code == 0, result.exception
    return result.project_path


def load_module(name: str, path: Path):
    """A module from a file, without putting its folder on sys.path (as the pre-gen hook loads rules.py)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


RUNTIME_DIR = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "src" / "template_runtime"
rules = load_module("template_rules_under_test", RUNTIME_DIR / "rules.py")
local_extensions = load_module("local_extensions_under_test", TEMPLATE_DIR / "local_extensions.py")


def as_rendered(value: str) -> str:
    """An extra_context answer as the hook sees it: cookiecutter renders answers as Jinja templates,
    and Jinja turns every \\r\\n and lone \\r into \\n."""
    return value.replace("\r\n", "\n").replace("\r", "\n")
