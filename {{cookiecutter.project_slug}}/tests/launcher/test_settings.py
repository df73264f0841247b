"""Settings: defaults from project.toml; every bad value refused offline, saying what to fix."""

from __future__ import annotations

import tomllib

import pytest
from conftest import REPO_ROOT, make_project

from launcher import settings as settings_module
from launcher.errors import LaunchError
from launcher.settings import require_role, resolve

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture
def project(tmp_path):
    """A project file only: these tests never reach AWS, not even moto."""
    return make_project(tmp_path, ROLE, create_bucket=False)


@pytest.fixture(autouse=True)
def outside_sagemaker(monkeypatch, tmp_path):
    monkeypatch.setattr(settings_module, "SAGEMAKER_METADATA", tmp_path / "no-such-metadata.json")
    monkeypatch.delenv("SAGEMAKER_ROLE_ARN", raising=False)


def settings(project, **values):
    return resolve(project_file=str(project.file), role=values.pop("role", ROLE), **values)


def test_defaults_come_from_the_repository_project_toml():
    answers = tomllib.loads((REPO_ROOT / "project.toml").read_text())
    chosen = resolve(role=ROLE, entry_point="random_trainer.py")
    assert (chosen.region, chosen.bucket, chosen.image_uri, chosen.instance_type, chosen.build_key) == (
        answers["aws"]["region"],
        answers["aws"]["s3_bucket"],
        answers["aws"]["ecr_image_uri"],
        answers["aws"]["instance_type"],
        answers["unity_build"]["zip_key"],
    )


def test_chosen_values_override_project_toml(project):
    chosen = settings(
        project, instance_type="ml.m5.large", build_key="other/Build.zip", base_job_name="try-1"
    )
    assert (chosen.instance_type, chosen.build_key, chosen.base_job_name) == (
        "ml.m5.large",
        "other/Build.zip",
        "try-1",
    )


def test_hyperparameters_from_text_take_the_types_of_the_config(project):
    chosen = settings(
        project,
        hyperparameters={"episodes": "5", "no_graphics": "false", "time_scale": "2", "env_file": "12"},
    )
    assert chosen.hyperparameters == {
        "episodes": 5,
        "no_graphics": False,
        "time_scale": 2.0,
        "env_file": "12",
    }


def test_typed_hyperparameters_are_kept(project):
    chosen = settings(
        project, hyperparameters={"episodes": 7, "use_visual": True, "env_parameters": {"mass": 1.5}}
    )
    assert chosen.hyperparameters == {"episodes": 7, "use_visual": True, "env_parameters": {"mass": 1.5}}


def test_unknown_hyperparameter_is_refused_naming_the_known_keys(project):
    with pytest.raises(LaunchError, match=r"'episdoes' is not a config key of random_trainer.py .*episodes"):
        settings(project, hyperparameters={"episdoes": 3})


def test_hyperparameter_of_the_wrong_type_is_refused(project):
    with pytest.raises(LaunchError, match=r"episodes='many' is not a whole number"):
        settings(project, hyperparameters={"episodes": "many"})


def test_sagemaker_prefixed_hyperparameters_are_refused(project):
    with pytest.raises(LaunchError, match="sagemaker_program"):
        settings(project, hyperparameters={"sagemaker_program": "x.py"})


def test_role_is_required_outside_sagemaker(project):
    with pytest.raises(LaunchError, match=r"role=None: outside SageMaker .*SAGEMAKER_ROLE_ARN"):
        require_role(settings(project, role=None))


def test_role_comes_from_the_environment_outside_sagemaker(project, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE)
    assert require_role(settings(project, role=None)) == ROLE


def test_role_is_left_to_the_notebook_execution_role_on_sagemaker(project, monkeypatch, tmp_path):
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text("{}")
    monkeypatch.setattr(settings_module, "SAGEMAKER_METADATA", metadata)
    assert require_role(settings(project, role=None)) is None


def test_dict_settings_may_be_given_as_json_text(project):
    chosen = settings(project, hyperparameters='{"episodes": 4}', environment='{"A": "1"}')
    assert (chosen.hyperparameters, chosen.environment) == ({"episodes": 4}, {"A": "1"})


