"""--dry-run sends nothing and shows everything the job would run; the SDK's telemetry stays off unless
the user opts in."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from conftest import BUILD_KEY, IMAGE_URI, make_project, offline_environment, run_launch
from test_settings import HOSTILE_CASES, HOSTILE_SETTINGS

from launcher import api, cli
from launcher.entry_points import load_entry_point
from launcher.job import metric_definitions
from launcher.project import SOURCE_DIR
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
    assert json.loads(result.stdout)["request"]["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI
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


# ------------------------------------------------------------------ what the dry run shows, field by field

PLAN_SETTINGS = [
    "--set",
    "episodes=3",
    "--set",
    "seed=7",
    "--set",
    "no_graphics=false",
    "--set",
    "base_job_name=plan",
]


@pytest.fixture(scope="module")
def plan(moto_endpoint, role_arn, tmp_path_factory) -> tuple[dict, object]:
    """One `launch.py --dry-run` of the random example, against a closed endpoint (nothing may be sent)."""
    folder = tmp_path_factory.mktemp("plan")
    project = make_project(folder, role_arn, create_bucket=False)
    children = offline_environment(folder / "children")
    children.env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{closed_port()}"
    result = run_launch(
        ["--project-file", str(project.file), "--set", f"role={role_arn}", *PLAN_SETTINGS, "--dry-run"],
        children.env,
    )
    assert result.returncode == 0, result.stderr
    assert (children.requests(), children.attempts()) == ([], [])
    return json.loads(result.stdout), project


def test_dry_run_lists_its_fields_in_reading_order(plan):
    assert list(plan[0]) == [
        "entry_point",
        "hyperparameters",
        "source_files",
        "source_bytes",
        "source_upload",
        "build",
        "cluster",
        "metric_definitions",
        "request",
    ]


def test_dry_run_names_the_entry_point(plan):
    assert plan[0]["entry_point"] == "src/random_trainer.py"


def test_dry_run_shows_the_hyperparameters_as_the_trainer_receives_them(plan):
    assert plan[0]["hyperparameters"] == {
        "episodes": 3,
        "seed": 7,
        "no_graphics": False,
        "zip_env_name": "builds/3DBall.zip",
        "env_file": "3DBall",
        "build_folder": "unity_build",
    }
    assert [type(plan[0]["hyperparameters"][k]) for k in ("episodes", "no_graphics", "env_file")] == [
        int,
        bool,
        str,
    ]


def test_dry_run_hyperparameters_are_the_requests_decoded(plan):
    sent = {
        k: json.loads(v)
        for k, v in plan[0]["request"]["HyperParameters"].items()
        if not k.startswith("sagemaker_")
    }
    assert sent == plan[0]["hyperparameters"]


def test_dry_run_lists_every_uploaded_source_file_with_its_size(plan):
    wanted = [
        {"path": p.relative_to(SOURCE_DIR).as_posix(), "bytes": p.stat().st_size}
        for p in sorted(SOURCE_DIR.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    assert plan[0]["source_files"] == wanted
    assert plan[0]["source_bytes"] == sum(f["bytes"] for f in wanted)
    assert {"random_trainer.py", "trainer.py", "template_runtime/config.py"} <= {f["path"] for f in wanted}


def test_dry_run_says_where_the_code_goes(plan, sdk_generation):
    request, project = plan[0]["request"], plan[1]
    prefix = f"s3://{project.bucket}/plan/{request['TrainingJobName']}"
    wanted = f"{prefix}/input/code" if sdk_generation == "v3" else f"{prefix}/source/sourcedir.tar.gz"
    assert plan[0]["source_upload"].rstrip("/") == wanted


def test_dry_run_shows_the_build_channel_and_key(plan):
    assert plan[0]["build"] == {
        "input": "channel",
        "channel": "env",
        "uri": f"s3://{plan[1].bucket}/{BUILD_KEY}",
        "in_the_job": "/opt/ml/input/data/env/",
    }


def test_dry_run_shows_the_metric_definitions(plan):
    entry = load_entry_point("random_trainer.py", SOURCE_DIR)
    wanted = [{"Name": n, "Regex": r} for n, r in metric_definitions(entry.metric_names)]
    assert plan[0]["metric_definitions"] == wanted
    assert plan[0]["request"]["AlgorithmSpecification"]["MetricDefinitions"] == wanted


def test_dry_run_includes_the_request(plan):
    request = plan[0]["request"]
    assert (request["RoleArn"], request["AlgorithmSpecification"]["TrainingImage"]) == (
        plan[1].role,
        IMAGE_URI,
    )
    assert request["TrainingJobName"].startswith("plan-")


def test_dry_run_with_the_build_in_s3_names_the_key_the_trainer_downloads(dead_endpoint):
    found = api.dry_run_plan(
        api.load_settings(project_file=str(dead_endpoint.file), role=dead_endpoint.role, build_input="s3")
    )
    assert found["build"] == {
        "input": "s3",
        "uri": f"s3://{dead_endpoint.bucket}/{BUILD_KEY}",
        "in_the_job": "downloaded by the trainer",
    }
    assert found["hyperparameters"]["bucket"] == dead_endpoint.bucket
