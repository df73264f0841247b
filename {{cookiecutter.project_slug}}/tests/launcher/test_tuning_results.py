"""--fetch-results of a tuning job: the table, the plots, and the best job's model in results/<tuning>/best/.

moto has no ListTrainingJobsForHyperParameterTuningJob, and its DescribeHyperParameterTuningJob
answers with a fixed fake best job, so those two calls are answered by botocore's Stubber, which
checks both our parameters and the canned answers against the service model. The training jobs
themselves (DescribeTrainingJob) and their artefacts (S3) are moto's, placed where SageMaker puts them.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from conftest import REGION

from launcher import aws, cli, tuning
from launcher.errors import LaunchError

TUNING = "tune-results-260101"
OBJECTIVES = {1: 3.5, 2: 9.25, 3: None, 4: 6.0}  # job 3 failed before reporting
STUBBED = {"describe_hyper_parameter_tuning_job", "list_training_jobs_for_hyper_parameter_tuning_job"}


def job_name(number: int) -> str:
    return f"{TUNING}-{number:03d}-0000000{number}"


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def metrics(value: float) -> bytes:
    records = [{"step": 100 * i, "episode_reward_mean": value * i / 4} for i in range(1, 5)]
    return "\n".join(map(json.dumps, records)).encode()


def description(project, status: str = "Completed") -> dict:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": (
            f"arn:aws:sagemaker:{REGION}:123456789012:hyper-parameter-tuning-job/{TUNING}"
        ),
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "episode_reward_mean"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": project.image_uri, "TrainingInputMode": "File"},
            "RoleArn": project.role,
            "OutputDataConfig": {"S3OutputPath": f"s3://{project.bucket}"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": when,
        "TrainingJobStatusCounters": {"Completed": 3, "NonRetryableError": 1},
        "ObjectiveStatusCounters": {"Succeeded": 3, "Failed": 1},
        "BestTrainingJob": summary(2, project),
    }


def summary(number: int, project) -> dict:
    value = OBJECTIVES[number]
    found = {
        "TrainingJobName": job_name(number),
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{job_name(number)}",
        "TuningJobName": TUNING,
        "CreationTime": datetime(2026, 1, 1, 0, number, tzinfo=UTC),
        "TrainingJobStatus": "Failed" if value is None else "Completed",
        "TunedHyperParameters": {"window": str(10 * number), "env_file": '"3DBall"'},
        "ObjectiveStatus": "Failed" if value is None else "Succeeded",
    }
    if value is None:
        found["FailureReason"] = "AlgorithmError: the player did not start"
    else:
        found["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": "Maximize",
            "MetricName": "episode_reward_mean",
            "Value": value,
        }
    return found


class _SplitClient:
    def __init__(self, real, stubbed):
        self._real, self._stubbed = real, stubbed

    def __getattr__(self, name):
        if name in STUBBED or name == "get_paginator":
            return getattr(self._stubbed, name)
        return getattr(self._real, name)


class SplitSession:
    """A boto3 session: its SageMaker client takes the two tuning calls from the Stubber, others from moto."""

    def __init__(self, stubbed):
        self._real, self._stubbed = boto3.Session(region_name=REGION), stubbed

    def __getattr__(self, name):
        return getattr(self._real, name)

    def client(self, service, **kwargs):
        real = self._real.client(service, **kwargs)
        return _SplitClient(real, self._stubbed) if service == "sagemaker" else real


def stage(project, monkeypatch, describes: int):
    """Four training jobs of a finished tuning job, the second the best, with a SavedModel and an ONNX file.

    The Stubber expects ``describes`` DescribeHyperParameterTuningJob calls, then one list call.
    """
    sagemaker, s3 = boto3.client("sagemaker"), project.s3()
    for number, value in OBJECTIVES.items():
        sagemaker.create_training_job(
            TrainingJobName=job_name(number),
            RoleArn=project.role,
            OutputDataConfig={"S3OutputPath": f"s3://{project.bucket}"},
            AlgorithmSpecification={"TrainingImage": project.image_uri, "TrainingInputMode": "File"},
            ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )
        if value is None:
            continue
        model = {"summary.txt": b"x"}
        if number == 2:
            model = {
                "policy/saved_model.pb": b"\x08\x01",
                "policy/variables/variables.index": b"",
                "policy.onnx": b"o",
            }
        prefix = f"{job_name(number)}/output"
        s3.put_object(Bucket=project.bucket, Key=f"{prefix}/model.tar.gz", Body=tar_gz(model))
        s3.put_object(
            Bucket=project.bucket,
            Key=f"{prefix}/output.tar.gz",
            Body=tar_gz({"metrics.jsonl": metrics(value)}),
        )
    stubbed = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(stubbed)
    for _ in range(describes):
        stubber.add_response(
            "describe_hyper_parameter_tuning_job",
            description(project),
            {"HyperParameterTuningJobName": TUNING},
        )
    stubber.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": [summary(n, project) for n in OBJECTIVES]},
        {"HyperParameterTuningJobName": TUNING},
    )
    stubber.activate()
    monkeypatch.setattr(aws, "session", lambda region: SplitSession(stubbed))
    project.stubber = stubber
    return project


@pytest.fixture
def tuning_job(project, monkeypatch):
    return stage(project, monkeypatch, describes=2)  # fetch_tuning_results, then the reader of the answers


@pytest.fixture
def tuning_job_for_cli(project, monkeypatch):
    return stage(project, monkeypatch, describes=3)  # launch.py asks first whether it is a tuning job


def fetch(project, tmp_path):
    return tuning.fetch_tuning_results(TUNING, region=REGION, dest=tmp_path / "results")


def test_table_lists_every_training_job_best_first_and_the_failed_one_last(tuning_job, tmp_path):
    found = fetch(tuning_job, tmp_path)
    assert [job.name for job in found.jobs] == [job_name(n) for n in (2, 4, 1, 3)]
    lines = found.table().splitlines()
    assert lines[0].split() == ["training", "job", "status", "episode_reward_mean", "env_file", "window"]
    assert lines[1].split()[:4] == [job_name(2), "*", "Completed", "9.25"]
    assert lines[-1].split()[:3] == [job_name(3), "Failed", "-"]


def test_jobs_csv_has_the_tuned_values_objective_and_failure(tuning_job, tmp_path):
    found = fetch(tuning_job, tmp_path)
    rows = list(csv.DictReader((found.folder / "jobs.csv").open()))
    assert [(r["training_job"], r["episode_reward_mean"], r["window"]) for r in rows[:2]] == [
        (job_name(2), "9.25", "20"),
        (job_name(4), "6.0", "40"),
    ]
    assert rows[-1]["failure_reason"].startswith("AlgorithmError")


def test_best_jobs_model_lands_in_best_with_its_saved_model_and_onnx(tuning_job, tmp_path):
    found = fetch(tuning_job, tmp_path)
    assert found.best_dir == tmp_path / "results" / TUNING / "best"
    assert (found.best_dir / "policy" / "saved_model.pb").is_file() and (
        found.best_dir / "policy.onnx"
    ).is_file()
    record = json.loads((found.best_dir / "best_job.json").read_text())
    assert (record["training_job"], record["episode_reward_mean"], record["hyperparameters"]["window"]) == (
        job_name(2),
        9.25,
        20,
    )
    assert (record["saved_models"], record["onnx"]) == (["policy"], ["policy.onnx"])


def test_objective_per_job_and_learning_curves_of_the_best_three_are_plotted(tuning_job, tmp_path):
    found = fetch(tuning_job, tmp_path)
    assert {"objective_per_job.png", "learning_curves.png"} <= set(found.files)
    assert all(
        found.files[name].stat().st_size > 0 for name in ("objective_per_job.png", "learning_curves.png")
    )
    assert sorted(found.curves) == sorted(job_name(n) for n in (1, 2, 4))
    assert [m["episode_reward_mean"] for m in found.curves[job_name(2)]][-1] == 9.25


def test_sagemaker_is_asked_exactly_the_stubbed_calls(tuning_job, tmp_path):
    fetch(tuning_job, tmp_path)
    tuning_job.stubber.assert_no_pending_responses()


def test_launch_py_fetch_results_takes_a_tuning_job_name(tuning_job_for_cli, tmp_path, capsys):
    project = tuning_job_for_cli
    code = cli.main(
        ["--project-file", str(project.file), "--fetch-results", TUNING, "--results-dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0 and f"results of tuning job {TUNING} (Completed)" in out and job_name(2) in out
    project.stubber.assert_no_pending_responses()


def test_launch_py_fetch_results_still_takes_a_training_job_name(project, tmp_path, capsys):
    name = "single-job-260101"
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=name,
        RoleArn=project.role,
        OutputDataConfig={"S3OutputPath": f"s3://{project.bucket}"},
        AlgorithmSpecification={"TrainingImage": project.image_uri, "TrainingInputMode": "File"},
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    project.s3().put_object(Bucket=project.bucket, Key=f"{name}/output/model.tar.gz", Body=tar_gz({}))
    code = cli.main(
        ["--project-file", str(project.file), "--fetch-results", name, "--results-dir", str(tmp_path)]
    )
    assert code == 0 and f"results of {name} in" in capsys.readouterr().out


def test_an_unknown_tuning_job_is_refused(project, tmp_path):
    with pytest.raises(LaunchError, match="no such tuning job in us-east-1, and no local tuning record"):
        tuning.fetch_tuning_results("no-such-tuning-job", region=REGION, dest=tmp_path, bucket=project.bucket)
