"""AWS for tests: a loopback moto S3 server with fake credentials, and a guard against real network use.

* ``moto_endpoint`` (session): starts ``moto_server -H 127.0.0.1 -p <free port>`` from this venv's
  bin, waits until it answers, points AWS_ENDPOINT_URL at it with fake credentials and a region,
  and always stops it at the end of the session.
* ``aws``: what a test asks for; the endpoint, plus ``no_internet``.
* ``s3_bucket``: a fresh, empty bucket on that server for one test (its name).
* ``no_internet``: fails the test if anything in this process connects to a non-loopback address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

__all__ = ["aws", "moto_endpoint", "no_internet", "s3_bucket"]

STARTUP_SECONDS = 30.0
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_answering(url: str, process: subprocess.Popen, deadline: float) -> None:
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode} before answering on {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto_server did not answer on {url} within {STARTUP_SECONDS:.0f} s"
                ) from None
            time.sleep(0.05)  # polling with a deadline, not synchronising by sleep


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> str:
    """URL of a moto server on 127.0.0.1; the AWS environment variables point at it for the session."""
    executable = Path(sys.executable).parent / "moto_server"
    if not executable.exists():
        pytest.fail(f"{executable} not found: install requirements/dev.txt (moto[server]) into this venv")
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto_server.log").open("wb")
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        try:
            _wait_until_answering(f"{endpoint}/moto-api/", process, time.monotonic() + STARTUP_SECONDS)
            for name, value in {**FAKE_AWS_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}.items():
                patch.setenv(name, value)
            patch.delenv("AWS_PROFILE", raising=False)
            yield endpoint
        finally:
            _stop(process)
            log.close()


class NetworkGuard:
    """Patches socket connects so that only loopback (and Unix) addresses can be reached."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.attempts: list[str] = []
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

        def connect(sock, address):
            self.check(sock, address)
            return real_connect(sock, address)

        def connect_ex(sock, address):
            self.check(sock, address)
            return real_connect_ex(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)

    def check(self, sock: socket.socket, address) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = str(address[0])
        try:
            loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            self.attempts.append(f"{host}:{address[1]}")
            raise ConnectionRefusedError(
                f"test tried to reach {host}:{address[1]}: tests must stay on this machine"
            )


@pytest.fixture
def no_internet(monkeypatch):
    """Refuse, and fail the test on, any connection from this process to a non-loopback address."""
    guard = NetworkGuard(monkeypatch)
    yield guard
    if guard.attempts:
        pytest.fail(f"the test tried to reach the network: {guard.attempts}")


@pytest.fixture
def aws(moto_endpoint, no_internet) -> str:
    """The moto endpoint, for a test that must not leave this machine."""
    return moto_endpoint


@pytest.fixture
def s3_bucket(aws) -> str:
    """A new empty bucket on the moto server, unique to this test."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
