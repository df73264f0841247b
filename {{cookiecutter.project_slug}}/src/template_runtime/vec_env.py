"""``UnityVecEnv``: the one env API every trainer uses, in Stable-Baselines3's VecEnv vocabulary.

``num_envs`` Unity instances (one in this process, or each in a worker process when there are
several, see workers.py) and ``num_agents`` agents over all of them, one row each:

    obs = envs.reset()                                   # [num_agents, *observation_space.shape]
    obs, rewards, terminated, truncated, infos = envs.step(actions)   # actions: one row per agent

An agent whose episode ended is restarted by Unity at once: its row of ``obs`` is already the next
episode's first observation, and ``infos[row]`` holds the last one of the finished episode
(``terminal_observation``, as in SB3) with ``episode`` = ``{"r": return, "l": length}`` and
``TimeLimit.truncated``. ``truncated``: Unity's max step was reached; ``terminated``: the episode
really ended (bootstrap from ``terminal_observation`` only when truncated). ``pop_finished()`` lists
the episodes ended since the last call, ``pop_stats()`` what the build reported through the
StatsSideChannel. gymnasium_env.py adapts this to Gymnasium and to SB3's own VecEnv class.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import NamedTuple

import numpy as np
from mlagents_envs.side_channel.stats_side_channel import StatsAggregationMethod

from template_runtime.unity import AgentBatch, EnvSettings, RunningPlayer, start_player
from template_runtime.workers import EnvWorker


class Episode(NamedTuple):
    """One finished episode of one agent."""

    reward: float
    length: int
    truncated: bool


def open_vec_env(unity_file: str | os.PathLike, settings: EnvSettings, num_envs: int = 1) -> UnityVecEnv:
    """``num_envs`` instances of ``unity_file`` (instance ``i`` gets ``settings.for_instance(i)``)."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} must be a whole number of at least 1 (Unity instances)")
    if num_envs == 1:
        player = start_player(unity_file, settings)
        try:
            batch = AgentBatch(player.env, multiagent=settings.multiagent, **settings.view_options)
        except BaseException:
            player.close()
            raise
        return UnityVecEnv([_InProcess(player, batch)])
    workers: list[EnvWorker] = []
    try:
        for index in range(num_envs):
            workers.append(EnvWorker(unity_file, settings.for_instance(index), name=f"unity-env-{index}"))
        for worker in workers:
            worker.wait_ready()
    except BaseException:
        for worker in workers:
            worker.close()
        raise
    return UnityVecEnv(workers)


class UnityVecEnv:
    """Every agent of ``num_envs`` Unity instances as one batch; see the module docstring."""

    def __init__(self, instances: list):
        self.instances = instances
        first = instances[0]
        self.num_envs = len(instances)
        self.observation_space, self.action_space = first.observation_space, first.action_space
        self.behavior_name, self.behavior_spec = first.behavior_name, first.behavior_spec
        self.num_agents = 0  # known after reset()
        self.sizes: list[int] = []
        self._finished: list[Episode] = []
        self._stats: dict[str, list] = defaultdict(list)
        self._closed = False

    @property
    def unity_pids(self) -> list[int]:
        """Process ids of the Unity players (in this process's instance or in the workers)."""
        return [pid for pid in (instance.player_pid for instance in self.instances) if pid is not None]

    def reset(self) -> np.ndarray:
        for instance in self.instances:
            instance.request("reset")
        observations = [instance.result() for instance in self.instances]
        self.sizes = [len(obs) for obs in observations]
        self.num_agents = sum(self.sizes)
        self._splits = np.cumsum(self.sizes)[:-1]
        self._returns = np.zeros(self.num_agents)
        self._lengths = np.zeros(self.num_agents, dtype=np.int64)
        return observations[0] if len(observations) == 1 else np.concatenate(observations)

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if not self.num_agents:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if len(self.instances) == 1:  # the common case, without splitting and joining
            self.instances[0].request("step", actions)
            obs, rewards, terminated, truncated, final_obs, stats = self.instances[0].result()
            self._add_stats(stats)
        else:
            if len(actions) != self.num_agents:
                raise ValueError(f"step() needs one action per agent ({self.num_agents}): {actions.shape}")
            for instance, part in zip(self.instances, np.split(actions, self._splits), strict=True):
                instance.request("step", part)  # every instance steps at once
            results = [instance.result() for instance in self.instances]
            obs, rewards, terminated, truncated = (np.concatenate([r[i] for r in results]) for i in range(4))
            final_obs, start = {}, 0
            for size, result in zip(self.sizes, results, strict=True):
                final_obs.update({start + row: value for row, value in result[4].items()})
                self._add_stats(result[5])
                start += size
        self._returns += rewards
        self._lengths += 1
        infos: list[dict] = [{} for _ in range(self.num_agents)]
        for row in np.flatnonzero(terminated | truncated):
            episode = Episode(float(self._returns[row]), int(self._lengths[row]), bool(truncated[row]))
            self._finished.append(episode)
            infos[row] = {
                "terminal_observation": final_obs[row],
                "episode": {"r": episode.reward, "l": episode.length},
                "TimeLimit.truncated": episode.truncated,
            }
            self._returns[row], self._lengths[row] = 0.0, 0
        return obs, rewards, terminated, truncated, infos

    def pop_finished(self) -> list[Episode]:
        """The episodes that ended since the last call (return, length, truncated), oldest first."""
        finished, self._finished = self._finished, []
        return finished

    def pop_stats(self) -> dict[str, float]:
        """The build's custom stats since the last call, each combined the way the build asked
        (average, most recent, sum; a histogram as its mean), like mlagents-learn's summaries."""
        stats, self._stats = self._stats, defaultdict(list)
        return combine_stats(stats)

    def _add_stats(self, stats: dict) -> None:
        for name, values in stats.items():
            self._stats[name].extend(values)

    def close(self) -> None:
        """Close every instance (and its player); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for instance in self.instances:
            try:
                instance.close()
            except Exception as error:  # close the others anyway
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def combine_stats(stats: dict[str, list[tuple[float, StatsAggregationMethod]]]) -> dict[str, float]:
    """Each stat's values combined the way the build asked for them."""
    return {name: _combine(values) for name, values in stats.items() if values}


def _combine(values: list[tuple[float, StatsAggregationMethod]]) -> float:
    method = values[-1][1]
    numbers = [value for value, _ in values]
    if method == StatsAggregationMethod.MOST_RECENT:
        return float(numbers[-1])
    if method == StatsAggregationMethod.SUM:
        return float(np.sum(numbers))
    return float(np.mean(numbers))  # AVERAGE, and HISTOGRAM summarised by its mean


class _InProcess:
    """The only instance, in this process: the same request/result calls as an ``EnvWorker``."""

    def __init__(self, player: RunningPlayer, batch: AgentBatch):
        self.player, self.batch = player, batch
        self.observation_space, self.action_space = batch.observation_space, batch.action_space
        self.behavior_name, self.behavior_spec = batch.behavior_name, batch.behavior_spec
        self.worker_id, self.player_pid = player.worker_id, player.pid
        self._pending: tuple[str, object] = ("", None)

    def request(self, command: str, data=None) -> None:
        self._pending = (command, data)

    def result(self):
        command, data = self._pending
        if command == "reset":
            return self.batch.reset()
        return (*self.batch.step(data), self.player.pop_stats())

    def close(self) -> None:
        self.player.close()
