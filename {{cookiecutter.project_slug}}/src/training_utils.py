"""Plumbing shared by the learning examples (ppo_trainer.py, tf_trainer.py), kept out of their way.

An algorithm file should read top to bottom as the algorithm; what is not the algorithm lives here:

* ``open_parallel_envs``: ``num_envs`` Unity instances (each with one or, with ``multiagent``, several
  agents) as one batch of parallel envs, stepped concurrently, with episode statistics;
* ``save_checkpoint`` / ``load_latest_checkpoint``: arrays + JSON state, written whole or not at all;
* ``plot_learning_curve``: metrics.jsonl to a PNG (matplotlib's Agg backend, no display needed).

No TensorFlow here: the trainers convert their variables to NumPy arrays themselves.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gym import spaces

CHECKPOINT_PREFIX = "checkpoint-"


# ----------------------------------------------------------------------------------------------
# Several Unity instances as one batch of envs


def open_parallel_envs(trainer, unity_file: str, num_envs: int) -> ParallelEnvs:
    """Start ``num_envs`` players of ``unity_file`` through ``trainer.get_gym_env``.

    Instance ``i`` gets seed ``seed + i`` (identical seeds would play identical episodes) and the
    next free worker_id after the previous instance's, so no port is tried twice. The trainer closes
    them all when ``run()`` ends, however it ends.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs={num_envs} must be at least 1 (the number of Unity instances)")
    seed, worker_id = trainer.seed, trainer.config["worker_id"]
    envs = []
    try:
        for offset in range(num_envs):
            trainer.seed = seed + offset
            envs.append(trainer.get_gym_env(unity_file))
            trainer.config["worker_id"] = trainer.worker_id + 1
    finally:
        trainer.seed, trainer.config["worker_id"] = seed, worker_id
    return ParallelEnvs(envs, multiagent=bool(trainer.config["multiagent"]))


