"""The trainer's command line: fast --help with each key's comment, "did you mean", run names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def trainer_command(*argv: str, script: str = "random_trainer.py", cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(SRC / script), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def imported(result) -> set[str]:
    """Top-level packages the run imported (python -X importtime writes them to stderr)."""
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_help_lists_every_key_with_its_comment_without_loading_unity_or_tensorflow():
    result = trainer_command("--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--episodes INT" in result.stdout and "stop after this many finished episodes" in result.stdout
    assert "--worker_id INT" in result.stdout and "port 5005 + worker_id" in result.stdout
    assert "--run_id" in result.stdout and "--resume" in result.stdout
    assert not {"mlagents_envs", "tensorflow", "numpy", "gym"} & imported(result)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--episods", "3"], "unknown key --episods; did you mean --episodes?"),
        (["--wrker_id", "3"], "did you mean --worker_id?"),
        (["--episodes", "three"], "episodes='three' is not a whole number"),
        (["--episodes"], "--episodes needs a value"),
        (["episodes=3"], "is not a --key"),
        (["--zzz", "1"], "unknown key --zzz\n"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2_before_anything_loads(argv, message):
    result = trainer_command(*argv)
    errors = result.stderr
    assert result.returncode == 2 and message in errors and "Traceback" not in errors
    assert not {"mlagents_envs", "numpy"} & imported(result)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run_id", "../x"], "--run_id '../x' must use letters"),
        (["--resume"], "--resume needs --run_id NAME"),
        (["--run_id", "a", "--resume"], "keeps no checkpoints to resume from"),
    ],
)
def test_run_flags_are_checked_and_explained(argv, message, tmp_path):
    result = trainer_command("--local", "--runs_dir", str(tmp_path), "--project_file", "", *argv)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_run_id_names_the_run_folder(tmp_path, sim_build_zip):
    result = trainer_command(
        "--local", "--runs_dir", str(tmp_path / "runs"), "--project_file", "", "--run_id", "first",
        "--zip_env_name", str(sim_build_zip), "--build_folder", str(tmp_path / "build"), "--episodes", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "first"
    assert (run / "output/summary.json").is_file() and (run / "run_config.json").is_file()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["first"]
