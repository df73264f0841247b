"""`make role`: the job's execution role, made in moto's IAM, grants this project's resources, nothing else.

moto implements CreateRole, GetRole, PutRolePolicy and GetRolePolicy, but not IAM's policy simulator
(SimulatePrincipalPolicy / SimulateCustomPolicy). So the policy is judged two ways: by moto's own
policy evaluator (the code moto's authorization uses) for each action and resource a job touches or
must not touch, and for S3 for real: a moto server with authorization switched on, where requests
signed with the role's assumed credentials are allowed or refused by the policy make role wrote.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from aws_fixtures import FAKE_AWS_ENVIRONMENT, _free_port, _stop, _wait_until_answering
from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicy, PermissionResult

from launcher import execution_role

ACCOUNT = "123456789012"  # moto's
REGION = "eu-west-1"
SLUG = "robo_rl"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/robo-rl:latest"
PREFIX = "robo-rl-"
ROLE_NAME = "robo-rl-sagemaker-training"


def write_project(folder: Path, bucket: str, build_key: str = "builds/3DBall.zip") -> Path:
    path = folder / "project.toml"
    path.write_text(
        f"""[project]
name = "Robo"
slug = "{SLUG}"

[aws]
region = "{REGION}"
s3_bucket = "{bucket}"
ecr_image_uri = "{IMAGE}"
instance_type = "ml.c5.xlarge"

[training]
algorithm = "ppo"
entry_point = "ppo_trainer.py"

[unity_build]
zip_key = "{build_key}"
folder = "unity_build"
executable = "3DBall"
""",
        encoding="utf-8",
    )
    return path


def make_role(capsys, project: Path, *args: str) -> tuple[int, str, str]:
    code = execution_role.main(["--project-file", str(project), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(aws, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return write_project(tmp_path, f"robo-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def iam(aws):
    return boto3.client("iam")


@pytest.fixture
def fresh_role(iam):
    """make role's default name, absent before the test and removed after it."""
    yield ROLE_NAME
    if _exists(iam):
        for name in iam.list_role_policies(RoleName=ROLE_NAME)["PolicyNames"]:
            iam.delete_role_policy(RoleName=ROLE_NAME, PolicyName=name)
        iam.delete_role(RoleName=ROLE_NAME)


def _exists(iam) -> bool:
    try:
        iam.get_role(RoleName=ROLE_NAME)
        return True
    except ClientError:
        return False


def bucket_of(project: Path) -> str:
    return next(
        line.split('"')[1] for line in project.read_text().splitlines() if line.startswith("s3_bucket")
    )


# ------------------------------------------------------------------ the requests


def test_dry_run_prints_both_policies_and_the_requests_and_sends_no_write(capsys, project, iam, fresh_role):
    code, out, _ = make_role(capsys, project, "--dry-run")

    assert code == 0
    assert f"Execution role for this project's training jobs: arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}" in out
    assert '"sagemaker.amazonaws.com"' in out and f'"arn:aws:s3:::{bucket_of(project)}"' in out
    assert "would send iam:CreateRole" in out and "would send iam:PutRolePolicy" in out
    assert "sent iam:" not in out
    assert not _exists(iam)


def test_make_role_creates_the_role_with_the_planned_policies(capsys, project, iam, fresh_role):
    code, out, _ = make_role(capsys, project)

    assert code == 0
    role = iam.get_role(RoleName=ROLE_NAME)["Role"]
    assert role["AssumeRolePolicyDocument"] == execution_role.trust_policy()
    policy = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=f"{PREFIX}training-job")["PolicyDocument"]
    assert policy == planned(project)
    assert f"export SAGEMAKER_ROLE_ARN={role['Arn']}" in out


def test_a_second_run_changes_nothing(capsys, project, fresh_role):
    make_role(capsys, project)

    code, out, _ = make_role(capsys, project)

    assert code == 0 and "sent iam:" not in out
    assert f"role {ROLE_NAME} is up to date: nothing changed" in out


def test_a_changed_bucket_rewrites_only_the_policy(capsys, project, iam, fresh_role):
    make_role(capsys, project)
    moved = write_project(project.parent, "robo-moved-bucket")

    code, out, _ = make_role(capsys, moved)

    assert code == 0
    assert [line.split()[1] for line in out.splitlines() if line.startswith("  sent ")] == [
        "iam:PutRolePolicy"
    ]
    policy = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=f"{PREFIX}training-job")["PolicyDocument"]
    assert "arn:aws:s3:::robo-moved-bucket" in json.dumps(policy)


