"""The AWS side of `make notebook`: the requests, what they mean when they fail, and each resource.

Every request goes through `Aws`, which sends it (or, in a dry run, prints the ones that would change
something, token masked) and turns an AWS error into a sentence naming the IAM action to ask for.
Each `ensure_*` function reads the current state first and writes only what differs, which is what
makes a second run a no-op.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import time
from typing import Any, NamedTuple, TextIO

import botocore.exceptions
from botocore import xform_name

from launcher.notebook_inputs import (
    KERNEL_NAME,
    LAUNCHER_REQUIREMENTS,
    NOTEBOOK_HOME,
    Token,
    UserError,
    check_token_with_github,
    missing_token_error,
    on_start_script,
    partition_of,
    read_token,
    secret_string,
)
from launcher.notebook_plan import Plan

SETTLED = {"InService", "Stopped", "Failed"}
SETTLING = {"Pending", "Updating", "Stopping"}  # wait for these to end; any other status is refused
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"}
BAD_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
}
NOT_FOUND_MESSAGES = ("RecordNotFound", "does not exist", "Cannot find")
PASSES_ROLE = {"CreateNotebookInstance", "UpdateNotebookInstance"}
MASK = "****"


class Clients(NamedTuple):
    sagemaker: Any
    secretsmanager: Any


class Aws:
    """Sends every request (or, with --dry-run, prints the ones that change something) and explains errors."""

    def __init__(self, clients: Clients, *, dry_run: bool, out: TextIO):
        self.clients, self.dry_run, self.out = clients, dry_run, out
        self.token: Token | None = None  # scrubbed from anything printed

    def read(self, service: str, operation: str, **params) -> dict | None:
        """The response, or None when the thing asked about does not exist."""
        if self.dry_run:
            print(self.scrub(f"[dry-run] read {service}:{operation} {json.dumps(params)}"), file=self.out)
        try:
            return self._send(service, operation, params)
        except botocore.exceptions.ClientError as error:
            if is_not_found(error):
                return None
            raise explain(error, service, operation) from None

    def write(self, service: str, operation: str, **params) -> dict:
        if self.dry_run:
            self.show(service, operation, params)
            return {}
        try:
            return self._send(service, operation, params)
        except botocore.exceptions.ClientError as error:
            raise explain(error, service, operation) from None

    def _send(self, service: str, operation: str, params: dict) -> dict:
        try:
            return getattr(getattr(self.clients, service), xform_name(operation))(**params)
        except botocore.exceptions.NoCredentialsError:
            raise UserError(
                "no AWS credentials found: run `aws configure` (or `aws sso login`, or set "
                "AWS_PROFILE) and try again"
            ) from None
        except botocore.exceptions.EndpointConnectionError as error:
            raise UserError(f"cannot reach AWS ({error}): check your network and the region") from None

    def show(self, service: str, operation: str, params: dict) -> None:
        masked, scripts = mask(params)
        text = f"[dry-run] would send {service}:{operation}\n{json.dumps(masked, indent=2, default=str)}\n"
        text += "".join(f"[dry-run] on-start script (decoded):\n{script}" for script in scripts)
        print(self.scrub(text), file=self.out, end="")

    def scrub(self, text: str) -> str:
        return text.replace(self.token.reveal(), MASK) if self.token and self.token.reveal() else text

    def say(self, what: str, done: str) -> None:
        """One line per resource: what happened to it (or would, in a dry run)."""
        if self.dry_run and not done.startswith("unchanged"):
            done = f"would be {done}"
        print(f"{what}: {done}", file=self.out)


def is_not_found(error: botocore.exceptions.ClientError) -> bool:
    details = error.response.get("Error", {})
    return details.get("Code") == "ResourceNotFoundException" or (
        details.get("Code") == "ValidationException"
        and any(m in details.get("Message", "") for m in NOT_FOUND_MESSAGES)
    )


def explain(error: botocore.exceptions.ClientError, service: str, operation: str) -> UserError:
    """The AWS error as a sentence that names the IAM action to ask for."""
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    action = f"{service}:{operation}"
    if code in ACCESS_DENIED or "not authorized to perform" in message:
        named = re.search(r"perform: ([\w-]+:\w+)", message)
        missing = named[1] if named else action
        also = " (it also needs iam:PassRole on the execution role)" if operation in PASSES_ROLE else ""
        return UserError(
            f"access denied calling {action}: your AWS identity lacks the IAM permission "
            f"'{missing}'{also}. Ask an administrator to allow it, then run again. AWS said: {message}"
        )
    if code in BAD_CREDENTIALS:
        return UserError(
            f"AWS did not accept your credentials calling {action} ({code}): refresh them "
            "(aws sso login, or aws configure) and run again"
        )
    return UserError(f"{action} failed: {code}: {message}")


def mask(params: dict) -> tuple[dict, list[str]]:
    """A printable copy of a request: the token replaced by ****, on-start scripts decoded separately."""
    masked, scripts = copy.deepcopy(params), []
    if "SecretString" in masked:
        masked["SecretString"] = json.dumps({**json.loads(masked["SecretString"]), "password": MASK})
    for hook in ("OnStart", "OnCreate"):
        for entry in masked.get(hook, []):
            scripts.append(base64.b64decode(entry["Content"]).decode())
            entry["Content"] = f"<base64 of the on-start script below, {len(entry['Content'])} characters>"
    return masked, scripts


# ---------------------------------------------------------------- waiting


def wait_for(aws: Aws, name: str, wanted: set[str], options: argparse.Namespace) -> dict | None:
    """Poll the instance until its status is in `wanted` ("Gone" = deleted), showing progress."""
    started, shown, tty = time.monotonic(), None, aws.out.isatty()
    while True:
        found = aws.read("sagemaker", "DescribeNotebookInstance", NotebookInstanceName=name)
        status = found["NotebookInstanceStatus"] if found else "Gone"
        elapsed = time.monotonic() - started
        clock = f"{int(elapsed) // 60}:{int(elapsed) % 60:02d}"
        if tty:
            print(
                f"\r  {name}: {status:<10} {clock}",
                end="\n" if status in wanted else "",
                file=aws.out,
                flush=True,
            )
        elif status != shown:
            print(f"  {name}: {status} ({clock})", file=aws.out, flush=True)
        shown = status
        if status in wanted:
            return found
        if status == "Failed":
            raise UserError(failed_message(name, found.get("FailureReason", "no reason given")))
        if elapsed > options.timeout_minutes * 60:
            raise UserError(
                f"{name} is still {status} after {options.timeout_minutes} minutes: run the command "
                "again later to pick up where it stopped (or raise --timeout-minutes)"
            )
        time.sleep(options.poll_seconds)


def wait_unless_dry_run(aws: Aws, name: str, wanted: set[str], options: argparse.Namespace) -> None:
    if not aws.dry_run:
        wait_for(aws, name, wanted, options)


def failed_message(name: str, reason: str) -> str:
    hint = ""
    if "git" in reason.lower() or "clone" in reason.lower() or "repositor" in reason.lower():
        hint = (
            " SageMaker could not clone the repository: check that the branch is pushed and, for a "
            "private repository, that the token has the 'repo' scope (set GITHUB_TOKEN to replace it); "
            "then run again."
        )
    return f"notebook instance {name} failed: {reason}.{hint} To start over: --delete, then run again."


# ---------------------------------------------------------------- make notebook


def ensure_secret(aws: Aws, plan: Plan, stdin: TextIO, warn: TextIO) -> str | None:
    """ARN of the secret holding the token (None for a public repository)."""
    if not plan.private:
        return None
    label = f"secret {plan.secret_name}"
    found = aws.read("secretsmanager", "DescribeSecret", SecretId=plan.secret_name)
    if found and found.get("DeletedDate"):
        aws.write("secretsmanager", "RestoreSecret", SecretId=plan.secret_name)
    token = plan.token
    if found is None and token is None and not aws.dry_run:
        token = read_token(plan.token_env, plan.repo, stdin)
        if token is None:
            raise missing_token_error(plan.repo, plan.token_env)
    if token is not None:
        aws.token = token
        check_token_with_github(plan.repo, token, plan.github_api_url, warn)
    value = secret_string(plan.github_user, token or Token(MASK))
    if found is None:
        created = aws.write(
            "secretsmanager",
            "CreateSecret",
            Name=plan.secret_name,
            SecretString=value,
            Description=f"GitHub token SageMaker uses to clone {plan.repo.owner}/{plan.repo.name}",
            Tags=plan.tags(("SageMaker", "true")),
        )
        aws.say(label, "created")
        return created.get("ARN", f"<ARN of {plan.secret_name}>")
    if token is None:
        aws.say(label, f"unchanged (keeps the stored token; set {plan.token_env} to replace it)")
        return found["ARN"]
    stored = aws.read("secretsmanager", "GetSecretValue", SecretId=found["ARN"]) or {}
    if stored.get("SecretString") and json.loads(stored["SecretString"]) == json.loads(value):
        aws.say(label, "unchanged")
    else:
        aws.write("secretsmanager", "PutSecretValue", SecretId=found["ARN"], SecretString=value)
        aws.say(label, "updated with the new token")
    return found["ARN"]


def ensure_code_repository(aws: Aws, plan: Plan, secret_arn: str | None) -> None:
    name, label = plan.code_repo_name, f"code repository {plan.code_repo_name}"
    found = aws.read("sagemaker", "DescribeCodeRepository", CodeRepositoryName=name)
    if found is None:
        git_config = {"RepositoryUrl": plan.repo.https_url, "Branch": plan.branch}
        aws.write(
            "sagemaker",
            "CreateCodeRepository",
            CodeRepositoryName=name,
            GitConfig=git_config | ({"SecretArn": secret_arn} if secret_arn else {}),
            Tags=plan.tags(),
        )
        aws.say(label, f"created ({plan.repo.https_url}, branch {plan.branch})")
    elif secret_arn and found["GitConfig"].get("SecretArn") != secret_arn:
        aws.write(
            "sagemaker", "UpdateCodeRepository", CodeRepositoryName=name, GitConfig={"SecretArn": secret_arn}
        )
        aws.say(label, "updated to use the token secret")
    else:
        aws.say(label, "unchanged")


def ensure_lifecycle_config(aws: Aws, plan: Plan) -> bool:
    """True when the on-start script was created or changed (it runs at the next start)."""
    script = on_start_script(plan.repo.clone_dir)
    on_start = [{"Content": base64.b64encode(script.encode()).decode()}]
    name, label = plan.lifecycle_name, f"lifecycle configuration {plan.lifecycle_name}"
    found = aws.read(
        "sagemaker", "DescribeNotebookInstanceLifecycleConfig", NotebookInstanceLifecycleConfigName=name
    )
    if found is None:
        aws.write(
            "sagemaker",
            "CreateNotebookInstanceLifecycleConfig",
            NotebookInstanceLifecycleConfigName=name,
            OnStart=on_start,
            Tags=plan.tags(),
        )
        aws.say(label, "created")
        return True
    current = [base64.b64decode(entry["Content"]).decode() for entry in found.get("OnStart") or []]
    if current == [script]:
        aws.say(label, "unchanged")
        return False
    aws.write(
        "sagemaker",
        "UpdateNotebookInstanceLifecycleConfig",
        NotebookInstanceLifecycleConfigName=name,
        OnStart=on_start,
    )
    aws.say(label, "updated")
    return True


def instance_changes(found: dict, plan: Plan) -> dict[str, tuple[Any, Any]]:
    """UpdateNotebookInstance parameter -> (current, wanted), for the settings that differ."""
    wanted = {
        "InstanceType": ("InstanceType", plan.instance_type),
        "RoleArn": ("RoleArn", plan.role_arn),
        "VolumeSizeInGB": ("VolumeSizeInGB", plan.volume),
        "LifecycleConfigName": ("NotebookInstanceLifecycleConfigName", plan.lifecycle_name),
        "DefaultCodeRepository": ("DefaultCodeRepository", plan.code_repo_name),
        "PlatformIdentifier": ("PlatformIdentifier", plan.platform),
    }
    changes = {
        param: (found.get(key), value)
        for param, (key, value) in wanted.items()
        if key in found and found[key] != value
    }  # a setting SageMaker does not report is left alone
    if "VolumeSizeInGB" in changes and plan.volume < found["VolumeSizeInGB"]:
        raise UserError(
            f"--volume-size {plan.volume} is smaller than {plan.name}'s {found['VolumeSizeInGB']} GB: "
            f"SageMaker can only grow a volume. Use --volume-size {found['VolumeSizeInGB']} or more"
        )
    return changes


def settle(aws: Aws, plan: Plan, found: dict, options: argparse.Namespace) -> dict:
    """The instance once it is InService, Stopped or Failed; refuses one that is not ours or unusable."""
    status = found["NotebookInstanceStatus"]
    if not plan.owns_code_repo(found.get("DefaultCodeRepository")):
        raise UserError(
            f"the name {plan.name} is taken by a notebook instance ({status}) this command did not "
            f"create (its repository: {found.get('DefaultCodeRepository') or 'none'}). Pass --name "
            "to choose another name, or delete that instance in the SageMaker console"
        )
    if status in SETTLING and not aws.dry_run:
        found = wait_for(aws, plan.name, SETTLED, options)
        status = found["NotebookInstanceStatus"]
    if status not in SETTLED | SETTLING:
        raise UserError(
            f"notebook instance {plan.name} is {status}, a state this command cannot change: wait "
            "until it is InService or Stopped and run again, or pass --name to use another name"
        )
    if status == "Failed":
        print(
            f"note: {plan.name} is Failed ({found.get('FailureReason', 'no reason given')}); restarting it",
            file=aws.out,
        )
    return found


def apply_changes(aws: Aws, plan: Plan, status: str, changes: dict, options: argparse.Namespace) -> None:
    """UpdateNotebookInstance needs a stopped instance: stop, update, and drop a replaced code repository."""
    label = f"notebook instance {plan.name}"
    for param, (old, new) in changes.items():
        print(f"  {param}: {old} -> {new}", file=aws.out)
    if status == "InService":
        aws.write("sagemaker", "StopNotebookInstance", NotebookInstanceName=plan.name)
        aws.say(label, "stopped to apply the changes")
        wait_unless_dry_run(aws, plan.name, {"Stopped"}, options)
    aws.write(
        "sagemaker",
        "UpdateNotebookInstance",
        NotebookInstanceName=plan.name,
        **{param: new for param, (_, new) in changes.items()},
    )
    aws.say(label, "updated")
    wait_unless_dry_run(aws, plan.name, {"Stopped"}, options)
    old_repo = changes.get("DefaultCodeRepository", (None,))[0]
    if plan.owns_code_repo(old_repo):
        aws.write("sagemaker", "DeleteCodeRepository", CodeRepositoryName=old_repo)
        aws.say(f"code repository {old_repo}", "deleted (replaced)")
        print(
            f"note: a clone already in {plan.repo.clone_dir} is kept as it is; `git checkout {plan.branch}` "
            "there if it is on another branch",
            file=aws.out,
        )


def ensure_instance(aws: Aws, plan: Plan, script_changed: bool, options: argparse.Namespace) -> dict | None:
    """The instance's description once InService (None in a dry run or with --no-wait)."""
    label = f"notebook instance {plan.name}"
    found = aws.read("sagemaker", "DescribeNotebookInstance", NotebookInstanceName=plan.name)
    if found is None:
        aws.write(
            "sagemaker",
            "CreateNotebookInstance",
            NotebookInstanceName=plan.name,
            InstanceType=plan.instance_type,
            RoleArn=plan.role_arn,
            VolumeSizeInGB=plan.volume,
            LifecycleConfigName=plan.lifecycle_name,
            DefaultCodeRepository=plan.code_repo_name,
            PlatformIdentifier=plan.platform,
            Tags=plan.tags(),
        )
        aws.say(label, f"created ({plan.instance_type}, {plan.volume} GB)")
    else:
        found = settle(aws, plan, found, options)
        status, changes = found["NotebookInstanceStatus"], instance_changes(found, plan)
        if changes:
            apply_changes(aws, plan, status, changes, options)
        elif status == "InService":
            aws.say(label, "unchanged (InService)")
            if script_changed:
                print(
                    "note: the new on-start script runs at the next start: --stop, then run again",
                    file=aws.out,
                )
            return found
        aws.write("sagemaker", "StartNotebookInstance", NotebookInstanceName=plan.name)
        aws.say(label, "started")
    if aws.dry_run or options.no_wait:
        return None
    print(f"Waiting for {plan.name} to be InService (usually 3-6 minutes):", file=aws.out)
    return wait_for(aws, plan.name, {"InService"}, options)


