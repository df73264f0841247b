"""`launch.py --tensorboard JOB`: a job's event files come down from S3; TensorBoard serves them on loopback.

The event files are written by the trainers' own writer (template_runtime.metrics.MetricsLog). The
server test starts launch.py, waits until TensorBoard answers on its port, asks it for the run's
scalars, and stops it by its PID (launch.py becomes TensorBoard: exec, not a child).
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from conftest import REPO_ROOT, offline_environment

from launcher import api
from launcher.errors import LaunchError
from launcher.runtime import runtime_module

JOB = f"launcher-test-random-{uuid.uuid4().hex[:8]}"  # moto keeps jobs for the whole session
TAGS = {"episode_reward_mean", "fps"}


def event_files(folder: Path) -> Path:
    """A run's metrics, as a trainer logs them (metrics.jsonl and TensorBoard scalars)."""
    metrics = runtime_module("metrics")
    log = metrics.MetricsLog(folder / "metrics.jsonl", folder / "tensorboard", TAGS, echo=lambda line: None)
    for step in (100, 200, 300):
        log.log(step, {"episode_reward_mean": step / 100, "fps": 1000.0})
    log.close()
    return folder


def output_tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


@pytest.fixture
def local_job(project, tmp_path):
    """A job run with --local-job: its output.tar.gz in the bucket, no SageMaker record."""
    body = output_tar(event_files(tmp_path / "output"))
    project.s3().put_object(Bucket=project.bucket, Key=f"{JOB}/output/output.tar.gz", Body=body)
    return project


def test_event_files_come_from_output_tar(local_job, tmp_path):
    folder = api.fetch_tensorboard(JOB, local_job.region, dest=tmp_path / "results", bucket=local_job.bucket)

    assert folder == tmp_path / "results" / JOB / "tensorboard"
    assert [p.name.split(".")[:3] for p in folder.iterdir()] == [["events", "out", "tfevents"]]
    assert not (folder / "metrics.jsonl").exists()  # only the tensorboard/ folder of the archive


def test_a_job_with_a_tensorboard_output_config_is_read_from_that_prefix(project, tmp_path, role_arn):
    files = event_files(tmp_path / "written") / "tensorboard"
    job = f"{JOB}-tb"
    prefix = f"tensorboard/{job}"
    for path in files.iterdir():
        project.s3().upload_file(str(path), project.bucket, f"{prefix}/run-1/{path.name}")
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=job,
        AlgorithmSpecification={"TrainingImage": project.image_uri, "TrainingInputMode": "File"},
        RoleArn=role_arn,
        OutputDataConfig={"S3OutputPath": f"s3://{project.bucket}"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        TensorBoardOutputConfig={"S3OutputPath": f"s3://{project.bucket}/{prefix}"},
    )

    folder = api.fetch_tensorboard(job, project.region, dest=tmp_path / "results")

    assert [p.name for p in (folder / "run-1").iterdir()] == [p.name for p in files.iterdir()]


def test_a_job_without_event_files_says_so(project, tmp_path):
    project.s3().put_object(
        Bucket=project.bucket, Key=f"{JOB}/output/output.tar.gz", Body=output_tar(tmp_path / "empty")
    )

    with pytest.raises(LaunchError, match=f"{JOB} left no TensorBoard event files in s3://"):
        api.fetch_tensorboard(JOB, project.region, dest=tmp_path, bucket=project.bucket)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def test_launch_py_serves_the_jobs_scalars_on_loopback(local_job, tmp_path):
    children, port = offline_environment(tmp_path / "children"), free_port()
    server = subprocess.Popen(
        [sys.executable, "launch.py", "--project-file", str(local_job.file), "--tensorboard", JOB,
         "--port", str(port), "--results-dir", str(tmp_path / "results")],
        cwd=REPO_ROOT, env=children.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline, tags = time.monotonic() + 180, None
        while tags is None:
            assert server.poll() is None, server.stdout.read()
            try:
                tags = get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")
            except OSError:
                assert time.monotonic() < deadline, "TensorBoard did not answer within 180 s"
                time.sleep(0.2)  # polling with a deadline
        assert set(tags["."]) == TAGS
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # bound to loopback
    finally:
        os.kill(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert f"TensorBoard: http://127.0.0.1:{port}/" in output
    assert f"--logdir {tmp_path / 'results' / JOB / 'tensorboard'} --host 127.0.0.1 --port {port}" in output
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert children.attempts() == []
