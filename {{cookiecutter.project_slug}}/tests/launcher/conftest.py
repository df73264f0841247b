"""Fixtures for the launcher's tests (run by a launcher venv: requirements/launcher-dev.txt).

AWS is tests/aws_fixtures.py's loopback moto server with fake credentials. Python children of a
test (launch.py, papermill and its kernel, the container-side driver, the trainer) load
offline/sitecustomize.py, which refuses and logs any non-loopback connection or name lookup; the
``offline`` fixture fails the test if that log is not empty. The container side (the trainer, the
simulated Unity player, sagemaker-training's ``train``) runs with the training environment's
Python: --container-python or $LAUNCHER_CONTAINER_PYTHON (requirements/dev.txt + image.txt).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from aws_fixtures import *  # noqa: F401,F403  (moto_endpoint, aws, no_internet)

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFLINE_DIR = Path(__file__).resolve().parent / "offline"
sys.path.insert(0, str(OFFLINE_DIR))
import offline_aws  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/unity-rl:test"
BUILD_KEY = "builds/3DBall.zip"
SIM_NAME = "3DBall"


class CurrentStdout(logging.StreamHandler):
    """A handler that writes to whatever sys.stdout is at the time of the record (capsys swaps it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _sdk_config_logger_follows_stdout() -> None:
    """SDK v2 gives its "sagemaker.config" logger a StreamHandler on the sys.stdout of the moment it
    first logs (config_utils.get_sagemaker_config_logger), unless the logger has one: inside a test
    that is capsys's stream, closed after that test, and every later record prints a "--- Logging
    error ---" traceback. Give it the handler first, with the SDK's own format and propagation."""
    logger = logging.getLogger("sagemaker.config")
    if not logger.handlers:
        handler = CurrentStdout()
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)-4s - %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


_sdk_config_logger_follows_stdout()


def pytest_configure(config):
    # SDK v3 3.27's own modules still import its deprecated configs shim.
    config.addinivalue_line(
        "filterwarnings", "ignore:sagemaker.train.configs has been moved:DeprecationWarning"
    )


def pytest_addoption(parser):
    parser.addoption(
        "--container-python",
        default=os.environ.get("LAUNCHER_CONTAINER_PYTHON"),
        help="the training environment's python (requirements/dev.txt + image.txt) for container-side runs",
    )


# ---------------------------------------------------------------------------------------------- AWS


@pytest.fixture(scope="session")
def role_arn(moto_endpoint) -> str:
    """An IAM role in moto that SageMaker may assume (SDK v3 reads its trust policy)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
            }
        ],
    }
    iam = boto3.client("iam")
    return iam.create_role(
        RoleName=f"SageMakerRole-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]


@pytest.fixture
def refused_lookups(monkeypatch) -> list[str]:
    """Names this process tries to resolve off this machine: each is refused and recorded here."""
    attempts, real = [], socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if not offline_aws.is_local(host):
            attempts.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {host} is not on this machine")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture
def aws_offline(aws, refused_lookups):
    """``aws``, and resolving any name off this machine fails the test (SDKs resolve before connecting)."""
    yield aws
    if refused_lookups:
        pytest.fail(f"the test tried to resolve {refused_lookups}")


@dataclass
class Project:
    """A generated repository's settings pointing at a fresh moto bucket."""

    file: Path
    bucket: str
    role: str
    region: str = REGION
    image_uri: str = IMAGE_URI
    build_key: str = BUILD_KEY
    entry_point: str = "random_trainer.py"

    def s3(self):
        return boto3.client("s3", region_name=self.region)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def make_project(folder: Path, role: str, create_bucket: bool = True, **answers) -> Project:
    bucket = f"launcher-{uuid.uuid4().hex[:12]}"
    if create_bucket:
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
    project = Project(file=folder / "project.toml", bucket=bucket, role=role, **answers)
    project.file.write_text(
        f"""[project]
name = "Launcher test"
slug = "launcher_test"

[aws]
region = "{project.region}"
s3_bucket = "{bucket}"
ecr_image_uri = "{project.image_uri}"
instance_type = "ml.c5.xlarge"

[training]
algorithm = "random"
entry_point = "{project.entry_point}"

[unity_build]
zip_key = "{project.build_key}"
folder = "unity_build"
executable = "{SIM_NAME}"
""",
        encoding="utf-8",
    )
    return project


@pytest.fixture
def project(aws_offline, tmp_path, role_arn) -> Project:
    return make_project(tmp_path, role_arn)


# ---------------------------------------------------------------------------------------------- children


@dataclass
class Offline:
    """The environment for a test's child processes, and what they did."""

    env: dict
    guard_log: Path
    capture_file: Path

    def requests(self) -> list[dict]:
        """The CreateTrainingJob requests botocore sent from the children, in order."""
        if not self.capture_file.is_file():
            return []
        return [json.loads(line) for line in self.capture_file.read_text().splitlines() if line.strip()]

    def tuning_requests(self) -> list[dict]:
        """The CreateHyperParameterTuningJob requests botocore sent from the children, in order."""
        file = self.capture_file.with_name(self.capture_file.name + ".tuning")
        if not file.is_file():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def attempts(self) -> list[str]:
        return self.guard_log.read_text().splitlines() if self.guard_log.is_file() else []


def offline_environment(folder: Path) -> Offline:
    folder.mkdir(parents=True, exist_ok=True)
    guard_log, capture = folder / "network-attempts.log", folder / "create-training-job.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(OFFLINE_DIR),
        "LAUNCHER_TEST_GUARD_LOG": str(guard_log),
        "LAUNCHER_TEST_CAPTURE": str(capture),
        "TQDM_DISABLE": "1",
    }
    env.pop("SAGEMAKER_ROLE_ARN", None)
    return Offline(env, guard_log, capture)


@pytest.fixture
def offline(aws_offline, tmp_path) -> Offline:
    """Child processes stay on this machine: the test fails if any of them tried otherwise."""
    children = offline_environment(tmp_path / "children")
    yield children
    if children.attempts():
        pytest.fail(f"a child process tried to reach the network: {children.attempts()}")


def run_launch(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python launch.py ARGS`` in the repository, with this venv's python."""
    return subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------------------ container side


@pytest.fixture(scope="session")
def container_python(request) -> Iterator[Path]:
    value = request.config.getoption("--container-python")
    if not value:
        pytest.fail(
            "container-side tests need the training environment's python: pass --container-python "
            "PATH or set LAUNCHER_CONTAINER_PYTHON (a venv with requirements/dev.txt and image.txt)"
        )
    python = Path(value).absolute()
    if not (python.is_file() and (python.parent / "train").is_file()):
        pytest.fail(
            f"{python} has no sagemaker-training `train` beside it: "
            "pip install -r requirements/image.txt into it"
        )
    with pytest.MonkeyPatch.context() as patch:  # the simulated Unity player runs on it too
        patch.setenv("UNITY_SIM_PYTHON", str(python))
        yield python


@pytest.fixture(scope="session")
def sim_build_zip(container_python, tmp_path_factory) -> Path:
    """The simulated Unity build, packaged by the training environment (unity_sim needs its packages)."""
    out = tmp_path_factory.mktemp("sim-build")
    subprocess.run(
        [str(container_python), "-m", "unity_sim.package_build", "--name", SIM_NAME, "--out", str(out)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out / f"{SIM_NAME}.zip"


@pytest.fixture(scope="session")
def sdk_generation() -> str:
    from launcher.api import installed_sdk

    return installed_sdk()
