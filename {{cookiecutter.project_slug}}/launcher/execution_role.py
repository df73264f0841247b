"""`make role`: the IAM execution role this project's training jobs need, and nothing more.

    python -m launcher.execution_role --dry-run    # print the policies and the requests; change nothing
    python -m launcher.execution_role              # create the role, or bring it up to date
    python -m launcher.execution_role --role-name MyRole

SageMaker assumes the role to run a training job. The policy follows "CreateTrainingJob API:
Execution Role Permissions" (docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html), scoped
down to this project's resources, all read from project.toml:

* S3: list the project's bucket; read and write only the prefixes this project's jobs use
  (``<slug>-*``: each job's output ``<base_job_name>-<time>/`` and its staged code and checkpoints
  ``<base_job_name>/``, where the default base job name is ``<slug>-<algorithm>``); read the Unity build.
* ECR: pull only the repository of ``[aws] ecr_image_uri`` (``ecr:GetAuthorizationToken`` cannot be
  scoped to a repository: it is the registry login).
* CloudWatch Logs: only the log group ``/aws/sagemaker/TrainingJobs`` and its streams.
* CloudWatch metrics: ``cloudwatch:PutMetricData`` only in the namespace SageMaker writes training
  metrics to (``/aws/sagemaker/TrainingJobs``).

It is the role of the *jobs*. Starting jobs (launch.py, the notebook) is done with your own
credentials, which need sagemaker:CreateTrainingJob and iam:PassRole on this role.

A second run changes nothing; a changed policy (say, a new bucket in project.toml) is applied in
place. Standard library + boto3 only, like `make notebook`: it runs in the notebook tool's venv.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from launcher.runtime import project_file, rules

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE_PRINCIPAL = "sagemaker.amazonaws.com"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")
PROJECT_FIELDS = ("slug", "region", "bucket", "image_uri", "build_key")
IMAGE = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repository>[^:@]+)"
)


class RoleError(Exception):
    """Something the user must fix; the message is one line and names the IAM action when one was refused."""


@dataclass(frozen=True)
class RolePlan:
    """What the role is: its name, where it lives, and its two policy documents."""

    name: str
    account: str
    partition: str
    trust_policy: dict
    permissions: dict
    policy_name: str
    job_prefix: str  # the S3 prefix (and base job name start) the role may write under

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{self.name}"


def job_prefix(slug: str) -> str:
    """How every default base job name of this project starts: the slug with dashes, then a dash."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", slug).strip("-") + "-"


def default_role_name(slug: str) -> str:
    return (job_prefix(slug) + "sagemaker-training")[:64].rstrip("-")