class ParallelEnvs:
    """Gym envs (one agent each) or ``MultiAgentUnityEnv``s (several) seen as ``num_envs`` parallel envs.

    ``reset() -> obs`` and ``step(actions) -> (obs, rewards, terminated, truncated, final_obs)`` with
    one row per agent over all instances (``num_envs`` = total agents). An agent whose episode ended
    is restarted at once: its row of ``obs`` is already the next episode's, and the last observation
    of the finished episode is ``final_obs[row]`` (needed to bootstrap a truncated episode).
    ``truncated`` means Unity's max step was reached, ``terminated`` that the episode really ended.
    Instances are stepped in threads: a step is mostly a wait for the player's gRPC call, which
    releases the GIL, so two players on two cores work at the same time.
    """

    def __init__(self, envs: list, multiagent: bool):
        self.envs, self.multiagent = envs, multiagent
        self.observation_space = envs[0].observation_space
        self.action_space = envs[0].action_space
        if isinstance(self.observation_space, spaces.Tuple):
            raise ValueError(
                "allow_multiple_visual_obs=True gives several images per observation, which these examples "
                "do not handle: set allow_multiple_visual_obs=False (the first camera is used)"
            )
        self._pool = ThreadPoolExecutor(len(envs), thread_name_prefix="unity-step") if len(envs) > 1 else None
        self.sizes: list[int] = []
        self.num_envs = 0
        self.episode_returns = np.zeros(0)
        self.episode_lengths = np.zeros(0, dtype=np.int64)
        self.finished: list[tuple[float, int]] = []  # (return, length) of episodes ended since last pop

    def _map(self, function, *per_env):
        if self._pool is None:
            return [function(*args) for args in zip(self.envs, *per_env, strict=True)]
        return list(self._pool.map(function, self.envs, *per_env))

    def reset(self) -> np.ndarray:
        observations = self._map(_reset_one if not self.multiagent else _reset_many)
        self.sizes = [len(obs) for obs in observations]
        self.num_envs = sum(self.sizes)
        self._splits = np.cumsum(self.sizes)[:-1]
        self.episode_returns = np.zeros(self.num_envs)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        return np.concatenate(observations)

    def step(self, actions: np.ndarray):
        step = _step_many if self.multiagent else _step_one
        if len(self.envs) == 1:  # the common case, without splitting and joining
            obs, rewards, terminated, truncated, final_obs = step(self.envs[0], actions)
        else:
            results = self._map(step, np.split(np.asarray(actions), self._splits))
            obs, rewards, terminated, truncated = (np.concatenate([r[i] for r in results]) for i in range(4))
            final_obs, start = {}, 0
            for size, result in zip(self.sizes, results, strict=True):
                final_obs.update({start + row: value for row, value in result[4].items()})
                start += size
        self.episode_returns += rewards
        self.episode_lengths += 1
        for row in np.flatnonzero(terminated | truncated):
            self.finished.append((float(self.episode_returns[row]), int(self.episode_lengths[row])))
            self.episode_returns[row], self.episode_lengths[row] = 0.0, 0
        return obs, rewards, terminated, truncated, final_obs

    def pop_finished(self) -> list[tuple[float, int]]:
        finished, self.finished = self.finished, []
        return finished

    def close(self) -> None:
        """Stop the stepping threads (the trainer closes the Unity players themselves)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reset_one(env) -> np.ndarray:
    return np.asarray(env.reset())[None]


def _reset_many(env) -> np.ndarray:
    return np.stack(env.reset())


def _step_one(env, action: np.ndarray):
    """One gym-wrapper env: a finished episode is reset here, in the stepping thread."""
    obs, reward, done, info = env.step(action[0])
    truncated = bool(done and info["step"].interrupted[0])
    final = {}
    if done:
        final[0] = obs
        obs = env.reset()
    return (
        np.asarray(obs)[None],
        np.array([reward], np.float32),
        np.array([done and not truncated]),
        np.array([truncated]),
        final,
    )


def _step_many(env, actions: np.ndarray):
    """One MultiAgentUnityEnv: Unity restarts each agent by itself (see its docstring)."""
    obs, rewards, dones, info = env.step(actions)
    dones, truncated = np.asarray(dones, bool), np.asarray(info["interrupted"], bool)
    return (
        np.stack(obs),
        np.asarray(rewards, np.float32),
        dones & ~truncated,
        dones & truncated,
        info["terminal_observations"],
    )


# ----------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(
    folder: Path, step: int, arrays: Mapping[str, np.ndarray], state: Mapping, keep: int = 2
) -> Path:
    """Write ``folder/checkpoint-<step>/`` (arrays.npz + state.json) whole or not at all; keep the last ``keep``.

    Written to a hidden folder first and renamed, so a kill while saving leaves the previous checkpoint
    as the latest. In a job ``folder`` is /opt/ml/checkpoints, which SageMaker copies to S3 and back
    after a spot interruption.
    """
    folder = Path(folder)
    final = folder / f"{CHECKPOINT_PREFIX}{int(step):012d}"
    partial = folder / f".partial-{final.name}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.savez(partial / "arrays.npz", **arrays)
    (partial / "state.json").write_text(json.dumps({"step": int(step), **state}, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    for old in _checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_latest_checkpoint(folder: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """``(arrays, state)`` of the newest complete checkpoint in ``folder``, or None if there is none."""
    found = _checkpoints(Path(folder))
    if not found:
        return None
    with np.load(found[-1] / "arrays.npz") as data:
        arrays = {name: data[name] for name in data.files}
    state = json.loads((found[-1] / "state.json").read_text(encoding="utf-8"))
    state["path"] = str(found[-1])
    return arrays, state


def _checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.glob(f"{CHECKPOINT_PREFIX}*")
        if path.is_dir() and (path / "state.json").is_file() and (path / "arrays.npz").is_file()
    )


def restore_arrays(target: list, saved: list[np.ndarray], what: str, path: str) -> None:
    """Assign saved arrays to variables (anything with ``.shape`` and ``.assign``), checking they fit."""
    shapes = [tuple(v.shape) for v in target]
    if len(saved) != len(target) or any(
        tuple(s.shape) != shape for s, shape in zip(saved, shapes, strict=False)
    ):
        raise ValueError(
            f"the checkpoint {path} does not fit this {what} (saved shapes {[a.shape for a in saved]}, "
            f"expected {shapes}): it was made with other settings (network size, observations, actions). "
            "Resume with the same settings, or set checkpoint_dir to an empty folder to start afresh"
        )
    for variable, value in zip(target, saved, strict=True):
        variable.assign(value)


# ----------------------------------------------------------------------------------------------
# Learning curve


def plot_learning_curve(
    metrics_file: Path, png: Path, title: str, metric: str = "episode_reward_mean"
) -> Path | None:
    """Plot ``metric`` against step from a metrics.jsonl file; None if it has no such values yet."""
    points = []
    if Path(metrics_file).is_file():
        for line in Path(metrics_file).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if isinstance(record.get(metric), int | float):
                points.append((record["step"], record[metric]))
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display in a job or CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    axes.plot(*zip(*points, strict=True))
    axes.set(xlabel="step", ylabel=metric, title=title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return Path(png)


def write_scalars(writer, step: int, metrics: Mapping[str, float]) -> None:
    """TensorBoard scalars through TensorFlow's own summary op: the ``tensorboard`` package (which
    tf.summary.scalar needs, and tensorflow-cpu no longer installs) is only needed to view them."""
    import tensorflow as tf
    from tensorflow.core.framework.summary_pb2 import SummaryMetadata

    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    with writer.as_default(step=int(step)):
        for name, value in metrics.items():
            tf.summary.write(name, tf.constant(float(value), tf.float32), metadata=metadata)
