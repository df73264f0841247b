"""DQN in plain TensorFlow 2 for a Unity ML-Agents build: the example of writing your own training loop.

Deep Q-learning (Mnih et al. 2015) as in CleanRL's dqn.py and Stable-Baselines3: a replay buffer, a
target network, an epsilon-greedy schedule and a Huber loss, for discrete actions (several action
branches become one Discrete with ``flatten_branched=True``). Everything is in this file: the
Q-network is TensorFlow variables, acting is a NumPy forward pass of a copy of them (a TensorFlow call
per step would cost more than the Unity round trip), and the gradient steps are one compiled
``tf.function``. Continuous actions need ppo_trainer.py.

    python src/tf_trainer.py --local            # the simulated build, with discrete actions (see config)

Results: the greedy policy as a SavedModel in model_dir/1 (``serving_default``: observations ->
actions) and as model_dir/<behaviour>.onnx for Unity's Editor (flattened branches mapped back to
Unity's, action masks honoured), metrics.jsonl, TensorBoard scalars and learning_curve.png in
output_dir, checkpoints (with the replay buffer) in checkpoint_dir; a run resumes from the latest
checkpoint there.
"""

from __future__ import annotations

from trainer import ConfigError, Trainer  # first: answers --help before TensorFlow loads

# isort: split
import time
from collections import deque

import numpy as np
import tensorflow as tf
from gym import spaces

from template_runtime.metrics import plot_learning_curve
from template_runtime.onnx_export import Body, QPolicy
from template_runtime.tf_blocks import (
    Adam,
    ConvEncoder,
    check_hyperparameters,
    export_policy,
    onnx_dense,
    onnx_encoder,
    orthogonal,
    restore_training_state,
    save_training_state,
)

config = {
    # The env keys this trainer sets differently from trainer.DEFAULT_CONFIG (which has them all).
    "multiagent": True,  # sim: every agent of the build is a row of the batch (more data per Unity step)
    "flatten_branched": True,  # DQN needs one Discrete action: several branches become their product
    "additional_args": ["--action-type", "discrete"],  # sim: the simulated build with discrete actions
    # DQN. Published defaults (Stable-Baselines3's DQN) unless marked "sim" (tuned for the simulated 3DBall).
    "total_timesteps": 150_000,  # sim: agent steps over all instances and agents (~75 mean reward by 140k)
    "learning_rate": 1e-3,  # sim (SB3: 1e-4)
    "buffer_size": 100_000,  # sim (SB3: 1_000_000); transitions kept for replay
    "learning_starts": 1_000,  # sim (SB3: 100); random actions until the buffer holds this many
    "batch_size": 128,  # sim (SB3: 32)
    "gamma": 0.99,  # discount factor of future rewards
    "tau": 1.0,  # target network update: 1 = copy, < 1 = Polyak averaging
    "train_frequency": 1,  # sim (SB3: 4); env steps (all agents at once) between training rounds
    "gradient_steps": 1,  # gradient steps per training round
    "target_update_interval": 2_000,  # sim (SB3: 10_000); agent steps between target network updates
    "exploration_fraction": 0.2,  # sim (SB3: 0.1); share of total_timesteps over which epsilon decays
    "exploration_initial_eps": 1.0,  # epsilon (share of random actions) at the start
    "exploration_final_eps": 0.05,  # epsilon after exploration_fraction of the run
    "max_grad_norm": 10.0,  # gradients are clipped to this global norm
    "hidden_sizes": [64, 64],  # ReLU layers of the Q-network
    "checkpoint_frequency": 20_000,  # agent steps between checkpoints (also at the end and on SIGTERM)
    "save_replay_buffer": True,  # in checkpoints, so a resumed run does not start from an empty buffer
    "window": 100,  # episode_reward_mean is over the last `window` episodes
}


POSITIVE = ("total_timesteps", "learning_rate", "buffer_size", "batch_size", "train_frequency")
POSITIVE += ("gradient_steps", "target_update_interval", "checkpoint_frequency", "window")
UNIT = ("gamma", "tau", "exploration_fraction", "exploration_initial_eps", "exploration_final_eps")


