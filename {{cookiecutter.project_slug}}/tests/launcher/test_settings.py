"""Settings: defaults from project.toml; every bad value refused offline, saying what to fix."""

from __future__ import annotations

import json
import tomllib

import pytest
from conftest import IMAGE_URI, REPO_ROOT, make_project

from launcher import settings as settings_module
from launcher.errors import LaunchError
from launcher.settings import require_role, resolve
from template_runtime import rules

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
    with pytest.raises(LaunchError, match=r"role='SageMakerRole': is not an IAM role ARN"):
        settings(project, role="SageMakerRole")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("public.ecr.aws/abc/unity-rl:latest", "not a private ECR image"),
        ("tensorflow/tensorflow:2.21.0", "not a private ECR image"),
        ("12345.dkr.ecr.us-east-1.amazonaws.com/unity-rl", "expected <12-digit account>"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/Unity-RL:latest", "lowercase repository"),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unity-rl:latest",
            "in region 'eu-west-1' but jobs run in 'us-east-1'",
        ),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn/unity-rl:latest", "goes with cn-\\* regions"),
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
    chosen = settings(project, volume_size_gb="50", use_spot="true", checkpoints="no")
    assert (chosen.volume_size_gb, chosen.use_spot, chosen.checkpoints) == (50, True, False)
    # instance_count="2": tests/launcher/test_cluster.py (only a trainer that trains on several takes it)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("instance_type", "c5.xlarge", "must be a SageMaker training instance type"),
        ("instance_count", 0, "instance_count=0 must be a whole number from 1"),
        ("max_run_seconds", 10**9, "max_run_seconds=1000000000 must be a whole number"),
        ("build_input", "disk", "build_input='disk' must be one of"),
        ("build_key", "builds/3DBall.tar", "must name a .zip"),
        ("base_job_name", "my_job", "base_job_name='my_job': must be 1-48 letters"),
        ("sdk", "v4", "sdk='v4' must be one of"),
        ("environment", {"BAD-NAME": "1"}, "not a valid variable name"),
        ("s3_bucket", "My_Bucket", "s3_bucket='My_Bucket': S3 bucket names are"),
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
    with pytest.raises(
        LaunchError, match="unrendered template's project.toml.*generate a project with cookiecutter"
    ):
        resolve(project_file=str(template), role=ROLE)


def test_missing_project_entries_are_named(tmp_path):
    partial = tmp_path / "project.toml"
    partial.write_text('[aws]\nregion = "us-east-1"\n')
    with pytest.raises(
        LaunchError, match=r"(?s)\[aws\] s3_bucket is missing.*\[unity_build\] zip_key is missing"
    ):
        resolve(project_file=str(partial), role=ROLE)


# ------------------------------------------------------------------ the rules the template checked

ROLE_IN_CHINA = "arn:aws-cn:iam::123456789012:role/SageMakerRole"
# setting -> values the launcher must refuse before anything is sent (issue 14's list, and more)
HOSTILE_SETTINGS: dict[str, list[str]] = {
    "role": [
        ROLE + "\n",
        ROLE + "\r",
        ROLE + " ",
        " " + ROLE,
        ROLE + "\t",
        ROLE.replace("Sage", "Sa\u200bge"),
        ROLE.replace("123", "\u0661\u0662\u0663"),
        ROLE.replace("Maker", "M\u0430ker"),
        ROLE_IN_CHINA,
        "arn:aws:iam::123456789012:user/SageMakerRole",
        ROLE + "x" * 60,
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role//x",
    ],
    "image_uri": [
        IMAGE_URI + "\n",
        IMAGE_URI + "\t",
        " " + IMAGE_URI,
        IMAGE_URI + "\u200b",
        IMAGE_URI.replace("unity", "\u0443nity"),
        IMAGE_URI.replace("unity-rl", "u" * 300),
        IMAGE_URI.replace("us-east-1", "us-west-2"),
        IMAGE_URI.replace("/", "/\n"),
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/unity-rl:test",
    ],
    "instance_type": [
        "ml.c5.xlarge\n",
        "ml.c5.xlarge ",
        " ml.c5.xlarge",
        "ml.\u04415.xlarge",
        "ML.C5.XLARGE",
        "ml.fake.huge",
        "ml.c5.3xlarge",
        "ml.t2.medium",  # a notebook instance type, not a training one
    ],
    "s3_bucket": [
        "a..b",
        "192.168.1.1",
        "xn--abc",
        "abc--ol-s3",
        "amzn-s3-demo-abc",
        "abc--x-s3",
        "abc.mrap",
        "abc--table-s3",
        "abc-s3alias",
        "sthree-abc",
        "bucket\n",
        "bucket ",
        "\tbucket",
        "buck\u0435t",
        "ab",
        "a" * 64,
    ],
    "region": ["us-east-1\n", "us-east-1 ", "us-\u0435ast-1", "us-east-\u0661", "mars", "US-EAST-1"],
    "build_key": [
        "builds/3DBall.zip\n",
        " builds/3DBall.zip",
        "/builds/3DBall.zip",
        "builds/../3DBall.zip",
        "builds//3DBall.zip",
        "builds/3DBall.tar",
        "s3://a..b/3DBall.zip",
        "s3://bucket/3DBall.zip\n",
        "s3://bucket/",
        "s3://Bucket/3DBall.zip",
    ],
    "base_job_name": ["my_job", "job\n", "-job", "j" * 49, "j\u00f6b"],
    "entry_point": ["random_trainer.py\n", "random_trainer.py ", "../random_trainer.py", "random trainer.py"],
}
HOSTILE_CASES = [(name, value) for name, values in HOSTILE_SETTINGS.items() for value in values]