def print_where(aws: Aws, plan: Plan, found: dict, warn: TextIO) -> None:
    """Where JupyterLab and the launcher notebook are, once the instance is InService."""
    console = {
        "aws-cn": "https://console.amazonaws.cn",
        "aws-us-gov": "https://console.amazonaws-us-gov.com",
    }.get(partition_of(plan.region), f"https://{plan.region}.console.aws.amazon.com")
    repo_dir = plan.repo.name
    lines = [
        f"\nNotebook instance {plan.name} is InService ({plan.region}).",
        f"  JupyterLab:        {console}/sagemaker/home?region={plan.region}"
        f"#/notebook-instances/openNotebook/{plan.name}?view=lab",
    ]
    try:
        signed = aws.write("sagemaker", "CreatePresignedNotebookInstanceUrl", NotebookInstanceName=plan.name)
        lines.append(f"  Sign-in link:      {signed['AuthorizedUrl']}  (use it within 5 minutes)")
    except UserError as error:
        print(f"warning: no sign-in link ({error})", file=warn)
    if found.get("Url"):
        lines.append(f"  Launcher notebook: https://{found['Url']}/lab/tree/{repo_dir}/job_launcher.ipynb")
    lines += [
        f"  Path on the instance: {NOTEBOOK_HOME}/{repo_dir}/job_launcher.ipynb",
        f"  Kernel: {KERNEL_NAME}, built from {LAUNCHER_REQUIREMENTS} a few minutes after a start that "
        f"changed it (log: {NOTEBOOK_HOME}/.{KERNEL_NAME}-kernel.log)",
    ]
    print("\n".join(lines), file=aws.out)


def bring_up(aws: Aws, plan: Plan, options: argparse.Namespace, stdin: TextIO, warn: TextIO) -> None:
    secret_arn = ensure_secret(aws, plan, stdin, warn)
    ensure_code_repository(aws, plan, secret_arn)
    script_changed = ensure_lifecycle_config(aws, plan)
    found = ensure_instance(aws, plan, script_changed, options)
    if aws.dry_run:
        print("[dry-run] nothing was changed: only Describe/Get/List requests were sent", file=aws.out)
    elif found is None:
        print(
            f"not waiting: run the same command again to wait for {plan.name} and see its links", file=aws.out
        )
    else:
        print_where(aws, plan, found, warn)
