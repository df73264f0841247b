"""PPO (clipped objective + GAE) in TensorFlow 2 for a Unity ML-Agents build, in one file to copy and change.

The structure follows CleanRL's ppo_continuous_action.py: hyperparameters, networks, then the training
loop in plain sight. Two choices are about speed: acting is a NumPy forward pass of the policy (a
TensorFlow call per step would cost more than the Unity round trip), and each update epoch is one
compiled ``tf.function``. Continuous (Gaussian), discrete and multi-discrete actions; vector
observations (normalised) or a camera (a small CNN). Parallel envs: ``num_envs`` Unity instances,
each with one agent, or with ``multiagent=True`` every agent of each instance.

    python src/ppo_trainer.py --local --zip_env_name builds/3DBall.zip --env_file 3DBall
    python src/ppo_trainer.py --local ... --num_envs 2 --total_timesteps 100000 --checkpoint_dir ckpt

Results: the policy as a SavedModel in model_dir/1 (``serving_default``: observations -> actions),
metrics.jsonl, TensorBoard scalars and learning_curve.png in output_dir, checkpoints in checkpoint_dir
(a run resumes from the latest one there).
"""

from __future__ import annotations

import logging
import time
from collections import deque

import numpy as np
import tensorflow as tf
from gym import spaces
from tqdm import tqdm

from trainer import ConfigError, Trainer
from training_utils import (
    load_latest_checkpoint,
    open_parallel_envs,
    plot_learning_curve,
    restore_arrays,
    save_checkpoint,
    write_scalars,
)

logger = logging.getLogger("trainer")

config = {
    # The Unity build and environment (trainer.DEFAULT_CONFIG explains every key; for local runs
    # project.toml's [unity_build] section wins over the first four).
    "bucket": "",
    "zip_env_name": "builds/3DBall.zip",
    "build_folder": "unity_build",
    "env_file": "3DBall",
    "worker_id": 0,
    "use_visual": False,
    "use_uint8_visual": False,
    "multiagent": True,  # every agent of the build is a parallel env (Unity's 3DBall has 12)
    "flatten_branched": False,
    "allow_multiple_visual_obs": False,
    "no_graphics": True,
    "additional_args": ["--agents", "16"],  # sim: 16 agents in the simulated build (a real player ignores it)
    "seed": 0,
    "checkpoint_dir": "",  # "" = /opt/ml/checkpoints in a job, <run>/checkpoints locally
    # PPO. Published defaults (Stable-Baselines3 / CleanRL continuous) unless marked "sim" (tuned
    # for the simulated 3DBall with 16 agents; for one agent per env use SB3's n_steps 2048, batch 64).
    "total_timesteps": 200_000,  # sim: agent steps over all envs and agents (the sim balances by ~150k)
    "num_envs": 1,  # Unity instances run in parallel, each on its own worker_id
    "n_steps": 256,  # sim (SB3: 2048); steps per env (agent) per rollout
    "batch_size": 256,  # sim (SB3: 64); minibatch size
    "n_epochs": 10,  # passes over each rollout
    "learning_rate": 3e-4,
    "anneal_lr": True,  # decay the learning rate linearly to 0
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": 0.0,  # stop an update's epochs early above this approximate KL (0 = never)
    "normalize_advantage": True,
    "normalize_observations": True,  # running mean/std of vector observations (like VecNormalize)
    "hidden_sizes": [64, 64],  # tanh layers of the actor and of the critic (ML-Agents' 3DBall: 128, 128)
    "checkpoint_frequency": 20_000,  # steps between checkpoints (also saved at the end and on SIGTERM)
    "window": 100,  # episode_reward_mean is over the last `window` episodes
}


def check_config(c: dict) -> list[int]:
    """Refuse values that cannot work before a player is started; return hidden_sizes as ints."""
    for key in (
        "total_timesteps",
        "num_envs",
        "n_steps",
        "batch_size",
        "n_epochs",
        "learning_rate",
        "clip_range",
        "checkpoint_frequency",
        "window",
    ):
        if not c[key] > 0:
            raise ConfigError(f"{key}={c[key]!r} must be positive: set --{key} to a number above 0")
    for key in ("gamma", "gae_lambda"):
        if not 0 <= c[key] <= 1:
            raise ConfigError(f"{key}={c[key]!r} must be between 0 and 1")
    try:
        hidden = [int(size) for size in c["hidden_sizes"]]
    except (TypeError, ValueError):
        hidden = []
    if not hidden or min(hidden) < 1:
        raise ConfigError(
            f"hidden_sizes={c['hidden_sizes']!r} must be a list of positive layer sizes, e.g. [64, 64]"
        )
    return hidden