@pytest.mark.parametrize(("name", "value"), HOSTILE_CASES, ids=[f"{n}={v[:40]!r}" for n, v in HOSTILE_CASES])
def test_setting_the_template_would_refuse_is_refused_naming_it(project, name, value):
    with pytest.raises(LaunchError) as refused:
        settings(project, **{name: value})

    assert str(refused.value).startswith(f"{name}={rules.shown(value)}: "), refused.value


def test_region_with_a_newline_is_refused_as_the_region_not_the_image(project):
    with pytest.raises(LaunchError, match=r"^region='us-east-1\\n': has a newline \(U\+000A\) at the end"):
        settings(project, region="us-east-1\n")


def test_instance_type_is_checked_against_botocores_training_instance_types(project):
    with pytest.raises(
        LaunchError, match=r"instance_type='ml.fake.huge': is not a SageMaker training instance"
    ):
        settings(project, instance_type="ml.fake.huge")
    assert settings(project, instance_type="ml.m7i-flex.large").instance_type == "ml.m7i-flex.large"


def test_role_from_the_environment_is_checked_naming_the_variable(project, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE + "\n")
    with pytest.raises(
        LaunchError, match=r"^\$SAGEMAKER_ROLE_ARN='arn:aws:iam::123456789012:role/SageMakerRole\\n'"
    ):
        settings(project, role=None)


def test_role_from_another_partition_than_the_region_is_refused(project):
    with pytest.raises(LaunchError, match=r"partition 'aws-cn' but region us-east-1 is in 'aws'"):
        settings(project, role=ROLE_IN_CHINA)


def test_build_key_as_an_s3_uri_names_its_bucket_and_key(project):
    chosen = settings(project, build_key="s3://other-bucket/games/Walker v2.zip")
    assert (chosen.build_bucket, chosen.build_key) == ("other-bucket", "games/Walker v2.zip")


# A project.toml edited by hand: each bad entry is refused naming the file, its table and key.
HOSTILE_FILE_VALUES = [
    ("aws", "s3_bucket", "a..b"),
    ("aws", "s3_bucket", "abc--x-s3"),
    ("aws", "region", "us-east-1\n"),
    ("aws", "ecr_image_uri", IMAGE_URI + "\n"),
    ("aws", "instance_type", "ml.fake.huge"),
    ("training", "entry_point", "random_trainer.py "),
    ("unity_build", "zip_key", "builds/3DBall.zip\n"),
    ("unity_build", "folder", "src"),
    ("unity_build", "folder", "."),
    ("unity_build", "folder", ""),
    ("unity_build", "folder", "builds"),
    ("unity_build", "executable", "3DBall\n"),
]


@pytest.mark.parametrize(
    ("table", "key", "value"), HOSTILE_FILE_VALUES, ids=[f"{t}.{k}={v!r}" for t, k, v in HOSTILE_FILE_VALUES]
)
def test_bad_value_in_project_toml_is_refused_naming_file_table_and_key(project, table, key, value):
    text = project.file.read_text(encoding="utf-8")
    section = text.index(f"[{table}]")
    line_start = text.index(f"\n{key} = ", section) + 1
    line_end = text.index("\n", line_start)
    project.file.write_text(
        text[:line_start] + f"{key} = {json.dumps(value)}" + text[line_end:], encoding="utf-8"
    )  # a JSON string without surrogates is a TOML basic string

    with pytest.raises(LaunchError) as refused:
        settings(project)

    message = str(refused.value)
    assert str(project.file) in message and f"[{table}] {key}={rules.shown(value)}: " in message, message
