"""Fixtures for the `make notebook` tests (launcher/notebook_*.py).

* ``project``: a git repository that looks pushed to github.com/octo/<name> (origin remote and a
  remote-tracking branch), with project.toml and requirements/launcher.txt.
* ``github``: a loopback stand-in for api.github.com's GET /repos/<owner>/<name>.
* ``notebook``: the AWS side. moto_server (from aws_fixtures) answers what it implements: Secrets
  Manager, notebook instances, lifecycle configurations. The SageMaker calls it does not implement
  (code repositories, UpdateNotebookInstance, UpdateNotebookInstanceLifecycleConfig, the presigned URL)
  go to a second client driven by botocore's Stubber. Every request on every client is checked
  against botocore's SageMaker / Secrets Manager model (types, required members, lengths, enums,
  patterns), so a malformed request fails the test even where moto or the Stubber would accept it.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import ANY, Stubber
from botocore.validate import ParamValidator

from launcher import notebook_instance
from launcher.notebook_aws import Clients
from launcher.notebook_inputs import GitHubRepo
from launcher.notebook_instance import Plan

TOOLS = Path(__file__).resolve().parents[2] / "launcher"  # where the notebook tool's modules live

__all__ = [
    "github",
    "notebook",
    "private_repo",
    "project",
    "shared_clients",
    "FakeTerminal",
    "NoTerminal",
    "ROLE",
    "REGION",
    "OWNER",
]

REGION = "us-east-1"  # the region aws_fixtures gives the moto server
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
OWNER = "octo"
STUBBED = {  # SageMaker operations moto 5.2.5 does not implement
    "describe_code_repository",
    "create_code_repository",
    "update_code_repository",
    "delete_code_repository",
    "list_code_repositories",
    "update_notebook_instance",
    "update_notebook_instance_lifecycle_config",
    "create_presigned_notebook_instance_url",
}
READ_ONLY = re.compile(r"(Describe|Get|List)\w+|CreatePresignedNotebookInstanceUrl")


class NoTerminal(io.StringIO):
    """stdin of a CI job: nothing to read, no terminal."""

    def isatty(self) -> bool:
        return False


class FakeTerminal(io.StringIO):
    """stdin of a person at a terminal, who will type `text`."""

    def isatty(self) -> bool:
        return True


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@dataclass
class Project:
    path: Path
    slug: str
    repo_name: str

    @property
    def instance_name(self) -> str:
        return self.slug.replace("_", "-")

    def plan(self, branch: str = "main", repo_name: str | None = None) -> Plan:
        return Plan(
            slug=self.slug,
            region=REGION,
            name=self.instance_name,
            repo=GitHubRepo(OWNER, repo_name or self.repo_name),
            branch=branch,
        )


@pytest.fixture
def project(tmp_path) -> Project:
    """A repository as a user has it after pushing: unique names, so tests share moto without clashing."""
    slug = f"rl_{uuid.uuid4().hex[:10]}"
    path = tmp_path / "repo"
    (path / "requirements").mkdir(parents=True)
    (path / "project.toml").write_text(f'[project]\nslug = "{slug}"\n\n[aws]\nregion = "{REGION}"\n')
    (path / "requirements" / "launcher.txt").write_text("sagemaker==3.27.0\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "start")
    repo_name = slug.replace("_", "-")
    git(path, "remote", "add", "origin", f"https://github.com/{OWNER}/{repo_name}.git")
    git(path, "update-ref", "refs/remotes/origin/main", "HEAD")  # as `git push -u origin main` leaves it
    return Project(path, slug, repo_name)


# ---------------------------------------------------------------- GitHub


@dataclass
class FakeGitHub:
    url: str = ""
    repos: dict[str, tuple[bool, str | None]] = field(default_factory=dict)  # owner/name -> (private, token)
    requests: list[tuple[str, bool]] = field(default_factory=list)  # (path, sent a token)

    def add(self, name: str, *, private: bool, token: str | None = None, owner: str = OWNER) -> None:
        self.repos[f"{owner}/{name}"] = (private, token)


@pytest.fixture
def github(no_internet):
    """GET /repos/<owner>/<name> as api.github.com answers it: 404 for a private repository without access."""
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            authorization = self.headers.get("Authorization")
            fake.requests.append((self.path, authorization is not None))
            entry = fake.repos.get(self.path.removeprefix("/repos/"))
            if entry and authorization and authorization != f"Bearer {entry[1]}":
                status, body = 401, {"message": "Bad credentials"}
            elif entry and (not entry[0] or authorization):
                status, body = 200, {"private": entry[0]}
            else:
                status, body = 404, {"message": "Not Found"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------- AWS


def check_against_model(params: dict, model, **_) -> None:
    """botocore's own validation plus the constraints it leaves to the service (max, enum, pattern)."""
    report = ParamValidator().validate(params, model.input_shape)
    if report.has_errors():
        raise AssertionError(f"{model.name}: {report.generate_report()}")
    problems: list[str] = []
    _walk(model.input_shape, params, model.name, problems)
    if problems:
        raise AssertionError(f"{model.name} breaks the service model: " + "; ".join(problems))


