"""Live TensorBoard: the request names the trainer's event folder, S3 gets its files while a job runs."""

from __future__ import annotations

import ast
import threading

import botocore.session
from botocore.validate import validate_parameters
from conftest import REPO_ROOT
from test_dry_run import dead_endpoint  # noqa: F401  (fixture)

from launcher import api, live_tensorboard

MODEL = botocore.session.get_session().get_service_model("sagemaker")


def dry_run_here(project, **values) -> dict:
    request = api.dry_run(api.load_settings(project_file=str(project.file), role=project.role, **values))
    for thread in threading.enumerate():
        if thread.name == "sagemaker-telemetry":
            thread.join(timeout=30)
    return request


def test_request_syncs_the_trainers_event_folder_under_the_base_job_name(dead_endpoint, refused_lookups):  # noqa: F811
    request = dry_run_here(dead_endpoint, base_job_name="tb-test")
    validate_parameters(request, MODEL.operation_model("CreateTrainingJob").input_shape)
    assert request["TensorBoardOutputConfig"] == {
        "LocalPath": "/opt/ml/output/data/tensorboard",
        "S3OutputPath": f"s3://{dead_endpoint.bucket}/tb-test",
    }


def test_live_tensorboard_can_be_switched_off(dead_endpoint, refused_lookups):  # noqa: F811
    assert "TensorBoardOutputConfig" not in dry_run_here(dead_endpoint, live_tensorboard=False)


def test_local_path_is_where_every_trainer_writes_in_a_job():
    """trainer.tensorboard_dir is output_dir/"tensorboard"; output_dir is SM_OUTPUT_DATA_DIR in a job."""
    tree = ast.parse((REPO_ROOT / "src" / "trainer.py").read_text())
    trainer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    methods = {n.name: ast.unparse(n) for n in trainer.body if isinstance(n, ast.FunctionDef)}
    assert "return self.output_dir / 'tensorboard'" in methods["tensorboard_dir"]
    assert "'SM_OUTPUT_DATA_DIR', '/opt/ml/output/data'" in methods["output_dir"]
    assert live_tensorboard.LOCAL_PATH == "/opt/ml/output/data/tensorboard"


def test_the_job_uri_is_where_sagemaker_puts_the_files():
    request = {
        "TrainingJobName": "tb-test-20260101000000",
        "TensorBoardOutputConfig": {
            "S3OutputPath": "s3://b/tb-test",
            "LocalPath": live_tensorboard.LOCAL_PATH,
        },
    }
    assert live_tensorboard.job_uri(request) == "s3://b/tb-test/tb-test-20260101000000/tensorboard-output/"
    assert live_tensorboard.watch_command(live_tensorboard.job_uri(request), "tb-test-20260101000000") == (
        "(while true; do aws s3 sync s3://b/tb-test/tb-test-20260101000000/tensorboard-output/ "
        "runs/tensorboard/tb-test-20260101000000 --quiet; sleep 30; done) & "
        "tensorboard --logdir runs/tensorboard/tb-test-20260101000000"
    )


def test_sync_sends_new_and_changed_files_only(project, tmp_path):
    folder = tmp_path / "tensorboard"
    folder.mkdir()
    (folder / "events.out.tfevents.1").write_bytes(b"one")
    sync = live_tensorboard.Sync(project.s3(), folder, f"s3://{project.bucket}/base/job/tensorboard-output/")
    assert (sync.sync_once(), sync.sync_once()) == (1, 0)
    (folder / "events.out.tfevents.1").write_bytes(b"one and more")
    (folder / "run2").mkdir()
    (folder / "run2" / "events.out.tfevents.2").write_bytes(b"two")
    assert sync.sync_once() == 2
    assert sorted(project.keys("base/job/tensorboard-output/")) == [
        "base/job/tensorboard-output/events.out.tfevents.1",
        "base/job/tensorboard-output/run2/events.out.tfevents.2",
    ]


def test_sync_in_the_background_sends_the_last_files_when_stopped(project, tmp_path):
    folder = tmp_path / "tensorboard"
    sync = live_tensorboard.Sync(project.s3(), folder, f"s3://{project.bucket}/p/", seconds=3600).start()
    folder.mkdir()
    (folder / "events.out.tfevents.1").write_bytes(b"late")
    sync.stop()
    assert project.keys("p/") == ["p/events.out.tfevents.1"]