def test_a_role_with_more_policies_is_pointed_out_and_left_alone(capsys, project, iam, fresh_role):
    make_role(capsys, project)
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="extra", PolicyDocument=json.dumps(ALLOW_ALL))

    _, out, _ = make_role(capsys, project)

    assert "note: role robo-rl-sagemaker-training also has inline extra" in out
    assert "extra" in iam.list_role_policies(RoleName=ROLE_NAME)["PolicyNames"]


def test_access_denied_is_one_line_naming_the_iam_action(capsys, project, monkeypatch):
    def refuse(self, operation_name, api_params):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, operation_name)

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", refuse)

    code, out, err = make_role(capsys, project)

    assert code == 2
    assert err == (
        "error: access denied: your AWS identity needs sts:GetCallerIdentity on * "
        "(ask an administrator to run make role, or to grant it)\n"
    )


def test_access_denied_on_create_names_iam_create_role(capsys, project, monkeypatch, fresh_role):
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def refuse_create(self, operation_name, api_params):
        if operation_name == "CreateRole":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, operation_name)
        return real(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse_create)

    code, _, err = make_role(capsys, project)

    assert code == 2
    assert err.splitlines() == [
        f"error: access denied: your AWS identity needs iam:CreateRole on "
        f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME} (ask an administrator to run make role, or to grant it)"
    ]


# ------------------------------------------------------------------ what the policy grants


ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
BUCKET = "robo-bucket"


def planned(project: Path | None = None, build_key: str = "builds/3DBall.zip") -> dict:
    bucket = bucket_of(project) if project else BUCKET
    return execution_role.permissions_policy(
        partition="aws",
        region=REGION,
        account=ACCOUNT,
        bucket=bucket,
        prefix=PREFIX,
        build_key=build_key,
        image_uri=IMAGE,
    )


LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs"
REPOSITORY = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/robo-rl"
NAMESPACE = {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
ALLOWED = [
    ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", None),
    ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/builds/3DBall.zip", None),
    ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/robo-rl-ppo-20260101120000/output/model.tar.gz", None),
    (
        "s3:GetObject",
        f"arn:aws:s3:::{BUCKET}/robo-rl-ppo/robo-rl-ppo-20260101120000/input/code/trainer.py",
        None,
    ),
    (
        "s3:PutObject",
        f"arn:aws:s3:::{BUCKET}/robo-rl-ppo/robo-rl-ppo-20260101120000/checkpoints/step-1",
        None,
    ),
    ("ecr:GetAuthorizationToken", "*", None),
    ("ecr:BatchGetImage", REPOSITORY, None),
    ("ecr:GetDownloadUrlForLayer", REPOSITORY, None),
    ("ecr:BatchCheckLayerAvailability", REPOSITORY, None),
    ("logs:CreateLogGroup", LOG_GROUP, None),
    ("logs:CreateLogStream", f"{LOG_GROUP}:log-stream:robo-rl-ppo-20260101120000/algo-1-1700000000", None),
    ("logs:PutLogEvents", f"{LOG_GROUP}:log-stream:robo-rl-ppo-20260101120000/algo-1-1700000000", None),
    ("logs:DescribeLogStreams", LOG_GROUP, None),
    ("cloudwatch:PutMetricData", "*", NAMESPACE),
]
NOT_ALLOWED = [
    ("s3:PutObject", "arn:aws:s3:::other-bucket/robo-rl-ppo-1/output/model.tar.gz", None),
    ("s3:GetObject", "arn:aws:s3:::other-bucket/builds/3DBall.zip", None),
    ("s3:ListBucket", "arn:aws:s3:::other-bucket", None),
    ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/someone-elses/data.csv", None),
    ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/builds/3DBall.zip", None),
    ("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/robo-rl-ppo-1/output/model.tar.gz", None),
    ("s3:DeleteBucket", f"arn:aws:s3:::{BUCKET}", None),
    ("s3:PutBucketPolicy", f"arn:aws:s3:::{BUCKET}", None),
    ("s3:ListAllMyBuckets", "*", None),
    ("s3:GetObject", "*", None),
    ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", None),
    ("iam:CreateUser", "*", None),
    ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", None),
    ("sts:AssumeRole", "*", None),
    ("ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/someone-else", None),
    ("ecr:PutImage", REPOSITORY, None),
    ("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/x:log-stream:y", None),
    ("logs:DeleteLogGroup", LOG_GROUP, None),
    ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Billing"}),
    ("sagemaker:CreateTrainingJob", "*", None),
    ("ec2:RunInstances", "*", None),
]


def decision(policy: dict, action: str, resource: str, context: dict | None) -> PermissionResult:
    return IAMPolicy(json.dumps(policy)).is_action_permitted(
        action, resource, incoming_condition_values=context
    )


@pytest.mark.parametrize(("action", "resource", "context"), ALLOWED, ids=[f"{a} {r}" for a, r, _ in ALLOWED])
def test_the_policy_allows_what_a_job_does(action, resource, context):
    assert decision(planned(), action, resource, context) == PermissionResult.PERMITTED


@pytest.mark.parametrize(
    ("action", "resource", "context"), NOT_ALLOWED, ids=[f"{a} {r}" for a, r, _ in NOT_ALLOWED]
)
def test_the_policy_allows_nothing_else(action, resource, context):
    assert decision(planned(), action, resource, context) != PermissionResult.PERMITTED


def test_what_the_launcher_checks_is_what_the_policy_allows():
    """launcher/role_check.py simulates execution_role.job_access: a role from make role passes it."""
    for actions, resource, context in execution_role.job_access(
        partition="aws",
        region=REGION,
        account=ACCOUNT,
        bucket=BUCKET,
        base_job_name="robo-rl-ppo",
        build_uri=f"s3://{BUCKET}/builds/3DBall.zip",
        image_uri=IMAGE,
    ):
        for action in actions:
            assert decision(planned(), action, resource, context or None) == PermissionResult.PERMITTED, (
                action
            )


def test_no_statement_is_a_wildcard_service_grant():
    for statement in planned()["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert (
            statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        )
        assert not any(a == "*" or a.endswith(":*") or a.startswith("iam:") for a in actions), actions
        if resources == ["*"]:  # only what AWS cannot scope to a resource
            assert actions in (["ecr:GetAuthorizationToken"], ["cloudwatch:PutMetricData"]), actions
        for resource in resources:
            assert not resource.startswith("arn:aws:s3:::") or resource.startswith(f"arn:aws:s3:::{BUCKET}")


def test_the_build_under_the_job_prefix_needs_no_statement_of_its_own():
    sids = [s["Sid"] for s in planned(build_key="robo-rl-builds/Game.zip")["Statement"]]
    assert "ReadTheUnityBuild" not in sids


def test_the_default_base_job_names_start_with_the_roles_prefix():
    from launcher.settings import _base_job_name

    for entry in ("ppo_trainer.py", "tf_trainer.py", "random_trainer.py", "my_agent.py"):
        assert _base_job_name(None, SLUG, entry).startswith(execution_role.job_prefix(SLUG))


def test_china_and_govcloud_roles_use_their_partition(project):
    from launcher.runtime import project_file

    found = project_file.read_project_file(project, execution_role.PROJECT_FIELDS)
    for region, partition in (("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")):
        role = execution_role.plan(dataclasses.replace(found, region=region), ACCOUNT)
        assert role.arn.startswith(f"arn:{partition}:iam::") and "arn:aws:" not in json.dumps(
            role.permissions
        )


# ------------------------------------------------------------------ enforced by moto, for S3


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory):
    """A moto server of its own, on which authorization is switched on once the test set it up."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto-auth") / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(f"{endpoint}/moto-api/", process, time.monotonic() + 30)
        yield endpoint
    finally:
        _stop(process)
        log.close()


def test_moto_lets_the_role_use_its_bucket_prefixes_and_nothing_else(
    enforcing_moto, tmp_path, capsys, monkeypatch
):
    for name, value in {**FAKE_AWS_ENVIRONMENT, "AWS_ENDPOINT_URL": enforcing_moto}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    bucket = "robo-enforced"
    s3 = boto3.client("s3", region_name=REGION)
    for name in (bucket, "other-bucket"):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=bucket, Key="builds/3DBall.zip", Body=b"zip")
    s3.put_object(Bucket=bucket, Key="private/notes.txt", Body=b"secret")
    assert make_role(capsys, write_project(tmp_path, bucket))[0] == 0
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", RoleSessionName="job"
    )["Credentials"]
    switch_on = urllib.request.Request(
        f"{enforcing_moto}/moto-api/reset-auth", b"0", {"Content-Type": "text/plain"}, method="POST"
    )
    urllib.request.urlopen(switch_on).close()
    as_job = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    ).client("s3")

    as_job.put_object(Bucket=bucket, Key="robo-rl-ppo-20260101120000/output/model.tar.gz", Body=b"m")
    assert as_job.get_object(Bucket=bucket, Key="builds/3DBall.zip")["Body"].read() == b"zip"
    for refused in (
        lambda: as_job.put_object(Bucket="other-bucket", Key="robo-rl-ppo-1/output/model.tar.gz", Body=b"m"),
        lambda: as_job.get_object(Bucket=bucket, Key="private/notes.txt"),
        lambda: as_job.delete_object(Bucket=bucket, Key="builds/3DBall.zip"),
        lambda: as_job.list_buckets(),
    ):
        with pytest.raises(ClientError, match="AccessDenied"):
            refused()