def _walk(shape, value, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                _walk(member, value[name], f"{path}.{name}", problems)
    elif shape.type_name == "list":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path} has {len(value)} items, max {meta['max']}")
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{index}]", problems)
    elif shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path} is {len(value)} characters, max {meta['max']}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}={value!r} is not one of the model's values")
        if "pattern" in meta:
            try:
                pattern = re.compile(meta["pattern"])
            except re.error:  # \p{L}-style classes Python's re does not know
                return
            if not pattern.fullmatch(value):
                problems.append(f"{path}={value!r} does not match {meta['pattern']!r}")
    elif shape.type_name in ("integer", "long") and "max" in meta and value > meta["max"]:
        problems.append(f"{path}={value} is above {meta['max']}")


class SageMakerRouter:
    """One SageMaker client to the code under test: moto where it can answer, the Stubber elsewhere."""

    def __init__(self, moto_client, stubbed_client):
        self._moto, self._stubbed = moto_client, stubbed_client

    def __getattr__(self, name: str):
        return getattr(self._stubbed if name in STUBBED else self._moto, name)


@dataclass
class Notebook:
    project: Project
    github: FakeGitHub
    moto: object  # SageMaker client on moto, for arranging and inspecting state
    secrets: object
    stub: Stubber
    calls: list[tuple[str, dict]] = field(
        default_factory=list
    )  # (operation, params) of each request in run()
    recording: bool = False
    hooks: list[tuple[object, str, object]] = field(default_factory=list)

    @property
    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    @property
    def writes(self) -> list[str]:
        return [operation for operation in self.operations if not READ_ONLY.fullmatch(operation)]

    def params(self, operation: str) -> dict:
        return next(params for name, params in self.calls if name == operation)

    def run(self, *args: str, stdin=None) -> int:
        """The CLI's main(), with the routed clients and the repository's defaults."""
        self.calls.clear()
        argv = [
            "--project-dir",
            str(self.project.path),
            "--role-arn",
            ROLE,
            "--poll-seconds",
            "0",
            "--github-api-url",
            self.github.url,
            *args,
        ]
        clients = Clients(SageMakerRouter(self.moto, self.stub.client), self.secrets)
        self.recording = True
        try:
            return notebook_instance.main(argv, clients=clients, stdin=stdin or NoTerminal())
        finally:
            self.recording = False

    def hook(self, client, event: str, handler) -> None:
        """An event handler for this test only (the clients are shared by the whole session)."""
        client.meta.events.register_first(event, handler)
        self.hooks.append((client, event, handler))

    def after_describe(self, change) -> None:
        """Let `change(response)` edit what DescribeNotebookInstance returns (states moto never reports)."""

        def edit(parsed, model, **_):
            if model.name == "DescribeNotebookInstance" and "NotebookInstanceStatus" in parsed:
                change(parsed)

        self.hook(self.moto, "after-call", edit)

    def deny(self, client, operation: str) -> None:
        """Make `operation` on a moto-backed client fail as AWS does without the IAM permission."""

        def refuse(model, **_):
            if model.name == operation:
                message = (
                    f"User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
                    f"{client.meta.service_model.signing_name}:{operation} on resource: *"
                )
                return AWSResponse(None, 400, {}, None), {
                    "Error": {"Code": "AccessDeniedException", "Message": message},
                    "ResponseMetadata": {},
                }
            return None

        self.hook(client, "before-call", refuse)

    # -- what the Stubber answers, in the order the code asks

    def code_repository_missing(self, name: str) -> None:
        self.stub.add_client_error(
            "describe_code_repository",
            "ValidationException",
            f"Cannot find CodeRepository with name {name}",
            400,
            expected_params={"CodeRepositoryName": name},
        )

    def expect_new_code_repository(self):
        """The plan's code repository does not exist yet and is created (any request); returns the plan."""
        plan = self.project.plan()
        self.code_repository_missing(plan.code_repo_name)
        arn = self.repo_arn(plan.code_repo_name)
        self.stub.add_response("create_code_repository", {"CodeRepositoryArn": arn})
        return plan

    def code_repository_created(self, name: str, git_config: dict) -> None:
        self.stub.add_response(
            "create_code_repository",
            {"CodeRepositoryArn": self.repo_arn(name)},
            {"CodeRepositoryName": name, "GitConfig": git_config, "Tags": ANY},
        )

    def code_repository_present(self, name: str, git_config: dict) -> None:
        now = datetime.now(UTC)
        self.stub.add_response(
            "describe_code_repository",
            {
                "CodeRepositoryName": name,
                "CodeRepositoryArn": self.repo_arn(name),
                "CreationTime": now,
                "LastModifiedTime": now,
                "GitConfig": git_config,
            },
            {"CodeRepositoryName": name},
        )

    def sign_in_url(self, name: str) -> None:
        self.stub.add_response(
            "create_presigned_notebook_instance_url",
            {"AuthorizedUrl": f"https://{name}.notebook.{REGION}.sagemaker.aws?authToken=presigned"},
            {"NotebookInstanceName": name},
        )

    @staticmethod
    def repo_arn(name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:123456789012:code-repository/{name}"

    def git_config(self, *, secret: bool, branch: str = "main") -> dict:
        config = {
            "RepositoryUrl": f"https://github.com/{OWNER}/{self.project.repo_name}.git",
            "Branch": branch,
        }
        if secret:
            config["SecretArn"] = self.secrets.describe_secret(SecretId=self.project.plan().secret_name)[
                "ARN"
            ]
        return config


@dataclass
class SharedClients:
    """Creating a SageMaker client takes most of a second, so the session shares three."""

    moto: object
    secrets: object
    stubbed: object
    current: Notebook | None = None


@pytest.fixture(scope="session")
def shared_clients(moto_endpoint) -> SharedClients:
    session = boto3.Session(region_name=REGION)
    shared = SharedClients(
        session.client("sagemaker"), session.client("secretsmanager"), session.client("sagemaker")
    )

    def record(params, model, **_):
        if shared.current is not None and shared.current.recording:
            shared.current.calls.append((model.name, params))

    for client in (shared.moto, shared.secrets, shared.stubbed):
        client.meta.events.register_first("before-parameter-build", record)
        client.meta.events.register_last("before-parameter-build", check_against_model)
    return shared


@pytest.fixture
def notebook(aws, shared_clients, project, github, tmp_path, monkeypatch) -> Notebook:
    """`make notebook` against moto + Stubber, for the repository of the `project` fixture."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # anything written to ~ would land here, where tests look
    for variable in ("GITHUB_TOKEN", "SAGEMAKER_ROLE_ARN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    stub = Stubber(shared_clients.stubbed)
    harness = Notebook(project, github, shared_clients.moto, shared_clients.secrets, stub)
    shared_clients.current = harness
    stub.activate()
    try:
        yield harness
    finally:
        stub.deactivate()
        shared_clients.current = None
        for client, event, handler in harness.hooks:
            client.meta.events.unregister(event, handler)


# ---------------------------------------------------------------- shared steps

TOKEN = "ghp_" + "Kq7ZtR2w9XbVn4LmPc8sJd1FhGy6Ae3Ui0Oo"  # looks like a classic token; unique in any output
NEW_TOKEN = "ghp_" + "Nn5Bv2Cx8Zl4Kj7Hg1Fd3Sa6Qw9Er0Ty2Ui7Pp"


@pytest.fixture
def private_repo(notebook, monkeypatch):
    """github.com/octo/<repo> is private, TOKEN can read it, and TOKEN is in $GITHUB_TOKEN."""
    notebook.github.add(notebook.project.repo_name, private=True, token=TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return notebook


def first_run(notebook, capsys) -> None:
    """Bring a private repository's notebook up from nothing (the state most tests start from)."""
    plan = notebook.expect_new_code_repository()
    notebook.sign_in_url(plan.name)
    assert notebook.run() == 0
    capsys.readouterr()


def expect_unchanged_repository(notebook) -> None:
    plan = notebook.project.plan()
    notebook.code_repository_present(plan.code_repo_name, notebook.git_config(secret=True))


def describe(notebook) -> dict:
    return notebook.moto.describe_notebook_instance(NotebookInstanceName=notebook.project.instance_name)
