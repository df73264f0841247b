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
