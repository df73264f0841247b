"""Check the job's IAM role before submitting, once, and keep the SDK from checking it again.

``checked_role(boto_session, settings, role_arn)`` is a context manager around the SDK call:

1. ``iam:GetRole``: the role exists and SageMaker may assume it (its trust policy), else LaunchError;
2. ``iam:SimulatePrincipalPolicy`` for what the job does (execution_role.job_access: the bucket, the
   build, the image, the logs, the metrics): an explicit deny is a LaunchError; an implicit deny is
   one warning line (a bucket or repository policy may still allow it);
3. when IAM cannot answer (an endpoint without these calls, such as moto or another S3-compatible
   stack: a 5xx, NotImplemented; or credentials without iam:GetRole / iam:SimulatePrincipalPolicy),
   one warning line ``could not verify the role ...: continuing``, never a traceback;
4. inside the block, SDK v3's own role validation is off (``SAGEMAKER_VALIDATE_ROLE=false``: it was
   just done, with the job's real resources), and if the simulator was found missing, the SDK's other
   SimulatePrincipalPolicy call (its staging-bucket probe, whose failure it ignores) fails at once
   instead of after botocore's retries.

The check's own IAM client makes one attempt per call (no retries), so a missing call costs one
round trip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from launcher import execution_role
from launcher.errors import LaunchError
from launcher.runtime import rules

SIMULATE_EVENT = "before-call.iam.SimulatePrincipalPolicy"
ONE_ATTEMPT = {
    "retries": {"total_max_attempts": 1, "mode": "standard"},
    "connect_timeout": 10,
    "read_timeout": 30,
}


class Unverifiable(Exception):  # noqa: N818  (a signal inside this module)
    """IAM gave no answer we can use; the message says why, in a few words."""


@contextmanager
def checked_role(boto_session, settings, role_arn: str) -> Iterator[bool]:
    """Check ``role_arn`` for a job of ``settings`` (see the module docstring); yields if it was verified."""
    verified, simulator_missing = True, False
    try:
        check_role(boto_session, settings, role_arn)
    except Unverifiable as why:
        verified, simulator_missing = False, "SimulatePrincipalPolicy" in str(why)
        print(
            f"warning: could not verify the role {role_arn} ({why}): continuing", file=sys.stderr, flush=True
        )
    saved = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    if simulator_missing:
        boto_session.events.register(SIMULATE_EVENT, _not_available)
    try:
        yield verified
    finally:
        if simulator_missing:
            boto_session.events.unregister(SIMULATE_EVENT, _not_available)
        if saved is None:
            os.environ.pop("SAGEMAKER_VALIDATE_ROLE", None)
        else:
            os.environ["SAGEMAKER_VALIDATE_ROLE"] = saved


def check_role(boto_session, settings, role_arn: str) -> None:
    """GetRole (exists, trusts SageMaker), then the simulator; LaunchError, or Unverifiable with why."""
    from botocore.config import Config

    iam = boto_session.client("iam", config=Config(**ONE_ATTEMPT))
    name = role_arn.rsplit("/", 1)[-1]
    role = _call(iam, "GetRole", RoleName=name)
    if role is None:
        raise LaunchError(
            f"role={role_arn!r} does not exist (iam:GetRole: NoSuchEntity): create it with `make role`, or "
            "pass the ARN of an existing role SageMaker can assume"
        )
    trust = execution_role.policy_document(role["Role"].get("AssumeRolePolicyDocument")) or {}
    if not _trusts_sagemaker(trust):
        raise LaunchError(
            f"role={role_arn!r} cannot be assumed by SageMaker: its trust policy allows no sts:AssumeRole "
            f"for {execution_role.SERVICE_PRINCIPAL} (make role writes a role that does)"
        )
    partition = rules.partition_of(settings.region)
    account = role_arn.split(":")[4]
    access = execution_role.job_access(
        partition=partition,
        region=settings.region,
        account=account,
        bucket=settings.bucket,
        base_job_name=settings.base_job_name,
        build_uri=f"s3://{settings.build_bucket}/{settings.build_key}",
        image_uri=settings.image_uri,
    )
    lacking = []
    for actions, resource, context in access:
        entries = [
            {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
            for key, value in context.items()
        ]
        answer = _call(
            iam,
            "SimulatePrincipalPolicy",
            PolicySourceArn=role_arn,
            ActionNames=list(actions),
            ResourceArns=[resource],
            **({"ContextEntries": entries} if entries else {}),
        )
        for result in answer.get("EvaluationResults", []):
            decision = result.get("EvalDecision")
            if decision == "explicitDeny":
                raise LaunchError(
                    f"role={role_arn!r} is explicitly denied {result['EvalActionName']} on {resource}: "
                    "the job would fail; remove the deny or use the role `make role` creates"
                )
            if decision != "allowed":
                lacking.append(f"{result['EvalActionName']} on {resource}")
    if lacking:
        print(
            f"warning: the role {role_arn} lacks {'; '.join(lacking)} by IAM's policy simulator (a bucket or "
            "repository policy may still allow it; `make role` creates a role with all of them): continuing",
            file=sys.stderr,
            flush=True,
        )


def _call(iam, operation: str, **params):
    """One IAM call; None for NoSuchEntity; Unverifiable when IAM cannot or may not answer."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    method = {"GetRole": iam.get_role, "SimulatePrincipalPolicy": iam.simulate_principal_policy}[operation]
    try:
        return method(**params)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchEntity", "NoSuchEntityException"):
            return None
        if code in ("AccessDenied", "AccessDeniedException"):
            raise Unverifiable(f"iam:{operation}: access denied to these credentials") from None
        if code in ("NotImplemented", "InvalidAction", "UnknownOperationException") or (status or 0) >= 500:
            raise Unverifiable(
                f"iam:{operation}: not implemented by this endpoint, {code or status}"
            ) from None
        raise Unverifiable(f"iam:{operation}: {code or status}") from None
    except ResponseParserError:  # a 5xx with an HTML body, as moto sends for calls it lacks
        raise Unverifiable(f"iam:{operation}: not implemented by this endpoint, HTTP 5xx") from None
    except BotoCoreError as error:
        raise Unverifiable(f"iam:{operation}: endpoint not reachable, {type(error).__name__}") from None


def _trusts_sagemaker(trust: dict) -> bool:
    statements = trust.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        services = (statement.get("Principal") or {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if (
            statement.get("Effect") == "Allow"
            and execution_role.SERVICE_PRINCIPAL in services
            and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions)
        ):
            return True
    return False


def _not_available(**_):
    """Answer for the SDK's own SimulatePrincipalPolicy once it is known to be missing: fail at once."""
    from botocore.awsrequest import AWSResponse

    error = {"Error": {"Code": "NotImplemented", "Message": "not available here (checked by the launcher)"}}
    return AWSResponse("https://iam.invalid", 501, {}, None), error
