"""The whole path, offline: the notebook submits a job to moto, the job runs the way its container would,
and the notebook's "after the job" cells fetch and plot what it left in S3.

1. papermill runs job_launcher.ipynb (wait=False): it uploads the simulated Unity build and submits
   the job; botocore's CreateTrainingJob request is captured in the kernel.
2. That request runs through the SDK generation's real container-side driver (container.py), with
   the training environment's Python: it fetches src/ and the build from S3, trains the random
   example for three episodes and uploads model.tar.gz and output.tar.gz.
3. papermill runs the notebook again with job_name set: it attaches, waits, downloads and plots.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import nbformat
import pytest
from conftest import (
    BUILD_KEY,
    REGION,
    REPO_ROOT,
    Offline,
    Project,
    make_project,
    offline_aws,
    offline_environment,
)

from launcher import container

pytestmark = pytest.mark.slow
NOTEBOOK = REPO_ROOT / "job_launcher.ipynb"
HYPERPARAMETERS = {"episodes": 3, "total_timesteps": 5000}


@dataclass
class Run:
    project: Project
    first: nbformat.NotebookNode  # submitted, did not wait
    second: nbformat.NotebookNode  # attached by job name, fetched the results
    request: dict
    result: container.LocalJobResult
    build: Path
    children: Offline

    def printed(self, notebook: nbformat.NotebookNode, starts: str) -> str:
        """Everything the code cell whose source starts with ``starts`` printed or showed as text."""
        cell = next(c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(starts))
        texts = [o.get("text", "") for o in cell.outputs if o.output_type == "stream"]
        texts += [o.get("data", {}).get("text/plain", "") for o in cell.outputs if "data" in o]
        return "".join(texts)


def papermill(output: Path, parameters: dict, env: dict) -> nbformat.NotebookNode:
    params = output.with_suffix(".yaml")
    params.write_text(json.dumps(parameters))  # JSON is YAML
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(NOTEBOOK),
            str(output),
            "-k",
            "python3",
            "--cwd",
            str(REPO_ROOT),
            "-f",
            str(params),
            "--no-progress-bar",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return nbformat.read(output, as_version=4)


@pytest.fixture(scope="module")
def run(moto_endpoint, role_arn, container_python, sim_build_zip, tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("end-to-end")
    project = make_project(folder, role_arn)
    children = offline_environment(folder / "children")
    common = {
        "project_file": str(project.file),
        "role": role_arn,
        "base_job_name": "e2e",
        "hyperparameters": HYPERPARAMETERS,
        "results_dir": str(folder / "results"),
    }
    first = papermill(
        folder / "submitted.ipynb",
        {**common, "wait": False, "local_build_zip": str(sim_build_zip)},
        children.env,
    )
    requests = children.requests()
    assert len(requests) == 1, f"the notebook sent {len(requests)} CreateTrainingJob requests"
    with pytest.MonkeyPatch.context() as patch, offline_aws.guarded(str(children.guard_log)):
        for name in ("PYTHONPATH", "LAUNCHER_TEST_GUARD_LOG"):  # the container side's children too
            patch.setenv(name, children.env[name])
        result = container.run_training_request(
            requests[0],
            boto_session=boto3.Session(region_name=REGION),
            container_python=container_python,
            work_dir=folder / "jobs",
            echo=None,
        )
    second = papermill(
        folder / "attached.ipynb", {**common, "job_name": requests[0]["TrainingJobName"]}, children.env
    )
    return Run(project, first, second, requests[0], result, sim_build_zip, children)


def test_notebook_uploads_the_build_before_submitting(run):
    body = run.project.s3().get_object(Bucket=run.project.bucket, Key=BUILD_KEY)["Body"].read()
    assert body == run.build.read_bytes()


def test_notebook_submits_the_job_it_names(run):
    assert f"Training job:  {run.request['TrainingJobName']}" in run.printed(run.first, "job = None if tune")


def test_notebook_sends_the_chosen_hyperparameters(run):
    assert {k: run.request["HyperParameters"][k] for k in HYPERPARAMETERS} == {
        "episodes": "3",
        "total_timesteps": "5000",
    }


def test_notebook_that_does_not_wait_fetches_nothing(run):
    assert run.printed(run.first, "results = launch.fetch_results") == ""


def test_container_side_trains_on_the_build_from_s3(run):
    summary = json.loads((run.result.opt_ml / "output" / "data" / "summary.json").read_text())
    assert (summary["episodes"], summary["config"]["zip_env_name"]) == (3, BUILD_KEY)


def test_container_side_reads_the_build_from_the_input_channel(run):
    log = run.result.log_file.read_text()
    assert (
        "Unity player ready" in log
        and (run.result.opt_ml / "input" / "data" / "env" / "3DBall.zip").is_file()
    )


def test_artefacts_are_where_the_notebook_said(run):
    printed, job = run.printed(run.first, "job = None if tune"), run.request["TrainingJobName"]
    keys = set(run.project.keys(f"{job}/"))
    for key in (f"{job}/output/model.tar.gz", f"{job}/output/output.tar.gz"):
        assert key in keys and f"s3://{run.project.bucket}/{key}" in printed


def test_after_the_job_cells_download_the_results(run):
    job = run.request["TrainingJobName"]
    assert f"results of {job} in" in run.printed(run.second, "results = launch.fetch_results")


def test_after_the_job_cells_plot_the_learning_curve(run):
    cell = next(c for c in run.second.cells if c.source.startswith("figure = launch.plot_learning_curve"))
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_after_the_job_cells_say_the_random_example_saved_no_model(run):
    assert "saved no SavedModel" in run.printed(run.second, "model = launch.load_saved_model")


def test_nothing_left_this_machine(run):
    assert run.children.attempts() == []
