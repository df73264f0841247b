"""Run a CreateTrainingJob request here, the way the training container would, without Docker.

SageMaker's own local mode needs Docker; this needs only a Python environment with the training
requirements and sagemaker-training (requirements/training.txt + image.txt), given as
``container_python``. For one request it:

1. lays out the job's /opt/ml in a folder: input/config/{hyperparameters,resourceconfig,
   inputdataconfig}.json, input/data/<channel>/ downloaded from the request's S3 channels,
   checkpoints/ restored from the checkpoint URI, and empty model/ and output/data/;
2. runs the request's own driver: SDK v3's ``/bin/bash sm_train.sh`` from the sm_drivers channel
   (its scripts hard-code /opt/ml, so their copies here point at the folder instead), or SDK v2's
   sagemaker-training ``train`` with SAGEMAKER_BASE_DIR set to the folder;
3. uploads what SageMaker would: model/ as <output path>/<job>/output/model.tar.gz, output/data/
   as .../output/output.tar.gz, and checkpoints/ to the checkpoint URI; while it runs, the
   TensorBoardOutputConfig folder is copied to S3 every few seconds (live_tensorboard.py).

With ``InstanceCount`` > 1 every instance runs here: algo-1 in that folder, algo-2, ... each in
``hosts/<host>/`` inside it, with its own resourceconfig.json (``current_host``), channels and
checkpoint copy, all drivers at once. The instances reach each other on loopback ports given in
``TRAINER_CLUSTER_ADDRESSES`` (template_runtime/distributed.py reads it instead of resolving the
host names), and host r's Unity instances use ``worker_id`` + 100 r (one machine, one port range).
algo-1's log is echoed; the others' are in their folders' local-job.log. Results are uploaded
from algo-1, which alone writes them. When algo-1 ends, is stopped or the launcher is interrupted,
every other instance still running is stopped by its process group.

Differences from a real job, all about /opt/ml being elsewhere: paths in hyperparameters that start
with /opt/ml are rewritten, and ``checkpoint_dir`` is set to the local checkpoints/ folder when the
request syncs checkpoints (the trainer defaults to /opt/ml/checkpoints inside a job).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

from launcher import live_tensorboard
from launcher.errors import JobFailed, LaunchError

OPT_ML = "/opt/ml"
HOST = "algo-1"
WORKER_ID_STRIDE = 100  # host r of a local multi-instance job: worker_id + 100 r (its Unity ports)
STOP_GRACE_SECONDS = 120  # SageMaker's time between SIGTERM and SIGKILL
PASSED_THROUGH = (
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "PYTHONPATH",
    "UNITY_SIM_PYTHON",
    "SSL_CERT_FILE",
)


@dataclass(frozen=True)
class LocalJobResult:
    job_name: str
    opt_ml: Path  # the folder that stood in for /opt/ml
    exit_code: int
    model_uri: str | None  # None when the job failed (SageMaker keeps no model then)
    output_uri: str | None
    checkpoint_uri: str | None
    log_file: Path


def run_training_request(
    request: dict,
    *,
    boto_session,
    container_python: str | Path,
    work_dir: str | Path,
    echo: TextIO | None = sys.stdout,
) -> LocalJobResult:
    """Run ``request`` in ``work_dir/<job-name>/`` and upload its results; raises LaunchError if it fails."""
    job = request["TrainingJobName"]
    python = _container_python(container_python)
    opt_ml = Path(work_dir).resolve() / job
    if opt_ml.exists():
        raise LaunchError(
            f"{opt_ml} already exists: a local job of that name ran here before; remove the folder"
        )
    hosts = [f"algo-{i}" for i in range(1, request["ResourceConfig"].get("InstanceCount", 1) + 1)]
    folders = {host: opt_ml if host == HOST else opt_ml / "hosts" / host for host in hosts}
    if len(hosts) > 1 and echo is not None:
        print(
            f"note: {job} asks for {len(hosts)} instances: all run here ({HOST}'s log below, the others' "
            f"in {opt_ml / 'hosts'}/<host>/local-job.log)",
            file=echo,
        )
    s3 = boto_session.client("s3")
    checkpoint_uri = (request.get("CheckpointConfig") or {}).get("S3Uri")
    cluster_env = _cluster_environment(hosts)
    runs = []
    for rank, (host, folder) in enumerate(folders.items()):
        _lay_out(request, folder, s3, checkpoint_uri, host, hosts, rank * WORKER_ID_STRIDE)
        command, extra_env = _driver(request, folder, python)
        env = _environment(request, python, boto_session.region_name, {**extra_env, **cluster_env})
        runs.append((command, env, folder))
    log_file = opt_ml / "local-job.log"
    tensorboard = _tensorboard_sync(request, opt_ml, s3)
    max_seconds = request["StoppingCondition"]["MaxRuntimeInSeconds"]
    exit_code = 1
    others: list[tuple[threading.Thread, dict]] = []
    try:
        for command, env, folder in runs[1:]:  # the other instances, beside algo-1
            outcome: dict = {}
            thread = threading.Thread(
                target=_run_into, args=(outcome, command, env, folder, max_seconds), daemon=True
            )
            thread.start()
            others.append((thread, outcome))
        command, env, folder = runs[0]
        exit_code = _run(command, env, folder, max_seconds, log_file, echo)
    except BaseException:  # Ctrl-C or an error while algo-1 ran: no other instance may outlive it
        _stop_instances([outcome for _, outcome in others])
        raise
    finally:
        for thread, _ in others:  # they end with algo-1 (its last barrier, or its error reported)
            thread.join(timeout=STOP_GRACE_SECONDS + 30)
        _stop_instances([outcome for _, outcome in others])  # any that outlived that grace
        if tensorboard is not None:
            tensorboard.stop()
    exit_code = exit_code or next((o.get("exit_code", 1) for _, o in others if o.get("exit_code") != 0), 0)
    prefix = f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output"
    model_uri = _upload_tar(s3, opt_ml / "model", f"{prefix}/model.tar.gz") if exit_code == 0 else None
    output_uri = _upload_tar(s3, opt_ml / "output" / "data", f"{prefix}/output.tar.gz")
    if checkpoint_uri:
        _upload_tree(s3, opt_ml / "checkpoints", checkpoint_uri)
    if exit_code != 0:
        failure = opt_ml / "output" / "failure"
        reason = (
            failure.read_text(errors="replace").strip()[-2000:] if failure.is_file() else "(no failure file)"
        )
        raise JobFailed(
            f"local job {job} failed with exit code {exit_code}: {reason}\nfull log: {log_file} "
            f"(it ran on {python}: the training environment's interpreter, with requirements/training.txt?)"
        )
    return LocalJobResult(job, opt_ml, exit_code, model_uri, output_uri, checkpoint_uri, log_file)


# ---------------------------------------------------------------------------------------------- /opt/ml


def _lay_out(
    request: dict,
    opt_ml: Path,
    s3,
    checkpoint_uri: str | None,
    host: str = HOST,
    hosts: list[str] | None = None,
    worker_id_offset: int = 0,
) -> None:
    hosts = hosts or [host]
    config = opt_ml / "input" / "config"
    for folder in (config, opt_ml / "model", opt_ml / "output" / "data", opt_ml / "checkpoints"):
        folder.mkdir(parents=True)
    instance_type = request["ResourceConfig"]["InstanceType"]
    channels = {c["ChannelName"]: c for c in request.get("InputDataConfig") or []}
    hyperparameters = {k: _local_path(v, opt_ml) for k, v in (request.get("HyperParameters") or {}).items()}
    if checkpoint_uri and "checkpoint_dir" not in hyperparameters:
        hyperparameters["checkpoint_dir"] = json.dumps(str(opt_ml / "checkpoints"))
    if worker_id_offset:  # another instance on this machine: Unity ports of its own
        base = json.loads(hyperparameters.get("worker_id", "0"))
        hyperparameters["worker_id"] = json.dumps(base + worker_id_offset)
    _write_json(config / "hyperparameters.json", hyperparameters)
    _write_json(
        config / "resourceconfig.json",
        {
            "current_host": host,
            "current_instance_type": instance_type,
            "current_group_name": "homogeneousCluster",
            "hosts": hosts,
            "network_interface_name": "eth0",
            "instance_groups": [
                {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}
            ],
        },
    )
    _write_json(
        config / "inputdataconfig.json",
        {
            name: {
                "TrainingInputMode": c.get("InputMode", "File"),
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            }
            for name, c in channels.items()
        },
    )
    for name, channel in channels.items():
        _download_prefix(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], opt_ml / "input" / "data" / name)
    if checkpoint_uri:
        _download_prefix(s3, checkpoint_uri, opt_ml / "checkpoints", required=False)


def _tensorboard_sync(request: dict, opt_ml: Path, s3):
    """TensorBoardOutputConfig: copy LocalPath to S3 while the job runs, as SageMaker does."""
    uri = live_tensorboard.job_uri(request)
    if uri is None:
        return None
    local = request["TensorBoardOutputConfig"].get("LocalPath") or live_tensorboard.LOCAL_PATH
    folder = Path(local.replace(OPT_ML, str(opt_ml), 1)) if local.startswith(OPT_ML) else Path(local)
    return live_tensorboard.Sync(s3, folder, uri).start()


def _local_path(encoded: str, opt_ml: Path) -> str:
    """A JSON-encoded hyperparameter whose value is a path under /opt/ml, moved under ``opt_ml``."""
    try:
        value = json.loads(encoded)
    except ValueError:
        return encoded
    if isinstance(value, str) and (value == OPT_ML or value.startswith(OPT_ML + "/")):
        return json.dumps(str(opt_ml) + value[len(OPT_ML) :])
    return encoded


def _driver(request: dict, opt_ml: Path, python: Path) -> tuple[list[str], dict]:
    """The command the container would run for this request, and the environment it needs here."""
    spec = request["AlgorithmSpecification"]
    if spec.get("ContainerEntrypoint"):  # SDK v3: /bin/bash -c "... sm_train.sh"
        drivers = opt_ml / "input" / "data" / "sm_drivers"
        if not drivers.is_dir():
            raise LaunchError(
                "the request has a container entrypoint but no sm_drivers channel: not an SDK v3 script job"
            )
        for file in drivers.rglob("*"):
            if file.is_file() and file.suffix in (".sh", ".py", ".json"):
                file.write_text(
                    file.read_text(encoding="utf-8").replace(OPT_ML, str(opt_ml)), encoding="utf-8"
                )
        command = [
            part.replace(OPT_ML, str(opt_ml))
            for part in spec["ContainerEntrypoint"] + spec.get("ContainerArguments", [])
        ]
        return command, {}
    if "sagemaker_program" in (request.get("HyperParameters") or {}):  # SDK v2: sagemaker-training
        train = python.parent / "train"
        if not train.is_file():
            found = shutil.which("train", path=str(python.parent))
            if not found:
                raise LaunchError(
                    f"sagemaker-training's `train` is not next to {python}: install requirements/image.txt "
                    "into that environment (it is what SDK v2 jobs run in the container)"
                )
            train = Path(found)
        return [str(train)], {"SAGEMAKER_BASE_DIR": str(opt_ml), "SM_STUDIO_LOCAL_MODE": "true"}
    raise LaunchError(
        "the request has neither SDK v3's driver nor SDK v2's sagemaker_program: cannot run it locally"
    )


def _cluster_environment(hosts: list[str]) -> dict:
    """Several instances on this machine: each host's loopback address for the trainers' cluster."""
    if len(hosts) == 1:
        return {}
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in hosts]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        ports = [probe.getsockname()[1] for probe in probes]
    addresses = {host: f"127.0.0.1:{port}" for host, port in zip(hosts, ports, strict=True)}
    return {"TRAINER_CLUSTER_ADDRESSES": json.dumps(addresses)}


def _environment(request: dict, python: Path, region: str, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH or k.startswith("AWS_")}
    env.update(
        {
            "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "TRAINING_JOB_NAME": request["TrainingJobName"],
            **(request.get("Environment") or {}),
            **extra,
        }
    )
    return env


def _container_python(value: str | Path) -> Path:
    python = Path(value).expanduser()
    if not python.is_absolute():
        found = shutil.which(str(value))
        python = Path(found) if found else python
    if not python.is_file() or not os.access(python, os.X_OK):
        raise LaunchError(
            f"container_python={str(value)!r} is not an executable Python: give the interpreter of an "
            "environment with requirements/training.txt and requirements/image.txt installed"
        )
    return python.absolute()  # not resolved: a venv's bin/python must keep its venv


# ---------------------------------------------------------------------------------------------- running


def _run(
    command: list[str],
    env: dict,
    cwd: Path,
    max_seconds: int,
    log_file: Path,
    echo: TextIO | None,
    started: dict | None = None,
) -> int:
    """Run the driver in its own process group, echo and log its output.

    Like SageMaker, it is stopped (SIGTERM, then SIGKILL) once ``max_seconds`` have passed.
    ``started`` gets the process as ``"process"``, so another thread can stop it.
    """
    with open(log_file, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        if started is not None:
            started["process"] = process
        timer = threading.Timer(max_seconds, _stop, args=(process,))
        timer.daemon = True
        timer.start()
        try:
            for line in process.stdout:
                log.write(line)
                if echo is not None:
                    echo.write(line)
                    echo.flush()
            return process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:  # an exception or Ctrl-C here: the job must not outlive us
                _stop(process, grace=10)
            process.stdout.close()
            _kill_group(process)


def _run_into(outcome: dict, command: list[str], env: dict, cwd: Path, max_seconds: int) -> None:
    """``_run`` for another instance of a local job (its log in its folder), in a thread."""
    if outcome.get("cancelled"):  # algo-1 was stopped before this thread got going
        outcome["exit_code"] = 1
        return
    try:
        outcome["exit_code"] = _run(command, env, cwd, max_seconds, cwd / "local-job.log", None, outcome)
    except Exception as error:  # noqa: BLE001  (reported as that instance's failure)
        outcome["exit_code"], outcome["error"] = 1, error


def _stop_instances(outcomes: list[dict]) -> None:
    """Stop (by process group) every other instance that still runs, and let none start after this."""
    for outcome in outcomes:
        outcome["cancelled"] = True
        process = outcome.get("process")
        if process is not None and process.poll() is None:
            _stop(process, grace=10)


def _stop(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to the whole group (the trainer saves and closes Unity), SIGKILL after ``grace``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.wait()


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # and whatever it started (Unity)
        os.killpg(process.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- S3


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise LaunchError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _download_prefix(s3, uri: str, folder: Path, required: bool = True) -> None:
    """Every object under an S3Prefix, as SageMaker lays a File-mode channel out."""
    bucket, prefix = split_s3_uri(uri)
    folder.mkdir(parents=True, exist_ok=True)
    found = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            rest = key[len(prefix) :]
            inside = rest.strip("/") and (prefix.endswith("/") or rest.startswith("/"))
            # s3://b/dir -> dir/a/b.txt lands as a/b.txt; s3://b/builds/x.zip (an object) lands as x.zip
            relative = PurePosixPath(rest.lstrip("/") if inside else PurePosixPath(key).name)
            if key.endswith("/") or ".." in relative.parts or relative.is_absolute():
                continue
            target = folder.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
            found = True
    if required and not found:
        raise LaunchError(f"nothing in S3 under {uri}: the job's input is missing")


def _upload_tar(s3, folder: Path, uri: str) -> str | None:
    """``folder``'s contents as a .tar.gz at ``uri`` (None if the folder is missing or empty)."""
    if not folder.is_dir() or not any(folder.iterdir()):
        if folder.name == "model":  # SageMaker uploads model.tar.gz even when it is empty
            folder.mkdir(parents=True, exist_ok=True)
        else:
            return None
    bucket, key = split_s3_uri(uri)
    with tempfile.TemporaryDirectory(prefix="local-job-") as tmp:
        archive = Path(tmp) / PurePosixPath(key).name
        with tarfile.open(archive, "w:gz") as tar:
            for item in sorted(folder.iterdir()):
                tar.add(item, arcname=item.name)
        s3.upload_file(str(archive), bucket, key)
    return uri


def _upload_tree(s3, folder: Path, uri: str) -> None:
    bucket, prefix = split_s3_uri(uri)
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(file), bucket, f"{prefix.rstrip('/')}/{file.relative_to(folder).as_posix()}")


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
