"""--dry-run sends nothing; the SDK's telemetry stays off unless the user opts in."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from conftest import IMAGE_URI, make_project, offline_environment, run_launch

from launcher import api


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: nothing listens there


@pytest.fixture
def dead_endpoint(moto_endpoint, tmp_path, role_arn, monkeypatch):
    """A project whose AWS endpoint is a closed loopback port: any request really sent would fail."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    return make_project(tmp_path, role_arn, create_bucket=False)


def dry_run_here(project, **values) -> dict:
    """api.dry_run in this process, then wait for SDK v3's background telemetry thread, if it started one."""
    request = api.dry_run(api.load_settings(project_file=str(project.file), role=project.role, **values))
    for thread in threading.enumerate():
        if thread.name == "sagemaker-telemetry":
            thread.join(timeout=30)
    return request


def test_dry_run_prints_the_request_without_sending_anything(dead_endpoint, tmp_path):
    children = offline_environment(tmp_path / "children")
    result = run_launch(
        ["--project-file", str(dead_endpoint.file), "--set", f"role={dead_endpoint.role}", "--dry-run"],
        children.env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI
    assert (children.requests(), children.attempts()) == ([], [])


def test_sdk_sends_no_telemetry_by_default(dead_endpoint, refused_lookups):
    dry_run_here(dead_endpoint)
    assert refused_lookups == []


def test_sdk_telemetry_is_caught_by_the_guard_when_opted_in(dead_endpoint, refused_lookups):
    dry_run_here(dead_endpoint, telemetry=True)
    assert any(host.endswith("amazonaws.com") for host in refused_lookups), refused_lookups
