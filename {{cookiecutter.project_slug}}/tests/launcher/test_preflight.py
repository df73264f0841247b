"""Submitting stops before the SDK uploads or sends anything when AWS is not ready, saying what to fix."""

from __future__ import annotations

import boto3
import pytest
from conftest import BUILD_KEY, run_launch

from launcher import api
from launcher.errors import LaunchError
from launcher.settings import on_sagemaker


@pytest.fixture
def with_build(project):
    project.s3().put_object(Bucket=project.bucket, Key=BUILD_KEY, Body=b"PK\x05\x06" + b"\0" * 18)
    return project


def settings(project, **values):
    return api.load_settings(project_file=str(project.file), role=project.role, **values)


def nothing_submitted(project) -> bool:
    jobs = boto3.client("sagemaker").list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    return project.keys() in ([], [BUILD_KEY]) and not any(
        j["TrainingJobName"].startswith("launcher-test") for j in jobs
    )


def test_no_credentials_stops_before_submitting(with_build, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(LaunchError, match="no AWS credentials found: run `aws configure`"):
        api.submit(settings(with_build))


def test_missing_bucket_stops_before_submitting(with_build):
    with pytest.raises(LaunchError, match=r"s3_bucket='launcher-missing' does not exist: create it"):
        api.submit(settings(with_build, s3_bucket="launcher-missing"))
    assert nothing_submitted(with_build)


def test_bucket_in_another_region_stops_before_submitting(with_build):
    boto3.client("s3").create_bucket(
        Bucket="launcher-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with pytest.raises(LaunchError, match="is in region eu-west-1 but the job runs in us-east-1"):
        api.submit(settings(with_build, s3_bucket="launcher-eu"))
    assert nothing_submitted(with_build)


def test_missing_build_stops_before_submitting(project):
    with pytest.raises(LaunchError, match=rf"build_key: s3://{project.bucket}/{BUILD_KEY} does not exist"):
        api.submit(settings(project))
    assert nothing_submitted(project)


def test_unknown_hyperparameter_stops_the_command_line_with_exit_code_2(with_build, offline):
    result = run_launch(
        [
            "--project-file",
            str(with_build.file),
            "--set",
            f"role={with_build.role}",
            "--set",
            "hp.episdoes=3",
        ],
        offline.env,
    )
    assert (
        result.returncode,
        result.stderr.splitlines()[-1].startswith("error: hyperparameters: 'episdoes'"),
    ) == (2, True)
    assert offline.requests() == [] and nothing_submitted(with_build)


@pytest.mark.skipif(on_sagemaker(), reason="on SageMaker the notebook's execution role is used")
def test_missing_role_stops_the_command_line_outside_sagemaker(with_build, offline):
    result = run_launch(["--project-file", str(with_build.file)], offline.env)
    assert result.returncode == 2 and "error: role=None: outside SageMaker" in result.stderr
