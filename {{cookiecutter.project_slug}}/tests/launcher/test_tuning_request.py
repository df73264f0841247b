"""`python launch.py --tune` against moto: the CreateHyperParameterTuningJob request, field by field.

One tuning job submitted and one --dry-run with the same settings per module. The request is
checked against botocore's service model (every member known, every type, length and enum), and
compared with an expected request written out SDK-neutrally: the same test passing under SDK v3
and v2 shows that both SDKs' own tuner classes send equivalent requests. moto implements
CreateHyperParameterTuningJob and DescribeHyperParameterTuningJob, so the job is sent for real.
"""

from __future__ import annotations

import copy
import io
import json
import re
import tarfile
import threading
from dataclasses import dataclass

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters
from conftest import BUILD_KEY, IMAGE_URI, Offline, Project, make_project, offline_environment, run_launch
from test_dry_run import dead_endpoint  # noqa: F401  (fixture)

from launcher import api, tuning
from launcher.entry_points import load_entry_point
from launcher.job import metric_definitions
from launcher.project import SOURCE_DIR

BASE = "tune-test"
CHOICES = [
    "--set",
    "use_spot=true",
    "--set",
    "max_run_seconds=3600",
    "--set",
    "episodes=3",
    "--set",
    f"base_job_name={BASE}",
    "--tune",
    "--range",
    "window=10:100",
    "--range",
    "time_scale=1:20:log",
    "--range",
    "seed=0,1,2",
    "--max-jobs",
    "6",
    "--max-parallel",
    "3",
    "--early-stopping",
]
SDK_PLUMBING_CHANNELS = {"code", "sm_drivers"}  # v3 also uploads its driver scripts (unused by a tuning job)
MODEL = botocore.session.get_session().get_service_model("sagemaker")


@dataclass
class Tuned:
    project: Project
    stdout: str
    sent: dict
    dry_run: dict
    children: Offline

    @property
    def name(self) -> str:
        return self.sent["HyperParameterTuningJobName"]


@pytest.fixture(scope="module")
def tuned(moto_endpoint, role_arn, tmp_path_factory) -> Tuned:
    folder = tmp_path_factory.mktemp("tune")
    project = make_project(folder, role_arn)
    project.s3().put_object(Bucket=project.bucket, Key=BUILD_KEY, Body=b"PK\x05\x06" + b"\0" * 18)
    children = offline_environment(folder / "children")
    common = ["--project-file", str(project.file), "--set", f"role={role_arn}", *CHOICES]
    submitted = run_launch([*common, "--set", "wait=false"], children.env)
    assert submitted.returncode == 0, submitted.stderr
    dry = run_launch([*common, "--dry-run"], children.env)
    assert dry.returncode == 0, dry.stderr
    sent = children.tuning_requests()
    assert len(sent) == 1, (
        f"expected one CreateHyperParameterTuningJob sent (the dry run none), got {len(sent)}"
    )
    return Tuned(project, submitted.stdout, sent[0], json.loads(dry.stdout), children)


def neutral(request: dict) -> dict:
    """The request without what differs by SDK generation (driver plumbing, names, defaults spelled out).

    v2 sends the instances as HyperParameterTuningResourceConfig, v3 as ResourceConfig: the same
    three members, both accepted for a single training job definition.
    """
    r = copy.deepcopy(request)
    name = r.pop("HyperParameterTuningJobName")
    config, definition = r["HyperParameterTuningJobConfig"], r["TrainingJobDefinition"]
    config["ParameterRanges"] = {k: v for k, v in config["ParameterRanges"].items() if v}
    statics = definition["StaticHyperParameters"]
    definition["StaticHyperParameters"] = {k: v for k, v in statics.items() if not k.startswith("sagemaker_")}
    if "HyperParameterTuningResourceConfig" in definition:
        definition["ResourceConfig"] = definition.pop("HyperParameterTuningResourceConfig")
    channels = [c for c in definition["InputDataConfig"] if c["ChannelName"] not in SDK_PLUMBING_CHANNELS]
    for channel in channels:
        if channel.get("InputMode", "File") == "File":
            channel.pop("InputMode", None)
    definition["InputDataConfig"] = channels
    if definition["OutputDataConfig"].get("CompressionType") == "GZIP":
        del definition["OutputDataConfig"]["CompressionType"]
    definition["CheckpointConfig"]["S3Uri"] = definition["CheckpointConfig"]["S3Uri"].replace(
        name, "<tuning>"
    )
    r.pop("Tags", None)
    return r


def expected(project: Project) -> dict:
    entry = load_entry_point("random_trainer.py", SOURCE_DIR)
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "episode_reward_mean"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3},
            "ParameterRanges": {
                "IntegerParameterRanges": [
                    {"Name": "window", "MinValue": "10", "MaxValue": "100", "ScalingType": "Auto"}
                ],
                "ContinuousParameterRanges": [
                    {
                        "Name": "time_scale",
                        "MinValue": "1.0",
                        "MaxValue": "20.0",
                        "ScalingType": "Logarithmic",
                    }
                ],
                "CategoricalParameterRanges": [{"Name": "seed", "Values": ["0", "1", "2"]}],
            },
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE_URI,
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": n, "Regex": r} for n, r in metric_definitions(entry.metric_names)
                ],
            },
            "RoleArn": project.role,
            "StaticHyperParameters": {
                "episodes": "3",
                "zip_env_name": '"builds/3DBall.zip"',
                "env_file": '"3DBall"',
                "build_folder": '"unity_build"',
            },
            "InputDataConfig": [
                {
                    "ChannelName": "env",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://{project.bucket}/{BUILD_KEY}",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{project.bucket}"},
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {
                "S3Uri": f"s3://{project.bucket}/{BASE}/<tuning>/checkpoints/",
                "LocalPath": "/opt/ml/checkpoints",
            },
            "Environment": {"PYTHONUNBUFFERED": "1"},
        },
    }


