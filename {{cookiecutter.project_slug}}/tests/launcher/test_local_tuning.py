"""`python launch.py --tune --local-job`: a tuning job of four small jobs run here the way SageMaker would.

The SDK's tuner builds the CreateHyperParameterTuningJob request (src/ goes to moto's S3); the
request is held back and local_tuning.py plays SageMaker: it draws each job's values, runs every
job through the real container driver (sagemaker-training's ``train``, the training environment's
Python, the simulated Unity build), two at a time, reads each job's objective from its log with the
request's own metric regex, picks the best, and --fetch-results' code brings the table, plots and
best model back. The jobs are the random example, three episodes each (seconds apiece).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from conftest import BUILD_KEY, Offline, Project, make_project, offline_environment, run_launch

from launcher.entry_points import load_entry_point
from launcher.job import metric_definitions
from launcher.local_tuning import RECORD, last_value
from launcher.project import SOURCE_DIR

pytestmark = pytest.mark.slow
BASE = "tune-local"


@dataclass
class LocalTuning:
    project: Project
    returncode: int
    stdout: str
    folder: Path
    children: Offline

    @property
    def name(self) -> str:
        return re.search(r"^Tuning job: +(\S+)  \(run here", self.stdout, re.MULTILINE).group(1)

    @property
    def record(self) -> dict:
        body = self.project.s3().get_object(Bucket=self.project.bucket, Key=f"{self.name}/{RECORD}")["Body"]
        return json.loads(body.read())

    @property
    def summaries(self) -> list[dict]:
        return self.record["TrainingJobSummaries"]

    def opt_ml(self, job: str) -> Path:
        return self.folder / "jobs" / self.name / job


@pytest.fixture(scope="module")
def run(moto_endpoint, role_arn, container_python, sim_build_zip, tmp_path_factory) -> LocalTuning:
    folder = tmp_path_factory.mktemp("local-tuning")
    project = make_project(folder, role_arn)
    project.s3().upload_file(str(sim_build_zip), project.bucket, BUILD_KEY)
    children = offline_environment(folder / "children")
    result = run_launch(
        ["--project-file", str(project.file), "--set", f"role={role_arn}", "--set", "episodes=3"]
        + ["--set", f"base_job_name={BASE}", "--tune", "--local-job", "--strategy", "Random"]
        + ["--range", "window=2:10", "--range", "seed=0,1,2,3", "--max-jobs", "4", "--max-parallel", "2"]
        + ["--container-python", str(container_python), "--work-dir", str(folder / "jobs")]
        + ["--results-dir", str(folder / "results")],
        children.env,
        timeout=900,
    )
    found = LocalTuning(project, result.returncode, result.stdout + result.stderr, folder, children)
    assert found.returncode == 0, found.stdout[-6000:]
    return found


def test_four_training_jobs_ran_named_the_way_sagemaker_names_them(run):
    names = [s["TrainingJobName"] for s in run.summaries]
    assert len(names) == 4 and all(re.fullmatch(rf"{run.name}-00[1-4]-[0-9a-f]{{8}}", n) for n in names)
    assert [s["TrainingJobStatus"] for s in run.summaries] == ["Completed"] * 4


def test_two_jobs_ran_at_a_time_never_more(run):
    spans = [
        (datetime.fromisoformat(s["TrainingStartTime"]), datetime.fromisoformat(s["TrainingEndTime"]))
        for s in run.summaries
    ]
    overlap = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert overlap == 2


def test_jobs_side_by_side_play_on_ports_apart(run):
    """One machine stands in for SageMaker's separate instances: parallel jobs get worker ids 100 apart."""
    worker_ids = {
        json.loads((run.opt_ml(s["TrainingJobName"]) / "output" / "data" / "summary.json").read_text())[
            "config"
        ]["worker_id"]
        for s in run.summaries
    }
    assert worker_ids == {0, 100}


def test_each_job_got_its_tuned_values_with_the_keys_types(run):
    for summary in run.summaries:
        tuned = summary["TunedHyperParameters"]
        config = json.loads(
            (run.opt_ml(summary["TrainingJobName"]) / "output" / "data" / "summary.json").read_text()
        )
        assert config["config"]["window"] == int(tuned["window"]) and 2 <= config["config"]["window"] <= 10
        assert config["config"]["seed"] == json.loads(tuned["seed"]) and config["episodes"] == 3


def test_sagemakers_tuning_hyperparameter_reaches_the_container_and_not_the_trainer(run):
    job = run.summaries[0]["TrainingJobName"]
    given = json.loads((run.opt_ml(job) / "input" / "config" / "hyperparameters.json").read_text())
    kept = json.loads((run.opt_ml(job) / "output" / "data" / "summary.json").read_text())["config"]
    assert (
        given["_tuning_objective_metric"] == "episode_reward_mean" and "_tuning_objective_metric" not in kept
    )


def test_each_objective_is_the_last_value_the_requests_regex_reads_in_the_log(run):
    regex = dict(metric_definitions(load_entry_point("random_trainer.py", SOURCE_DIR).metric_names))[
        "episode_reward_mean"
    ]
    for summary in run.summaries:
        folder = run.opt_ml(summary["TrainingJobName"])
        logged = last_value(regex, (folder / "local-job.log").read_text())
        records = [
            json.loads(line)
            for line in (folder / "output" / "data" / "metrics.jsonl").read_text().splitlines()
        ]
        value = summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert value == logged == float(f"{records[-1]['episode_reward_mean']:.6g}")


def test_the_best_job_is_the_one_with_the_highest_objective(run):
    values = {
        s["TrainingJobName"]: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in run.summaries
    }
    best = max(values, key=values.get)
    assert run.record["Description"]["BestTrainingJob"]["TrainingJobName"] == best
    assert f"local tuning job {run.name} finished: best {best}" in run.stdout


def test_every_job_left_model_and_output_where_sagemaker_would(run):
    for summary in run.summaries:
        job = summary["TrainingJobName"]
        assert {f"{job}/output/model.tar.gz", f"{job}/output/output.tar.gz"} <= set(
            run.project.keys(f"{job}/")
        )


def test_results_are_fetched_with_the_best_jobs_model(run):
    folder = run.folder / "results" / run.name
    best = run.record["Description"]["BestTrainingJob"]["TrainingJobName"]
    assert json.loads((folder / "best" / "best_job.json").read_text())["training_job"] == best
    assert len((folder / "jobs.csv").read_text().splitlines()) == 5
    assert (folder / "objective_per_job.png").is_file() and (folder / "learning_curves.png").is_file()
    assert f"{best} *" in run.stdout  # the table marks it


def test_the_best_jobs_output_holds_its_tensorboard_events(run):
    best = run.record["Description"]["BestTrainingJob"]["TrainingJobName"]
    body = (
        run.project.s3()
        .get_object(Bucket=run.project.bucket, Key=f"{best}/output/output.tar.gz")["Body"]
        .read()
    )
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert any("tensorboard/events.out.tfevents" in name for name in tar.getnames())


def test_the_tuning_request_was_held_back_and_nothing_left_this_machine(run):
    assert run.children.tuning_requests() == [] and run.children.requests() == []
    assert run.children.attempts() == []
