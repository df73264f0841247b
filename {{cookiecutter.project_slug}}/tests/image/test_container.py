"""The training image, built from nothing and run the way SageMaker runs it (make test-container).

A Docker engine of the tests' own (engine.py) builds the CPU image on the official Python base, or
on Debian made with mmdebstrap when that cannot be pulled, then runs jobs in it with
`--network none` and a hard timeout, each with a SageMaker-shaped /opt/ml mounted: input/config/
{hyperparameters,inputdataconfig,resourceconfig}.json, the simulated Unity build in the input
channel `env`, the job's code in /opt/ml/code, and an /etc/hosts that resolves `algo-1` (with no
network, sagemaker-training would otherwise wait forever for its own host name).

Figures (build times, sizes) are printed at the end and kept in $IMAGE_TEST_CACHE/figures.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import IMAGE_TAG, ROOT, build, build_options
from engine import try_pull

sys.path.insert(0, str(ROOT / "requirements"))
import lock  # noqa: E402  (requirements/lock.py: reads the lock files)

# The first test also builds the image (10-25 min on 2 busy cores); each job has its own timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

JOB_TIMEOUT = 600  # seconds; a job that takes longer is killed and fails its test
STOP_GRACE = 120  # SageMaker's time between SIGTERM and SIGKILL (docker stop -t 120)
HOSTS = "127.0.0.1 localhost algo-1\n::1 localhost ip6-localhost ip6-loopback\n"
RESOURCE_CONFIG = {
    "current_host": "algo-1",
    "current_instance_type": "ml.c5.2xlarge",
    "current_group_name": "homogeneousCluster",
    "hosts": ["algo-1"],
    "network_interface_name": "eth0",
    "instance_groups": [
        {"instance_group_name": "homogeneousCluster", "instance_type": "ml.c5.2xlarge", "hosts": ["algo-1"]}
    ],
}


@dataclass
class Job:
    name: str
    opt_ml: Path
    exit_code: int | None = None
    logs: str = ""
    seconds: float = 0.0

    def output(self, name: str) -> Path:
        return self.opt_ml / "output" / "data" / name

    def summary(self) -> dict:
        return json.loads(self.output("summary.json").read_text())

    def checkpoints(self) -> list[Path]:
        return sorted(p for p in (self.opt_ml / "checkpoints").rglob("*") if p.is_file())


def lay_out(
    folder: Path, program: str, hyperparameters: dict, sim_zip: Path, opt_ml: Path | None = None
) -> Path:
    """A SageMaker-shaped /opt/ml for an SDK v2 job (``opt_ml`` given: reuse its checkpoints)."""
    opt_ml = opt_ml or folder / "opt_ml"
    config = opt_ml / "input" / "config"
    for fresh in (opt_ml / "model", opt_ml / "output"):  # a second run keeps only its checkpoints
        shutil.rmtree(fresh, ignore_errors=True)
    for sub in (config, opt_ml / "model", opt_ml / "output" / "data", opt_ml / "checkpoints"):
        sub.mkdir(parents=True, exist_ok=True)
    hps = {key: json.dumps(value) for key, value in hyperparameters.items()}
    hps["sagemaker_program"] = json.dumps(program)
    hps["sagemaker_submit_directory"] = json.dumps("/opt/ml/code")
    (config / "hyperparameters.json").write_text(json.dumps(hps, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps(RESOURCE_CONFIG, indent=2))
    channel = {
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    (config / "inputdataconfig.json").write_text(json.dumps({"env": channel}, indent=2))
    (opt_ml / "input" / "data" / "env").mkdir(parents=True, exist_ok=True)
    shutil.copy2(sim_zip, opt_ml / "input" / "data" / "env" / sim_zip.name)
    code = opt_ml / "code"
    if not code.exists():
        shutil.copytree(ROOT / "src", code, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "hosts").write_text(HOSTS)
    return opt_ml


def start(
    engine,
    folder: Path,
    name: str,
    opt_ml: Path,
    *command: str,
    env: dict | None = None,
    entrypoint: str = "",
) -> Job:
    args = ["run", "--detach", "--name", name, "--network", "none", "--stop-timeout", str(STOP_GRACE)]
    args += ["--volume", f"{opt_ml}:/opt/ml", "--volume", f"{folder / 'hosts'}:/etc/hosts:ro"]
    for key, value in {"TRAINING_JOB_NAME": name, **(env or {})}.items():
        args += ["--env", f"{key}={value}"]
    if entrypoint:
        args += ["--entrypoint", entrypoint]
    engine.docker(*args, IMAGE_TAG, *command)
    return Job(name, opt_ml)


def finish(engine, job: Job, timeout: float = JOB_TIMEOUT, started: float | None = None) -> Job:
    """Wait for the container (killing it after ``timeout``), keep its logs and exit code, remove it."""
    started = started or time.monotonic()
    try:
        job.exit_code = int(engine.docker("wait", job.name, timeout=timeout).stdout.strip())
    except subprocess.TimeoutExpired:
        engine.docker("kill", job.name, check=False)
        job.exit_code = None
    job.seconds = round(time.monotonic() - started, 1)
    job.logs = (
        engine.docker("logs", job.name, check=False).stdout
        + engine.docker("logs", job.name, check=False).stderr
    )
    engine.docker("rm", "--force", job.name, check=False)
    return job


def run_job(engine, tmp_path, program, hyperparameters, sim_zip, name) -> Job:
    opt_ml = lay_out(tmp_path, program, hyperparameters, sim_zip)
    started = time.monotonic()
    return finish(engine, start(engine, tmp_path, name, opt_ml, "train"), started=started)


def wait_for_log(engine, name: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = engine.docker("logs", name, check=False)
        logs = result.stdout + result.stderr
        if text in logs:
            return logs
        state = engine.docker("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        if state != "true":
            pytest.fail(f"{name} ended before printing {text!r}:\n{logs[-4000:]}")
        time.sleep(1)
    pytest.fail(f"{name} printed no {text!r} within {timeout} s")


def job_failed(job: Job) -> str:
    failure = job.opt_ml / "output" / "failure"
    reason = failure.read_text()[-2000:] if failure.is_file() else "(no /opt/ml/output/failure)"
    return f"{job.name}: exit code {job.exit_code} after {job.seconds} s; {reason}\n{job.logs[-5000:]}"


# ---------------------------------------------------------------------------------------------- the build


def test_image_builds_from_nothing_and_prints_its_size(image, figures):
    assert figures["image_mb"] > 0
    log = (
        Path(os.environ.get("IMAGE_TEST_CACHE") or ROOT / ".cache/image-test") / "cold-build.log"
    ).read_text()
    assert f"# built {IMAGE_TAG} (cpu): {figures['image_mb']} MB uncompressed" in log


def test_a_change_in_src_rebuilds_nothing(engine, image, base_image, context, figures):
    """src/ is uploaded with every job, so the image must not depend on it at all."""
    before = engine.image_id(image)
    trainer = context / "src" / "random_trainer.py"
    trainer.write_text(trainer.read_text() + "\n# a change in the job's code\n")
    (context / "src" / "new_module.py").write_text("VALUE = 1\n")
    result = build(engine, context, *build_options(base_image))
    assert result.returncode == 0, result.output[-4000:]
    figures["warm_build_seconds_src_changed"] = result.seconds
    # A FROM step always reports DONE (it only resolves the base); every other step must be cached.
    ran = {
        step: state for step, state in result.steps().items() if state != "CACHED" and " FROM " not in step
    }
    assert ran == {}, f"steps that ran again: {ran}"
    assert engine.image_id(image) == before


def test_tensorflow_import_time_in_the_image(engine, image, figures):
    """The image holds no .pyc files (PYTHONDONTWRITEBYTECODE): what a job's `import tensorflow` costs."""
    timed = (
        "import time; t = time.perf_counter(); import tensorflow; print(round(time.perf_counter() - t, 2))"
    )
    result = engine.docker("run", "--rm", "--network", "none", image, "python3", "-c", timed, timeout=300)
    figures["tensorflow_import_seconds"] = float(result.stdout.split()[-1])


