"""The container-side emulation's pieces: the /opt/ml layout and how channels are laid out from S3."""

from __future__ import annotations

import json

import pytest

from launcher import container
from launcher.errors import LaunchError


def test_opt_ml_paths_in_hyperparameters_move_to_the_local_folder(tmp_path):
    moved = container._local_path(json.dumps("/opt/ml/checkpoints/run1"), tmp_path)
    assert json.loads(moved) == f"{tmp_path}/checkpoints/run1"


def test_other_hyperparameters_are_left_alone(tmp_path):
    assert [container._local_path(v, tmp_path) for v in ('"/opt/mlx"', "3", "text")] == [
        '"/opt/mlx"',
        "3",
        "text",
    ]


def test_a_prefix_channel_keeps_the_folders_below_the_prefix(project, tmp_path):
    s3 = project.s3()
    for key in ("job/input/code/trainer.py", "job/input/code/pkg/util.py", "job/input/codebase.txt"):
        s3.put_object(Bucket=project.bucket, Key=key, Body=b"x")
    container._download_prefix(s3, f"s3://{project.bucket}/job/input/code", tmp_path / "code")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "code").rglob("*") if p.is_file())
    assert found == ["code/codebase.txt", "code/pkg/util.py", "code/trainer.py"]


def test_an_object_channel_lands_under_its_file_name(project, tmp_path):
    project.s3().put_object(Bucket=project.bucket, Key="builds/3DBall.zip", Body=b"PK")
    container._download_prefix(project.s3(), f"s3://{project.bucket}/builds/3DBall.zip", tmp_path / "env")
    assert (tmp_path / "env" / "3DBall.zip").read_bytes() == b"PK"


def test_an_empty_channel_is_reported(project, tmp_path):
    with pytest.raises(LaunchError, match="nothing in S3 under"):
        container._download_prefix(project.s3(), f"s3://{project.bucket}/missing/", tmp_path / "x")


def test_container_python_must_be_an_interpreter(tmp_path):
    with pytest.raises(LaunchError, match="is not an executable Python"):
        container._container_python(tmp_path / "python")


def test_a_v2_request_needs_sagemaker_training_beside_the_python(tmp_path):
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text("#!/bin/sh\n")
    request = {"AlgorithmSpecification": {}, "HyperParameters": {"sagemaker_program": '"random_trainer.py"'}}
    with pytest.raises(LaunchError, match="install requirements/image.txt"):
        container._driver(request, tmp_path / "opt_ml", python)
