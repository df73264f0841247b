"""What `make notebook` needs to know before it talks to AWS, each value checked where it comes from.

project.toml (slug, region), git (origin remote, current branch), the GitHub repository (its HTTPS URL,
whether it is private, the token), SageMaker's naming rules and the notebook's on-start script. Every
check runs before the first AWS request, so a bad value fails in a second with the field, the value
and what to do, instead of minutes later as a notebook instance in the Failed state.

Standard library only (plus botocore's service model for the instance types).
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from launcher.runtime import project_file, rules

GITHUB_API_URL = "https://api.github.com"
TOKEN_ENV_DEFAULT = "GITHUB_TOKEN"
ROLE_ENV = "SAGEMAKER_ROLE_ARN"
NOTEBOOK_HOME = "/home/ec2-user/SageMaker"  # SageMaker clones repositories here; it persists across restarts
KERNEL_NAME = "rl-launcher"
KERNEL_PYTHON = "3.11"
LAUNCHER_REQUIREMENTS = "requirements/launcher.txt"

# Names, the role ARN, the region and the instance type follow template_runtime/rules.py: the rules the
# template and the launcher check with. SageMaker names are at most 63 characters.
SAGEMAKER_NAME_MAX = 63
GIT_BRANCH = re.compile(r"[^ ~^:?*\[\\\x00-\x1f\x7f]+")  # GitConfig.Branch pattern, plus what git refuses
GITHUB_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
GITHUB_REPO = r"[A-Za-z0-9._-]+?"
HTTPS_REMOTE = re.compile(
    rf"https?://(?:(?P<userinfo>[^@/]*)@)?(?:www\.)?(?P<host>[^/:@]+)(?::\d+)?/"
    rf"(?P<owner>{GITHUB_OWNER})/(?P<repo>{GITHUB_REPO})(?:\.git)?/?",
    re.IGNORECASE,
)
SSH_REMOTE = re.compile(  # git@github.com:owner/repo.git and ssh://git@github.com[:22]/owner/repo.git
    rf"(?:(?:ssh|git\+ssh|git)://)?(?:[^@/]+@)?(?P<host>[^/:@]+)(?::\d+/|:|/)"
    rf"(?P<owner>{GITHUB_OWNER})/(?P<repo>{GITHUB_REPO})(?:\.git)?/?"
)
TOKEN_HELP = (
    "Create a token at https://github.com/settings/tokens/new with only the 'repo' scope (or a "
    "fine-grained token with read-only 'Contents' access to this repository). Then either run "
    "`read -rs {env} && export {env}` and paste it (hidden, stays out of your shell history), or run "
    "the command in a terminal and paste it at the hidden prompt. It goes only to AWS Secrets Manager: "
    "it is never written to disk, printed or logged."
)


class UserError(Exception):
    """Something the user can fix; the CLI prints the message (no traceback) and exits with 1."""


class Token:
    """A GitHub token that cannot end up in output by accident: str() and repr() are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one request that stores it."""
        return self._value

    def __repr__(self) -> str:
        return "Token('****')"

    __str__ = __repr__


@dataclass(frozen=True)
class GitHubRepo:
    owner: str
    name: str

    @property
    def https_url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}.git"

    @property
    def clone_dir(self) -> str:
        """Where SageMaker clones it on the notebook instance (named after the repository)."""
        return f"{NOTEBOOK_HOME}/{self.name}"


# ---------------------------------------------------------------- project.toml


def read_project(project_dir: Path) -> project_file.ProjectFile:
    """The rendered answers this command uses (slug, region, and [aws] role_arn if set), checked."""
    path = project_dir / project_file.FILE_NAME
    if not path.is_file():
        raise UserError(f"{path} not found: run this from the generated repository (or pass --project-dir)")
    try:
        return project_file.read_project_file(path, ("slug", "region", "role_arn"), optional=("role_arn",))
    except project_file.ProjectFileError as error:
        raise UserError(str(error)) from None


def checked(rule, name: str, value: object):
    """``value`` by its rule in template_runtime/rules.py; a refusal becomes a UserError naming ``name``."""
    try:
        return rule(value, name)
    except rules.RuleError as error:
        raise UserError(str(error)) from None


# ---------------------------------------------------------------- git


def git(project_dir: Path, *args: str) -> str | None:
    """Output of a read-only git command, or None when git reports a failure."""
    try:
        result = subprocess.run(
            ["git", "-C", str(project_dir), *args], capture_output=True, text=True, check=False, timeout=30
        )
    except FileNotFoundError:
        raise UserError(
            "git is not installed (or not on PATH): install it, or pass --repo-url and --branch"
        ) from None
    return result.stdout.strip() if result.returncode == 0 else None


def origin_url(project_dir: Path) -> str:
    if git(project_dir, "rev-parse", "--git-dir") is None:
        raise UserError(
            f"{project_dir} is not a git repository. Put it on GitHub first: git init -b main && "
            "git add -A && git commit -m 'Start' && git remote add origin "
            "https://github.com/<you>/<repo>.git && git push -u origin main (or pass --repo-url)"
        )
    url = git(project_dir, "remote", "get-url", "origin")
    if not url:
        raise UserError(
            "this repository has no 'origin' remote, so there is nothing for SageMaker to clone. Push it: "
            "git remote add origin https://github.com/<you>/<repo>.git && git push -u origin <branch> "
            "(or pass --repo-url https://github.com/<you>/<repo>.git)"
        )
    return url


def current_branch(project_dir: Path) -> str:
    branch = git(project_dir, "symbolic-ref", "--quiet", "--short", "HEAD")
    if not branch:
        raise UserError("HEAD is detached (no current branch): check out a branch, or pass --branch NAME")
    return branch


def unpushed_warning(project_dir: Path, branch: str) -> str | None:
    """Why SageMaker might clone something other than what is checked out here, if anything."""
    if git(project_dir, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}") is None:
        return (
            f"branch '{branch}' is not on origin yet: push it (git push -u origin {branch})"
            " or the clone fails"
        )
    ahead = git(project_dir, "rev-list", "--count", f"refs/remotes/origin/{branch}..{branch}")
    if ahead and ahead != "0":
        return f"{ahead} commit(s) on '{branch}' are not pushed: the notebook instance clones what GitHub has"
    return None


# ---------------------------------------------------------------- GitHub URL


def redact(url: str) -> str:
    """The URL without any user:password@ part, safe to print."""
    return re.sub(r"^([a-z+]+://)[^@/]*@", r"\1", url.strip(), flags=re.IGNORECASE)


def parse_github_url(url: str, source: str, warn: TextIO = sys.stderr) -> GitHubRepo:
    """owner/name of a github.com remote in HTTPS or SSH form; SageMaker itself only clones over HTTPS."""
    url = url.strip()
    match = HTTPS_REMOTE.fullmatch(url)
    if match and match["host"].lower() == "github.com":
        if match["userinfo"]:
            print(
                f"warning: the URL from {source} carries credentials; they were ignored and are not sent "
                "to AWS "
                f"(remove them: git remote set-url origin https://github.com/{match['owner']}/{match['repo']}.git)",
                file=warn,
            )
        return GitHubRepo(match["owner"], match["repo"])
    ssh = None if url.lower().startswith(("http://", "https://")) else SSH_REMOTE.fullmatch(url)
    if ssh and ssh["host"].lower() in ("github.com", "ssh.github.com"):
        return GitHubRepo(ssh["owner"], ssh["repo"])
    if ssh:
        raise UserError(
            f"{source} is an SSH URL for host '{ssh['host']}' ({redact(url)}), not github.com (an "
            "~/.ssh/config "
            f"alias?). SageMaker clones over HTTPS: pass --repo-url https://github.com/{ssh['owner']}/{ssh['repo']}.git"
        )
    raise UserError(
        f"{source} is not a GitHub repository URL: {redact(url)!r}. This command links GitHub repositories; "
        "pass --repo-url https://github.com/<owner>/<repo>.git"
    )


# ---------------------------------------------------------------- names and values


def instance_name_from_slug(slug: str) -> str:
    """unity_sagemaker_rl -> unity-sagemaker-rl: SageMaker names allow letters, digits and hyphens."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", slug).strip("-")[:SAGEMAKER_NAME_MAX].rstrip("-")
    return name or "rl-notebook"


