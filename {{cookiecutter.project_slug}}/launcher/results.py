"""After a job: download what it left in S3, plot its learning curve, load its SavedModel, and put
its Unity model (``model/<behaviour>.onnx``) in ``results/<job>/``, checked, with where it goes in Unity.

The curve comes from the run's own metrics.jsonl (every ``log_metrics`` line, with its step) inside
output.tar.gz; when a job has none, from the metrics SageMaker extracted into CloudWatch with the
job's metric definitions (by time, not step).
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from launcher.errors import LaunchError

FINISHED = ("Completed", "Failed", "Stopped")
METRICS_FILE = "metrics.jsonl"
CLOUDWATCH_NAMESPACE = "/aws/sagemaker/TrainingJobs"


@dataclass(frozen=True)
class JobResults:
    """A finished job's results on this machine."""

    job_name: str
    status: str
    folder: Path
    model_dir: Path | None  # model.tar.gz extracted; None if the job left none
    output_dir: Path | None  # output.tar.gz extracted
    metrics: list[dict] = field(default_factory=list)
    metrics_source: str = ""
    unity_models: list[Path] = field(default_factory=list)  # results/<job>/<behaviour>.onnx


def describe(boto_session, job_name: str) -> dict:
    """DescribeTrainingJob, with a clear error when there is no such job."""
    from botocore.exceptions import ClientError

    try:
        return boto_session.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    except ClientError as error:
        if (
            "ValidationException" in str(error)
            or "ResourceNotFound" in str(error)
            or "not found" in str(error).lower()
        ):
            raise LaunchError(
                f"job_name={job_name!r}: no such training job in {boto_session.region_name}: check the "
                "name (printed when the job was submitted) and the region"
            ) from None
        raise


def fetch_results(
    boto_session, job_name: str, dest: str | Path, local_output_path: str | None = None
) -> JobResults | None:
    """Download and extract the job's model and output into ``dest/<job>/``; None while it still runs.

    A job run with ``--local-job`` has no SageMaker record: give the S3 output path it used
    (``s3://<bucket>``) as ``local_output_path`` and it is read from there.
    """
    if local_output_path:
        description = {
            "TrainingJobName": job_name,
            "TrainingJobStatus": "Completed",
            "OutputDataConfig": {"S3OutputPath": local_output_path},
        }
    else:
        description = describe(boto_session, job_name)
    status = description["TrainingJobStatus"]
    if status not in FINISHED:
        print(f"{job_name} is {status}: run this again once it has finished (or wait for it first)")
        return None
    if status != "Completed":
        print(
            f"{job_name} is {status}: {description.get('FailureReason', 'no reason given')}. "
            "Fetching what it left."
        )
    prefix = f"{description['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job_name}/output"
    model_uri = (description.get("ModelArtifacts") or {}).get("S3ModelArtifacts") or f"{prefix}/model.tar.gz"
    folder = Path(dest).expanduser() / job_name
    folder.mkdir(parents=True, exist_ok=True)
    s3 = boto_session.client("s3")
    model_dir = _fetch_tar(s3, model_uri, folder / "model")
    output_dir = _fetch_tar(s3, f"{prefix}/output.tar.gz", folder / "output")
    if status == "Completed" and model_dir is None:
        raise LaunchError(
            f"{job_name} completed but {model_uri} is missing: was it deleted? Check the bucket"
        )
    metrics, source = _metrics_file(output_dir), METRICS_FILE
    if not metrics and not local_output_path:
        metrics, source = _cloudwatch_metrics(boto_session, description), "CloudWatch"
    unity_models = _place_unity_models(model_dir, folder)
    results = JobResults(
        job_name, status, folder, model_dir, output_dir, metrics, source if metrics else "", unity_models
    )
    print(
        f"results of {job_name} in {folder}: model {'in ' + str(model_dir) if model_dir else 'none'}, "
        f"output {'in ' + str(output_dir) if output_dir else 'none'}, {len(metrics)} metric records"
    )
    for path in unity_models:
        print(unity_instructions(path))
    return results


def _place_unity_models(model_dir: Path | None, folder: Path) -> list[Path]:
    """Copy each ``<behaviour>.onnx`` (and its .onnx.json) of the model to ``folder``, checked."""
    placed = []
    for found in sorted(model_dir.rglob("*.onnx")) if model_dir else []:
        target = folder / found.name
        shutil.copyfile(found, target)
        provenance = found.with_name(found.name + ".json")
        if provenance.is_file():
            shutil.copyfile(provenance, target.with_name(provenance.name))
        report = check_unity_model(target)
        if report is not None:
            print(report.text())
        placed.append(target)
    return placed


def check_unity_model(path: Path):
    """template_runtime.onnx_check's report on ``path``, or None (with why) when onnx is missing here."""
    source = str(Path(__file__).resolve().parents[1] / "src")
    if source not in sys.path:
        sys.path.append(source)  # template_runtime's package file imports nothing
    try:
        from template_runtime.onnx_check import check_onnx
    except ImportError as error:
        print(f"{path.name} not checked ({error}): pip install -r requirements/launcher.txt")
        return None
    return check_onnx(path, draws=20)


