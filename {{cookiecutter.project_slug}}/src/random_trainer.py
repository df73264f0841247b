"""Random actions on the Unity environment: the smallest complete trainer, and the one to copy.

Writing your own trainer takes three things, all below: a ``config`` dict (every key can be
overridden with ``--key value`` or a SageMaker hyperparameter, keeping its type), a ``Trainer``
subclass whose ``run()`` gets the build, opens the env and trains, and a main guard.

    python src/random_trainer.py --local --episodes 5      # locally: results in runs/random-<time>/
    python src/random_trainer.py --episodes 5              # inside a SageMaker job
"""

from __future__ import annotations

import time

import numpy as np

from trainer import Trainer

config = {
    # The Unity build (trainer.DEFAULT_CONFIG explains every key; for local runs project.toml's
    # [unity_build] section wins over these three).
    "bucket": "",
    "zip_env_name": "builds/3DBall.zip",
    "build_folder": "unity_build",
    "env_file": "3DBall",
    # The environment.
    "worker_id": 0,
    "use_visual": False,
    "use_uint8_visual": False,
    "multiagent": False,
    "flatten_branched": False,
    "allow_multiple_visual_obs": False,
    "no_graphics": True,
    # This trainer's own hyperparameters.
    "episodes": 10,  # episodes to play (over all agents when multiagent)
    "max_episode_steps": 1000,  # end an episode after this many steps even if Unity has not
    "window": 100,  # episode_reward_mean is over the last `window` episodes
}


class RandomTrainer(Trainer):
    """Plays random actions, logs each episode's return and length, writes summary.json."""

    checks_stop_requested = True  # run() returns by itself when SageMaker stops the job

    def run(self) -> dict:
        unity_file = self.download_unity_env()
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.total_steps = 0
        with self.get_gym_env(unity_file) as env:
            started = time.perf_counter()
            if self.config["multiagent"]:
                self._play_multiagent(env, started)
            else:
                self._play(env, started)
        seconds = time.perf_counter() - started
        summary = {
            "episodes": len(self.returns),
            "total_steps": self.total_steps,
            "mean_return": float(np.mean(self.returns)) if self.returns else None,
            "returns": self.returns,
            "lengths": self.lengths,
            "seconds": round(seconds, 3),
            "steps_per_second": round(self.total_steps / seconds, 1) if seconds > 0 else None,
            "stopped_early": self.stop_requested,
            "config": self.config,
        }
        self.write_json("summary.json", summary)
        return summary

    def _play(self, env, started: float) -> None:
        """One agent: the plain gym loop."""
        for _ in range(self.config["episodes"]):
            env.reset()
            done, episode_return, length = False, 0.0, 0
            while not done and length < self.config["max_episode_steps"] and not self.stop_requested:
                _, reward, done, _ = env.step(env.action_space.sample())
                episode_return += float(reward)
                length += 1
            self.total_steps += length
            if self.stop_requested:
                return
            self._episode_done(episode_return, length, started)

    def _play_multiagent(self, env, started: float) -> None:
        """Several agents: one batched step for all of them; each agent's episodes end on their own."""
        env.reset()
        running = np.zeros(env.num_agents)
        lengths = np.zeros(env.num_agents, dtype=int)
        while len(self.returns) < self.config["episodes"] and not self.stop_requested:
            actions = np.stack([env.action_space.sample() for _ in range(env.num_agents)])
            _, rewards, dones, _ = env.step(actions)
            running += rewards
            lengths += 1
            self.total_steps += env.num_agents
            ended = np.asarray(dones) | (lengths >= self.config["max_episode_steps"])
            for agent in np.flatnonzero(ended)[: self.config["episodes"] - len(self.returns)]:
                self._episode_done(float(running[agent]), int(lengths[agent]), started)
            running[ended], lengths[ended] = 0.0, 0

    def _episode_done(self, episode_return: float, length: int, started: float) -> None:
        self.returns.append(episode_return)
        self.lengths.append(length)
        self.log_metrics(
            self.total_steps,
            episode=len(self.returns),
            episode_reward=episode_return,
            episode_length=length,
            episode_reward_mean=float(np.mean(self.returns[-self.config["window"] :])),
            fps=self.total_steps / max(time.perf_counter() - started, 1e-9),
        )


if __name__ == "__main__":
    RandomTrainer(config).run()
