"""The random example end to end on the simulated build: as a SageMaker job (S3 on moto) and locally."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from random_trainer import RandomTrainer
from random_trainer import config as script_config

pytestmark = pytest.mark.usefixtures("no_internet", "sim_python")

REPO = Path(__file__).resolve().parents[2]
METRIC_LINE = re.compile(
    r"^step=\d+ episode=\d+ episode_reward=\S+ episode_length=\d+ episode_reward_mean=\S+ "
    r"episode_length_mean=\S+ fps=\S+$"
)


def local_config(tmp_path: Path, zip_path: Path, **extra) -> dict:
    return {
        **script_config,
        "zip_env_name": str(zip_path),
        "build_folder": str(tmp_path / "build"),
        "runs_dir": str(tmp_path / "runs"),
        "project_file": "",
        "episodes": 3,
        **extra,
    }


def test_job_fetches_build_from_s3_and_writes_summary_to_sagemaker_folders(
    aws, s3_bucket, sim_build_zip, tmp_path, monkeypatch
):
    boto3.client("s3").upload_file(str(sim_build_zip), s3_bucket, "builds/3DBall.zip")
    opt_ml = tmp_path / "opt_ml"
    hyperparameters = {
        "bucket": s3_bucket,
        "zip_env_name": "builds/3DBall.zip",
        "episodes": 2,
        "no_graphics": True,
    }
    env = {
        **os.environ,
        "SM_TRAINING_ENV": "{}",
        "SM_HPS": json.dumps(hyperparameters),
        "SM_MODEL_DIR": str(opt_ml / "model"),
        "SM_OUTPUT_DATA_DIR": str(opt_ml / "output/data"),
    }
    argv = [arg for key, value in hyperparameters.items() for arg in (f"--{key}", str(value))]
    (tmp_path / "code").mkdir()
    result = subprocess.run(
        [sys.executable, str(REPO / "src/random_trainer.py"), *argv],
        cwd=tmp_path / "code",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metric_lines = [line for line in result.stdout.splitlines() if METRIC_LINE.match(line)]
    assert len(metric_lines) == 2
    summary = json.loads((opt_ml / "output/data/summary.json").read_text())
    assert summary["episodes"] == 2 and summary["total_steps"] == sum(summary["lengths"])
    assert (tmp_path / "code/unity_build/3DBall.x86_64").exists()


def test_local_run_writes_summary_and_metrics_to_the_run_folder(sim_build_zip, tmp_path):
    trainer = RandomTrainer(local_config(tmp_path, sim_build_zip), argv=[])
    summary = trainer.run()
    assert summary["episodes"] == 3 and len(summary["returns"]) == len(summary["lengths"]) == 3
    assert all(length > 0 for length in summary["lengths"]) and not summary["stopped_early"]
    saved = json.loads((trainer.output_dir / "summary.json").read_text())
    assert saved["returns"] == summary["returns"]
    assert len((trainer.output_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert trainer.output_dir.parent.parent == tmp_path / "runs"


def test_local_run_from_the_command_line_like_make_demo(sim_build_zip, tmp_path):
    argv = [
        "--local",
        "--zip_env_name",
        str(sim_build_zip),
        "--env_file",
        "3DBall",
        "--build_folder",
        str(tmp_path / "b"),
        "--runs_dir",
        str(tmp_path / "runs"),
        "--project_file",
        "",
        "--episodes",
        "2",
    ]
    result = subprocess.run(
        [sys.executable, str(REPO / "src/random_trainer.py"), *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"random-\d{8}-\d{6}", run.name)
    assert json.loads((run / "output/summary.json").read_text())["episodes"] == 2


def test_same_seed_gives_the_same_episodes(sim_build_zip, tmp_path):
    first = RandomTrainer(local_config(tmp_path, sim_build_zip, seed=7), argv=[]).run()
    second = RandomTrainer(local_config(tmp_path, sim_build_zip, seed=7), argv=[]).run()
    assert first["returns"] == second["returns"] and first["lengths"] == second["lengths"]


def test_multiagent_counts_episodes_over_all_agents(sim_build_zip, tmp_path):
    config = local_config(
        tmp_path, sim_build_zip, multiagent=True, episodes=5, additional_args=["--agents", "3"]
    )
    summary = RandomTrainer(config, argv=[]).run()
    assert summary["episodes"] == 5 and summary["total_steps"] % 3 == 0


def test_stop_request_ends_the_run_early_with_a_summary(sim_build_zip, tmp_path):
    class StoppedAfterOneEpisode(RandomTrainer):
        def log_metrics(self, step, **metrics):
            logged = super().log_metrics(step, **metrics)
            self._on_signal(signal.SIGTERM, None)  # what SageMaker's stop does, without a real signal
            return logged

    summary = StoppedAfterOneEpisode(local_config(tmp_path, sim_build_zip, episodes=50), argv=[]).run()
    assert summary["stopped_early"] and summary["episodes"] == 1
