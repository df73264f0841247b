"""`make notebook`: from a repository pushed to GitHub to a running SageMaker notebook instance.

One command replaces the console clicks of linking a repository by hand. It creates or reuses, in
order: a Secrets Manager secret with the GitHub token (private repositories only), a SageMaker code
repository for the URL and branch, a lifecycle configuration whose on-start script builds the
"rl-launcher" Jupyter kernel from requirements/launcher.txt, and the notebook instance with the
repository as its default. A second run changes nothing; a changed setting is applied, stopping and
starting the instance where SageMaker requires it. Then it prints where JupyterLab and
job_launcher.ipynb are.

    python -m launcher.notebook_instance --role-arn arn:aws:iam::123456789012:role/MySageMakerRole
    python -m launcher.notebook_instance --dry-run    # print every request; change nothing
    python -m launcher.notebook_instance --stop       # or --delete [--all]

Standard library + boto3 only. The template's answers (slug, region) are read from project.toml.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

import boto3
import botocore.config
import botocore.exceptions

from launcher.notebook_aws import SETTLED, SETTLING, Aws, Clients, bring_up, wait_for
from launcher.notebook_inputs import (
    GITHUB_API_URL,
    LAUNCHER_REQUIREMENTS,
    ROLE_ENV,
    TOKEN_ENV_DEFAULT,
    Token,
    UserError,
    check_branch,
    check_instance_type,
    check_name,
    check_role_arn,
    check_volume,
    checked,
    current_branch,
    detect_visibility,
    instance_name_from_slug,
    origin_url,
    parse_github_url,
    read_project,
    sagemaker_model,
    unpushed_warning,
)
from launcher.notebook_plan import Plan
from launcher.runtime import project_file, rules

REPO_ROOT = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create (or update, or reuse) a SageMaker notebook instance that clones this repository\n"
        "from GitHub, then print where JupyterLab and job_launcher.ipynb are (make notebook).",
        epilog="With make, pass options as: make notebook ARGS='--dry-run'\n"
        "Defaults come from git (origin remote, current branch) and project.toml (slug, region).\n"
        "The GitHub token of a private repository is read from $GITHUB_TOKEN or a hidden prompt and\n"
        "stored only in AWS Secrets Manager: never on disk, never printed.\n"
        "Your AWS identity needs the SageMaker notebook/code-repository/lifecycle-config actions,\n"
        "iam:PassRole on the role, and secretsmanager actions for a private repository.",
    )
    source = parser.add_argument_group("the repository")
    source.add_argument(
        "--repo-url",
        help="GitHub HTTPS URL to clone (default: the 'origin' remote; an SSH "
        "remote on github.com is converted to HTTPS)",
    )
    source.add_argument(
        "--branch", help="branch the notebook instance checks out (default: the current branch)"
    )
    source.add_argument(
        "--visibility",
        choices=("auto", "public", "private"),
        default="auto",
        help="public repositories need no token; 'auto' asks GitHub's API (default: auto)",
    )
    source.add_argument(
        "--token-env",
        default=TOKEN_ENV_DEFAULT,
        metavar="VAR",
        help="environment variable holding the GitHub token of a private repository; without "
        "it you are prompted (hidden) in a terminal (default: GITHUB_TOKEN)",
    )
    source.add_argument(
        "--github-user", help="user name stored next to the token (default: the repository owner)"
    )
    source.add_argument(
        "--github-api-url", default=GITHUB_API_URL, help=argparse.SUPPRESS
    )  # tests: a local fake
    instance = parser.add_argument_group("the notebook instance")
    instance.add_argument(
        "--name",
        help="notebook instance name: 1-63 letters, digits, hyphens (default: the "
        "project slug with '_' as '-')",
    )
    instance.add_argument(
        "--instance-type",
        default="ml.t3.medium",
        help="notebook instance type (default: "
        "ml.t3.medium; the training jobs use their own instance type from project.toml)",
    )
    instance.add_argument(
        "--volume-size",
        type=int,
        default=10,
        metavar="GB",
        help="storage volume in GB, 5-16384; it can grow later but never shrink (default: 10)",
    )
    instance.add_argument(
        "--role-arn",
        help=f"IAM execution role the instance runs as (default: ${ROLE_ENV}, "
        "then role_arn in project.toml [aws]); give it AmazonSageMakerFullAccess",
    )
    instance.add_argument(
        "--platform",
        default="notebook-al2023-v1",
        help="SageMaker platform identifier (default: notebook-al2023-v1, Amazon Linux 2023)",
    )
    aws = parser.add_argument_group("AWS")
    aws.add_argument("--region", help="AWS region (default: [aws] region in project.toml)")
    aws.add_argument("--profile", help="AWS CLI profile to use (default: the usual credential chain)")
    actions = parser.add_argument_group("what to do (default: create or update, then wait until InService)")
    mode = actions.add_mutually_exclusive_group()
    mode.add_argument(
        "--stop", action="store_true", help="stop the instance (its volume, and your files, stay)"
    )
    mode.add_argument("--delete", action="store_true", help="delete the instance and its volume")
    actions.add_argument(
        "--all",
        action="store_true",
        help="with --delete: also the code repository, lifecycle configuration and token secret",
    )
    actions.add_argument("--yes", action="store_true", help="do not ask before stopping or deleting")
    actions.add_argument(
        "--dry-run",
        action="store_true",
        help="print every request that would change something (token masked) and send only read requests",
    )
    actions.add_argument("--no-wait", action="store_true", help="return once the requests are sent")
    actions.add_argument(
        "--poll-seconds",
        type=float,
        default=15.0,
        help="seconds between status checks while waiting (default: 15)",
    )
    actions.add_argument(
        "--timeout-minutes",
        type=float,
        default=30.0,
        help="give up waiting after this long; running again resumes (default: 30)",
    )
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    return parser


def check_platform(value: str) -> str:
    allowed = sagemaker_model().shape_for("PlatformIdentifier").metadata["pattern"].strip("^$()").split("|")
    if value not in allowed:
        raise UserError(
            f"--platform {value!r} is not a SageMaker notebook platform: one of {', '.join(allowed)}"
        )
    return value


def resolve_plan(
    options: argparse.Namespace, project: project_file.ProjectFile, plan: Plan, warn: TextIO
) -> Plan:
    """Fill in and check every setting of `make notebook` before the first AWS request."""
    if options.repo_url:
        plan.repo = parse_github_url(options.repo_url, "--repo-url", warn)
    else:
        plan.repo = parse_github_url(origin_url(options.project_dir), "the 'origin' remote", warn)
    plan.branch = check_branch(options.branch or current_branch(options.project_dir))
    if not options.repo_url and (warning := unpushed_warning(options.project_dir, plan.branch)):
        print(f"warning: {warning}", file=warn)
    if not (options.project_dir / LAUNCHER_REQUIREMENTS).exists():
        print(
            f"warning: {LAUNCHER_REQUIREMENTS} is missing: the notebook's launcher kernel is built from it",
            file=warn,
        )
    plan.instance_type = check_instance_type(options.instance_type)
    plan.volume = check_volume(options.volume_size)
    plan.platform = check_platform(options.platform)
    sources = (
        ("--role-arn", options.role_arn),
        (f"${ROLE_ENV}", os.environ.get(ROLE_ENV)),
        ("[aws] role_arn in project.toml", project.role_arn),
    )
    source, role = next(((name, value) for name, value in sources if value), ("--role-arn", None))
    plan.role_arn = check_role_arn(role, plan.region, source)
    plan.token_env, plan.github_api_url = options.token_env, options.github_api_url
    plan.github_user = options.github_user or plan.repo.owner
    visibility = options.visibility
    if visibility == "auto":
        visibility = detect_visibility(plan.repo, options.github_api_url)
    plan.private = visibility == "private"
    token = os.environ.get(options.token_env, "").strip()
    plan.token = Token(token) if token and plan.private else None
    return plan


def make_clients(region: str, profile: str | None) -> Clients:
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound:
        raise UserError(
            f"--profile {profile!r} is not a configured AWS profile (see aws configure list-profiles)"
        ) from None
    config = botocore.config.Config(retries={"mode": "standard"}, user_agent_extra="make-notebook")
    return Clients(
        session.client("sagemaker", config=config), session.client("secretsmanager", config=config)
    )


# ---------------------------------------------------------------- --stop and --delete


def confirm(question: str, options: argparse.Namespace, stdin: TextIO, out: TextIO) -> bool:
    if options.yes or options.dry_run:
        return True
    if not stdin.isatty():
        raise UserError(f"no terminal to confirm this ({question}): pass --yes")
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    return stdin.readline().strip().lower() in ("y", "yes")


def stop_instance(aws: Aws, plan: Plan, options: argparse.Namespace, found: dict, *, wait: bool) -> None:
    if found["NotebookInstanceStatus"] in SETTLING and not aws.dry_run:
        found = wait_for(aws, plan.name, SETTLED, options)
    if found["NotebookInstanceStatus"] != "InService":
        aws.say(f"notebook instance {plan.name}", f"unchanged ({found['NotebookInstanceStatus']})")
        return
    aws.write("sagemaker", "StopNotebookInstance", NotebookInstanceName=plan.name)
    if wait and not aws.dry_run:
        wait_for(aws, plan.name, {"Stopped"}, options)
    aws.say(f"notebook instance {plan.name}", "stopped (its volume stays; make notebook starts it again)")


def stop_command(aws: Aws, plan: Plan, options: argparse.Namespace, stdin: TextIO) -> None:
    found = aws.read("sagemaker", "DescribeNotebookInstance", NotebookInstanceName=plan.name)
    if found is None:
        raise UserError(
            f"there is no notebook instance named {plan.name} in {plan.region} (see --name, --region)"
        )
    question = f"Stop notebook instance {plan.name}? Running kernels end; files on its volume stay."
    if found["NotebookInstanceStatus"] != "InService" or confirm(question, options, stdin, aws.out):
        stop_instance(aws, plan, options, found, wait=not options.no_wait)
    else:
        print("nothing stopped", file=aws.out)


def delete_command(aws: Aws, plan: Plan, options: argparse.Namespace, stdin: TextIO) -> None:
    """The instance, and with --all the code repositories, lifecycle configuration and secret."""
    instance = aws.read("sagemaker", "DescribeNotebookInstance", NotebookInstanceName=plan.name)
    doomed = [f"notebook instance {plan.name} and its volume (files not pushed to GitHub are lost)"] * bool(
        instance
    )
    repos, lifecycle, secret = [], None, None
    if options.all:
        listed = aws.read("sagemaker", "ListCodeRepositories", NameContains=plan.code_repo_prefix) or {}
        repos = [
            summary["CodeRepositoryName"]
            for summary in listed.get("CodeRepositorySummaryList", [])
            if plan.owns_code_repo(summary["CodeRepositoryName"])
        ]
        lifecycle = aws.read(
            "sagemaker",
            "DescribeNotebookInstanceLifecycleConfig",
            NotebookInstanceLifecycleConfigName=plan.lifecycle_name,
        )
        secret = aws.read("secretsmanager", "DescribeSecret", SecretId=plan.secret_name)
        doomed += [f"code repository {name}" for name in repos]
        doomed += [f"lifecycle configuration {plan.lifecycle_name}"] * bool(lifecycle)
        doomed += [f"secret {plan.secret_name}"] * bool(secret)
    if not doomed:
        print(f"nothing to delete for {plan.name} in {plan.region}", file=aws.out)
        return
    print("This deletes:\n" + "".join(f"  - {thing}\n" for thing in doomed), end="", file=aws.out)
    if not confirm("Delete them?", options, stdin, aws.out):
        print("nothing deleted", file=aws.out)
        return
    if instance:
        stop_instance(aws, plan, options, instance, wait=True)  # only a stopped instance can be deleted
        aws.write("sagemaker", "DeleteNotebookInstance", NotebookInstanceName=plan.name)
        if not aws.dry_run:
            wait_for(aws, plan.name, {"Gone"}, options)  # a code repository in use cannot be deleted
        aws.say(f"notebook instance {plan.name}", "deleted")
    for name in repos:
        aws.write("sagemaker", "DeleteCodeRepository", CodeRepositoryName=name)
        aws.say(f"code repository {name}", "deleted")
    if lifecycle:
        aws.write(
            "sagemaker",
            "DeleteNotebookInstanceLifecycleConfig",
            NotebookInstanceLifecycleConfigName=plan.lifecycle_name,
        )
        aws.say(f"lifecycle configuration {plan.lifecycle_name}", "deleted")
    if secret:  # without a recovery window, so that a later `make notebook` can reuse the name
        aws.write(
            "secretsmanager", "DeleteSecret", SecretId=plan.secret_name, ForceDeleteWithoutRecovery=True
        )
        aws.say(f"secret {plan.secret_name}", "deleted")


# ---------------------------------------------------------------- main


def main(
    argv: list[str] | None = None,
    *,
    clients: Clients | None = None,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Exit status: 0 done, 1 a problem the message explains, 2 a usage error, 130 interrupted."""
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.all and not options.delete:
        parser.error("--all only goes with --delete")
    aws = None
    try:
        project = read_project(options.project_dir)
        region = checked(rules.region, "--region", options.region) if options.region else project.region
        slug = project.slug
        name = check_name("--name", options.name) if options.name else instance_name_from_slug(slug)
        plan = Plan(slug=slug, region=region, name=name)
        if not (options.stop or options.delete):
            plan = resolve_plan(options, project, plan, err)
        aws = Aws(clients or make_clients(region, options.profile), dry_run=options.dry_run, out=out)
        aws.token = plan.token
        if options.stop:
            stop_command(aws, plan, options, stdin)
        elif options.delete:
            delete_command(aws, plan, options, stdin)
        else:
            visibility = "private, token in Secrets Manager" if plan.private else "public"
            print(
                f"github.com/{plan.repo.owner}/{plan.repo.name} (branch {plan.branch}, {visibility}) "
                f"-> notebook instance {plan.name} in {region}",
                file=out,
            )
            bring_up(aws, plan, options, stdin, err)
    except UserError as error:
        print(f"error: {aws.scrub(str(error)) if aws else error}", file=err)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue", file=err)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