def check_name(option: str, value: str) -> str:
    return checked(rules.sagemaker_name, option, value)


def derived_name(base: str, suffix: str) -> str:
    """base + suffix cut to SageMaker's 63 characters, still a valid name."""
    return base[: SAGEMAKER_NAME_MAX - len(suffix)].rstrip("-") + suffix


partition_of = rules.partition_of


def check_role_arn(value: str | None, region: str, source: str = "--role-arn") -> str:
    """The role ARN from ``source`` (an option, the environment or project.toml) in the region's partition."""
    if value is None or value == "":
        raise UserError(
            f"no execution role: pass --role-arn arn:{partition_of(region)}:iam::<account>:role/<name> "
            "(or set "
            f"{ROLE_ENV}, or role_arn in project.toml [aws]). Use a role SageMaker can assume with the "
            "AmazonSageMakerFullAccess policy, e.g. the one the console made: "
            "aws iam list-roles --query \"Roles[?contains(RoleName,'SageMaker')].Arn\""
        )
    return checked(lambda role, name: rules.role_arn(role, name, region), source, value)


@functools.cache
def sagemaker_model():
    """botocore's SageMaker service model: the instance types and platforms SageMaker accepts, offline."""
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def check_instance_type(value: str) -> str:
    """A notebook instance type: CreateNotebookInstance's InstanceType values in botocore's model."""
    return checked(rules.notebook_instance_type, "--instance-type", value)