def test_pip_check_passes_inside_the_image(engine, image):
    result = engine.docker("run", "--rm", "--network", "none", image, "pip", "check", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_smoke_test_passes_with_the_jobs_code_mounted(engine, image):
    result = engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        f"{ROOT / 'src'}:/opt/ml/code:ro",
        "--volume",
        f"{ROOT / 'docker'}:/tmp/docker:ro",
        image,
        "python3",
        "/tmp/docker/smoke_test.py",
        "--image",
        "--src",
        "/opt/ml/code",
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trainer" in result.stdout


def test_image_holds_exactly_the_locked_versions(engine, image):
    """What the image installed is requirements/locks/image.txt, no more and no less."""
    result = engine.docker(
        "run", "--rm", "--network", "none", image, "pip", "list", "--format", "json", timeout=120
    )
    installed = {lock.normalize(item["name"]): item["version"] for item in json.loads(result.stdout)}
    assert installed == lock.pins(ROOT / "requirements" / "locks" / "image.txt")


# ---------------------------------------------------------------------------------------------- SDK v2 jobs


def test_random_trainer_runs_through_sagemaker_training(engine, image, sim_zip, tmp_path, figures):
    job = run_job(engine, tmp_path, "random_trainer.py", {"episodes": 3}, sim_zip, "random-v2")
    assert job.exit_code == 0, job_failed(job)
    figures["random_job_seconds"] = job.seconds
    assert job.summary()["episodes"] == 3
    assert job.output("metrics.jsonl").is_file()


def test_ppo_trains_exports_a_saved_model_and_checkpoints(engine, image, sim_zip, tmp_path, figures):
    job = run_job(engine, tmp_path, "ppo_trainer.py", {"total_timesteps": 8192}, sim_zip, "ppo-v2")
    assert job.exit_code == 0, job_failed(job)
    figures["ppo_job_seconds"] = job.seconds
    assert (job.opt_ml / "model" / "1" / "saved_model.pb").is_file()
    assert job.summary()["total_steps"] >= 8192
    assert job.checkpoints(), "no checkpoint in /opt/ml/checkpoints"
    assert job.output("learning_curve.png").is_file()


def test_dqn_trains_exports_a_saved_model_and_checkpoints(engine, image, sim_zip, tmp_path, figures):
    hps = {"total_timesteps": 4000, "learning_starts": 500}
    job = run_job(engine, tmp_path, "tf_trainer.py", hps, sim_zip, "dqn-v2")
    assert job.exit_code == 0, job_failed(job)
    figures["dqn_job_seconds"] = job.seconds
    assert (job.opt_ml / "model" / "1" / "saved_model.pb").is_file()
    assert job.checkpoints(), "no checkpoint in /opt/ml/checkpoints"


def test_a_failing_job_exits_non_zero_and_writes_the_failure_file(engine, image, sim_zip, tmp_path):
    job = run_job(engine, tmp_path, "random_trainer.py", {"env_file": "NoSuchPlayer"}, sim_zip, "fail-v2")
    assert job.exit_code not in (0, None), job.logs[-3000:]
    assert (job.opt_ml / "output" / "failure").is_file()


def test_sigterm_checkpoints_within_the_grace_period_and_the_next_run_resumes(
    engine, image, sim_zip, tmp_path, figures
):
    """SageMaker stops a job (or a spot interruption does) with SIGTERM and kills it 120 s later."""
    opt_ml = lay_out(tmp_path, "ppo_trainer.py", {"total_timesteps": 10_000_000}, sim_zip)
    job = start(engine, tmp_path, "ppo-stopped", opt_ml, "train")
    wait_for_log(engine, job.name, "step=", timeout=300)  # training is under way
    stopping = time.monotonic()
    engine.docker("stop", "--time", str(STOP_GRACE), job.name, timeout=STOP_GRACE + 60)
    stop_seconds = round(time.monotonic() - stopping, 1)
    finish(engine, job)
    figures["sigterm_to_exit_seconds"] = stop_seconds
    assert stop_seconds < STOP_GRACE, (
        f"not done {STOP_GRACE} s after SIGTERM: it would be killed\n{job.logs[-3000:]}"
    )
    assert job.exit_code != 137, f"killed, not stopped:\n{job.logs[-3000:]}"
    assert job.checkpoints(), f"no checkpoint after SIGTERM:\n{job.logs[-3000:]}"
    stopped_at = job.summary()["total_steps"]
    assert job.summary()["stopped_early"] is True

    again = lay_out(
        tmp_path, "ppo_trainer.py", {"total_timesteps": stopped_at + 4096}, sim_zip, opt_ml=opt_ml
    )
    resumed = finish(engine, start(engine, tmp_path, "ppo-resumed", again, "train"))
    assert resumed.exit_code == 0, job_failed(resumed)
    assert resumed.summary()["resumed_from"] == stopped_at
    assert resumed.summary()["total_steps"] >= stopped_at + 4096


# ---------------------------------------------------------------------------------------------- SDK v3


def test_sdk_v3_job_runs_through_model_trainers_own_driver(engine, image, sim_zip, tmp_path, moto_endpoint):
    """As the launcher submits it: ModelTrainer's sm_train.sh from the sm_drivers channel, not `train`."""
    launcher_python = os.environ.get("IMAGE_TEST_LAUNCHER_PYTHON")
    if not launcher_python:
        pytest.skip("needs the launcher's venv for SDK v3 (make test-container sets it)")
    opt_ml = tmp_path / "opt_ml"
    opt_ml.mkdir()
    made = subprocess.run(
        [launcher_python, str(ROOT / "tests" / "image" / "v3_job.py"), "--opt-ml", str(opt_ml)]
        + ["--build-zip", str(sim_zip), "--entry-point", "random_trainer.py"]
        + ["--hyperparameters", json.dumps({"episodes": 2})],
        capture_output=True,
        text=True,
        timeout=300,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    assert made.returncode == 0, made.stderr[-4000:]
    request = json.loads(made.stdout)
    spec = request["AlgorithmSpecification"]
    command = [*spec["ContainerEntrypoint"], *spec.get("ContainerArguments", [])]
    assert "sm_train.sh" in " ".join(command)
    (tmp_path / "hosts").write_text(HOSTS)
    job = start(
        engine,
        tmp_path,
        "random-v3",
        opt_ml,
        *command[1:],
        env=request.get("Environment"),
        entrypoint=command[0],
    )
    finish(engine, job)
    assert job.exit_code == 0, job_failed(job)
    assert job.summary()["episodes"] == 2
    assert "sagemaker_training" not in job.logs  # SDK v3 never runs sagemaker-training's `train`


def test_bash_as_pid_1_runs_its_command_under_init(engine, image):
    """How ModelTrainer starts the container (/bin/bash -c ...): init still ends up as PID 1."""
    result = engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/bash",
        image,
        "-c",
        "tr '\\0' ' ' < /proc/1/cmdline; echo; echo \"$$\"",
    )
    first, pid = result.stdout.splitlines()[:2]
    assert "/opt/unity-rl/init /bin/bash -c " in first, first  # python3 -I /opt/unity-rl/init ...
    assert pid != "1"


# ---------------------------------------------------------------------------------------------- GPU


def test_gpu_variant_builds_up_to_its_python_layer_or_says_why_not(engine, base_image, context):
    from_line = next(
        line
        for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines()
        if line.startswith("ARG CUDA_IMAGE=")
    )
    cuda_image = from_line.split("=", 1)[1]
    why_not = try_pull(engine, cuda_image)
    if why_not:
        pytest.skip(
            f"no CUDA base image can be pulled here ({why_not}), and the GPU stage also needs Ubuntu's "
            "deadsnakes PPA; what can be checked without them is in tests/test_image.py (the gpu stage "
            "parses, its lock is fresh and hashed, and resolves for this Python)"
        )
    options = ["--gpu", *build_options(base_image, tag="unity-rl-test:gpu-builder")]
    result = build(engine, context, *options, docker_args=("--target", "builder"))
    assert result.returncode == 0, result.output[-4000:]


# ---------------------------------------------------------------------------------------------- last


def test_engine_stops_by_its_pid_and_leaves_nothing_behind(engine):
    """Run last (file order): no container of any test is left, and the stopped engine left no
    process, mount, network link or iptables rule on the host."""
    assert engine.containers() == [], "a test left a container behind"
    assert engine.networks() == [], "a test left a network behind"
    engine.stop()
    assert engine.leftovers() == []
