"""`python launch.py` against moto: the CreateTrainingJob request botocore sent, and what went to S3.

One submission (and one --dry-run with the same settings) per module; each test checks one part
of it. The expected request is written out SDK-neutrally, so the same test passing under SDK v3
and v2 shows that both adapters send equivalent requests.
"""

from __future__ import annotations

import copy
import io
import json
import re
import tarfile
from dataclasses import dataclass

import boto3
import pytest
from conftest import BUILD_KEY, IMAGE_URI, Offline, Project, make_project, offline_environment, run_launch

from launcher.entry_points import load_entry_point
from launcher.job import metric_definitions
from launcher.project import SOURCE_DIR

BASE = "submit-test"
SETTINGS = [
    "--set",
    "use_spot=true",
    "--set",
    "max_run_seconds=3600",
    "--set",
    "instance_type=ml.m5.large",
    "--set",
    "episodes=3",
    "--set",
    "seed=7",
    "--set",
    f"base_job_name={BASE}",
]
SDK_PLUMBING_CHANNELS = {"code", "sm_drivers"}  # v3's driver channels (v2 passes src/ as a hyperparameter)


@dataclass
class Submission:
    project: Project
    stdout: str
    request: dict
    dry_run: dict
    children: Offline

    @property
    def job_name(self) -> str:
        return self.request["TrainingJobName"]


@pytest.fixture(scope="module")
def submission(moto_endpoint, role_arn, tmp_path_factory) -> Submission:
    folder = tmp_path_factory.mktemp("submit")
    project = make_project(folder, role_arn)
    project.s3().put_object(
        Bucket=project.bucket, Key=BUILD_KEY, Body=b"PK\x05\x06" + b"\0" * 18
    )  # an empty zip
    children = offline_environment(folder / "children")
    common = ["--project-file", str(project.file), "--set", f"role={role_arn}", *SETTINGS]
    submitted = run_launch(common, children.env)
    assert submitted.returncode == 0, submitted.stderr
    dry = run_launch([*common, "--dry-run"], children.env)
    assert dry.returncode == 0, dry.stderr
    requests = children.requests()
    assert len(requests) == 1, (
        f"expected one CreateTrainingJob sent (the dry run sends none), got {len(requests)}"
    )
    return Submission(project, submitted.stdout, requests[0], json.loads(dry.stdout)["request"], children)


def neutral(request: dict) -> dict:
    """The request without what differs by SDK generation (driver plumbing, names, defaults spelled out)."""
    r = copy.deepcopy(request)
    job = r.pop("TrainingJobName")
    r["HyperParameters"] = {k: v for k, v in r["HyperParameters"].items() if not k.startswith("sagemaker_")}
    for key in ("ContainerEntrypoint", "ContainerArguments"):
        r["AlgorithmSpecification"].pop(key, None)
    channels = [c for c in r.get("InputDataConfig", []) if c["ChannelName"] not in SDK_PLUMBING_CHANNELS]
    for channel in channels:
        if channel.get("InputMode", "File") == "File":
            channel.pop("InputMode", None)
    r["InputDataConfig"] = channels
    if r.get("ProfilerConfig") == {"DisableProfiler": True}:
        del r["ProfilerConfig"]
    if r["OutputDataConfig"].get("CompressionType") == "GZIP":
        del r["OutputDataConfig"]["CompressionType"]
    r["CheckpointConfig"]["S3Uri"] = r["CheckpointConfig"]["S3Uri"].replace(job, "<job>")
    return r


def expected(project: Project) -> dict:
    entry = load_entry_point("random_trainer.py", SOURCE_DIR)
    return {
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE_URI,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": n, "Regex": r} for n, r in metric_definitions(entry.metric_names)],
        },
        "RoleArn": project.role,
        "HyperParameters": {
            "episodes": "3",
            "seed": "7",
            "zip_env_name": '"builds/3DBall.zip"',
            "env_file": '"3DBall"',
            "build_folder": '"unity_build"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "env",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{project.bucket}/{BUILD_KEY}",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{project.bucket}"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {
            "S3Uri": f"s3://{project.bucket}/{BASE}/<job>/checkpoints",
            "LocalPath": "/opt/ml/checkpoints",
        },
        "Environment": {"PYTHONUNBUFFERED": "1"},
        "TensorBoardOutputConfig": {
            "S3OutputPath": f"s3://{project.bucket}/{BASE}",
            "LocalPath": "/opt/ml/output/data/tensorboard",
        },
    }


