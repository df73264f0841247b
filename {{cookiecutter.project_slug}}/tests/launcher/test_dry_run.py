"""--dry-run sends nothing; the SDK's telemetry stays off unless the user opts in."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from conftest import IMAGE_URI, make_project, offline_environment, run_launch
from test_settings import HOSTILE_CASES, HOSTILE_SETTINGS

from launcher import api, cli
from template_runtime import rules


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


def dry_run_args(project, name: str, value: str) -> list[str]:
    # the hostile value comes last, so it wins over the project's role
    return [
        "--project-file",
        str(project.file),
        "--set",
        f"role={project.role}",
        "--set",
        f"{name}={value}",
        "--dry-run",
    ]


@pytest.mark.parametrize(("name", "value"), HOSTILE_CASES, ids=[f"{n}={v[:40]!r}" for n, v in HOSTILE_CASES])
def test_dry_run_refuses_every_setting_the_template_would_refuse(dead_endpoint, capsys, name, value):
    """launch.py's main, in this process: exit 2 and one line naming the setting, before any request."""
    code = cli.main(dry_run_args(dead_endpoint, name, value))

    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(f"error: {name}={rules.shown(value)}: "), err


FIRST_OF_EACH = [(name, values[0]) for name, values in HOSTILE_SETTINGS.items()] + [
    ("instance_type", "ml.fake.huge"),
    ("s3_bucket", "abc--ol-s3"),
    ("s3_bucket", "192.168.1.1"),
]


@pytest.mark.parametrize(("name", "value"), FIRST_OF_EACH, ids=[f"{n}={v[:40]!r}" for n, v in FIRST_OF_EACH])
def test_launch_py_dry_run_refuses_the_setting_and_sends_nothing(dead_endpoint, tmp_path, name, value):
    children = offline_environment(tmp_path / "children")

    result = run_launch(dry_run_args(dead_endpoint, name, value), children.env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {name}={rules.shown(value)}: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert (children.requests(), children.attempts()) == ([], [])
