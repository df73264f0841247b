"""Stable-Baselines3 2.x trains on a Unity build through the runtime's adapter, its code unchanged.

Runs in the bench venv (requirements/bench.txt: torch + stable-baselines3 on top of the training
set; `make test-sb3`), which the image and the training venv do not carry.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecMonitor

from template_runtime.gymnasium_env import UnityGymnasiumEnv, sb3_vec_env
from trainer import LocalTrainer

pytestmark = pytest.mark.usefixtures("no_internet")


class Host(LocalTrainer):
    def run(self):
        pass


@pytest.fixture
def host(tmp_path):
    trainer = Host({"runs_dir": str(tmp_path / "runs"), "project_file": "", "timeout_wait": 30}, argv=[])
    yield trainer
    trainer.close_env()


@pytest.mark.slow
def test_sb3_ppo_learns_the_simulated_task_on_every_agent(host, sim_executable):
    torch.set_num_threads(1)  # two cores: a second torch thread would fight the Unity player
    host.config.update(multiagent=True, additional_args=["--agents", "8"], seed=3)
    envs = VecMonitor(sb3_vec_env(host.make_vec_env(sim_executable)))
    assert envs.num_envs == 8
    model = PPO("MlpPolicy", envs, n_steps=128, batch_size=256, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=20_000)
    rewards = [info["r"] for info in model.ep_info_buffer]
    assert len(rewards) >= 20 and model.num_timesteps >= 20_000
    early, late = np.mean(rewards[:10]), np.mean(rewards[-10:])
    assert late > early + 0.5, (early, late)  # it learned: later episodes balance longer


def test_sb3_evaluates_a_single_gymnasium_env(host, sim_executable):
    env = Monitor(UnityGymnasiumEnv(host.make_vec_env(sim_executable)))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0, device="cpu", verbose=0)
    mean, std = evaluate_policy(model, env, n_eval_episodes=3)
    assert np.isfinite(mean) and mean > -1.5