def test_request_is_the_sdk_neutral_job(submission):
    assert neutral(submission.request) == expected(submission.project)


def test_request_uses_the_project_image(submission):
    assert submission.request["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI


def test_job_name_is_base_name_and_timestamp(submission):
    assert re.fullmatch(rf"{BASE}-\d{{14}}", submission.job_name)


def test_hyperparameters_are_json_text_of_typed_values(submission):
    hps = submission.request["HyperParameters"]
    assert (hps["episodes"], hps["seed"], hps["env_file"]) == ("3", "7", '"3DBall"')


def test_results_go_under_the_bucket_and_job_name(submission):
    assert submission.request["OutputDataConfig"]["S3OutputPath"] == f"s3://{submission.project.bucket}"


def test_spot_settings_are_sent(submission):
    r = submission.request
    assert (r["EnableManagedSpotTraining"], r["StoppingCondition"]["MaxWaitTimeInSeconds"]) == (True, 7200)


def test_checkpoints_sync_to_the_documented_uri(submission):
    uri = f"s3://{submission.project.bucket}/{BASE}/{submission.job_name}/checkpoints"
    assert submission.request["CheckpointConfig"] == {"S3Uri": uri, "LocalPath": "/opt/ml/checkpoints"}


def test_metric_definitions_cover_the_trainers_metrics(submission):
    names = {m["Name"] for m in submission.request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"episode_reward_mean", "episode_length", "fps"} <= names


def test_request_runs_the_entry_point(submission, sdk_generation):
    hps, bucket = submission.request["HyperParameters"], submission.project.bucket
    if sdk_generation == "v2":
        assert hps["sagemaker_program"] == '"random_trainer.py"'
    else:
        key = f"{BASE}/{submission.job_name}/input/sm_drivers/sourcecode.json"
        source_code = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        assert source_code["entry_script"] == "random_trainer.py"


def test_uploaded_code_is_src_without_caches(submission, sdk_generation):
    project, prefix = submission.project, f"{BASE}/{submission.job_name}/"
    if sdk_generation == "v2":
        body = (
            project.s3()
            .get_object(Bucket=project.bucket, Key=f"{prefix}source/sourcedir.tar.gz")["Body"]
            .read()
        )
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            files = {name.removeprefix("./") for name in tar.getnames() if name.endswith(".py")}
    else:
        files = {key.removeprefix(f"{prefix}input/code/") for key in project.keys(f"{prefix}input/code/")}
    wanted = {p.relative_to(SOURCE_DIR).as_posix() for p in SOURCE_DIR.rglob("*.py")}
    assert files == wanted
    assert "template_runtime/config.py" in files  # the runtime travels with the job's code


def test_printed_locations_match_the_request(submission):
    job, bucket = submission.job_name, submission.project.bucket
    for text in (
        f"Training job:  {job}",
        f"TensorBoard:   s3://{bucket}/{BASE}/{job}/tensorboard-output/",
        f"aws s3 sync s3://{bucket}/{BASE}/{job}/tensorboard-output/ runs/tensorboard/{job}",
        f"s3://{bucket}/{job}/output/model.tar.gz",
        f"s3://{bucket}/{job}/output/output.tar.gz",
        f"logStreamNameFilter$3D{job}",
        f"#/jobs/{job}",
    ):
        assert text in submission.stdout


def test_dry_run_prints_the_request_that_would_be_sent(submission):
    assert neutral(submission.dry_run) == neutral(submission.request)


def test_submission_stays_on_this_machine(submission):
    assert submission.children.attempts() == []
