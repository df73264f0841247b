"""`python launch.py --local-job`: the SDK's job runs here, and its results land where SageMaker's would."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BUILD_KEY, REPO_ROOT, Offline, Project, make_project, offline_environment, run_launch

from launcher import api
from launcher.project import SOURCE_DIR

pytestmark = pytest.mark.slow


@dataclass
class LocalJob:
    project: Project
    stdout: str
    returncode: int
    children: Offline

    @property
    def job_name(self) -> str:
        return next(line.split()[2] for line in self.stdout.splitlines() if line.startswith("Training job:"))


def local_job(folder, role_arn, container_python, sim_build_zip, *settings) -> LocalJob:
    project = make_project(folder, role_arn)
    project.s3().upload_file(str(sim_build_zip), project.bucket, BUILD_KEY)
    children = offline_environment(folder / "children")
    result = run_launch(
        [
            "--project-file",
            str(project.file),
            "--local-job",
            "--container-python",
            str(container_python),
            "--work-dir",
            str(folder / "jobs"),
            "--set",
            f"role={role_arn}",
            *settings,
        ],
        children.env,
    )
    return LocalJob(project, result.stdout + result.stderr, result.returncode, children)


@pytest.fixture(scope="module")
def finished(moto_endpoint, role_arn, container_python, sim_build_zip, tmp_path_factory) -> LocalJob:
    job = local_job(
        tmp_path_factory.mktemp("local-job"),
        role_arn,
        container_python,
        sim_build_zip,
        "--set",
        "episodes=2",
        "--set",
        "total_timesteps=5000",
    )
    assert job.returncode == 0, job.stdout[-5000:]
    return job


def read_tar(project: Project, key: str) -> dict[str, bytes]:
    body = project.s3().get_object(Bucket=project.bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_local_job_sends_no_create_training_job(finished):
    assert finished.children.requests() == []


def test_local_job_leaves_model_and_output_under_the_job_prefix(finished):
    keys = set(finished.project.keys(f"{finished.job_name}/"))
    assert keys == {f"{finished.job_name}/output/model.tar.gz", f"{finished.job_name}/output/output.tar.gz"}


def test_local_job_output_holds_the_runs_metrics(finished):
    files = read_tar(finished.project, f"{finished.job_name}/output/output.tar.gz")
    records = [json.loads(line) for line in files["metrics.jsonl"].decode().splitlines()]
    assert [r["episode"] for r in records] == [1, 2]


def test_local_job_results_are_fetched_by_name_from_the_bucket(finished, aws_offline, tmp_path):
    found = api.fetch_results(
        finished.job_name, region=finished.project.region, dest=tmp_path, bucket=finished.project.bucket
    )
    assert [m["episode"] for m in found.metrics] == [1, 2]


def test_local_job_copies_tensorboard_events_where_sagemaker_would(finished):
    base = finished.job_name.rsplit("-", 1)[0]
    keys = finished.project.keys(f"{base}/{finished.job_name}/tensorboard-output/")
    assert any("events.out.tfevents" in key for key in keys), keys
    assert (
        f"TensorBoard:   s3://{finished.project.bucket}/{base}/{finished.job_name}/tensorboard-output/"
        in (finished.stdout)
    )


def test_local_job_stays_on_this_machine(finished):
    assert finished.children.attempts() == []


def test_failing_local_job_reports_the_failure_and_keeps_no_model(
    moto_endpoint, role_arn, container_python, sim_build_zip, tmp_path
):
    job = local_job(tmp_path, role_arn, container_python, sim_build_zip, "--set", "env_file=NoSuchPlayer")
    assert job.returncode == 1 and f"error: local job {job.job_name} failed" in job.stdout
    assert f"{job.job_name}/output/model.tar.gz" not in job.project.keys(job.job_name)


def test_local_job_model_holds_the_unity_model_and_fetching_puts_it_in_results(
    finished, aws_offline, tmp_path
):
    files = read_tar(finished.project, f"{finished.job_name}/output/model.tar.gz")
    assert {"3DBall.onnx", "3DBall.onnx.json"} <= set(files)
    provenance = json.loads(files["3DBall.onnx.json"])
    assert provenance["training_job"] == finished.job_name and provenance["policy"]["kind"] == "RandomPolicy"
    found = api.fetch_results(
        finished.job_name, region=finished.project.region, dest=tmp_path, bucket=finished.project.bucket
    )
    assert found.unity_models == [tmp_path / finished.job_name / "3DBall.onnx"]
    assert found.unity_models[0].read_bytes() == files["3DBall.onnx"]


@pytest.mark.skipif(not (SOURCE_DIR / "ppo_trainer.py").is_file(), reason="the PPO example was not chosen")
def test_local_job_on_two_instances_runs_both_and_uploads_the_chiefs_results(
    moto_endpoint, role_arn, container_python, sim_build_zip, tmp_path
):
    """instance_count=2: algo-1 and algo-2 run here with SageMaker's cluster files, train one run
    (DD-PPO), and the job's results are algo-1's."""
    worker_id = free_worker_id_here()
    job = local_job(
        tmp_path, role_arn, container_python, sim_build_zip,
        "--set", "entry_point=ppo_trainer.py", "--set", "instance_count=2", "--set", "n_steps=64",
        "--set", "total_timesteps=3072", "--set", f"worker_id={worker_id}",
    )  # fmt: skip
    assert job.returncode == 0, job.stdout[-5000:]
    assert "equal on all 2 workers" in job.stdout  # algo-1's log: the weights checked against algo-2's
    opt_ml = tmp_path / "jobs" / job.job_name
    resources = json.loads((opt_ml / "hosts/algo-2/input/config/resourceconfig.json").read_text())
    assert (resources["current_host"], resources["hosts"]) == ("algo-2", ["algo-1", "algo-2"])
    other_log = (opt_ml / "hosts/algo-2/local-job.log").read_text()
    assert "worker 2 of 2 (algo-2" in other_log and "equal on all 2 workers" in other_log
    files = read_tar(job.project, f"{job.job_name}/output/output.tar.gz")
    records = [json.loads(line) for line in files["metrics.jsonl"].decode().splitlines()]
    assert [r["step"] for r in records] == [1536, 3072]  # 2 workers x 12 agents x 64 steps per update
    assert "1/saved_model.pb" in read_tar(job.project, f"{job.job_name}/output/model.tar.gz")
    assert not list((opt_ml / "hosts/algo-2/model").iterdir())  # only the chief writes the model


@pytest.mark.skipif(not (SOURCE_DIR / "ppo_trainer.py").is_file(), reason="the PPO example was not chosen")
def test_an_interrupted_two_instance_local_job_leaves_no_instance_running(
    moto_endpoint, role_arn, container_python, sim_build_zip, tmp_path
):
    """Ctrl-C to launch.py while both instances train: algo-2 (not only algo-1) is stopped by PID."""
    project = make_project(tmp_path, role_arn)
    project.s3().upload_file(str(sim_build_zip), project.bucket, BUILD_KEY)
    children = offline_environment(tmp_path / "children")
    command = [
        sys.executable, "launch.py", "--project-file", str(project.file), "--local-job",
        "--container-python", str(container_python), "--work-dir", str(tmp_path / "jobs"),
        "--set", f"role={role_arn}", "--set", "entry_point=ppo_trainer.py", "--set", "instance_count=2",
        "--set", "n_steps=64", "--set", "total_timesteps=10000000",
        "--set", f"worker_id={free_worker_id_here()}",
    ]  # fmt: skip
    launcher = subprocess.Popen(command, cwd=REPO_ROOT, env=children.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        for line in launcher.stdout:  # algo-1's log: both workers train once its weights are checked
            if "equal on all 2 workers" in line:
                break
        (opt_ml,) = (tmp_path / "jobs").iterdir()
        assert processes_under(opt_ml), "no instance was running"
        launcher.send_signal(signal.SIGINT)
        launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    deadline = time.monotonic() + 30
    while processes_under(opt_ml) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert launcher.returncode == 130 and processes_under(opt_ml) == []


def processes_under(folder: Path) -> list[int]:
    """PIDs of the processes whose working directory is ``folder`` or below (the instances' drivers,
    trainers and Unity players)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cwd = Path(os.readlink(proc / "cwd"))
                if cwd == folder or folder in cwd.parents:
                    found.append(int(proc.name))
    return found


def free_worker_id_here() -> int:
    """A worker_id whose Unity ports (and those of algo-2, 100 above) are free now."""
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 100 < 65536:
            return port - 5005
    raise RuntimeError("no free port")
