"""The PPO example on the simulated build: it learns, exports a policy that reloads, resumes after SIGTERM.

The post-generation hook deletes this file with src/ppo_trainer.py when PPO is not chosen, so nothing
else may import from it.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from learning_helpers import (
    assert_unity_model_matches_saved_model,
    finish,
    free_worker_id,
    local_config,
    mean_return,
    serve,
    start_job,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_trainer import PPOTrainer
from ppo_trainer import config as script_config
from template_runtime import checkpoints as checkpoints_module
from template_runtime.checkpoints import verify_checkpoint
from trainer import ConfigError

pytestmark = pytest.mark.usefixtures("no_internet", "sim_python")

SRC = Path(__file__).resolve().parents[2] / "src"

METRIC_LINE = re.compile(
    r"^step=(\d+) episode_reward_mean=\S+ episode_length_mean=\S+ fps=\S+ policy_loss=\S+ "
    r".*learning_rate=\S+$"
)


def short_run(tmp_path: Path, zip_path: Path, **extra) -> PPOTrainer:
    """Two small updates: enough to exercise a code path, not to learn."""
    values = {"additional_args": ["--agents", "4"], "n_steps": 32, "batch_size": 64, "total_timesteps": 256}
    trainer = PPOTrainer(local_config(script_config, tmp_path, zip_path, **{**values, **extra}), argv=[])
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def trained(sim_build_zip, tmp_path_factory) -> tuple[PPOTrainer, dict]:
    """The default setup (continuous actions, 12 agents) trained for 61,440 steps."""
    tmp_path = tmp_path_factory.mktemp("ppo_trained")
    trainer = PPOTrainer(
        local_config(script_config, tmp_path, sim_build_zip, total_timesteps=60_000, seed=1), argv=[]
    )
    return trainer, trainer.run()


@pytest.mark.slow
def test_ppo_learns_to_balance_far_better_than_random_actions(trained, sim_executable):
    trainer, summary = trained
    random_return = mean_return(sim_executable, None, 20, [])
    learned_return = mean_return(sim_executable, serve(trainer.model_dir), 10, [])
    print(f"random {random_return:.2f}, PPO after {summary['total_steps']} steps {learned_return:.2f}")
    assert summary["total_steps"] == 61_440 and not summary["stopped_early"]
    assert learned_return > max(10.0, 5 * random_return)


@pytest.mark.slow
def test_saved_model_serves_the_trained_agents_deterministic_actions(trained):
    trainer, _ = trained
    observations = np.random.default_rng(0).normal(0, 1, (64, 8)).astype(np.float32)
    expected = trainer.agent.deterministic_actions(tf.constant(observations)).numpy()
    reloaded = serve(trainer.model_dir)(observations)
    assert reloaded.shape == (64, 2) and np.allclose(reloaded, expected, atol=1e-6)
    assert np.abs(reloaded).max() <= 1.0
    assert_unity_model_matches_saved_model(trainer.model_dir, observations * 3)


def test_continuous_unity_model_equals_the_saved_model_with_the_normaliser_inside(sim_build_zip, tmp_path):
    trainer = short_run(tmp_path, sim_build_zip)
    observations = np.random.default_rng(1).normal(0, 3, (500, 8)).astype(np.float32)
    assert_unity_model_matches_saved_model(trainer.model_dir, observations)
    provenance = json.loads((trainer.model_dir / "3DBall.onnx.json").read_text())
    assert provenance["policy"]["normalizer_inside"] and provenance["steps"] == 256
    assert provenance["behavior"]["name"] == "3DBall" and provenance["trainer"] == "ppo"


@pytest.mark.slow
def test_a_run_leaves_metrics_tensorboard_curve_and_final_checkpoint(trained):
    trainer, summary = trained
    records = [json.loads(line) for line in (trainer.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(3072, 61_441, 3072))  # 12 agents x 256 n_steps
    assert {"episode_reward_mean", "fps", "approx_kl", "explained_variance"} <= set(records[-1])
    assert list((trainer.output_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (trainer.output_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (trainer.checkpoint_dir / "checkpoint-000000061440" / "arrays.npz").is_file()
    assert json.loads((trainer.output_dir / "summary.json").read_text())["total_steps"] == 61_440


@pytest.mark.parametrize(
    ("action_type", "shape", "high"),
    [("discrete", (5,), 8), ("branched", (5, 2), 2)],
    ids=["discrete", "branched"],
)
def test_discrete_action_builds_export_integer_actions_per_branch(
    sim_build_zip, tmp_path, action_type, shape, high
):
    args = ["--agents", "4", "--action-type", action_type]
    trainer = short_run(tmp_path, sim_build_zip, additional_args=args)
    actions = serve(trainer.model_dir)(np.zeros((5, 8), np.float32))
    assert actions.shape == shape and actions.dtype == np.int64
    assert actions.min() >= 0 and actions.max() <= high
    observations = np.random.default_rng(2).normal(0, 3, (500, 8)).astype(np.float32)
    assert_unity_model_matches_saved_model(trainer.model_dir, observations)


def test_camera_observations_train_through_the_cnn_and_export(sim_build_zip, tmp_path):
    args = ["--agents", "4", "--observations", "visual", "--image-size", "32"]
    trainer = short_run(tmp_path, sim_build_zip, additional_args=args, use_visual=True)
    actions = serve(trainer.model_dir)(np.zeros((3, 32, 32, 3), np.float32))
    assert actions.shape == (3, 2) and trainer.agent.encoder is not None
    images = np.random.default_rng(3).random((100, 32, 32, 3), dtype=np.float32)
    assert_unity_model_matches_saved_model(trainer.model_dir, images)


def test_two_unity_instances_run_side_by_side_on_their_own_worker_ids(sim_build_zip, tmp_path):
    worker_id = free_worker_id(2)
    trainer = short_run(
        tmp_path,
        sim_build_zip,
        num_envs=2,
        multiagent=False,
        additional_args=["--agents", "1"],
        worker_id=worker_id,
    )
    logs = sorted(p.name for p in (trainer.output_dir / "unity_logs").iterdir())
    assert logs == [f"Player-{worker_id}.log", f"Player-{worker_id + 1}.log"]
    records = (trainer.output_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in records] == [64, 128, 192, 256]  # 2 envs x n_steps 32 per update
    assert not multiprocessing.active_children()  # the two env workers (and their players) are gone


@pytest.mark.parametrize(
    ("key", "value"),
    [("gamma", 1.5), ("n_steps", 0), ("hidden_sizes", ["wide"]), ("hidden_sizes", [64.7])],
    ids=["gamma", "n_steps", "hidden", "hidden_fraction"],
)
def test_bad_hyperparameters_are_refused_before_unity_starts(sim_build_zip, tmp_path, key, value):
    with pytest.raises(ConfigError, match=re.escape(f"{key}={value!r}")):  # when made, or in run()
        PPOTrainer(local_config(script_config, tmp_path, sim_build_zip, **{key: value}), argv=[]).run()
    assert not (tmp_path / "build").exists()


def test_batch_size_larger_than_a_rollout_is_refused_with_the_sizes(sim_build_zip, tmp_path):
    expected = r"batch_size=4096 is more than a rollout \(4 agents x 32 n_steps\)"
    with pytest.raises(ConfigError, match=expected):
        short_run(tmp_path, sim_build_zip, batch_size=4096)


# ----------------------------------------------------------------------------------------------
# Stop and resume, as a SageMaker job: the build comes from the input channel "env"


def metric_steps(lines) -> list[int]:
    return [int(m.group(1)) for m in map(METRIC_LINE.match, lines) if m]


def test_sigterm_saves_a_checkpoint_and_the_restarted_job_continues_from_it(sim_build_zip, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    job = start_job("ppo_trainer.py", tmp_path, sim_build_zip, checkpoints, total=10_000_000)
    try:
        seen = []
        for line in job.stdout:  # one line per update; stop the job after the second
            seen += metric_steps([line.strip()])
            if len(seen) == 2:
                job.send_signal(signal.SIGTERM)  # what SageMaker does to stop a job or on spot interruption
                break
        remaining = job.communicate(timeout=120)[0]
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert seen == [3072, 6144] and job.returncode == 0
    (saved,) = sorted(checkpoints.glob("checkpoint-*"))
    stopped_at = int(saved.name.split("-")[1])
    assert stopped_at == max(seen + metric_steps(remaining.splitlines()))

    resumed = start_job("ppo_trainer.py", tmp_path, sim_build_zip, checkpoints, total=stopped_at + 6144)
    try:
        output = resumed.communicate(timeout=180)[0]
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait()
    assert resumed.returncode == 0
    assert metric_steps(output.splitlines()) == [stopped_at + 3072, stopped_at + 6144]
    assert f"at step {stopped_at}" in output  # "resuming from <checkpoint> at step <n>"
    summary = json.loads((tmp_path / "opt_ml/output/data/summary.json").read_text())
    assert summary["resumed_from"] == stopped_at and summary["total_steps"] == stopped_at + 6144
    assert (tmp_path / "opt_ml/model/1/saved_model.pb").is_file()


def run_local(tmp_path: Path, zip_path: Path, *argv: str) -> subprocess.Popen:
    """``python src/ppo_trainer.py --local ...`` as a user runs it, with runs/ in tmp_path."""
    settings = ["--zip_env_name", str(zip_path), "--build_folder", str(tmp_path / "build")]
    settings += ["--runs_dir", str(tmp_path / "runs"), "--project_file", ""]
    settings += ["--worker_id", str(free_worker_id())]
    small = ["--additional_args", "--agents 4", "--n_steps", "64", "--batch_size", "128"]
    return subprocess.Popen(
        [sys.executable, str(SRC / "ppo_trainer.py"), "--local", *settings, *small, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_named_run_stopped_by_sigterm_resumes_in_place_with_one_continuous_record(sim_build_zip, tmp_path):
    first = run_local(tmp_path, sim_build_zip, "--run_id", "ball", "--total_timesteps", "1000000")
    try:
        seen = []
        for line in first.stdout:
            seen += metric_steps([line.strip()])
            if len(seen) == 3:
                first.send_signal(signal.SIGTERM)  # Ctrl-C's cousin: the run saves a checkpoint and stops
                break
        first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    run = tmp_path / "runs" / "ball"
    (saved,) = sorted((run / "checkpoints").glob("checkpoint-*"))
    stopped_at = int(saved.name.split("-")[1])

    again = subprocess.run(
        [sys.executable, str(SRC / "ppo_trainer.py"), "--local", "--runs_dir", str(tmp_path / "runs"),
         "--project_file", "", "--run_id", "ball"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 1 and "exists already. Add --resume" in again.stderr
    assert "Traceback" not in again.stderr

    budget = str(stopped_at + 512)
    resumed = run_local(tmp_path, sim_build_zip, "--run_id", "ball", "--resume", "--total_timesteps", budget)
    output = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0, output[-3000:]
    assert "total_timesteps changed: 1000000 -> " in output
    records = [json.loads(line) for line in (run / "output/metrics.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in records]
    assert steps == sorted(set(steps)) and steps[-1] == stopped_at + 512  # one file, steps increasing
    assert stopped_at in steps and len(list(tmp_path.glob("runs/*"))) == 1  # no second run folder
    events = EventAccumulator(str(run / "output/tensorboard"))
    events.Reload()  # TensorBoard purges what the first part logged after the checkpoint
    board_steps = [scalar.step for scalar in events.Scalars("episode_reward_mean")]
    assert board_steps == steps
    assert (run / "output/learning_curve.png").is_file() and (run / "model/1/saved_model.pb").is_file()


# ----------------------------------------------------------------------------------------------
# A damaged newest checkpoint is no crash loop: the restarted job resumes from the one before


def stop_after(job, updates: int) -> list[int]:
    """Read the job's metric lines, SIGTERM it after ``updates`` of them; every step it logged."""
    seen = []
    for line in job.stdout:
        seen += metric_steps([line.strip()])
        if len(seen) == updates:
            job.send_signal(signal.SIGTERM)
            break
    return seen + metric_steps(finish(job, 120).splitlines())


