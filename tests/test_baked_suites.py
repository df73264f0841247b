"""Each baked project's own test suites pass, run through its own Makefile and hashed locks.

Slow: they install the training stack and the launcher stacks (each venv built once per lock and
shared, see venvs.py) and run the baked repository's tests: simulated Unity builds, moto servers,
learning runs, papermill notebooks and offline SageMaker jobs included. The container suite builds
the training image from nothing in a Docker engine of its own and runs jobs in it (root only).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ALGORITHMS, bake
from venvs import VENV_ROOT, venv_for

pytestmark = pytest.mark.slow

SUMMARY = re.compile(r"=+ (?P<summary>[^=]*\d+ passed[^=]*) in [\d.]+s")
COLLECTED = re.compile(r"^(?P<summary>\d+ tests? collected) in [\d.]+s$", re.MULTILINE)  # --collect-only -q

# Make variable -> the lock its venv installs
VENVS = {
    "VENV": "requirements/locks/dev.txt",
    "VENV_CONSERVATIVE": "requirements/locks/dev-conservative.txt",
    "VENV_LAUNCHER": "requirements/locks/launcher-dev.txt",
    "VENV_LAUNCHER_V2": "requirements/locks/launcher-v2-dev.txt",
    "VENV_NOTEBOOK": "requirements/locks/notebook-dev.txt",
}
# The container suite's cache (the mmdebstrap base rootfs): made once per CI run, or kept locally.
IMAGE_TEST_CACHE = VENV_ROOT / "image-test"


@pytest.fixture(scope="module")
def shared_venvs(cookies_session) -> dict[str, Path]:
    """Every venv a baked project's Makefile uses, built from the template's locks."""
    project = bake(cookies_session).project_path
    build_lock = project / "requirements/locks/build.txt"
    return {variable: venv_for(project / lock, build_lock) for variable, lock in VENVS.items()}


def run_make(
    project: Path, target: str, venvs: dict[str, Path], pytest_args: str = "", **env_vars: str
) -> list[str]:
    """``make <target>`` in the baked project with the shared venvs; return each pytest summary line."""
    command = ["make", "-C", str(project), target, f"PYTEST_ARGS={pytest_args}"]
    for variable, venv in venvs.items():
        command += [f"{variable}={venv}", "-o", f"{venv}/.installed"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "AWS_"))}
    env.update(env_vars)
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-8000:]
    summaries = [match["summary"] for pattern in (SUMMARY, COLLECTED) for match in pattern.finditer(output)]
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
    """What pruning keeps must stand on its own.

    Pruning only removes files: the code and tests that remain are the very files algorithm=all runs
    in full (launcher included), so here every suite is collected (a test importing a removed file
    fails to collect) and the trainers' and the notebook's quick tests run. What the chosen entry
    point changes is run by this project's own README in tests/test_readme_commands.py: `make demo`
    trains it, the local job runs it through the launcher, the dry runs and --fetch-results read it.
    """
    project = bake(cookies, algorithm=algorithm).project_path

    for suites in ("test-training", "test-launcher", "test-notebook"):
        run_make(project, suites, shared_venvs, "--collect-only -q")
    run_make(project, "test-trainers", shared_venvs, "-m 'not slow'")
    run_make(project, "test-notebook", shared_venvs, "-m 'not slow'")


@pytest.mark.skipif(os.geteuid() != 0, reason="the container suite starts its own dockerd: root only")
def test_container_suite_builds_the_image_and_runs_jobs_in_it(cookies, shared_venvs):
    """make test-container: the CPU image from nothing, SDK v2 and v3 jobs in it, SIGTERM, resume."""
    project = bake(cookies, algorithm="all").project_path

    (summary,) = run_make(project, "test-container", shared_venvs, IMAGE_TEST_CACHE=str(IMAGE_TEST_CACHE))

    assert "skipped" not in summary or "1 skipped" in summary  # only the GPU build may be skipped
