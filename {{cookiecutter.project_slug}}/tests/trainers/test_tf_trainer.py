"""The DQN example (tf_trainer.py) on the simulated build with discrete actions: it learns, exports a
greedy policy that reloads, refuses actions it cannot handle, and resumes after SIGTERM.

The post-generation hook deletes this file with src/tf_trainer.py when the tf example is not chosen, so
nothing else may import from it.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import signal
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

from tf_trainer import DQNTrainer
from tf_trainer import config as script_config
from trainer import ConfigError

pytestmark = pytest.mark.usefixtures("no_internet", "sim_python")

METRIC_LINE = re.compile(
    r"^step=(\d+) episode_reward_mean=\S+ episode_length_mean=\S+ fps=\S+ loss=\S+ q_values=\S+ epsilon=\S+ "
    r"replay_size=\d+$"
)
DISCRETE = ["--action-type", "discrete"]


def short_run(tmp_path: Path, zip_path: Path, **extra) -> DQNTrainer:
    """A few hundred steps with some training: enough to exercise a code path, not to learn."""
    values = {"additional_args": [*DISCRETE, "--agents", "4"], "total_timesteps": 400, "learning_starts": 64}
    values.update(batch_size=32, checkpoint_frequency=200)
    trainer = DQNTrainer(local_config(script_config, tmp_path, zip_path, **{**values, **extra}), argv=[])
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def trained(sim_build_zip, tmp_path_factory) -> tuple[DQNTrainer, dict]:
    """The default setup (9 discrete actions, 12 agents) trained for 60,000 steps."""
    tmp_path = tmp_path_factory.mktemp("dqn_trained")
    trainer = DQNTrainer(
        local_config(script_config, tmp_path, sim_build_zip, total_timesteps=60_000), argv=[]
    )
    return trainer, trainer.run()


@pytest.mark.slow
def test_dqn_learns_to_balance_far_better_than_random_actions(trained, sim_executable):
    trainer, summary = trained
    random_return = mean_return(sim_executable, None, 20, DISCRETE, flatten_branched=True)
    learned_return = mean_return(
        sim_executable, serve(trainer.model_dir), 10, DISCRETE, flatten_branched=True
    )
    print(f"random {random_return:.2f}, DQN after {summary['total_steps']} steps {learned_return:.2f}")
    assert summary["total_steps"] == 60_000 and not summary["stopped_early"]
    assert learned_return > max(8.0, 5 * random_return)


@pytest.mark.slow
def test_saved_model_serves_the_greedy_actions_of_the_trained_q_network(trained):
    trainer, _ = trained
    observations = np.random.default_rng(0).normal(0, 1, (64, 8)).astype(np.float32)
    expected = tf.argmax(trainer.q_network(tf.constant(observations)), axis=1).numpy()
    reloaded = serve(trainer.model_dir)(observations)
    assert reloaded.dtype == np.int64 and np.array_equal(reloaded, expected)
    assert_unity_model_matches_saved_model(trainer.model_dir, observations)


@pytest.mark.slow
def test_a_run_leaves_metrics_tensorboard_curve_and_final_checkpoint(trained):
    trainer, _ = trained
    records = [json.loads(line) for line in (trainer.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) >= 50 and records[-1]["epsilon"] == pytest.approx(0.05)
    assert list((trainer.output_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (trainer.output_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(trainer.checkpoint_dir / "checkpoint-000000060000" / "arrays.npz") as saved:
        assert saved["replay_obs"].shape == (100_000, 8) and list(saved["replay_position"]) == [60_000, 0]


def test_continuous_actions_are_refused_with_what_to_use_instead(sim_build_zip, tmp_path):
    with pytest.raises(ConfigError, match=r"DQN needs discrete actions.*use ppo_trainer\.py"):
        short_run(tmp_path, sim_build_zip, additional_args=["--agents", "2"])


def test_branched_actions_without_flattening_are_refused_naming_the_option(sim_build_zip, tmp_path):
    args = ["--agents", "2", "--action-type", "branched"]
    with pytest.raises(ConfigError, match=r"2 discrete action branches \[3, 3\].*set flatten_branched=True"):
        short_run(tmp_path, sim_build_zip, additional_args=args, flatten_branched=False)


def test_branched_actions_are_learned_as_one_flattened_discrete_action(sim_build_zip, tmp_path):
    trainer = short_run(
        tmp_path, sim_build_zip, additional_args=["--agents", "4", "--action-type", "branched"]
    )
    actions = serve(trainer.model_dir)(np.zeros((5, 8), np.float32))
    assert actions.shape == (5,) and actions.min() >= 0 and actions.max() < 9
    observations = np.random.default_rng(2).normal(0, 3, (500, 8)).astype(np.float32)
    unity = assert_unity_model_matches_saved_model(trainer.model_dir, observations)
    assert unity.shape == (500, 2)  # Unity's two branches, not the flat index


def test_camera_observations_train_through_the_cnn_and_export(sim_build_zip, tmp_path):
    args = [*DISCRETE, "--agents", "4", "--observations", "visual", "--image-size", "32"]
    trainer = short_run(tmp_path, sim_build_zip, additional_args=args, use_visual=True, buffer_size=1000)
    actions = serve(trainer.model_dir)(np.zeros((3, 32, 32, 3), np.float32))
    assert actions.shape == (3,) and trainer.q_network.encoder is not None
    images = np.random.default_rng(3).random((100, 32, 32, 3), dtype=np.float32)
    assert_unity_model_matches_saved_model(trainer.model_dir, images)


def test_two_unity_instances_run_side_by_side_on_their_own_worker_ids(sim_build_zip, tmp_path):
    worker_id = free_worker_id(2)
    trainer = short_run(tmp_path, sim_build_zip, num_envs=2, worker_id=worker_id)
    logs = sorted(p.name for p in (trainer.output_dir / "unity_logs").iterdir())
    assert logs == [f"Player-{worker_id}.log", f"Player-{worker_id + 1}.log"]
    summary = json.loads((trainer.output_dir / "summary.json").read_text())
    assert summary["total_steps"] == 400 and summary["replay_size"] == 400  # 2 builds x 4 agents x 50 steps
    assert not multiprocessing.active_children()  # the two env workers (and their players) are gone


@pytest.mark.parametrize(
    ("key", "value"),
    [("tau", 2.0), ("buffer_size", 0), ("hidden_sizes", [])],
    ids=["tau", "buffer", "hidden"],
)
def test_bad_hyperparameters_are_refused_before_unity_starts(sim_build_zip, tmp_path, key, value):
    with pytest.raises(ConfigError, match=re.escape(f"{key}={value!r}")):  # when made, or in run()
        DQNTrainer(local_config(script_config, tmp_path, sim_build_zip, **{key: value}), argv=[]).run()
    assert not (tmp_path / "build").exists()


# ----------------------------------------------------------------------------------------------
# Stop and resume, as a SageMaker job: the build comes from the input channel "env"


def metric_steps(lines) -> list[int]:
    return [int(m.group(1)) for m in map(METRIC_LINE.match, lines) if m]


def test_sigterm_saves_a_checkpoint_with_the_replay_buffer_and_the_restarted_job_continues(
    sim_build_zip, tmp_path
):
    checkpoints = tmp_path / "checkpoints"
    job = start_job("tf_trainer.py", tmp_path, sim_build_zip, checkpoints, total=10_000_000)
    try:
        for line in job.stdout:  # a line per ~1000 steps; stop the job after the third
            if metric_steps([line.strip()]) and metric_steps([line.strip()])[0] >= 3000:
                job.send_signal(signal.SIGTERM)  # what SageMaker does to stop a job or on spot interruption
                break
    finally:
        finish(job, timeout=120)
    assert job.returncode == 0
    (saved,) = sorted(checkpoints.glob("checkpoint-*"))
    stopped_at = int(saved.name.split("-")[1])
    assert stopped_at >= 3000 and stopped_at % 12 == 0  # 12 agents per step

    resumed = start_job("tf_trainer.py", tmp_path, sim_build_zip, checkpoints, total=stopped_at + 2000)
    output = finish(resumed, timeout=180)
    assert resumed.returncode == 0
    assert f"at step {stopped_at}" in output  # "resuming from <checkpoint> at step <n>"
    assert min(metric_steps(output.splitlines())) > stopped_at
    summary = json.loads((tmp_path / "opt_ml/output/data/summary.json").read_text())
    assert summary["resumed_from"] == stopped_at and summary["total_steps"] >= stopped_at + 2000
    assert summary["replay_size"] == summary["total_steps"]  # the buffer came back with the checkpoint
    assert (tmp_path / "opt_ml/model/1/saved_model.pb").is_file()


def test_dqn_refuses_several_instances_naming_instance_count(sim_build_zip, tmp_path, monkeypatch):
    """DQN trains on one instance: a job with instance_count=2 stops at once on every instance, before
    the build is fetched, with a message that says what to change."""
    monkeypatch.setenv("SM_TRAINING_ENV", "{}")  # inside a job: SageMaker's host list makes the cluster
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_HOSTS", json.dumps(["algo-1", "algo-2"]))
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_HPS", "{}")
    expected = r"DQNTrainer trains on one instance, but this run has 2 workers \(SM_HOSTS\): "
    expected += "set instance_count=1"
    with pytest.raises(ConfigError, match=expected):
        DQNTrainer(local_config(script_config, tmp_path, sim_build_zip), argv=[])
    assert not (tmp_path / "build").exists()
