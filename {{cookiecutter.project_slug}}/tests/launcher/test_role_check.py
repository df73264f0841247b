"""The job's role is checked once before submitting; an IAM that cannot answer is a warning, no traceback.

Against plain moto (which has GetRole but not SimulatePrincipalPolicy) the launcher warns once and goes
on; the IAM answers moto cannot give (a deny, a missing trust) come from botocore's Stubber.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from conftest import BUILD_KEY

from launcher import api, aws, role_check
from launcher.errors import LaunchError

SAGEMAKER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ],
}


@pytest.fixture
def settings(project):
    project.s3().put_object(Bucket=project.bucket, Key=BUILD_KEY, Body=b"PK\x05\x06" + b"\0" * 18)
    return api.load_settings(project_file=str(project.file), role=project.role)


class StubbedSession:
    """A boto3 session whose IAM client is stubbed (the check makes its own client from the session)."""

    def __init__(self):
        self.iam = boto3.client("iam", region_name="us-east-1")
        self.stub = Stubber(self.iam)
        self.events = boto3.Session().events

    def client(self, name, **_):
        assert name == "iam"
        return self.iam


def role_answer(trust: dict) -> dict:
    return {
        "Role": {
            "Path": "/",
            "RoleName": "r",
            "RoleId": "AROAEXAMPLEEXAMPLE01",
            "Arn": "arn:aws:iam::123456789012:role/r",
            "CreateDate": "2026-01-01T00:00:00Z",
            "AssumeRolePolicyDocument": json.dumps(trust),
        }
    }


def test_plain_moto_gives_one_warning_line_and_the_job_goes_out(settings, capsys):
    job = api.submit(settings)

    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: could not verify the role {settings.role} (iam:SimulatePrincipalPolicy: not implemented "
        "by this endpoint, HTTP 5xx): continuing"
    ]
    assert "Traceback" not in err
    assert (
        boto3.client("sagemaker").describe_training_job(TrainingJobName=job.job_name)["RoleArn"]
        == settings.role
    )


def test_iam_is_asked_once_for_the_simulator_it_lacks(settings, monkeypatch):
    """The SDK's own SimulatePrincipalPolicy calls (v3) are answered at once, not retried for seconds."""
    sent: list[str] = []
    real_session = aws.session

    def counting_session(region):
        session = real_session(region)
        session.events.register(
            "before-send.iam", lambda request, **_: sent.append(str(request.body).split("&")[0])
        )
        return session

    monkeypatch.setattr(aws, "session", counting_session)
    api.submit(settings)

    assert sent.count("Action=SimulatePrincipalPolicy") == 1


def test_a_role_that_does_not_exist_is_refused_before_anything_is_uploaded(project, capsys):
    project.s3().put_object(Bucket=project.bucket, Key=BUILD_KEY, Body=b"PK\x05\x06" + b"\0" * 18)
    missing = project.role.rsplit("/", 1)[0] + "/NoSuchRole"
    settings = api.load_settings(project_file=str(project.file), role=missing)

    with pytest.raises(
        LaunchError, match=r"does not exist \(iam:GetRole: NoSuchEntity\): create it with `make role`"
    ):
        api.submit(settings)
    assert project.keys() == [BUILD_KEY]


def test_a_role_sagemaker_may_not_assume_is_refused(settings):
    session = StubbedSession()
    session.stub.add_response("get_role", role_answer({"Version": "2012-10-17", "Statement": []}))

    with (
        session.stub,
        pytest.raises(LaunchError, match="allows no sts:AssumeRole for sagemaker.amazonaws.com"),
    ):
        role_check.check_role(session, settings, settings.role)


def test_an_explicit_deny_is_refused_naming_action_and_resource(settings):
    session = StubbedSession()
    session.stub.add_response("get_role", role_answer(SAGEMAKER_TRUST))
    session.stub.add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [
                {"EvalActionName": "s3:ListBucket", "EvalResourceName": "*", "EvalDecision": "explicitDeny"}
            ]
        },
    )

    with (
        session.stub,
        pytest.raises(
            LaunchError, match=rf"explicitly denied s3:ListBucket on arn:aws:s3:::{settings.bucket}:"
        ),
    ):
        role_check.check_role(session, settings, settings.role)


def test_missing_permissions_are_one_warning_line(settings, capsys):
    session = StubbedSession()
    session.stub.add_response("get_role", role_answer(SAGEMAKER_TRUST))
    checks = len(
        role_check.execution_role.job_access(
            partition="aws",
            region=settings.region,
            account="123456789012",
            bucket=settings.bucket,
            base_job_name=settings.base_job_name,
            build_uri=f"s3://{settings.bucket}/{BUILD_KEY}",
            image_uri=settings.image_uri,
        )
    )
    for i in range(checks):
        decision = "implicitDeny" if i == 0 else "allowed"
        session.stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    {"EvalActionName": "s3:ListBucket", "EvalResourceName": "*", "EvalDecision": decision}
                ]
            },
        )

    with session.stub:
        role_check.check_role(session, settings, settings.role)

    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"warning: the role {settings.role} lacks s3:ListBucket on arn:aws:s3:::"
    )
    assert err[0].endswith(": continuing")


@pytest.mark.parametrize(
    ("code", "status", "why"),
    [
        ("AccessDenied", 403, "iam:GetRole: access denied to these credentials"),
        ("NotImplemented", 501, "iam:GetRole: not implemented by this endpoint, NotImplemented"),
        ("ServiceUnavailable", 503, "iam:GetRole: not implemented by this endpoint, ServiceUnavailable"),
    ],
)
def test_an_iam_that_cannot_answer_is_a_warning_and_the_block_runs(settings, capsys, code, status, why):
    session = StubbedSession()
    session.stub.add_client_error("get_role", service_error_code=code, http_status_code=status)

    with session.stub, role_check.checked_role(session, settings, settings.role) as verified:
        ran = True

    assert ran and verified is False
    assert (
        capsys.readouterr().err == f"warning: could not verify the role {settings.role} ({why}): continuing\n"
    )


def test_the_sdks_own_role_validation_is_off_only_inside_the_block(settings, monkeypatch):
    monkeypatch.delenv("SAGEMAKER_VALIDATE_ROLE", raising=False)
    session = StubbedSession()
    session.stub.add_client_error("get_role", service_error_code="AccessDenied", http_status_code=403)

    with session.stub, role_check.checked_role(session, settings, settings.role):
        inside = role_check.os.environ.get("SAGEMAKER_VALIDATE_ROLE")

    assert (inside, role_check.os.environ.get("SAGEMAKER_VALIDATE_ROLE")) == ("false", None)


@pytest.mark.parametrize(("code", "status"), [("NotImplemented", 501), ("InternalFailure", 500)])
def test_an_sts_that_cannot_answer_is_a_warning_line(moto_endpoint, capsys, code, status):
    sts = boto3.client("sts", region_name="us-east-1")
    stub = Stubber(sts)
    stub.add_client_error("get_caller_identity", service_error_code=code, http_status_code=status)
    session = boto3.Session(region_name="us-east-1")
    session.client = lambda name, **_: sts

    with stub:
        identity = aws.check_credentials(session)

    assert identity == {}
    assert capsys.readouterr().err == (
        f"warning: could not verify the credentials (sts:GetCallerIdentity: {code}): continuing\n"
    )