def test_malformed_role_is_refused(project):
    with pytest.raises(LaunchError, match=r"role='SageMakerRole' is not an IAM role ARN"):
        settings(project, role="SageMakerRole")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("public.ecr.aws/abc/unity-rl:latest", "not a private ECR image"),
        ("tensorflow/tensorflow:2.21.0", "not a private ECR image"),
        ("12345.dkr.ecr.us-east-1.amazonaws.com/unity-rl", "malformed"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/Unity-RL:latest", "malformed"),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unity-rl:latest",
            "in region eu-west-1 but the job runs in us-east-1",
        ),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn/unity-rl:latest", "end in amazonaws.com"),
    ],
)
def test_image_uri_that_sagemaker_cannot_pull_is_refused(project, uri, message):
    with pytest.raises(LaunchError, match=message):
        settings(project, image_uri=uri)


def test_image_uri_with_a_digest_is_accepted(project):
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/unity-rl@sha256:" + "a" * 64
    assert settings(project, image_uri=uri).image_uri == uri


def test_spot_wait_defaults_to_twice_the_run_time(project):
    assert settings(project, use_spot=True, max_run_seconds=3600).max_wait_seconds == 7200


def test_spot_wait_shorter_than_the_run_time_is_refused(project):
    with pytest.raises(LaunchError, match="max_wait_seconds=100 is less than max_run_seconds=3600"):
        settings(project, use_spot=True, max_run_seconds=3600, max_wait_seconds=100)


def test_spot_wait_without_spot_is_refused(project):
    with pytest.raises(LaunchError, match="only applies to spot jobs"):
        settings(project, max_wait_seconds=7200)


def test_numbers_and_flags_from_text_are_converted(project):
    chosen = settings(project, instance_count="2", use_spot="true", checkpoints="no")
    assert (chosen.instance_count, chosen.use_spot, chosen.checkpoints) == (2, True, False)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("instance_type", "c5.xlarge", "not a SageMaker training instance type"),
        ("instance_count", 0, "instance_count=0 must be a whole number from 1"),
        ("max_run_seconds", 10**9, "max_run_seconds=1000000000 must be a whole number"),
        ("build_input", "disk", "build_input='disk' must be one of"),
        ("build_key", "builds/3DBall.tar", "must name a .zip"),
        ("base_job_name", "my_job", "base_job_name='my_job' is not 1-48 letters"),
        ("sdk", "v4", "sdk='v4' must be one of"),
        ("environment", {"BAD-NAME": "1"}, "not a valid variable name"),
        ("s3_bucket", "My_Bucket", "s3_bucket='My_Bucket' is not an S3 bucket name"),
    ],
)
def test_bad_setting_is_refused_naming_it(project, name, value, message):
    with pytest.raises(LaunchError, match=message):
        settings(project, **{name: value})


def test_unknown_setting_is_refused(project):
    with pytest.raises(LaunchError, match=r"unknown setting\(s\) instance"):
        settings(project, instance="ml.m5.large")


def test_unknown_entry_point_lists_the_available_ones(project):
    with pytest.raises(LaunchError, match=r"entry_point='dqn_trainer.py'.*Available: .*random_trainer.py"):
        settings(project, entry_point="dqn_trainer.py")


def test_default_base_job_name_joins_project_and_algorithm(project):
    assert settings(project).base_job_name == "launcher-test-random"


def test_template_project_file_is_refused(tmp_path):
    template = tmp_path / "project.toml"
    template.write_text('[aws]\nregion = "{{' + ' cookiecutter.aws_region }}"\n')  # split: no Jinja left here
    with pytest.raises(LaunchError, match="generate the project with cookiecutter"):
        resolve(project_file=str(template), role=ROLE)


def test_missing_project_entries_are_named(tmp_path):
    partial = tmp_path / "project.toml"
    partial.write_text('[aws]\nregion = "us-east-1"\n')
    with pytest.raises(LaunchError, match=r"\[aws\] s3_bucket.*\[unity_build\] zip_key.*missing"):
        resolve(project_file=str(partial), role=ROLE)
