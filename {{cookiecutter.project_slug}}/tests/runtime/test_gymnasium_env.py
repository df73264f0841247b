"""Gymnasium views of the batched env: a single env and a vector env on the simulated build.

(Stable-Baselines3 itself trains through sb3_vec_env in tests/sb3/, run in the bench venv.)
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from template_runtime.gymnasium_env import UnityGymnasiumEnv, UnityGymnasiumVectorEnv, to_gymnasium_space
from trainer import LocalTrainer

pytestmark = pytest.mark.usefixtures("no_internet")


class Host(LocalTrainer):
    def run(self):
        pass


@pytest.fixture
def vec(sim_executable, tmp_path):
    """vec(**config) -> a UnityVecEnv on the simulated build (closed afterwards)."""
    trainers = []

    def make(**config):
        base = {"runs_dir": str(tmp_path / "runs"), "project_file": "", "timeout_wait": 30}
        trainer = Host({**base, **config}, argv=[])
        trainers.append(trainer)
        return trainer.make_vec_env(sim_executable)

    yield make
    for trainer in trainers:
        trainer.close_env()


def test_single_env_speaks_gymnasium_and_ends_episodes_at_the_step_limit(vec):
    env = UnityGymnasiumEnv(vec(env_parameters={"max_steps": 3}))
    assert isinstance(env.observation_space, gymnasium.spaces.Box) and env.observation_space.shape == (8,)
    assert isinstance(env.action_space, gymnasium.spaces.Box) and env.action_space.shape == (2,)
    obs, info = env.reset(seed=1)
    assert obs.shape == (8,) and info == {}
    results = [env.step(env.action_space.sample()) for _ in range(3)]
    assert [(r[2], r[3]) for r in results] == [(False, False), (False, False), (False, True)]
    assert results[-1][4]["episode"]["l"] == 3 and isinstance(results[-1][1], float)
    next_obs, _ = env.reset()  # the episode Unity already started, without restarting the scene
    assert next_obs.shape == (8,) and not np.allclose(next_obs, results[-1][0])


def test_single_env_refuses_a_build_with_several_agents(vec):
    env = UnityGymnasiumEnv(vec(multiagent=True, additional_args=["--agents", "2"]))
    with pytest.raises(ValueError, match="has 2.*UnityGymnasiumVectorEnv"):
        env.reset()


def test_vector_env_runs_a_cleanrl_style_loop_with_episode_statistics(vec):
    unity = vec(multiagent=True, additional_args=["--agents", "3"], env_parameters={"max_steps": 5})
    envs = RecordEpisodeStatistics(UnityGymnasiumVectorEnv(unity))  # as CleanRL wraps its envs
    assert envs.num_envs == 3 and envs.single_observation_space.shape == (8,)
    assert envs.action_space.shape == (3, 2)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, 8)
    seen, expected = [], []
    for _ in range(12):
        obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
        expected += [(round(e.reward, 4), e.length) for e in unity.pop_finished()]
        if "episode" in infos:
            done = infos["_episode"]
            seen += [
                (round(float(r), 4), int(n))
                for r, n in zip(infos["episode"]["r"][done], infos["episode"]["l"][done], strict=True)
            ]
            assert np.array_equal(done, infos["_final_obs"]) and np.array_equal(
                done, terminations | truncations
            )
            assert all(o.shape == (8,) for o in infos["final_obs"][done])
    assert len(seen) >= 6 and max(n for _, n in seen) <= 5
    assert sorted(seen) == sorted(expected)  # Gymnasium's own bookkeeping agrees with the runtime's
    envs.close()


def test_spaces_convert_to_gymnasium_classes():
    import gym

    assert to_gymnasium_space(gym.spaces.Discrete(4)) == gymnasium.spaces.Discrete(4)
    assert to_gymnasium_space(gym.spaces.MultiDiscrete([3, 2])) == gymnasium.spaces.MultiDiscrete([3, 2])
    box = to_gymnasium_space(gym.spaces.Box(0, 255, (4, 4, 3), np.uint8))
    assert box == gymnasium.spaces.Box(0, 255, (4, 4, 3), np.uint8)
    with pytest.raises(TypeError, match="no Gymnasium equivalent"):
        to_gymnasium_space(gym.spaces.Dict({}))
