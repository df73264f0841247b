"""Helpers the learning examples' tests share (test_ppo_trainer.py, test_tf_trainer.py).

The post-generation hook keeps this file whenever one of those examples is chosen (it goes with
src/template_runtime/tf_blocks.py and vec_env.py), so both test files may import it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from sim_fixtures import free_base_port, open_sim_env

from template_runtime.onnx_check import check_onnx
from template_runtime.onnx_export import deterministic_actions
from template_runtime.unity import make_single_agent_env

REPO = Path(__file__).resolve().parents[2]
BASE_PORT = 5005  # UnityEnvironment's base port for builds: worker_id w listens on 5005 + w


def free_worker_id(count: int = 1) -> int:
    """A worker_id whose ports are free now, so parallel test runs do not trip over each other."""
    return free_base_port(count) - BASE_PORT


def local_config(script_config: Mapping, tmp_path: Path, zip_path: Path, **extra) -> dict:
    """The script's config for a local run that keeps everything under ``tmp_path``."""
    return {
        **script_config,
        "zip_env_name": str(zip_path),
        "build_folder": str(tmp_path / "build"),
        "runs_dir": str(tmp_path / "runs"),
        "project_file": "",
        "worker_id": free_worker_id(),
        **extra,
    }


def serve(model_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The exported SavedModel's ``serving_default``: a batch of observations -> actions."""
    signature = tf.saved_model.load(str(model_dir / "1")).signatures["serving_default"]
    return lambda observations: signature(observations=tf.constant(observations))["actions"].numpy()


def assert_unity_model_matches_saved_model(model_dir: Path, observations: np.ndarray) -> np.ndarray:
    """model_dir/3DBall.onnx passes the contract check, its export check agreed, and onnxruntime's
    deterministic actions equal the SavedModel's (to 1e-5; discrete ones exactly, flat DQN indices
    mapped to Unity's branches). Returns onnxruntime's actions."""
    path = model_dir / "3DBall.onnx"
    report = check_onnx(path, draws=10)
    assert report.ok, report.text()
    provenance = json.loads(path.with_name("3DBall.onnx.json").read_text())
    assert provenance["check"]["matches"], provenance["check"]
    unity = deterministic_actions(path, observations)
    saved = serve(model_dir)(observations)
    if np.issubdtype(unity.dtype, np.integer):
        branches = provenance["behavior"]["discrete_branches"]
        if saved.ndim == 1 and len(branches) > 1:  # flatten_branched: flat index -> one per branch
            saved = np.array(np.unravel_index(saved, branches)).T
        np.testing.assert_array_equal(unity, saved.reshape(unity.shape))
    else:
        np.testing.assert_allclose(unity, saved, atol=1e-5)
    return unity


def mean_return(
    executable: str, policy, episodes: int, additional_args: list[str], flatten_branched: bool = False
) -> float:
    """Mean return of ``policy`` (None: random actions) over episodes of at most 200 steps (best: 20)."""
    with open_sim_env(
        executable, seed=123, additional_args=[*additional_args, "--max-steps", "200"]
    ) as unity:
        options = {"use_visual": False, "use_uint8_visual": False, "allow_multiple_visual_obs": False}
        env = make_single_agent_env(unity, flatten_branched=flatten_branched, seed=123, **options)
        returns = []
        for _ in range(episodes):
            obs, done, total = env.reset(), False, 0.0
            while not done:
                action = env.action_space.sample() if policy is None else policy(obs[None])[0]
                obs, reward, done, _ = env.step(action)
                total += reward
            returns.append(total)
    return float(np.mean(returns))


def start_job(
    script: str, tmp_path: Path, sim_build_zip: Path, checkpoints: Path, total: int
) -> subprocess.Popen:
    """Run ``src/<script>`` as a SageMaker job would: SM_* folders, the build in the "env" channel."""
    channel = tmp_path / "channel"
    channel.mkdir(exist_ok=True)
    shutil.copy(sim_build_zip, channel / "3DBall.zip")
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "SM_TRAINING_ENV": "{}",
        "SM_HPS": json.dumps({"total_timesteps": total}),
        "SM_MODEL_DIR": str(tmp_path / "opt_ml/model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "opt_ml/output/data"),
        "SM_CHANNEL_ENV": str(channel),
    }
    argv = ["--total_timesteps", str(total), "--checkpoint_dir", str(checkpoints)]
    argv += ["--worker_id", str(free_worker_id()), "--checkpoint_frequency", "100000000"]
    return subprocess.Popen(
        [sys.executable, str(REPO / "src" / script), *argv],
        cwd=code,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # log lines and messages in order; the metric regex picks the metrics
        text=True,
    )


def finish(job: subprocess.Popen, timeout: float) -> str:
    """The rest of the job's output; the job is killed if it outlives ``timeout``."""
    try:
        return job.communicate(timeout=timeout)[0]
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