def trust_policy() -> dict:
    """Only SageMaker may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": SERVICE_PRINCIPAL}, "Action": "sts:AssumeRole"}
        ],
    }


def permissions_policy(
    *, partition: str, region: str, account: str, bucket: str, prefix: str, build_key: str, image_uri: str
) -> dict:
    """The permissions of a training job of this project (see the module docstring)."""
    image = IMAGE.match(image_uri)
    if image is None:
        raise RoleError(f"ecr_image_uri={image_uri!r} is not an ECR image URI")
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    objects = [f"{bucket_arn}/{prefix}*"]
    build = [] if build_key.startswith(prefix) else [f"{bucket_arn}/{build_key}"]
    log_group = f"arn:{partition}:logs:{region}:{account}:log-group:{LOG_GROUP}"
    repository = f"arn:{partition}:ecr:{image['region']}:{image['account']}:repository/{image['repository']}"
    statements = [
        {"Sid": "ListTheProjectBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
        {
            "Sid": "ReadWriteTheProjectsJobPrefixes",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": objects,
        },
    ]
    if build:
        statements.append(
            {"Sid": "ReadTheUnityBuild", "Effect": "Allow", "Action": "s3:GetObject", "Resource": build}
        )
    statements += [
        {
            "Sid": "PullTheTrainingImage",
            "Effect": "Allow",
            "Action": list(ECR_PULL_ACTIONS),
            "Resource": repository,
        },
        {"Sid": "LogInToEcr", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "WriteTrainingJobLogs",
            "Effect": "Allow",
            "Action": list(LOG_ACTIONS),
            "Resource": [log_group, f"{log_group}:*"],
        },
        {
            "Sid": "PutTrainingJobMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def job_access(
    *,
    partition: str,
    region: str,
    account: str,
    bucket: str,
    base_job_name: str,
    build_uri: str,
    image_uri: str,
) -> list[tuple[tuple[str, ...], str, dict]]:
    """What one job does with its role, as (actions, resource ARN, condition context) to check.

    The launcher asks IAM's policy simulator about these before submitting (launcher/role_check.py);
    a role made by `make role` allows every one of them.
    """
    image = IMAGE.match(image_uri)
    build_bucket, _, build_key = build_uri.removeprefix("s3://").partition("/")
    log_group = f"arn:{partition}:logs:{region}:{account}:log-group:{LOG_GROUP}"
    checks: list[tuple[tuple[str, ...], str, dict]] = [
        (("s3:ListBucket",), f"arn:{partition}:s3:::{bucket}", {}),
        (
            ("s3:GetObject", "s3:PutObject"),
            f"arn:{partition}:s3:::{bucket}/{base_job_name}-job/output/model.tar.gz",
            {},
        ),
        (
            ("s3:GetObject", "s3:PutObject"),
            f"arn:{partition}:s3:::{bucket}/{base_job_name}/job/checkpoints/x",
            {},
        ),
        (("s3:GetObject",), f"arn:{partition}:s3:::{build_bucket}/{build_key}", {}),
        (("ecr:GetAuthorizationToken",), "*", {}),
        (
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            f"{log_group}:log-stream:{base_job_name}-job/algo-1",
            {},
        ),
        (("cloudwatch:PutMetricData",), "*", {"cloudwatch:namespace": METRICS_NAMESPACE}),
    ]
    if image is not None:
        repository = (
            f"arn:{partition}:ecr:{image['region']}:{image['account']}:repository/{image['repository']}"
        )
        checks.insert(4, (ECR_PULL_ACTIONS, repository, {}))
    return checks


def plan(project, account: str, role_name: str | None = None) -> RolePlan:
    """The role for ``project`` (a ProjectFile with PROJECT_FIELDS) in ``account``."""
    partition = rules.partition_of(project.region)
    prefix = job_prefix(project.slug)
    name = role_name or default_role_name(project.slug)
    if not re.fullmatch(r"[\w+=,.@-]{1,64}", name):
        raise RoleError(f"--role-name {name!r}: an IAM role name is 1-64 letters, digits and +=,.@_-")
    return RolePlan(
        name=name,
        account=account,
        partition=partition,
        trust_policy=trust_policy(),
        permissions=permissions_policy(
            partition=partition,
            region=project.region,
            account=account,
            bucket=project.bucket,
            prefix=prefix,
            build_key=project.build_key,
            image_uri=project.image_uri,
        ),
        policy_name=f"{prefix}training-job"[:128],
        job_prefix=prefix,
    )


# ---------------------------------------------------------------------------------------------- AWS


def policy_document(value) -> dict | None:
    """A policy document as IAM returns it: a dict (boto3 decodes it) or URL-encoded JSON text."""
    if value is None or isinstance(value, dict):
        return value
    return json.loads(urllib.parse.unquote(value))


def _code(error) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _refused(error, action: str, resource: str) -> RoleError:
    code = _code(error)
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return RoleError(
            f"access denied: your AWS identity needs {action} on {resource} "
            "(ask an administrator to run make role, or to grant it)"
        )
    message = error.response.get("Error", {}).get("Message", "") or str(error)
    return RoleError(f"{action} on {resource} failed ({code}: {message})")


class RoleMaker:
    """The IAM requests of ``make role``: reads always happen, writes only without ``dry_run``."""

    def __init__(self, iam, plan: RolePlan, *, dry_run: bool, out: TextIO):
        self.iam, self.plan, self.dry_run, self.out = iam, plan, dry_run, out

    @property
    def will(self) -> str:
        return "it would be" if self.dry_run else "it is"

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def current(self) -> tuple[dict | None, dict | None]:
        """(trust policy, our inline policy) of the existing role; (None, None) if there is no role."""
        from botocore.exceptions import ClientError

        try:
            role = self.iam.get_role(RoleName=self.plan.name)["Role"]
        except ClientError as error:
            if _code(error) == "NoSuchEntity":
                return None, None
            raise _refused(error, "iam:GetRole", self.plan.arn) from None
        try:
            found = self.iam.get_role_policy(RoleName=self.plan.name, PolicyName=self.plan.policy_name)
        except ClientError as error:
            if _code(error) != "NoSuchEntity":
                raise _refused(error, "iam:GetRolePolicy", self.plan.arn) from None
            found = None
        return policy_document(role.get("AssumeRolePolicyDocument")), policy_document(
            (found or {}).get("PolicyDocument")
        )

    def request(self, action: str, **params) -> None:
        """Send one write request, or (dry run) print it."""
        from botocore.exceptions import ClientError

        shown = {k: ("<the document above>" if k.endswith("Document") else v) for k, v in params.items()}
        if self.dry_run:
            self.say(f"  would send iam:{action} {json.dumps(shown)}")
            return
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()
        try:
            getattr(self.iam, method)(**params)
        except ClientError as error:
            raise _refused(error, f"iam:{action}", self.plan.arn) from None
        self.say(f"  sent iam:{action} {json.dumps(shown)}")

    def apply(self) -> bool:
        """Create the role or bring it up to date; True if anything was (or, dry run, would be) changed."""
        plan = self.plan
        trust_text = json.dumps(plan.trust_policy)
        policy_text = json.dumps(plan.permissions)
        trust, policy = self.current()
        changed = False
        if trust is None:
            self.say(f"role {plan.name} does not exist: {self.will} created")
            self.request(
                "CreateRole",
                RoleName=plan.name,
                AssumeRolePolicyDocument=trust_text,
                Description="Execution role of this project's SageMaker training jobs (made by make role)",
            )
            changed = True
        elif trust != plan.trust_policy:
            self.say(f"role {plan.name}: its trust policy differs from the one above: {self.will} replaced")
            self.request("UpdateAssumeRolePolicy", RoleName=plan.name, PolicyDocument=trust_text)
            changed = True
        if policy != plan.permissions:
            self.say(
                f"inline policy {plan.policy_name}: "
                f"{'missing' if policy is None else 'differs from the one above'}: {self.will} written"
            )
            self.request(
                "PutRolePolicy", RoleName=plan.name, PolicyName=plan.policy_name, PolicyDocument=policy_text
            )
            changed = True
        if trust is not None:
            self.note_other_policies()
        return changed

    def note_other_policies(self) -> None:
        """Say so when the role grants more than this project needs (make role never removes anything)."""
        from botocore.exceptions import ClientError

        try:
            inline = self.iam.list_role_policies(RoleName=self.plan.name).get("PolicyNames", [])
            attached = self.iam.list_attached_role_policies(RoleName=self.plan.name).get(
                "AttachedPolicies", []
            )
        except ClientError:
            return  # only a note: no need for the list permissions
        others = [f"inline {n}" for n in inline if n != self.plan.policy_name]
        others += [f"attached {p.get('PolicyArn', p.get('PolicyName'))}" for p in attached]
        if others:
            self.say(
                f"note: role {self.plan.name} also has {', '.join(others)}: it may grant more than this "
                "project needs (make role leaves other policies alone)"
            )


def caller_account(sts, dry_run: bool, fallback: str, out: TextIO) -> str:
    """The account the role goes into (the caller's); a dry run without credentials assumes ``fallback``."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return sts.get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as error:
        if not dry_run:
            if isinstance(error, NoCredentialsError):
                raise RoleError(
                    "no AWS credentials found: run `aws configure` (or set AWS_PROFILE / AWS_ACCESS_KEY_ID)"
                ) from None
            if isinstance(error, ClientError):
                raise _refused(error, "sts:GetCallerIdentity", "*") from None
            raise RoleError(f"could not reach AWS STS to find your account: {error}") from None
        print(
            f"note: could not ask STS for your account ({type(error).__name__}); showing the image's "
            f"account {fallback}",
            file=out,
        )
        return fallback


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m launcher.execution_role",
        description="Create (or bring up to date) the IAM role this project's training jobs run as.",
        epilog="With make: make role ARGS=--dry-run. Your AWS identity needs iam:GetRole, iam:CreateRole, "
        "iam:GetRolePolicy, iam:PutRolePolicy and iam:UpdateAssumeRolePolicy on the role.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the policies and the requests; send no write"
    )
    parser.add_argument("--role-name", help="the role's name (default: <slug>-sagemaker-training)")
    parser.add_argument("--project-file", help="project.toml to read (default: the repository's)")
    parser.add_argument("--profile", help="AWS profile to use (default: the usual credential chain)")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    options = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        project = project_file.read_project_file(
            Path(options.project_file) if options.project_file else REPO_ROOT / project_file.FILE_NAME,
            PROJECT_FIELDS,
        )
        import boto3

        session = boto3.Session(profile_name=options.profile, region_name=project.region)
        image = IMAGE.match(project.image_uri)
        account = caller_account(session.client("sts"), options.dry_run, image["account"], out)
        role = plan(project, account, options.role_name)
        print(f"Execution role for this project's training jobs: {role.arn}", file=out)
        print("Trust policy (who may assume it):", file=out)
        print(json.dumps(role.trust_policy, indent=2), file=out)
        print(f"Permissions (inline policy {role.policy_name}):", file=out)
        print(json.dumps(role.permissions, indent=2), file=out)
        print(
            "Requests" + (" (dry run: reads only, no write is sent):" if options.dry_run else ":"), file=out
        )
        maker = RoleMaker(session.client("iam"), role, dry_run=options.dry_run, out=out)
        changed = maker.apply()
    except (RoleError, project_file.ProjectFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not changed:
        print(
            f"role {role.name} is up to date: nothing {'would change' if options.dry_run else 'changed'}",
            file=out,
        )
    if options.dry_run:
        print("dry run: nothing was changed; run without --dry-run (make role) to apply", file=out)
    else:
        print(
            "Jobs whose base_job_name starts with "
            f"{role.job_prefix!r} (the default) can use it. Give it to launch.py and the notebook with:\n"
            f"  export SAGEMAKER_ROLE_ARN={role.arn}",
            file=out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
