"""job_launcher.ipynb as committed: generated from the settings, one `parameters` cell, no answers."""

from __future__ import annotations

import dataclasses
import tomllib

import nbformat
import pytest
from conftest import REPO_ROOT

from launcher.settings import JobSettings

NOTEBOOK = REPO_ROOT / "job_launcher.ipynb"


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_is_what_the_generator_writes():
    from launcher import make_notebook

    assert NOTEBOOK.read_text(encoding="utf-8") == make_notebook.render()


def test_notebook_is_valid(notebook):
    nbformat.validate(notebook)


def test_exactly_one_cell_is_tagged_parameters(notebook):
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_parameters_cell_offers_every_setting(notebook):
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
    assert {f.name for f in dataclasses.fields(JobSettings)} <= assigned


def test_notebook_holds_no_outputs(notebook):
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in notebook.cells
        if c.cell_type == "code"
    )


def test_notebook_holds_none_of_the_project_answers():
    text = NOTEBOOK.read_text(encoding="utf-8")
    answers = tomllib.loads((REPO_ROOT / "project.toml").read_text())
    values = [answers["aws"][k] for k in ("s3_bucket", "ecr_image_uri", "region")] + [
        answers["unity_build"]["zip_key"]
    ]
    assert [v for v in values if v in text] == []
    assert "{{" not in text and "{%" not in text