# ----------------------------------------------------------------------------------------------
# Networks: TensorFlow variables for learning, NumPy copies for acting


def orthogonal(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> np.ndarray:
    """Orthogonal initialisation (as in CleanRL and SB3), drawn from the trainer's seeded generator."""
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return (gain * q[:rows, :cols]).reshape(shape).astype(np.float32)


class MLP(tf.Module):
    """tanh hidden layers and a linear output layer."""

    def __init__(self, sizes: list[int], output_gain: float, rng: np.random.Generator):
        super().__init__()
        gains = [np.sqrt(2.0)] * (len(sizes) - 2) + [output_gain]
        self.w = [tf.Variable(orthogonal(rng, (a, b), g)) for a, b, g in zip(sizes, sizes[1:], gains)]
        self.b = [tf.Variable(tf.zeros(b)) for b in sizes[1:]]

    def __call__(self, x):
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            x = x @ w + b
            x = tf.tanh(x) if i < len(self.w) - 1 else x
        return x

    def numpy_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(w.numpy(), b.numpy()) for w, b in zip(self.w, self.b)]


def mlp_numpy(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    for w, b in layers[:-1]:
        x = np.tanh(x @ w + b)
    return x @ layers[-1][0] + layers[-1][1]


class ConvEncoder(tf.Module):
    """ML-Agents' "simple" visual encoder: conv 8x8/4 (16), conv 4x4/2 (32), dense 256, ReLU."""

    def __init__(self, shape: tuple[int, int, int], rng: np.random.Generator):
        super().__init__()
        height, width, channels = shape
        if min(height, width) < 20:
            raise ConfigError(f"the camera images are {height}x{width}; this CNN needs at least 20x20 pixels")
        out = [((size - 8) // 4 + 1 - 4) // 2 + 1 for size in (height, width)]
        self.k1 = tf.Variable(orthogonal(rng, (8, 8, channels, 16), np.sqrt(2)))
        self.k2 = tf.Variable(orthogonal(rng, (4, 4, 16, 32), np.sqrt(2)))
        self.w = tf.Variable(orthogonal(rng, (out[0] * out[1] * 32, 256), np.sqrt(2)))
        self.b1, self.b2, self.b = (
            tf.Variable(tf.zeros(16)),
            tf.Variable(tf.zeros(32)),
            tf.Variable(tf.zeros(256)),
        )
        self.size = 256

    def __call__(self, images):
        x = tf.nn.relu(tf.nn.conv2d(images, self.k1, 4, "VALID") + self.b1)
        x = tf.nn.relu(tf.nn.conv2d(x, self.k2, 2, "VALID") + self.b2)
        return tf.nn.relu(tf.reshape(x, [tf.shape(x)[0], -1]) @ self.w + self.b)


class Agent(tf.Module):
    """Actor (Gaussian means or one set of logits per action branch) and critic, as in CleanRL."""

    def __init__(
        self, observation_space, action_space, hidden: list[int], normalize: bool, rng: np.random.Generator
    ):
        super().__init__()
        self.visual = len(observation_space.shape) == 3
        self.normalize = normalize and not self.visual
        self.uint8 = observation_space.dtype == np.uint8
        self.encoder = ConvEncoder(observation_space.shape, rng) if self.visual else None
        features = self.encoder.size if self.visual else observation_space.shape[0]
        if isinstance(action_space, spaces.Box):
            self.branches, outputs = [], action_space.shape[0]
            self.log_std = tf.Variable(tf.zeros(outputs))
        elif isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            self.branches = (
                [int(action_space.n)]
                if isinstance(action_space, spaces.Discrete)
                else list(map(int, action_space.nvec))
            )
            outputs = sum(self.branches)
        else:
            raise ConfigError(f"PPO cannot drive the action space {action_space}")
        self.actor = MLP([features, *hidden, outputs], 0.01, rng)
        self.critic = MLP([features, *hidden, 1], 1.0, rng)
        obs_size = 1 if self.visual else observation_space.shape[0]  # the normaliser, saved with the model
        self.obs_mean = tf.Variable(tf.zeros(obs_size), trainable=False)
        self.obs_std = tf.Variable(tf.ones(obs_size), trainable=False)

    @tf.function
    def encode(self, obs):
        """Images to features (the only TensorFlow call made while acting on a camera)."""
        return self.encoder(tf.cast(obs, tf.float32) / 255.0 if self.uint8 else obs)

    def features(self, obs):
        return self.encode(obs) if self.visual else obs

    def log_prob_entropy_value(self, obs, actions):
        x = self.features(obs)
        out, value = self.actor(x), self.critic(x)[:, 0]
        if not self.branches:
            std = tf.exp(self.log_std)
            log_prob = -0.5 * tf.square((actions - out) / std) - self.log_std - 0.5 * np.log(2 * np.pi)
            entropy = tf.reduce_sum(self.log_std + 0.5 * np.log(2 * np.pi * np.e)) * tf.ones_like(value)
            return tf.reduce_sum(log_prob, axis=1), entropy, value
        log_prob, entropy = 0.0, 0.0
        for i, logits in enumerate(tf.split(out, self.branches, axis=1)):
            logp = tf.nn.log_softmax(logits)
            log_prob += tf.gather(logp, tf.cast(actions[:, i], tf.int32), batch_dims=1)
            entropy -= tf.reduce_sum(tf.exp(logp) * logp, axis=1)
        return log_prob, entropy, value

    def deterministic_actions(self, observations):
        """What the SavedModel serves: normalised observations -> mean action / most likely branch values."""
        obs = (
            tf.clip_by_value((observations - self.obs_mean) / self.obs_std, -10, 10)
            if self.normalize
            else observations
        )
        out = self.actor(self.features(obs))
        if not self.branches:
            return tf.clip_by_value(out, -1.0, 1.0)
        actions = tf.stack(
            [tf.argmax(logits, axis=1) for logits in tf.split(out, self.branches, axis=1)], axis=1
        )
        return actions[:, 0] if len(self.branches) == 1 else actions


class NumpyPolicy:
    """The agent's weights as NumPy arrays: acting for a few agents costs microseconds, not a TF call."""

    def __init__(self, agent: Agent, rng: np.random.Generator):
        self.agent, self.rng = agent, rng
        self.sync()

    def sync(self) -> None:
        """Copy the weights after each update."""
        self.actor, self.critic = self.agent.actor.numpy_layers(), self.agent.critic.numpy_layers()
        self.log_std = self.agent.log_std.numpy() if not self.agent.branches else None

    def value(self, obs: np.ndarray) -> np.ndarray:
        return mlp_numpy(self.critic, np.asarray(self.agent.features(obs)))[:, 0]

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled actions, their log-probabilities and the state values."""
        x = np.asarray(self.agent.features(obs))
        out, value = mlp_numpy(self.actor, x), mlp_numpy(self.critic, x)[:, 0]
        if self.log_std is not None:
            noise = self.rng.standard_normal(out.shape, dtype=np.float32)
            log_prob = (-0.5 * noise**2 - self.log_std - 0.5 * np.log(2 * np.pi)).sum(axis=1)
            return out + np.exp(self.log_std) * noise, log_prob, value
        actions, log_prob, start = [], 0.0, 0
        for size in self.agent.branches:
            logits = out[:, start : start + size]
            logp = logits - logits.max(axis=1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
            choice = np.argmax(logp - np.log(-np.log(self.rng.random(logp.shape))), axis=1)  # Gumbel-max
            log_prob = log_prob + logp[np.arange(len(choice)), choice]
            actions.append(choice)
            start += size
        return np.stack(actions, axis=1), log_prob, value


class RunningMeanStd:
    """Mean and variance of the observations seen so far (Chan et al.'s parallel update, as in SB3).

    Updated once per rollout, as ML-Agents does, not every step: a rollout is then acted on and
    learned from with the same normalisation, and acting saves two NumPy reductions per step.
    """

    def __init__(self, size: int):
        self.load(np.zeros(size), np.ones(size), 1e-4)

    def update(self, batch: np.ndarray) -> None:
        delta, n = batch.mean(axis=0) - self.mean, len(batch)
        total = self.count + n
        mean = self.mean + delta * n / total
        var = (self.var * self.count + batch.var(axis=0) * n + delta**2 * self.count * n / total) / total
        self.load(mean, var, total)

    def load(self, mean: np.ndarray, var: np.ndarray, count: float) -> None:
        self.mean, self.var, self.count = mean, var, float(count)
        self.std = np.sqrt(self.var + 1e-8)
        self._scale = 1 / self.std

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) * self._scale, -10, 10).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Learning: Adam and the PPO loss, compiled


class Adam(tf.Module):
    """Adam written out (eps 1e-5 as in CleanRL), so its state is plain variables in the checkpoint."""

    def __init__(self, variables, beta1=0.9, beta2=0.999, epsilon=1e-5):
        super().__init__()
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.t = tf.Variable(0.0)

    def apply(self, gradients, variables, learning_rate):
        self.t.assign_add(1.0)
        step = learning_rate * tf.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        for g, var, m, v in zip(gradients, variables, self.m, self.v):
            m.assign(self.beta1 * m + (1 - self.beta1) * g)
            v.assign(self.beta2 * v + (1 - self.beta2) * tf.square(g))
            var.assign_sub(step * m / (tf.sqrt(v) + self.epsilon))


class Learner(tf.Module):
    def __init__(self, agent: Agent, c: dict):
        super().__init__()
        self.agent, self.c = agent, c
        self.params = agent.trainable_variables
        self.optimizer = Adam(self.params)

    @tf.function(jit_compile=True)  # XLA fuses the small ops: about 3x faster than a plain graph here
    def train_epoch(self, obs, actions, old_log_prob, advantages, returns, minibatches, learning_rate):
        """One pass over the rollout, minibatch by minibatch (``minibatches``: index rows); mean statistics."""
        c, totals = self.c, tf.zeros(5)
        for i in tf.range(tf.shape(minibatches)[0]):
            index = minibatches[i]
            adv = tf.gather(advantages, index)
            if c["normalize_advantage"]:
                adv = (adv - tf.reduce_mean(adv)) / (tf.math.reduce_std(adv) + 1e-8)
            with tf.GradientTape() as tape:
                log_prob, entropy, value = self.agent.log_prob_entropy_value(
                    tf.gather(obs, index), tf.gather(actions, index)
                )
                log_ratio = log_prob - tf.gather(old_log_prob, index)
                ratio = tf.exp(log_ratio)
                clipped = tf.clip_by_value(ratio, 1 - c["clip_range"], 1 + c["clip_range"])
                policy_loss = -tf.reduce_mean(tf.minimum(adv * ratio, adv * clipped))
                value_loss = 0.5 * tf.reduce_mean(tf.square(value - tf.gather(returns, index)))
                entropy = tf.reduce_mean(entropy)
                loss = policy_loss - c["ent_coef"] * entropy + c["vf_coef"] * value_loss
            gradients, _ = tf.clip_by_global_norm(tape.gradient(loss, self.params), c["max_grad_norm"])
            self.optimizer.apply(gradients, self.params, learning_rate)
            approx_kl = tf.reduce_mean((ratio - 1) - log_ratio)  # http://joschu.net/blog/kl-approx.html
            clip_fraction = tf.reduce_mean(tf.cast(tf.abs(ratio - 1) > c["clip_range"], tf.float32))
            totals += tf.stack([policy_loss, value_loss, entropy, approx_kl, clip_fraction])
        return totals / tf.cast(tf.shape(minibatches)[0], tf.float32)


class ExportedPolicy(tf.Module):
    """The SavedModel: ``serving_default`` maps a batch of observations to deterministic actions."""

    def __init__(self, agent: Agent, observation_space):
        super().__init__()
        self.agent = agent
        spec = tf.TensorSpec([None, *observation_space.shape], observation_space.dtype, name="observations")
        self.serve = tf.function(
            lambda observations: {"actions": agent.deterministic_actions(observations)},
            input_signature=[spec],
        )


# ----------------------------------------------------------------------------------------------
# The trainer


class PPOTrainer(Trainer):
    checks_stop_requested = True  # on SIGTERM the loop saves a checkpoint and returns

    def run(self) -> dict:
        c = self.config
        hidden = check_config(c)
        tf.random.set_seed(self.seed)
        envs = open_parallel_envs(self, self.download_unity_env(), c["num_envs"])
        with envs:
            obs = envs.reset()
            n, steps = envs.num_envs, c["n_steps"]
            if c["batch_size"] > n * steps:
                raise ConfigError(
                    f"batch_size={c['batch_size']} is more than a rollout ({n} envs x n_steps={steps})"
                )
            agent = Agent(
                envs.observation_space, envs.action_space, hidden, c["normalize_observations"], self.rng
            )
            learner = Learner(
                agent,
                {
                    k: c[k]
                    for k in ("clip_range", "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage")
                },
            )
            normalize = RunningMeanStd(envs.observation_space.shape[0]) if agent.normalize else None
            returns_window = deque(maxlen=c["window"])
            global_step, state = self.restore(learner, normalize, returns_window)
            policy = NumpyPolicy(agent, self.rng)
            writer = tf.summary.create_file_writer(str(self.output_dir / "tensorboard"))

            # Rollout storage: one row per step, one column per env (agent).
            obs_buf = np.zeros((steps, n, *obs.shape[1:]), obs.dtype if agent.visual else np.float32)
            raw_buf = np.zeros_like(obs_buf)  # unnormalised, to update the normaliser after the rollout
            action_shape = envs.action_space.shape if not agent.branches else (len(agent.branches),)
            act_buf = np.zeros((steps, n, *action_shape), np.float32)
            logp_buf, value_buf, reward_buf, ended_buf = (np.zeros((steps, n), np.float32) for _ in range(4))
            single_discrete = isinstance(envs.action_space, spaces.Discrete)

            started, start_step, last_checkpoint = time.perf_counter(), global_step, global_step
            bar = tqdm(total=c["total_timesteps"], initial=global_step, unit="step", disable=not self.local)
            while global_step < c["total_timesteps"] and not self.stop_requested:
                for t in range(steps):
                    raw_buf[t] = obs
                    obs_buf[t] = normalized = normalize(obs) if normalize else obs
                    actions, logp_buf[t], value_buf[t] = policy.act(normalized)
                    act_buf[t] = actions
                    env_actions = (
                        actions[:, 0]
                        if single_discrete
                        else actions
                        if agent.branches
                        else np.clip(actions, -1, 1)
                    )
                    obs, rewards, terminated, truncated, final_obs = envs.step(env_actions)
                    for row in np.flatnonzero(
                        truncated
                    ):  # cut by the step limit: bootstrap from the last state
                        last = final_obs[row][None]
                        rewards[row] += c["gamma"] * policy.value(normalize(last) if normalize else last)[0]
                    reward_buf[t], ended_buf[t] = rewards, terminated | truncated
                    bar.update(n)
                    if self.stop_requested:
                        break
                if self.stop_requested:
                    break  # the partial rollout is dropped: the checkpoint below is at the last update
                global_step += n * steps

                # Generalised advantage estimation (the value after the last step bootstraps the rest).
                advantages, gae = np.zeros_like(reward_buf), 0.0
                next_value = policy.value(normalize(obs) if normalize else obs)
                for t in reversed(range(steps)):
                    next_value = next_value if t == steps - 1 else value_buf[t + 1]
                    delta = reward_buf[t] + c["gamma"] * next_value * (1 - ended_buf[t]) - value_buf[t]
                    gae = advantages[t] = delta + c["gamma"] * c["gae_lambda"] * (1 - ended_buf[t]) * gae
                returns = advantages + value_buf

                # The update: n_epochs passes in shuffled minibatches, each pass one compiled call.
                progress = min(1.0, (global_step - n * steps) / c["total_timesteps"])
                learning_rate = c["learning_rate"] * (1.0 - progress if c["anneal_lr"] else 1.0)
                flat = [
                    tf.constant(a.reshape(n * steps, *a.shape[2:]))
                    for a in (obs_buf, act_buf, logp_buf, advantages, returns)
                ]
                count = (n * steps) // c["batch_size"]
                for _ in range(c["n_epochs"]):
                    minibatches = self.rng.permutation(n * steps)[: count * c["batch_size"]].reshape(
                        count, -1
                    )
                    stats = learner.train_epoch(
                        *flat, tf.constant(minibatches), tf.constant(learning_rate, tf.float32)
                    ).numpy()
                    if c["target_kl"] and stats[3] > c["target_kl"]:
                        break
                policy.sync()
                if normalize:  # new statistics from this rollout, used from the next one on
                    normalize.update(raw_buf.reshape(n * steps, -1))

                returns_window.extend(r for r, _ in envs.pop_finished())
                variance = np.var(returns)
                explained = np.nan if variance == 0 else 1 - np.var(returns - value_buf) / variance
                metrics = dict(
                    episode_reward_mean=np.mean(returns_window) if returns_window else np.nan,
                    fps=(global_step - start_step) / (time.perf_counter() - started),
                    policy_loss=stats[0],
                    value_loss=stats[1],
                    entropy=stats[2],
                    approx_kl=stats[3],
                    clip_fraction=stats[4],
                    explained_variance=explained,
                    learning_rate=learning_rate,
                )
                with tqdm.external_write_mode():
                    self.log_metrics(
                        global_step,
                        episode_reward_mean=metrics["episode_reward_mean"],
                        fps=metrics["fps"],
                        policy_loss=stats[0],
                        value_loss=stats[1],
                        entropy=stats[2],
                        approx_kl=stats[3],
                        clip_fraction=stats[4],
                        explained_variance=explained,
                        learning_rate=learning_rate,
                    )
                write_scalars(writer, global_step, metrics)
                bar.set_postfix(reward=f"{metrics['episode_reward_mean']:.2f}", fps=f"{metrics['fps']:.0f}")
                if global_step - last_checkpoint >= c["checkpoint_frequency"]:
                    self.checkpoint(global_step, learner, normalize, returns_window)
                    last_checkpoint = global_step
            bar.close()
            if global_step != last_checkpoint or not state:
                self.checkpoint(global_step, learner, normalize, returns_window)
        writer.close()
        if normalize:
            agent.obs_mean.assign(normalize.mean.astype(np.float32))
            agent.obs_std.assign(normalize.std.astype(np.float32))
        self.agent = agent  # for tests and notebooks: the trained networks
        export = ExportedPolicy(agent, envs.observation_space)
        tf.saved_model.save(export, str(self.model_dir / "1"), signatures={"serving_default": export.serve})
        plot_learning_curve(
            self.output_dir / "metrics.jsonl", self.output_dir / "learning_curve.png", f"PPO {self.run_name}"
        )
        summary = {
            "total_steps": global_step,
            "resumed_from": state.get("step"),
            "stopped_early": self.stop_requested,
            "episode_reward_mean": float(np.mean(returns_window)) if returns_window else None,
            "config": c,
        }
        self.write_json("summary.json", summary)
        return summary

    # ---- checkpoints: weights, optimiser, normaliser, step, RNG state, recent returns -------------

    def checkpoint(
        self, step: int, learner: Learner, normalize: RunningMeanStd | None, returns_window
    ) -> None:
        arrays = {f"v{i}": v.numpy() for i, v in enumerate(learner.variables)}
        if normalize:
            arrays.update(obs_mean=normalize.mean, obs_var=normalize.var, obs_count=np.array(normalize.count))
        state = {"rng": self.rng.bit_generator.state, "recent_returns": list(returns_window)}
        path = save_checkpoint(self.checkpoint_dir, step, arrays, state)
        logger.info(f"checkpoint at step {step}: {path}")

    def restore(self, learner: Learner, normalize: RunningMeanStd | None, returns_window) -> tuple[int, dict]:
        found = load_latest_checkpoint(self.checkpoint_dir)
        if found is None:
            return 0, {}
        arrays, state = found
        restore_arrays(
            learner.variables,
            [arrays[f"v{i}"] for i in range(len(learner.variables)) if f"v{i}" in arrays],
            "PPO agent",
            state["path"],
        )
        if normalize and "obs_mean" in arrays:
            normalize.load(arrays["obs_mean"], arrays["obs_var"], arrays["obs_count"])
        self.rng.bit_generator.state = state["rng"]
        returns_window.extend(state["recent_returns"])
        logger.info(f"resuming from {state['path']} at step {state['step']}")
        return state["step"], state


if __name__ == "__main__":
    PPOTrainer(config).run()
