"""Each baked project's own test suites pass, run through its own Makefile and requirement files.

Slow: they install the training stack and the launcher stacks (each venv built once per requirement
set and shared, see venvs.py) and run the baked repository's tests: simulated Unity builds, moto
servers, learning runs, papermill notebooks and offline SageMaker jobs included.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ALGORITHMS, bake
from venvs import venv_for

pytestmark = pytest.mark.slow

SUMMARY = re.compile(r"=+ (?P<summary>[^=]*\d+ passed[^=]*) in [\d.]+s")

# Make variable -> (requirement file, whether it needs the gym build constraints)
VENVS = {
    "VENV": "requirements/dev.txt",
    "VENV_CONSERVATIVE": "requirements/dev-conservative.txt",
    "VENV_LAUNCHER": "requirements/launcher-dev.txt",
    "VENV_LAUNCHER_V2": "requirements/launcher-v2-dev.txt",
    "VENV_NOTEBOOK": "requirements/notebook-dev.txt",
}


@pytest.fixture(scope="module")
def shared_venvs(cookies_session) -> dict[str, Path]:
    """Every venv a baked project's Makefile uses, built from the template's requirement files."""
    project = bake(cookies_session).project_path
    constraints = project / "requirements/build-constraints.txt"
    return {variable: venv_for(project / requirements, constraints) for variable, requirements in VENVS.items()}


def run_make(project: Path, target: str, venvs: dict[str, Path], pytest_args: str = "") -> list[str]:
    """``make <target>`` in the baked project with the shared venvs; return each pytest summary line."""
    command = ["make", "-C", str(project), target, f"PYTEST_ARGS={pytest_args}"]
    for variable, venv in venvs.items():
        command += [f"{variable}={venv}", "-o", f"{venv}/.installed"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "AWS_"))}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-8000:]
    summaries = [match["summary"] for match in SUMMARY.finditer(output)]
    assert summaries, output[-3000:]
    for summary in summaries:
        assert not re.search(r"\d+ (failed|errors?)\b", summary), summary
    return summaries


def test_full_suites_pass_for_every_example(cookies, shared_venvs):
    """algorithm=all holds every test: training side and launcher (SDK v3), slow tests included."""
    project = bake(cookies, algorithm="all").project_path

    summaries = run_make(project, "test", shared_venvs)

    assert len(summaries) == 6  # tests/runtime, trainers, sim, image, launcher, notebook


def test_launcher_suite_passes_with_sdk_v2(cookies, shared_venvs):
    project = bake(cookies, algorithm="all").project_path

    run_make(project, "test-launcher-v2", shared_venvs)


def test_training_suite_passes_on_the_conservative_set(cookies, shared_venvs):
    project = bake(cookies, algorithm="all").project_path

    run_make(project, "test-conservative", shared_venvs, "-m 'not slow'")


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a != "all"])
def test_pruned_repository_still_passes_its_tests(cookies, shared_venvs, algorithm):
    """What pruning keeps must stand on its own; the long runs are covered by the full suite."""
    project = bake(cookies, algorithm=algorithm).project_path

    run_make(project, "test", shared_venvs, "-m 'not slow'")
