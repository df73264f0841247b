"""Each baked project's own test suite passes, run through its own Makefile and requirement files.

Slow: it installs the training stack (shared across runs, see venvs.py) and runs the baked
repository's tests, simulated Unity builds and moto servers included.
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

SUMMARY = re.compile(r"=+ (?P<summary>.*\d+ passed.*) in [\d.]+s")


def run_make(project: Path, target: str, venv_variable: str, venv: Path, pytest_args: str = "") -> str:
    """Run ``make <target>`` in the baked project with the shared venv; return its output."""
    command = ["make", "-C", str(project), target, f"{venv_variable}={venv}",
               "-o", f"{venv}/.installed", f"PYTEST_ARGS={pytest_args}"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "AWS_"))}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    return output


def assert_all_passed(output: str) -> None:
    match = SUMMARY.search(output)
    assert match, output[-3000:]
    assert not re.search(r"\d+ (failed|error)", match["summary"]), match["summary"]


@pytest.fixture(scope="module")
def fast_venv(cookies_session):
    project = bake(cookies_session).project_path
    return venv_for(project / "requirements/dev.txt", project / "requirements/build-constraints.txt")


@pytest.fixture(scope="module")
def conservative_venv(cookies_session):
    project = bake(cookies_session).project_path
    return venv_for(project / "requirements/dev-conservative.txt",
                    project / "requirements/build-constraints.txt")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_baked_project_suite_passes(cookies, fast_venv, algorithm):
    result = bake(cookies, algorithm=algorithm)
    assert result.exit_code == 0, result.exception

    # The full suite once ("all" holds every test); the others run what their pruning kept,
    # without the long learning runs "all" already covers.
    pytest_args = "" if algorithm == "all" else "-m 'not slow'"
    assert_all_passed(run_make(result.project_path, "test", "VENV", fast_venv, pytest_args))


def test_baked_project_suite_passes_on_the_conservative_set(cookies, conservative_venv):
    result = bake(cookies, algorithm="all")
    assert result.exit_code == 0, result.exception

    output = run_make(result.project_path, "test-conservative", "VENV_CONSERVATIVE", conservative_venv,
                      "-m 'not slow'")
    assert_all_passed(output)
