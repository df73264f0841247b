"""One neutral description of the training job, built once and handed to the adapter of either SDK.

Both adapters (sdk_v3.py, sdk_v2.py) turn this into the same CreateTrainingJob request: same image,
entry point, hyperparameter values, instance, spot, checkpoint and metric settings, and the same
places in S3:

    s3://<bucket>/<job-name>/output/model.tar.gz      what the trainer saved in SM_MODEL_DIR
    s3://<bucket>/<job-name>/output/output.tar.gz     SM_OUTPUT_DATA_DIR (metrics.jsonl, summaries, logs)
    s3://<bucket>/<base-job-name>/<job-name>/checkpoints/   /opt/ml/checkpoints, synced during the job
    s3://<bucket>/<base-job-name>/<job-name>/tensorboard-output/   live TensorBoard event files
    s3://<bucket>/<base-job-name>/<job-name>/input/ (v3) or .../source/ (v2)   the uploaded src/

with <job-name> = <base-job-name>-<YYYYmmddHHMMSS> (SDK v3 names jobs this way and cannot be told
otherwise, so the v2 adapter names its jobs the same way, and both keep checkpoints where v3 does).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from launcher import live_tensorboard
from launcher.runtime import runtime_module
from launcher.settings import Settings

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store")


@dataclass(frozen=True)
class TrainingJobSpec:
    """Everything a CreateTrainingJob request says, independent of the SDK that will send it."""

    base_job_name: str
    image_uri: str
    role_arn: str
    region: str
    bucket: str
    source_dir: Path
    entry_point: str
    hyperparameters: dict  # typed values; both SDKs send them JSON-encoded
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_run_seconds: int
    use_spot: bool
    max_wait_seconds: int | None
    checkpoint_local_path: str | None  # None: no checkpoint sync
    input_channels: dict  # channel name -> S3 URI
    environment: dict
    metric_definitions: tuple  # (name, regex) pairs
    telemetry: bool
    keep_alive_seconds: int = 0  # ResourceConfig.KeepAlivePeriodInSeconds (warm_pools.py); 0: none
    tensorboard_local_path: str | None = None  # TensorBoardOutputConfig.LocalPath (live_tensorboard.py)

    @property
    def output_path(self) -> str:
        """S3OutputPath: SageMaker adds <job-name>/output/ under it."""
        return f"s3://{self.bucket}"

    @property
    def staging_prefix(self) -> str:
        """Where the SDKs upload src/ (and v3 its driver scripts) for each job: <this>/<job-name>/."""
        return f"s3://{self.bucket}/{self.base_job_name}"

    def encoded_hyperparameters(self) -> dict[str, str]:
        """The request's HyperParameters: every value as JSON text (so "5" stays a string, 5 a number)."""
        return {key: json.dumps(value) for key, value in self.hyperparameters.items()}

    def new_job_name(self, now: datetime | None = None) -> str:
        """<base>-<YYYYmmddHHMMSS>, the way SDK v3 names a job."""
        return f"{self.base_job_name}-{(now or datetime.now()):%Y%m%d%H%M%S}"

    @property
    def tensorboard_s3_path(self) -> str:
        """TensorBoardOutputConfig.S3OutputPath; SageMaker adds <job-name>/tensorboard-output/ under it."""
        return self.staging_prefix

    def checkpoint_uri(self, job_name: str) -> str | None:
        return f"{self.staging_prefix}/{job_name}/checkpoints" if self.checkpoint_local_path else None

    def sdk_config(self) -> dict:
        """The SDK defaults both generations read (telemetry off unless the user opted in)."""
        return {
            "SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": not self.telemetry}}},
        }


def build_job_spec(settings: Settings, role_arn: str) -> TrainingJobSpec:
    """The job the settings describe; ``role_arn`` is settings.role or the looked-up execution role."""
    entry, project = settings.entry, settings.project
    zip_name = (
        settings.build_key
        if settings.build_bucket == settings.bucket
        else f"s3://{settings.build_bucket}/{settings.build_key}"
    )
    build = {"zip_env_name": zip_name, "env_file": project.executable, "build_folder": project.build_folder}
    channels = {}
    if settings.build_input == "channel":
        channel = settings.hyperparameters.get("build_channel", entry.config.get("build_channel") or "env")
        channels[channel] = f"s3://{settings.build_bucket}/{settings.build_key}"
    else:
        build["bucket"] = settings.bucket
    hyperparameters = {**{k: v for k, v in build.items() if k in entry.config}, **settings.hyperparameters}
    return TrainingJobSpec(
        base_job_name=settings.base_job_name,
        image_uri=settings.image_uri,
        role_arn=role_arn,
        region=settings.region,
        bucket=settings.bucket,
        source_dir=entry.path.parent,
        entry_point=entry.name,
        hyperparameters=entry.hyperparameters(hyperparameters),
        instance_type=settings.instance_type,
        instance_count=settings.instance_count,
        volume_size_gb=settings.volume_size_gb,
        max_run_seconds=settings.max_run_seconds,
        use_spot=settings.use_spot,
        max_wait_seconds=settings.max_wait_seconds,
        checkpoint_local_path=CHECKPOINT_LOCAL_PATH if settings.checkpoints else None,
        input_channels=channels,
        environment={"PYTHONUNBUFFERED": "1", **settings.environment},
        metric_definitions=metric_definitions(
            [*entry.metric_names, *stat_metrics(hyperparameters.get("stats", entry.config.get("stats")))]
        ),
        telemetry=settings.telemetry,
        keep_alive_seconds=settings.keep_alive_seconds,
        tensorboard_local_path=live_tensorboard.LOCAL_PATH if settings.live_tensorboard else None,
    )


def metric_definitions(names: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    """A regex per metric for the trainer's ``step=1200 episode_reward_mean=0.53 fps=231.4`` lines
    (template_runtime.metrics writes those lines and owns their regexes). A custom image gets no
    metric definitions from SageMaker, so without these the console shows no curves."""
    return runtime_module("metrics").metric_definitions(names)


def stat_metrics(stats: object) -> list[str]:
    """The metric names of the build's custom stats listed in the config key ``stats``."""
    names = stats if isinstance(stats, list | tuple) else []
    return [runtime_module("metrics").stat_metric_name(str(name)) for name in names]


@contextmanager
def staged_source(source_dir: Path) -> Iterator[Path]:
    """A clean copy of src/ (no caches) for the SDK to upload, so both generations upload the same files."""
    with tempfile.TemporaryDirectory(prefix="launcher-src-") as tmp:
        target = Path(tmp) / "src"
        shutil.copytree(source_dir, target, ignore=IGNORED)
        yield target