def check_action_space(action_space) -> int:
    """DQN picks one of n actions; say what to change for anything else."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        raise ConfigError(
            f"flatten_branched=False: the build has {len(action_space.nvec)} discrete action branches "
            f"{[int(n) for n in action_space.nvec]}, and DQN needs one: set flatten_branched=True"
        )
    raise ConfigError(
        f"DQN needs discrete actions, but the build's actions are {action_space} (continuous): "
        "use ppo_trainer.py, or give the agent discrete actions (the simulated build: --action-type discrete)"
    )


# ----------------------------------------------------------------------------------------------
# The Q-network: TensorFlow variables for learning, a NumPy copy for acting


class QNetwork(tf.Module):
    """Observations -> one Q-value per action: a CNN for images, then ReLU layers (as SB3's DQN)."""

    def __init__(self, observation_space, num_actions: int, hidden: list[int], rng: np.random.Generator):
        super().__init__()
        self.visual = len(observation_space.shape) == 3
        uint8 = observation_space.dtype == np.uint8
        self.encoder = ConvEncoder(observation_space.shape, uint8, rng) if self.visual else None
        sizes = [ConvEncoder.size if self.visual else observation_space.shape[0], *hidden, num_actions]
        gains = [np.sqrt(2.0)] * len(hidden) + [1.0]
        self.w = [
            tf.Variable(orthogonal(rng, (a, b), g))
            for a, b, g in zip(sizes[:-1], sizes[1:], gains, strict=True)
        ]
        self.b = [tf.Variable(tf.zeros(b)) for b in sizes[1:]]

    def features(self, obs):
        return self.encoder(obs) if self.visual else obs

    def __call__(self, obs):
        x = self.features(obs)
        for i, (w, b) in enumerate(zip(self.w, self.b, strict=True)):
            x = x @ w + b if i == len(self.w) - 1 else tf.nn.relu(x @ w + b)
        return x


def unity_policy(q: QNetwork) -> QPolicy:
    """The Q-network as NumPy weights for the Unity model: argmax over the Q-values of allowed actions."""
    *hidden, head = onnx_dense(q.w, q.b)
    return QPolicy(Body(tuple(hidden), "relu", onnx_encoder(q.encoder)), head)


class NumpyQ:
    """The Q-network's dense layers as NumPy arrays, re-copied after every training round."""

    def __init__(self, q: QNetwork):
        self.q = q
        self.sync()

    def sync(self) -> None:
        self.layers = [(w.numpy(), b.numpy()) for w, b in zip(self.q.w, self.q.b, strict=True)]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(self.q.features(obs))
        for w, b in self.layers[:-1]:
            x = np.maximum(x @ w + b, 0.0)
        return x @ self.layers[-1][0] + self.layers[-1][1]


class ReplayBuffer:
    """The last ``size`` transitions in NumPy arrays (next_obs stored: simple, and right at episode ends)."""

    def __init__(self, size: int, obs_shape: tuple[int, ...], obs_dtype):
        self.obs = np.zeros((size, *obs_shape), obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros(size, np.int32)
        self.rewards = np.zeros(size, np.float32)
        self.terminated = np.zeros(
            size, np.float32
        )  # 1 only when the episode really ended (not cut by a step limit)
        self.position, self.full = 0, False

    def add(self, obs, next_obs, actions, rewards, terminated) -> None:
        rows = (self.position + np.arange(len(obs))) % len(self.obs)
        self.obs[rows], self.next_obs[rows], self.actions[rows] = obs, next_obs, actions
        self.rewards[rows], self.terminated[rows] = rewards, terminated
        self.full = self.full or self.position + len(obs) >= len(self.obs)
        self.position = int(rows[-1] + 1) % len(self.obs)

    def __len__(self) -> int:
        return len(self.obs) if self.full else self.position

    def sample(self, rng: np.random.Generator, count: int, batch_size: int) -> list[np.ndarray]:
        """``count`` minibatches at once, each array shaped [count, batch_size, ...]."""
        rows = rng.integers(0, len(self), (count, batch_size))
        return [
            self.obs[rows],
            self.actions[rows],
            self.rewards[rows],
            self.next_obs[rows],
            self.terminated[rows],
        ]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "replay_obs": self.obs,
            "replay_next_obs": self.next_obs,
            "replay_actions": self.actions,
            "replay_rewards": self.rewards,
            "replay_terminated": self.terminated,
            "replay_position": np.array([self.position, int(self.full)]),
        }

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        if arrays["replay_obs"].shape != self.obs.shape:
            raise ConfigError(
                f"the checkpoint's replay buffer has shape {arrays['replay_obs'].shape}, not "
                f"{self.obs.shape}: resume with the same buffer_size and observations"
            )
        self.obs, self.next_obs, self.actions = (
            arrays["replay_obs"],
            arrays["replay_next_obs"],
            arrays["replay_actions"],
        )
        self.rewards, self.terminated = arrays["replay_rewards"], arrays["replay_terminated"]
        self.position, self.full = int(arrays["replay_position"][0]), bool(arrays["replay_position"][1])


# ----------------------------------------------------------------------------------------------
# Learning: Adam and the TD loss, compiled


class Learner(tf.Module):
    def __init__(self, q: QNetwork, target: QNetwork, c: dict):
        super().__init__()
        self.q, self.target, self.c = q, target, c
        self.optimizer = Adam(q.trainable_variables, epsilon=1e-7)  # Keras' and TF1's epsilon

    @tf.function(jit_compile=True)  # XLA fuses the small ops: several times faster than a plain graph
    def train(self, obs, actions, rewards, next_obs, terminated):
        """One gradient step per row of the [gradient_steps, batch, ...] inputs; mean loss and Q."""
        totals = tf.zeros(2)
        for i in tf.range(tf.shape(obs)[0]):
            target = rewards[i] + self.c["gamma"] * (1 - terminated[i]) * tf.reduce_max(
                self.target(next_obs[i]), axis=1
            )
            with tf.GradientTape() as tape:
                q = tf.gather(self.q(obs[i]), actions[i], batch_dims=1)
                loss = tf.reduce_mean(_huber(target - q))
            gradients, _ = tf.clip_by_global_norm(
                tape.gradient(loss, self.q.trainable_variables), self.c["max_grad_norm"]
            )
            self.optimizer.apply(gradients, self.q.trainable_variables, self.c["learning_rate"])
            totals += tf.stack([loss, tf.reduce_mean(q)])
        return totals / tf.cast(tf.shape(obs)[0], tf.float32)

    def update_target(self, tau: float) -> None:
        """Copy (tau=1) or move the target network towards the online one (Polyak averaging)."""
        for target, online in zip(self.target.variables, self.q.variables, strict=True):
            target.assign(tau * online + (1 - tau) * target)


def _huber(error):
    """Smooth L1 (SB3's DQN loss): quadratic near 0, linear beyond 1, so outliers do not dominate."""
    absolute = tf.abs(error)
    return tf.where(absolute < 1.0, 0.5 * tf.square(error), absolute - 0.5)


# ----------------------------------------------------------------------------------------------
# The trainer


class DQNTrainer(Trainer):
    metrics = ("loss", "q_values", "epsilon", "replay_size")
    resumable = True  # run() restores the latest checkpoint in checkpoint_dir (--run_id NAME --resume)
    checks_stop_requested = True  # on SIGTERM the loop saves a checkpoint and returns

    def run(self) -> dict:
        c = self.config
        hidden = check_hyperparameters(c, POSITIVE, UNIT)
        with self.make_vec_env() as envs:
            num_actions = check_action_space(envs.action_space)
            obs = envs.reset()
            n, space = envs.num_agents, envs.observation_space
            q, target = (QNetwork(space, num_actions, hidden, self.rng) for _ in range(2))
            learner = Learner(
                q, target, {k: float(c[k]) for k in ("gamma", "tau", "max_grad_norm", "learning_rate")}
            )
            learner.update_target(tau=1.0)
            buffer = ReplayBuffer(c["buffer_size"], space.shape, space.dtype)
            global_step, arrays, state = restore_training_state(self, learner, "DQN agent")
            if "replay_obs" in arrays:
                buffer.load(arrays)
            recent_returns = deque(state.get("recent_returns", []), maxlen=c["window"])
            recent_lengths = deque(maxlen=c["window"])
            greedy_q = NumpyQ(q)

            def checkpoint():
                extra = buffer.arrays() if c["save_replay_buffer"] else {}
                save_training_state(self, global_step, learner, extra, recent_returns)

            bar = self.progress_bar(c["total_timesteps"], initial=global_step)
            started, start_step, last_checkpoint = time.perf_counter(), global_step, global_step
            last_log, last_target, env_steps, stats = global_step, global_step, 0, np.full(2, np.nan)
            while global_step < c["total_timesteps"] and not self.stop_requested:
                # Epsilon falls linearly from initial to final over exploration_fraction of the run.
                progress = min(1.0, global_step / (c["exploration_fraction"] * c["total_timesteps"] + 1e-9))
                epsilon = c["exploration_initial_eps"] + progress * (
                    c["exploration_final_eps"] - c["exploration_initial_eps"]
                )
                actions = self.rng.integers(0, num_actions, n)
                greedy = self.rng.random(n) >= epsilon
                if len(buffer) >= c["learning_starts"] and greedy.any():
                    actions[greedy] = greedy_q(obs[greedy]).argmax(axis=1)
                next_obs, rewards, terminated, truncated, infos = envs.step(actions)
                stored_next = next_obs.copy()
                for row in np.flatnonzero(terminated | truncated):  # next_obs is the next episode's start
                    stored_next[row] = infos[row]["terminal_observation"]
                buffer.add(obs, stored_next, actions, rewards, terminated)
                obs, global_step, env_steps = next_obs, global_step + n, env_steps + 1
                bar.update(n)

                if len(buffer) >= c["learning_starts"] and env_steps % c["train_frequency"] == 0:
                    batch = buffer.sample(self.rng, c["gradient_steps"], c["batch_size"])
                    stats = learner.train(*(tf.constant(a) for a in batch)).numpy()
                    greedy_q.sync()
                    if global_step - last_target >= c["target_update_interval"]:
                        learner.update_target(tau=c["tau"])
                        last_target = global_step
                finished = envs.pop_finished()
                recent_returns.extend(episode.reward for episode in finished)
                recent_lengths.extend(episode.length for episode in finished)
                if global_step - last_log >= 1000:  # a line per ~1000 steps, not per step
                    last_log = global_step
                    self.log_metrics(
                        global_step,
                        episode_reward_mean=np.mean(recent_returns) if recent_returns else np.nan,
                        episode_length_mean=np.mean(recent_lengths) if recent_lengths else np.nan,
                        fps=(global_step - start_step) / (time.perf_counter() - started),
                        loss=stats[0],
                        q_values=stats[1],
                        epsilon=epsilon,
                        replay_size=len(buffer),
                    )
                if global_step - last_checkpoint >= c["checkpoint_frequency"] or self.stop_requested:
                    checkpoint()
                    last_checkpoint = global_step
            if global_step != last_checkpoint or not state:
                checkpoint()

        self.q_network = q  # for tests and notebooks
        export_policy(self.model_dir / "1", lambda x: tf.argmax(q(x), axis=1), envs.observation_space, q)
        sample = buffer.obs[: min(len(buffer), 256)] if len(buffer) else obs  # observations seen
        reference = (sample, tf.argmax(q(tf.constant(sample)), axis=1).numpy())
        reward = float(np.mean(recent_returns)) if recent_returns else None
        self.export_unity_model(
            envs, unity_policy(q), reference, steps=global_step, episode_reward_mean=reward
        )
        plot_learning_curve(self.output_dir / "metrics.jsonl", self.output_dir / "learning_curve.png", "DQN")
        summary = {
            "total_steps": global_step,
            "resumed_from": state.get("step"),
            "stopped_early": self.stop_requested,
            "episode_reward_mean": reward,
            "replay_size": len(buffer),
            "config": c,
        }
        self.write_json("summary.json", summary)
        return summary


if __name__ == "__main__":
    DQNTrainer(config).run()
