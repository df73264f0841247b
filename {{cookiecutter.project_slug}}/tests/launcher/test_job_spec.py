"""The neutral job description: hyperparameter encoding, the build's two routes, metrics, S3 layout."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from conftest import make_project

from launcher import settings as settings_module
from launcher.entry_points import load_entry_point
from launcher.job import build_job_spec, metric_definitions
from launcher.project import SOURCE_DIR
from launcher.settings import resolve

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
# What trainer.log_metrics prints (f"{value:.6g}" after "step=N").
LOG_LINE = (
    "step=1200 episode=3 episode_reward=-1.5 episode_length=200 episode_reward_mean=0.53 "
    "episode_length_mean=31.5 fps=2.31e+06"
)


@pytest.fixture
def spec_for(tmp_path, monkeypatch):
    monkeypatch.setattr(settings_module, "SAGEMAKER_METADATA", tmp_path / "absent")
    project = make_project(tmp_path, ROLE, create_bucket=False)

    def spec(**values):
        return build_job_spec(resolve(project_file=str(project.file), role=ROLE, **values), ROLE)

    spec.project = project
    return spec


def test_hyperparameters_are_encoded_as_json_text(spec_for):
    spec = spec_for(hyperparameters={"episodes": 3, "no_graphics": False, "env_file": "5"})
    encoded = spec.encoded_hyperparameters()
    assert (encoded["episodes"], encoded["no_graphics"], encoded["env_file"]) == ("3", "false", '"5"')


def test_build_as_channel_adds_the_trainers_build_channel(spec_for):
    spec = spec_for(build_input="channel")
    assert spec.input_channels == {"env": f"s3://{spec_for.project.bucket}/builds/3DBall.zip"}
    assert "bucket" not in spec.hyperparameters


def test_build_as_s3_key_passes_bucket_and_key_to_the_trainer(spec_for):
    spec = spec_for(build_input="s3")
    assert spec.input_channels == {}
    assert (spec.hyperparameters["bucket"], spec.hyperparameters["zip_env_name"]) == (
        spec_for.project.bucket,
        "builds/3DBall.zip",
    )


def test_build_in_another_bucket_is_passed_as_a_full_uri(spec_for):
    spec = spec_for(build_input="s3", build_key="s3://shared-builds/unity/3DBall.zip")
    assert spec.hyperparameters["zip_env_name"] == "s3://shared-builds/unity/3DBall.zip"


def test_project_build_settings_reach_the_trainer(spec_for):
    spec = spec_for()
    assert (spec.hyperparameters["env_file"], spec.hyperparameters["build_folder"]) == (
        "3DBall",
        "unity_build",
    )


def test_user_hyperparameters_win_over_project_build_settings(spec_for):
    assert spec_for(hyperparameters={"env_file": "Other"}).hyperparameters["env_file"] == "Other"


def test_environment_has_unbuffered_python_and_the_users_variables(spec_for):
    assert spec_for(environment={"UNITY_USE_XVFB": 1}).environment == {
        "PYTHONUNBUFFERED": "1",
        "UNITY_USE_XVFB": "1",
    }


def test_checkpoints_go_under_base_name_and_job_name(spec_for):
    spec = spec_for(base_job_name="exp")
    assert (
        spec.checkpoint_uri("exp-20260101000000")
        == f"s3://{spec_for.project.bucket}/exp/exp-20260101000000/checkpoints"
    )


def test_checkpoints_can_be_switched_off(spec_for):
    assert spec_for(checkpoints=False).checkpoint_uri("x-1") is None


def test_job_names_are_base_name_and_timestamp(spec_for):
    assert spec_for(base_job_name="exp").new_job_name(datetime(2026, 1, 2, 3, 4, 5)) == "exp-20260102030405"


def test_telemetry_is_off_unless_chosen(spec_for):
    modules = lambda spec: spec.sdk_config()["SageMaker"]["PythonSDK"]["Modules"]  # noqa: E731
    assert (modules(spec_for())["TelemetryOptOut"], modules(spec_for(telemetry=True))["TelemetryOptOut"]) == (
        True,
        False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("episode", "3"),
        ("episode_reward", "-1.5"),
        ("episode_length", "200"),
        ("episode_reward_mean", "0.53"),
        ("episode_length_mean", "31.5"),
        ("fps", "2.31e+06"),
        ("step", "1200"),
    ],
)
def test_metric_regexes_read_the_trainers_log_line(name, value):
    regex = dict(metric_definitions([name]))[name]
    assert re.search(regex, LOG_LINE).group(1) == value


def test_metric_regex_does_not_match_a_longer_name():
    regex = dict(metric_definitions(["reward"]))["reward"]
    assert re.search(regex, "step=1 episode_reward=5 mean_reward=2 reward=7").group(1) == "7"


def test_metric_names_are_the_base_metrics_and_those_the_trainer_declares():
    entry = load_entry_point("random_trainer.py", SOURCE_DIR)
    assert entry.metric_names == (
        "episode_reward_mean",
        "episode_length_mean",
        "fps",
        "episode",
        "episode_reward",
        "episode_length",
    )


def test_metric_definitions_always_chart_the_step():
    assert [name for name, _ in metric_definitions(["fps"])] == ["step", "fps"]


def test_hyperparameters_survive_the_json_round_trip(spec_for):
    spec = spec_for(hyperparameters={"additional_args": ["-a", "b c"], "env_parameters": {"mass": 2.0}})
    decoded = {key: json.loads(value) for key, value in spec.encoded_hyperparameters().items()}
    assert decoded == spec.hyperparameters
