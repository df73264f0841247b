"""After the job: download, learning curve, SavedModel, from artefacts placed where SageMaker puts them."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from launcher import api
from launcher.errors import LaunchError

METRICS = [
    {"step": 10 * i, "episode_reward": float(i % 3), "episode_reward_mean": i / 10} for i in range(1, 6)
]


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def finished_job(project):
    """A job moto reports Completed, with model.tar.gz and output.tar.gz where SageMaker leaves them."""
    name = f"launcher-results-{datetime.now():%H%M%S%f}"
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=name,
        RoleArn=project.role,
        OutputDataConfig={"S3OutputPath": f"s3://{project.bucket}"},
        AlgorithmSpecification={"TrainingImage": project.image_uri, "TrainingInputMode": "File"},
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    project.job_name = name
    return project


def put(project, name: str, files: dict[str, bytes]) -> None:
    project.s3().put_object(
        Bucket=project.bucket, Key=f"{project.job_name}/output/{name}", Body=tar_gz(files)
    )


def fetch(project, tmp_path):
    return api.fetch_results(project.job_name, region=project.region, dest=tmp_path / "results")


def test_results_are_extracted_beside_each_other(finished_job, tmp_path):
    put(finished_job, "model.tar.gz", {"policy.npz": b"weights"})
    put(finished_job, "output.tar.gz", {"summary.json": b"{}"})
    results = fetch(finished_job, tmp_path)
    assert (results.model_dir / "policy.npz").read_bytes() == b"weights"
    assert (results.output_dir / "summary.json").is_file()


def test_metrics_come_from_the_runs_metrics_file(finished_job, tmp_path):
    put(finished_job, "model.tar.gz", {})
    put(finished_job, "output.tar.gz", {"metrics.jsonl": "\n".join(map(json.dumps, METRICS)).encode()})
    results = fetch(finished_job, tmp_path)
    assert (results.metrics, results.metrics_source) == (METRICS, "metrics.jsonl")


def test_learning_curve_plots_the_mean_reward_over_steps(finished_job, tmp_path):
    put(finished_job, "model.tar.gz", {})
    put(finished_job, "output.tar.gz", {"metrics.jsonl": "\n".join(map(json.dumps, METRICS)).encode()})
    results = fetch(finished_job, tmp_path)
    line = api.plot_learning_curve(results).axes[0].lines[0]
    assert (list(line.get_xdata()), list(line.get_ydata())) == (
        [10, 20, 30, 40, 50],
        [0.1, 0.2, 0.3, 0.4, 0.5],
    )
    assert (results.folder / "learning_curve.png").is_file()


def test_metrics_come_from_cloudwatch_without_a_metrics_file(finished_job, tmp_path):
    put(finished_job, "model.tar.gz", {})
    boto3.client("cloudwatch").put_metric_data(
        Namespace="/aws/sagemaker/TrainingJobs",
        MetricData=[
            {
                "MetricName": "episode_reward_mean",
                "Value": 0.75,
                "Timestamp": datetime.now(UTC),
                "Dimensions": [{"Name": "TrainingJobName", "Value": finished_job.job_name}],
            }
        ],
    )
    results = fetch(finished_job, tmp_path)
    assert results.metrics_source == "CloudWatch"
    assert [m["episode_reward_mean"] for m in results.metrics] == [0.75]


def test_job_without_a_saved_model_is_reported_not_raised(finished_job, tmp_path, capsys):
    put(finished_job, "model.tar.gz", {})
    assert api.load_saved_model(fetch(finished_job, tmp_path)) is None
    assert "saved no SavedModel" in capsys.readouterr().out


def test_saved_model_without_tensorflow_here_is_reported(finished_job, tmp_path, capsys):
    put(
        finished_job,
        "model.tar.gz",
        {"policy/saved_model.pb": b"\x08\x01", "policy/variables/variables.index": b""},
    )
    results = fetch(finished_job, tmp_path)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        assert api.load_saved_model(results) is None
        assert "install TensorFlow" in capsys.readouterr().out
    else:
        pytest.skip("TensorFlow is installed here")


def test_unknown_job_name_is_refused(project, tmp_path):
    with pytest.raises(LaunchError, match="no such training job"):
        api.fetch_results("launcher-no-such-job", region=project.region, dest=tmp_path)


def test_plotting_without_results_says_so(capsys):
    assert api.plot_learning_curve(None) is None
    assert "no results yet" in capsys.readouterr().out


UNITY_MODEL = Path(__file__).resolve().parents[1] / "runtime" / "data" / "mlagents_learn_3dball.onnx"


def test_unity_model_is_put_in_the_results_folder_checked_with_where_it_goes(finished_job, tmp_path, capsys):
    model = UNITY_MODEL.read_bytes()
    put(finished_job, "model.tar.gz", {"1/saved_model.pb": b"\x08\x01", "3DBall.onnx": model})
    results = fetch(finished_job, tmp_path)
    assert results.unity_models == [results.folder / "3DBall.onnx"]
    assert results.unity_models[0].read_bytes() == model
    out = capsys.readouterr().out
    assert "3DBall.onnx: OK for Unity ML-Agents" in out
    assert "Behavior Parameters" in out and "Model = 3DBall" in out


def test_a_broken_unity_model_is_reported_when_fetched(finished_job, tmp_path, capsys):
    put(finished_job, "model.tar.gz", {"3DBall.onnx": b"not a model"})
    results = fetch(finished_job, tmp_path)
    assert results.unity_models == [results.folder / "3DBall.onnx"]
    assert "cannot read an ONNX model" in capsys.readouterr().out