def check_branch(value: str) -> str:
    if (
        not GIT_BRANCH.fullmatch(value)
        or ".." in value
        or value.startswith(("-", "/"))
        or value.endswith("/")
    ):
        raise UserError(f"--branch {value!r} is not a valid git branch name")
    return value


def check_volume(value: int) -> int:
    if not 5 <= value <= 16384:
        raise UserError(f"--volume-size {value} is out of range: SageMaker accepts 5 to 16384 GB")
    return value


# ---------------------------------------------------------------- the token and GitHub


def read_token(env_var: str, repo: GitHubRepo, stdin: TextIO) -> Token | None:
    """From the environment, else a hidden prompt when there is a terminal; never from a file or argv."""
    value = os.environ.get(env_var, "").strip()
    if not value and stdin.isatty():
        value = getpass.getpass(
            f"GitHub token for {repo.owner}/{repo.name} (input hidden, Enter to cancel): "
        )
        value = value.strip()
    return Token(value) if value else None


def missing_token_error(repo: GitHubRepo, env_var: str) -> UserError:
    return UserError(
        f"github.com/{repo.owner}/{repo.name} is private, so SageMaker needs a GitHub personal access token "
        f"to clone it, and ${env_var} is not set. " + TOKEN_HELP.format(env=env_var)
    )


def github_status(repo: GitHubRepo, token: Token | None, api_url: str) -> tuple[int | None, str]:
    """HTTP status of GET /repos/<owner>/<name> (None when GitHub could not be reached) and a reason."""
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/repos/{repo.owner}/{repo.name}",
        headers={"Accept": "application/vnd.github+json", "User-Agent": "make-notebook"},
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token.reveal()}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body = json.loads(response.read() or b"{}")
            return response.status, "private" if body.get("private") else "public"
    except urllib.error.HTTPError as error:
        return error.code, error.reason or ""
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, str(getattr(error, "reason", error))


def detect_visibility(repo: GitHubRepo, api_url: str) -> str:
    """'public' or 'private', asked of GitHub without credentials (a private repository answers 404)."""
    status, reason = github_status(repo, None, api_url)
    if status == 200:
        return reason
    if status == 404:
        return "private"
    raise UserError(
        f"could not tell whether github.com/{repo.owner}/{repo.name} is public (GitHub answered "
        f"{status or 'nothing'}: {reason}): pass --visibility public or --visibility private"
    )