def unity_instructions(path: Path) -> str:
    """Where a fetched model goes in the Unity Editor."""
    behaviour = path.stem
    return (
        f"Unity model: {path}\n"
        f"  Use it in Unity: copy {path.name} into your project's Assets/ folder (the Editor imports it as "
        "a model asset), select the agent's GameObject and, in its Behavior Parameters component, set\n"
        f"  Model = {behaviour}, Behavior Name = {behaviour} (as in the build), Behavior Type = Default "
        "or Inference Only; tick Deterministic Inference for the policy's most likely actions."
    )


def plot_learning_curve(results: JobResults | None, metric: str = "episode_reward_mean"):
    """Plot ``metric`` over training steps (or time); the figure is also saved as learning_curve.png."""
    if results is None:
        print("no results yet: nothing to plot")
        return None
    points = [m for m in results.metrics if isinstance(m.get(metric), (int, float))]
    if not points:
        names = sorted({k for m in results.metrics for k in m} - {"step", "time"})
        print(
            f"no {metric!r} values in the results of {results.job_name}"
            + (f" (it has {', '.join(names)})" if names else "")
        )
        return None
    import matplotlib.pyplot as plt

    x_name = "step" if all("step" in m for m in points) else "time"
    figure, axes = plt.subplots(figsize=(8, 4))
    axes.plot(
        [m[x_name] for m in points], [m[metric] for m in points], marker="." if len(points) < 50 else None
    )
    raw = metric.removesuffix("_mean")
    if raw != metric and any(raw in m for m in results.metrics):
        scattered = [m for m in results.metrics if isinstance(m.get(raw), (int, float))]
        axes.scatter([m[x_name] for m in scattered], [m[raw] for m in scattered], s=6, alpha=0.3, label=raw)
        axes.legend()
    axes.set(xlabel=x_name, ylabel=metric, title=f"{results.job_name} ({results.metrics_source})")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(results.folder / "learning_curve.png", dpi=100)
    return figure


def load_saved_model(results: JobResults | None):
    """The job's TensorFlow SavedModel, or None (with the reason) if it saved none or TF is missing."""
    if results is None or results.model_dir is None:
        print("no model downloaded: nothing to load")
        return None
    found = sorted(results.model_dir.rglob("saved_model.pb"))
    if not found:
        print(
            f"{results.job_name} saved no SavedModel (its model.tar.gz holds: "
            f"{', '.join(p.name for p in results.model_dir.iterdir()) or 'nothing'}). "
            "The random example saves none; "
            "the PPO and DQN examples do."
        )
        return None
    try:
        import tensorflow as tf
    except ImportError:
        print(
            f"SavedModel in {found[0].parent}; to load it here, install TensorFlow "
            "(pip install -r requirements/training.txt) or use the training environment"
        )
        return None
    return tf.saved_model.load(str(found[0].parent))


def _fetch_tar(s3, uri: str, folder: Path) -> Path | None:
    """Download a .tar.gz and extract it into ``folder``, replacing it whole; None if there is none."""
    from botocore.exceptions import ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    with tempfile.TemporaryDirectory(prefix="results-", dir=folder.parent) as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        try:
            s3.download_file(bucket, key, str(archive))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        staging = Path(tmp) / "extracted"
        staging.mkdir()  # an empty model.tar.gz (the random example) still gives a folder
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths, links out, device files
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    return folder


def _metrics_file(output_dir: Path | None) -> list[dict]:
    if output_dir is None:
        return []
    records = []
    for path in sorted(output_dir.rglob(METRICS_FILE)):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a stopped job
            if isinstance(record, dict):
                records.append(record)
    return records


def _cloudwatch_metrics(boto_session, description: dict) -> list[dict]:
    """The job's metric series from CloudWatch (what SageMaker extracted with its metric definitions)."""
    start, end = description.get("TrainingStartTime"), description.get("TrainingEndTime")
    if not start:
        return []
    end = (end or datetime.now(UTC)) + timedelta(minutes=1)
    dimension = [{"Name": "TrainingJobName", "Value": description["TrainingJobName"]}]
    cloudwatch = boto_session.client("cloudwatch")
    names = sorted(
        {
            m["MetricName"]
            for page in cloudwatch.get_paginator("list_metrics").paginate(
                Namespace=CLOUDWATCH_NAMESPACE, Dimensions=dimension
            )
            for m in page.get("Metrics", [])
        }
    )
    if not names:
        return []
    queries = [
        {
            "Id": f"m{i}",
            "Label": name,
            "ReturnData": True,
            "MetricStat": {
                "Metric": {"Namespace": CLOUDWATCH_NAMESPACE, "MetricName": name, "Dimensions": dimension},
                "Period": 60,
                "Stat": "Average",
            },
        }
        for i, name in enumerate(names[:500])
    ]
    by_time: dict = {}
    for page in cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start - timedelta(minutes=1), EndTime=end
    ):
        for series in page.get("MetricDataResults", []):
            for when, value in zip(series.get("Timestamps", []), series.get("Values", []), strict=False):
                by_time.setdefault(when, {"time": when})[series["Label"]] = value
    return [by_time[t] for t in sorted(by_time)]