@pytest.fixture(scope="module")
def stopped_job_checkpoints(sim_build_zip, tmp_path_factory) -> Path:
    """Two checkpoints as a spot-interrupted job leaves them: a run of 3072 steps, then a resumed run
    stopped by SIGTERM after its first update (3072 more steps)."""
    tmp_path = tmp_path_factory.mktemp("ppo_stopped")
    checkpoints = tmp_path / "checkpoints"
    first = start_job("ppo_trainer.py", tmp_path, sim_build_zip, checkpoints, total=3072)
    assert metric_steps(finish(first, 180).splitlines()) == [3072] and first.returncode == 0
    second = start_job("ppo_trainer.py", tmp_path, sim_build_zip, checkpoints, total=10_000_000)
    steps = stop_after(second, 1)
    assert steps == [6144] and second.returncode == 0
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "checkpoint-000000003072",
        "checkpoint-000000006144",
    ]
    return checkpoints


def _edit_recent_returns(folder: Path) -> None:
    """Still valid JSON of the right step: only the manifest can tell it changed."""
    state = json.loads((folder / "state.json").read_text())
    state["recent_returns"] = [1000.0]
    (folder / "state.json").write_text(json.dumps(state))


NEWEST_DAMAGE = {
    "truncated npz": lambda c: (c / "arrays.npz").write_bytes((c / "arrays.npz").read_bytes()[:1000]),
    "bad state.json": lambda c: (c / "state.json").write_text('{"step": 6144, "rng": '),
    "empty file": lambda c: (c / "arrays.npz").write_bytes(b""),
    "missing manifest": lambda c: (c / "manifest.json").unlink(),
    "manifest mismatch": _edit_recent_returns,
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(NEWEST_DAMAGE))
def test_restart_after_sigterm_skips_a_damaged_newest_checkpoint(
    stopped_job_checkpoints, sim_build_zip, tmp_path, damage
):
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(stopped_job_checkpoints, checkpoints)
    newest = checkpoints / "checkpoint-000000006144"
    NEWEST_DAMAGE[damage](newest)
    (checkpoints / ".partial-checkpoint-000000009216-77").mkdir()  # as a kill during a write leaves it

    resumed = start_job("ppo_trainer.py", tmp_path, sim_build_zip, checkpoints, total=3072 + 6144)
    if damage == "truncated npz":  # stopped again after one update: its checkpoint replaces the damaged one
        steps, output = stop_after(resumed, 1), ""
    else:
        output = finish(resumed, 180)
        steps = metric_steps(output.splitlines())
    assert resumed.returncode == 0, output
    assert steps[:1] == [6144]  # resumed from 3072, not from the damaged 6144 and not from 0
    if output:
        assert steps == [6144, 9216]
        assert f"skipping checkpoint {newest}: " in output
        assert "resuming from the older checkpoint checkpoint-000000003072" in output
        assert "at step 3072" in output
        summary = json.loads((tmp_path / "opt_ml/output/data/summary.json").read_text())
        assert summary["resumed_from"] == 3072 and summary["total_steps"] == 9216
    else:
        verify_checkpoint(newest)  # rewritten whole by the resumed run
    assert not list(checkpoints.glob(".partial-checkpoint-*"))


def test_a_checkpoint_that_cannot_be_written_is_a_warning_and_training_goes_on(
    sim_build_zip, tmp_path, monkeypatch, caplog
):
    real_savez, calls = checkpoints_module.np.savez, []

    def savez_then_disk_full(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(*args, **kwargs)

    monkeypatch.setattr(checkpoints_module.np, "savez", savez_then_disk_full)
    with caplog.at_level(logging.WARNING):
        trainer = short_run(tmp_path, sim_build_zip, checkpoint_frequency=128)
    assert len(calls) == 3  # at 128 (written), at 256 and at the end (both refused: disk full)
    assert "could not write checkpoint" in caplog.text and "ENOSPC" in caplog.text
    assert "the latest checkpoint is still checkpoint-000000000128" in caplog.text
    assert sorted(p.name for p in trainer.checkpoint_dir.iterdir()) == ["checkpoint-000000000128"]
    assert (trainer.model_dir / "1" / "saved_model.pb").is_file()