def check_token_with_github(repo: GitHubRepo, token: Token, api_url: str, warn: TextIO) -> None:
    """Catch a wrong token now rather than as a Failed notebook instance five minutes from now."""
    status, reason = github_status(repo, token, api_url)
    if status == 200:
        return
    if status == 401:
        raise UserError(
            "GitHub rejected the token (expired, revoked or mistyped). "
            + TOKEN_HELP.format(env="GITHUB_TOKEN")
        )
    if status in (403, 404):
        raise UserError(
            f"the token cannot read github.com/{repo.owner}/{repo.name} (GitHub answered {status}): it "
            "needs the 'repo' scope, or read access to this repository's Contents if it is fine-grained; "
            "check the owner "
            "and name too"
        )
    print(
        f"warning: could not check the token with GitHub ({status or 'no answer'}: {reason}); going on",
        file=warn,
    )


def secret_string(username: str, token: Token) -> str:
    """The JSON SageMaker requires in a code repository's secret."""
    return json.dumps({"username": username, "password": token.reveal()})


# ---------------------------------------------------------------- the on-start script


def kernel_setup_script(clone_dir: str, home: str = NOTEBOOK_HOME) -> str:
    """Builds the launcher kernel; runs as ec2-user, in the background, on every start.

    The environment lives on the notebook's volume (only /home/ec2-user/SageMaker survives a restart)
    and is reinstalled only when requirements/launcher.txt changes; the kernel registration lives in
    ~/.local, which does not survive, so it is redone every start.
    """
    return f"""#!/bin/bash
# Builds the "{KERNEL_NAME}" Jupyter kernel from {LAUNCHER_REQUIREMENTS} of the cloned repository.
set -euo pipefail
unset SUDO_UID  # conda would otherwise chown its files to root
REQUIREMENTS="{clone_dir}/{LAUNCHER_REQUIREMENTS}"
ENV_DIR="{home}/.envs/{KERNEL_NAME}"
echo "$(date -u +%FT%TZ) building the {KERNEL_NAME} kernel"
for _ in $(seq 120); do  # SageMaker clones the repository around the time this starts
  [ -f "$REQUIREMENTS" ] && break
  sleep 5
done
if [ ! -f "$REQUIREMENTS" ]; then
  echo "no $REQUIREMENTS after 10 minutes: push it, then stop and start the instance"; exit 1
fi
CONDA="${{CONDA_EXE:-$HOME/anaconda3/bin/conda}}"
[ -x "$CONDA" ] || CONDA="$(command -v conda)" || {{ echo "conda not found: no kernel"; exit 1; }}
if [ ! -x "$ENV_DIR/bin/python" ]; then
  "$CONDA" create --yes --quiet --prefix "$ENV_DIR" --override-channels -c conda-forge \\
    "python={KERNEL_PYTHON}"
fi
# launcher.txt and the files it may include
WANTED="$(cat "$(dirname "$REQUIREMENTS")"/*.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$ENV_DIR/.requirements.sha256" 2>/dev/null || true)" != "$WANTED" ]; then
  (cd "$(dirname "$REQUIREMENTS")" && \\
    "$ENV_DIR/bin/python" -m pip install --quiet -r "$REQUIREMENTS" ipykernel)
  echo "$WANTED" > "$ENV_DIR/.requirements.sha256"
fi
"$ENV_DIR/bin/python" -m ipykernel install --user --name "{KERNEL_NAME}" \\
  --display-name "Python {KERNEL_PYTHON} ({KERNEL_NAME}: {LAUNCHER_REQUIREMENTS})"
echo "$(date -u +%FT%TZ) kernel {KERNEL_NAME} ready"
"""


def on_start_script(clone_dir: str) -> str:
    """Root's on-start script: hands the kernel build to ec2-user in the background.

    SageMaker stops an on-start script that runs longer than 5 minutes (and marks the instance
    Failed); creating a conda environment and installing the launcher requirements can take longer.
    """
    log = f"{NOTEBOOK_HOME}/.{KERNEL_NAME}-kernel.log"
    return f"""#!/bin/bash
# Written by launcher.notebook_instance (make notebook). Log: {log}
set -euo pipefail
SETUP=/tmp/{KERNEL_NAME}-kernel.sh
cat > "$SETUP" <<'KERNEL_SETUP'
{kernel_setup_script(clone_dir)}KERNEL_SETUP
chmod 755 "$SETUP"
nohup sudo -u ec2-user -i bash -c "$SETUP >> {log} 2>&1" < /dev/null > /dev/null 2>&1 &
"""