def test_sent_request_is_valid_for_botocores_service_model(tuned):
    validate_parameters(tuned.sent, MODEL.operation_model("CreateHyperParameterTuningJob").input_shape)


def test_dry_run_request_is_valid_for_botocores_service_model(tuned):
    validate_parameters(tuned.dry_run, MODEL.operation_model("CreateHyperParameterTuningJob").input_shape)


def test_request_is_the_sdk_neutral_tuning_job(tuned):
    assert neutral(tuned.sent) == expected(tuned.project)


def test_dry_run_prints_the_request_that_would_be_sent(tuned):
    assert neutral(tuned.dry_run) == neutral(tuned.sent)


def test_tuning_job_name_is_the_base_name_and_a_timestamp_in_32_characters(tuned):
    assert re.fullmatch(rf"{BASE}-\d{{12}}", tuned.name) and len(tuned.name) <= 32


def test_moto_holds_the_tuning_job_as_sent(tuned):
    held = boto3.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuned.name
    )
    assert held["HyperParameterTuningJobConfig"] == tuned.sent["HyperParameterTuningJobConfig"]
    assert held["TrainingJobDefinition"] == tuned.sent["TrainingJobDefinition"]


def test_each_training_job_is_spot_with_checkpoints_under_the_tuning_job(tuned):
    definition, bucket = tuned.sent["TrainingJobDefinition"], tuned.project.bucket
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["CheckpointConfig"]["S3Uri"] == f"s3://{bucket}/{BASE}/{tuned.name}/checkpoints/"


def test_the_objective_is_among_the_metric_definitions(tuned):
    names = [
        m["Name"] for m in tuned.sent["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
    ]
    objective = tuned.sent["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    assert objective in names and len(names) <= tuning.MAX_TUNING_METRICS


def test_sagemaker_training_runs_the_entry_point_from_the_uploaded_src(tuned):
    statics = tuned.sent["TrainingJobDefinition"]["StaticHyperParameters"]
    program = statics["sagemaker_program"]  # v2 sends JSON text, v3 the name; sagemaker-training takes both
    assert program in ('"random_trainer.py"', "random_trainer.py")
    uri = statics["sagemaker_submit_directory"].strip('"')
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = tuned.project.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        files = {name.removeprefix("./") for name in tar.getnames()}
    assert {"random_trainer.py", "trainer.py", "template_runtime/config.py"} <= files


def test_printed_summary_names_the_job_and_how_to_fetch_it(tuned):
    for text in (
        f"Tuning job:    {tuned.name}",
        f"#/hyper-tuning-jobs/{tuned.name}",
        f"python launch.py --fetch-results {tuned.name}",
        "tunes:          time_scale in [1.0, 20.0] (continuous, logarithmic)",
    ):
        assert text in tuned.stdout


def test_waiting_and_attaching_read_the_tuning_job_from_sagemaker(tuned, aws_offline, capsys):
    settings = api.load_settings(project_file=str(tuned.project.file), role=tuned.project.role)
    attached = tuning.attach_tuning(settings, tuned.name)
    assert attached.request["TrainingJobDefinition"] == tuned.sent["TrainingJobDefinition"]
    assert tuning.wait_tuning(attached) == "Completed"  # moto's tuning jobs finish at once
    assert f"{tuned.name}: Completed; training jobs Completed 1" in capsys.readouterr().out


def test_submitting_stays_on_this_machine(tuned):
    assert tuned.children.attempts() == [] and tuned.children.requests() == []


# ---------------------------------------------------------------------------------------------- dry runs


def test_dry_run_sends_nothing_even_with_the_endpoint_closed(dead_endpoint, tmp_path):  # noqa: F811
    children = offline_environment(tmp_path / "children")
    result = run_launch(
        ["--project-file", str(dead_endpoint.file), "--set", f"role={dead_endpoint.role}"]
        + ["--tune", "--seeds", "4", "--dry-run"],
        children.env,
    )
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)
    assert request["HyperParameterTuningJobConfig"]["Strategy"] == "Grid"
    assert (children.requests(), children.tuning_requests(), children.attempts()) == ([], [], [])


def dry_run_here(project, **choices) -> dict:
    settings = api.load_settings(project_file=str(project.file), role=project.role)
    request = tuning.dry_run_tuning(tuning.load_tuning(settings, **choices))
    for thread in threading.enumerate():
        if thread.name == "sagemaker-telemetry":
            thread.join(timeout=30)
    return request


def test_hyperband_request_sets_its_resources_and_no_early_stopping(dead_endpoint, refused_lookups):  # noqa: F811
    request = dry_run_here(
        dead_endpoint, ranges={"window": "10:100"}, strategy="Hyperband", hyperband_max_resource=30
    )
    validate_parameters(request, MODEL.operation_model("CreateHyperParameterTuningJob").input_shape)
    config = request["HyperParameterTuningJobConfig"]
    assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 30}}
    assert config.get("TrainingJobEarlyStoppingType", "Off") == "Off"
    assert refused_lookups == []


def test_tuning_jobs_carry_no_tensorboard_or_warm_pool_settings(dead_endpoint, refused_lookups):  # noqa: F811
    definition = dry_run_here(dead_endpoint, ranges={"seed": "0,1"})["TrainingJobDefinition"]
    resources = definition.get("ResourceConfig") or definition["HyperParameterTuningResourceConfig"]
    assert "KeepAlivePeriodInSeconds" not in resources and "TensorBoardOutputConfig" not in definition
