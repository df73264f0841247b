"""Live TensorBoard: SageMaker copies the trainer's event files to S3 while the job runs.

Every trainer writes TensorBoard scalars to ``trainer.tensorboard_dir`` = output_dir/tensorboard,
which in a job is /opt/ml/output/data/tensorboard. The request's TensorBoardOutputConfig names
that folder (LocalPath) and ``s3://<bucket>/<base-job-name>`` (S3OutputPath); SageMaker adds
``<job-name>/tensorboard-output/`` under it (what SDK v3 documents for its default and SDK v2's
``latest_job_tensorboard_artifacts_path`` assumes), so a job's event files land beside its
checkpoints, in ``s3://<bucket>/<base-job-name>/<job-name>/tensorboard-output/``, and stay in
output.tar.gz as before. A tuning job's definition has no TensorBoardOutputConfig (CreateHyper-
ParameterTuningJob has no such field): its jobs' event files are in their output.tar.gz.

``Sync`` does the copying for a job run here (container.py), every few seconds and at the end.
"""

from __future__ import annotations

import threading
from pathlib import Path

LOCAL_PATH = "/opt/ml/output/data/tensorboard"
FOLDER = "tensorboard-output"
SYNC_SECONDS = 10.0


def job_uri(request: dict) -> str | None:
    """Where a CreateTrainingJob request's event files appear in S3 while it runs (None: not set)."""
    config = request.get("TensorBoardOutputConfig")
    if not config:
        return None
    return f"{config['S3OutputPath'].rstrip('/')}/{request['TrainingJobName']}/{FOLDER}/"


def watch_command(uri: str, job_name: str) -> str:
    """A command that follows the job in TensorBoard with nothing but the AWS CLI and tensorboard.

    (TensorBoard reads s3:// itself only with TensorFlow's S3 filesystem, tensorflow-io, which the
    launcher's environment does not have; syncing a local copy works everywhere.)
    """
    local = f"runs/tensorboard/{job_name}"
    return (
        f"(while true; do aws s3 sync {uri} {local} --quiet; sleep 30; done) & tensorboard --logdir {local}"
    )


def describe(request: dict) -> str | None:
    uri = job_uri(request)
    if uri is None:
        return None
    return (
        f"TensorBoard:   {uri}  (live: SageMaker copies {request['TensorBoardOutputConfig']['LocalPath']} "
        f"there while the job runs)\n  watch it:    {watch_command(uri, request['TrainingJobName'])}"
    )


class Sync:
    """Copy new or changed files of ``folder`` to ``uri`` every ``seconds`` and once more at stop()."""

    def __init__(self, s3, folder: Path, uri: str, seconds: float = SYNC_SECONDS):
        self.s3, self.folder, self.seconds = s3, Path(folder), seconds
        self.bucket, _, self.prefix = uri.removeprefix("s3://").partition("/")
        self._sent: dict[Path, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tensorboard-sync", daemon=True)

    def start(self) -> Sync:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sync_once()

    def sync_once(self) -> int:
        """Upload what changed since the last call; returns how many files went."""
        sent = 0
        if not self.folder.is_dir():
            return 0
        for file in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            stat = file.stat()
            if self._sent.get(file) == (stat.st_size, stat.st_mtime_ns):
                continue
            key = f"{self.prefix.rstrip('/')}/{file.relative_to(self.folder).as_posix()}"
            self.s3.upload_file(str(file), self.bucket, key)
            self._sent[file] = (stat.st_size, stat.st_mtime_ns)
            sent += 1
        return sent

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.sync_once()
            except Exception:  # noqa: BLE001  (a failed copy is retried next time, and at stop())
                continue
