"""Random actions on the Unity environment: the smallest complete trainer, and the one to copy.

Writing your own trainer takes three things, all below: a ``config`` dict of the trainer's own
hyperparameters (every key, and every env key of trainer.DEFAULT_CONFIG, can be overridden with
``--key value`` or a SageMaker hyperparameter, keeping its type), a ``Trainer`` subclass whose
``run()`` opens the envs and trains (declaring in ``metrics`` what it reports besides
``Trainer.base_metrics``), and a main guard.

    python src/random_trainer.py --local --episodes 5      # locally: results in runs/random-<time>/
    python src/random_trainer.py --episodes 5              # inside a SageMaker job
"""

from __future__ import annotations

from trainer import Trainer  # first: answers --help and typos before anything heavy loads

# isort: split
import time
from collections import deque

import numpy as np

config = {
    "episodes": 10,  # stop after this many finished episodes (over all agents)
    "total_timesteps": 1_000_000,  # or after this many agent steps, whichever comes first
    "window": 100,  # episode_reward_mean and episode_length_mean are over the last `window` episodes
}


class RandomTrainer(Trainer):
    """Plays random actions, logs each episode's return and length, writes summary.json."""

    metrics = ("episode", "episode_reward", "episode_length")
    checks_stop_requested = True  # run() returns by itself when SageMaker stops the job

    def run(self) -> dict:
        c = self.config
        returns, lengths, steps = [], [], 0
        recent_returns, recent_lengths = deque(maxlen=c["window"]), deque(maxlen=c["window"])
        with self.make_vec_env() as envs:
            envs.reset()
            started = time.perf_counter()
            while len(returns) < c["episodes"] and steps < c["total_timesteps"] and not self.stop_requested:
                actions = np.stack([envs.action_space.sample() for _ in range(envs.num_agents)])
                envs.step(actions)
                steps += envs.num_agents
                for episode in envs.pop_finished()[: c["episodes"] - len(returns)]:
                    returns.append(episode.reward)
                    lengths.append(episode.length)
                    recent_returns.append(episode.reward)
                    recent_lengths.append(episode.length)
                    self.log_metrics(
                        steps,
                        episode=len(returns),
                        episode_reward=episode.reward,
                        episode_length=episode.length,
                        episode_reward_mean=np.mean(recent_returns),
                        episode_length_mean=np.mean(recent_lengths),
                        fps=steps / max(time.perf_counter() - started, 1e-9),
                    )
        seconds = time.perf_counter() - started
        summary = {
            "episodes": len(returns),
            "total_steps": steps,
            "mean_return": float(np.mean(returns)) if returns else None,
            "returns": returns,
            "lengths": lengths,
            "seconds": round(seconds, 3),
            "steps_per_second": round(steps / seconds, 1) if seconds > 0 else None,
            "stopped_early": self.stop_requested,
            "config": self.config,
        }
        self.write_json("summary.json", summary)
        return summary


if __name__ == "__main__":
    RandomTrainer(config).run()
