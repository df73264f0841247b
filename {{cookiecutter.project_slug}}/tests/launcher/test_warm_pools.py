"""Warm pools: keep_alive_seconds on the request, and which Available pool a job will start on.

moto records no warm pools (its ListTrainingJobs ignores WarmPoolStatusEquals and its jobs have no
WarmPoolStatus), so ListTrainingJobs and DescribeTrainingJob are answered by botocore's Stubber,
which checks the launcher's parameters and the canned answers against the service model.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters
from conftest import BUILD_KEY, REGION
from test_dry_run import dead_endpoint  # noqa: F401  (fixture)

from launcher import api, warm_pools
from launcher.errors import LaunchError
from launcher.job import build_job_spec

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MODEL = botocore.session.get_session().get_service_model("sagemaker")


@pytest.mark.parametrize(("value", "seconds"), [(0, 0), (600, 600), ("3600", 3600)])
def test_keep_alive_takes_whole_seconds_up_to_an_hour(value, seconds):
    assert warm_pools.check_keep_alive(value, use_spot=False) == seconds


@pytest.mark.parametrize("value", [-1, 3601, 1.5, "ten", True])
def test_keep_alive_outside_zero_to_an_hour_is_refused(value):
    with pytest.raises(
        LaunchError, match=r"keep_alive_seconds=.* must be a whole number of seconds from 0 to 3600"
    ):
        warm_pools.check_keep_alive(value, use_spot=False)


def test_keep_alive_with_spot_is_refused(dead_endpoint):  # noqa: F811
    with pytest.raises(LaunchError, match="warm pools cannot be used with spot instances"):
        api.load_settings(
            project_file=str(dead_endpoint.file), role=ROLE, keep_alive_seconds=60, use_spot=True
        )


def dry_run_here(project, **values) -> dict:
    request = api.dry_run(api.load_settings(project_file=str(project.file), role=project.role, **values))
    for thread in threading.enumerate():
        if thread.name == "sagemaker-telemetry":
            thread.join(timeout=30)
    return request


def test_keep_alive_reaches_the_requests_resource_config(dead_endpoint, refused_lookups):  # noqa: F811
    request = dry_run_here(dead_endpoint, keep_alive_seconds=900)
    validate_parameters(request, MODEL.operation_model("CreateTrainingJob").input_shape)
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 900


def test_no_keep_alive_by_default(dead_endpoint, refused_lookups):  # noqa: F811
    assert "KeepAlivePeriodInSeconds" not in dry_run_here(dead_endpoint)["ResourceConfig"]


def test_settings_say_that_the_job_keeps_a_warm_pool(dead_endpoint):  # noqa: F811
    described = api.load_settings(
        project_file=str(dead_endpoint.file), role=ROLE, keep_alive_seconds=600
    ).describe()
    assert "Warm pool:        kept 600 s after the job" in described


# ---------------------------------------------------------------------------------------------- lookup


def described(name: str, **changes) -> dict:
    """A DescribeTrainingJob answer of a finished job whose warm pool is Available."""
    resources = {
        "InstanceType": "ml.c5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
        "KeepAlivePeriodInSeconds": 1800,
    }
    resources.update(changes.pop("resources", {}))
    answer = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/{name}/output/model.tar.gz"},
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "ResourceConfig": resources,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": NOW - timedelta(minutes=30),
        "TrainingEndTime": NOW - timedelta(minutes=10),
        "WarmPoolStatus": {"Status": "Available"},
    }
    answer.update(changes)
    return answer


def listed(*names: str) -> dict:
    return {
        "TrainingJobSummaries": [
            {
                "TrainingJobName": name,
                "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
                "CreationTime": NOW - timedelta(minutes=30),
                "TrainingJobStatus": "Completed",
                "WarmPoolStatus": {"Status": "Available"},
            }
            for name in names
        ]
    }


LISTING = {
    "WarmPoolStatusEquals": "Available",
    "SortBy": "CreationTime",
    "SortOrder": "Descending",
    "MaxResults": warm_pools.CANDIDATES,
}


class OneClient:
    """A boto3-session stand-in whose only client is the stubbed SageMaker one."""

    def __init__(self, client):
        self._client = client

    def client(self, service):
        assert service == "sagemaker"
        return self._client


@pytest.fixture
def stubbed():
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def spec(dead_endpoint):  # noqa: F811
    return build_job_spec(api.load_settings(project_file=str(dead_endpoint.file), role=ROLE), ROLE)


def test_a_matching_available_pool_is_the_one_the_job_will_reuse(stubbed, spec):
    client, stubber = stubbed
    stubber.add_response("list_training_jobs", listed("previous-1"), LISTING)
    stubber.add_response("describe_training_job", described("previous-1"), {"TrainingJobName": "previous-1"})
    check = warm_pools.find(OneClient(client), spec, now=NOW)
    assert (check.match, check.seconds_left) == ("previous-1", 1200)
    assert "reusing the warm pool of previous-1 (Available, about 1200 s left)" in check.describe()


def test_pools_that_do_not_match_are_listed_with_what_differs(stubbed, spec):
    client, stubber = stubbed
    stubber.add_response("list_training_jobs", listed("big-1", "other-role-1"), LISTING)
    stubber.add_response(
        "describe_training_job",
        described("big-1", resources={"InstanceType": "ml.m5.large", "VolumeSizeInGB": 100}),
        {"TrainingJobName": "big-1"},
    )
    stubber.add_response(
        "describe_training_job",
        described("other-role-1", RoleArn="arn:aws:iam::123456789012:role/Other"),
        {"TrainingJobName": "other-role-1"},
    )
    check = warm_pools.find(OneClient(client), spec, now=NOW)
    assert check.match is None
    text = check.describe()
    assert "2 available, none matches this job" in text
    assert (
        "big-1: InstanceType 'ml.m5.large' (this job: 'ml.c5.xlarge'); VolumeSizeInGB 100 (this job: 30)"
        in text
    )
    assert "other-role-1: RoleArn 'arn:aws:iam::123456789012:role/Other'" in text


def test_no_available_pool_is_said_plainly(stubbed, spec):
    client, stubber = stubbed
    stubber.add_response("list_training_jobs", listed(), LISTING)
    assert (
        warm_pools.find(OneClient(client), spec)
        .describe()
        .endswith("none available; this job starts on new instances")
    )


def test_a_spot_job_looks_for_no_pool(stubbed, spec):
    client, _ = stubbed  # no responses queued: any call would fail the test
    check = warm_pools.find(OneClient(client), dataclasses.replace(spec, use_spot=True))
    assert "spot jobs cannot start on a warm pool" in check.describe()


def test_a_refused_lookup_is_reported_not_raised(stubbed, spec):
    client, stubber = stubbed
    stubber.add_client_error(
        "list_training_jobs", "AccessDeniedException", "not allowed", expected_params=LISTING
    )
    assert "could not list warm pools" in warm_pools.find(OneClient(client), spec).describe()


def test_after_the_job_the_reuse_is_confirmed(stubbed):
    client, stubber = stubbed
    reused = described("previous-1", WarmPoolStatus={"Status": "Reused", "ReusedByJob": "this-job-1"})
    stubber.add_response("describe_training_job", reused, {"TrainingJobName": "previous-1"})
    assert warm_pools.report_reuse(OneClient(client), "this-job-1", "previous-1") == (
        "this-job-1 started on the warm pool of previous-1"
    )


def test_after_the_job_a_missed_pool_is_reported(stubbed):
    client, stubber = stubbed
    taken = described("previous-1", WarmPoolStatus={"Status": "Reused", "ReusedByJob": "someone-else"})
    stubber.add_response("describe_training_job", taken, {"TrainingJobName": "previous-1"})
    assert "did not reuse the warm pool of previous-1 (it is Reused, taken by someone-else)" in (
        warm_pools.report_reuse(OneClient(client), "this-job-1", "previous-1")
    )


def test_submit_says_which_pool_the_job_will_reuse(project, monkeypatch, capsys):
    project.s3().put_object(Bucket=project.bucket, Key=BUILD_KEY, Body=b"PK\x05\x06" + b"\0" * 18)
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")  # SDK v3's IAM policy simulation: moto has none
    monkeypatch.setattr(
        warm_pools, "find", lambda session, spec: warm_pools.WarmPoolCheck(match="previous-1")
    )
    job = api.submit(api.load_settings(project_file=str(project.file), role=project.role))
    assert job.warm_pool == "previous-1"
    assert "Warm pool:     reusing the warm pool of previous-1" in capsys.readouterr().out
