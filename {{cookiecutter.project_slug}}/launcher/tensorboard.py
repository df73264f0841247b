"""`launch.py --tensorboard JOB`: a job's TensorBoard event files on this machine, and TensorBoard on them.

The trainers write event files to ``output_dir/tensorboard`` (template_runtime/metrics.py); in a job
that is SM_OUTPUT_DATA_DIR, so they reach S3 inside ``output.tar.gz``, in its ``tensorboard/``
folder. A job created with a TensorBoardOutputConfig has them under that S3 prefix instead (also
while it runs). Either way they are downloaded into ``results/<job>/tensorboard/``, and TensorBoard
is started there on 127.0.0.1 (never on all interfaces: it has no authentication).

Locally, `make tensorboard` shows every run under runs/ the same way.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from launcher.errors import LaunchError

HOST = "127.0.0.1"
DEFAULT_PORT = 6006
FOLDER = "tensorboard"


def command(logdir: Path, port: int) -> list[str]:
    """TensorBoard on ``logdir``, bound to loopback (run with this interpreter, whose venv has it)."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        HOST,
        "--port",
        str(port),
    ]


def fetch_event_files(boto_session, description: dict, dest: Path) -> Path:
    """Download the job's event files into ``dest/<job>/tensorboard`` (replacing what was there)."""
    job = description["TrainingJobName"]
    folder = Path(dest).expanduser() / job / FOLDER
    s3 = boto_session.client("s3")
    with tempfile.TemporaryDirectory(prefix="tensorboard-") as tmp:
        staging = Path(tmp) / FOLDER
        staging.mkdir()
        config = description.get("TensorBoardOutputConfig") or {}
        if config.get("S3OutputPath"):
            source = config["S3OutputPath"]
            count = _download_prefix(s3, source, staging)
        else:
            source = (
                f"{description['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output/output.tar.gz"
            )
            count = _extract_from_output(s3, source, Path(tmp), staging)
        if count == 0:
            raise LaunchError(
                f"{job} left no TensorBoard event files in {source}: does its trainer log metrics "
                "(self.log_metrics) into output_dir/tensorboard, and has the job finished?"
            )
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), folder)
    print(f"{count} TensorBoard event file(s) of {job} from {source} in {folder}", flush=True)
    return folder


def start(logdir: Path, port: int) -> None:
    """Replace this process with TensorBoard (Ctrl-C stops it); print the command and the address first."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise LaunchError(
            "TensorBoard is not installed in this environment: pip install -r requirements/launcher.txt, "
            f"or run: tensorboard --logdir {logdir} --host {HOST} --port {port}"
        ) from None
    print(f"TensorBoard: http://{HOST}:{port}/  (Ctrl-C stops it)", flush=True)
    print("  " + " ".join(["tensorboard", *command(logdir, port)[3:]]), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command(logdir, port))


def _download_prefix(s3, uri: str, folder: Path) -> int:
    """Every object under ``uri`` into ``folder`` (same relative paths); how many were event files."""
    from botocore.exceptions import ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    count = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = Path(item["Key"][len(prefix) :])
                if item["Key"].endswith("/") or ".." in relative.parts or relative.is_absolute():
                    continue
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(target))
                count += "tfevents" in relative.name
    except ClientError as error:
        raise LaunchError(f"could not read {uri}: {error}") from None
    return count


def _extract_from_output(s3, uri: str, tmp: Path, folder: Path) -> int:
    """The ``tensorboard/`` members of output.tar.gz into ``folder``; how many were event files."""
    from botocore.exceptions import ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    archive = tmp / "output.tar.gz"
    try:
        s3.download_file(bucket, key, str(archive))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return 0
        raise LaunchError(f"could not download {uri}: {error}") from None
    count = 0
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name.removeprefix("./")).parts
            if len(parts) > 1 and parts[0] == FOLDER and member.isfile():
                member.name = str(Path(*parts[1:]))
                members.append(member)
                count += "tfevents" in parts[-1]
        tar.extractall(folder, members=members, filter="data")  # no absolute paths, no links out
    return count
