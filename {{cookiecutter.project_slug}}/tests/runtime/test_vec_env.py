"""UnityVecEnv: one or several Unity instances (each in a worker process) seen as one batch of agents."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from sim_fixtures import free_base_port

from trainer import LocalTrainer, UnityEnvOptionError

pytestmark = pytest.mark.usefixtures("no_internet", "sim_python")


class Host(LocalTrainer):
    """A trainer whose run() opens the envs and hands them to a test function."""

    def __init__(self, tmp_path: Path, zip_path: Path, check, **config):
        settings = {
            "zip_env_name": str(zip_path),
            "build_folder": str(tmp_path / "build"),
            "runs_dir": str(tmp_path / "runs"),
            "project_file": "",
            "worker_id": free_base_port(2) - 5005,
            **config,
        }
        super().__init__(settings, argv=[])
        self.check = check

    def run(self, num_envs: int):
        with self.make_vec_env(num_envs=num_envs) as envs:
            return self.check(envs)


def test_two_instances_batch_their_agents_with_their_own_seeds_and_workers(sim_build_zip, tmp_path):
    def check(envs):
        obs = envs.reset()
        actions = np.zeros((envs.num_agents, 2), np.float32)
        return obs, envs.step(actions), envs.sizes, (envs.num_envs, envs.num_agents)

    host = Host(tmp_path, sim_build_zip, check, multiagent=True, additional_args=["--agents", "3"])
    obs, (next_obs, rewards, terminated, truncated, infos), sizes, counts = host.run(num_envs=2)
    assert counts == (2, 6) and sizes == [3, 3] and obs.shape == next_obs.shape == (6, 8)
    assert not np.allclose(obs[:3], obs[3:])  # seed and seed + 1: different starts
    assert rewards.shape == terminated.shape == truncated.shape == (6,) and rewards.dtype == np.float32
    logs = sorted(p.name for p in (host.output_dir / "unity_logs").iterdir())
    assert logs == [f"Player-{host.worker_id}.log", f"Player-{host.worker_id + 1}.log"]
    assert not multiprocessing.active_children()


def test_an_episode_cut_by_the_step_limit_is_truncated_with_its_final_observation(sim_build_zip, tmp_path):
    def check(envs):
        envs.reset()
        return [envs.step(np.zeros((1, 2), np.float32)) for _ in range(3)], envs.pop_finished()

    host = Host(tmp_path, sim_build_zip, check, additional_args=["--max-steps", "3"])
    steps, finished = host.run(num_envs=1)
    obs, rewards, terminated, truncated, infos = steps[-1]
    assert [bool(s[3][0]) for s in steps] == [False, False, True] and not terminated[0]
    final = infos[0]["terminal_observation"]
    assert not np.allclose(final, obs[0])  # obs: the next episode's start
    assert finished == [(pytest.approx(0.3), 3, True)]


def test_an_error_in_an_env_worker_reaches_the_trainer_with_its_type_and_advice(sim_build_zip, tmp_path):
    host = Host(tmp_path, sim_build_zip, lambda envs: envs.reset(), additional_args=["--agents", "2"])
    with pytest.raises(UnityEnvOptionError, match="set multiagent=True"):
        host.run(num_envs=2)
    assert not multiprocessing.active_children()


def test_two_instances_close_every_player_and_worker(sim_build_zip, tmp_path):
    def check(envs):
        envs.reset()
        return list(envs.unity_pids), list(host.unity_pids)

    host = Host(tmp_path, sim_build_zip, check)
    env_pids, trainer_pids = host.run(num_envs=2)
    assert len(env_pids) == 2 and sorted(env_pids) == sorted(trainer_pids)
    assert host.unity_pids == [] and not multiprocessing.active_children()
    for pid in env_pids:
        assert not Path(f"/proc/{pid}").exists()


def test_stats_the_build_reports_are_combined_by_their_aggregation():
    from mlagents_envs.side_channel.stats_side_channel import StatsAggregationMethod as Method

    from template_runtime.vec_env import combine_stats

    stats = {
        "a": [(1.0, Method.AVERAGE), (3.0, Method.AVERAGE)],
        "b": [(1.0, Method.MOST_RECENT), (5.0, Method.MOST_RECENT)],
        "c": [(2.0, Method.SUM), (2.5, Method.SUM)],
        "h": [(1.0, Method.HISTOGRAM), (2.0, Method.HISTOGRAM)],
        "empty": [],
    }
    assert combine_stats(stats) == {"a": 2.0, "b": 5.0, "c": 4.5, "h": 1.5}
