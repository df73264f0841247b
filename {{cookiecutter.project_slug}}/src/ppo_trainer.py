"""PPO (clipped objective + GAE) in TensorFlow 2 for a Unity ML-Agents build, in one file to copy and change.

The structure follows CleanRL's ppo_continuous_action.py: hyperparameters, networks, then the training
loop in plain sight. Two choices are about speed: acting is a NumPy forward pass of the policy (a
TensorFlow call per step would cost more than the Unity round trip), and each update epoch is one
compiled ``tf.function``. Continuous (Gaussian), discrete and multi-discrete actions; vector
observations (normalised) or a camera (a small CNN). Parallel envs: ``num_envs`` Unity instances, and
with ``multiagent=True`` every agent of each instance.

Several instances (a job with ``instance_count > 1``): decentralized distributed PPO (DD-PPO, Wijmans
et al. 2020). Every instance is a worker with its own ``num_envs`` Unity instances and rollout; the
workers all-reduce their gradients every minibatch (TensorFlow's MultiWorkerMirroredStrategy), so the
weights stay equal (checked after each update); the observation statistics and episode statistics
are combined over all workers, ``total_timesteps`` counts every worker's steps, and the chief alone
writes checkpoints, the model and metrics. The lines marked "distributed:" are all it takes; on one
instance each of them is the local value. ``preemption_threshold`` is DD-PPO's answer to stragglers:
once that fraction of the workers has finished its rollout, the others stop collecting (after at
least ``min_rollout_fraction`` of ``n_steps``). A rollout cut short is learned from as it is: GAE runs
over the steps collected and bootstraps from the value of the last observation, as at the end of any
rollout (so its last steps' advantages lean more on the critic), and it fills fewer minibatches (the
update's minibatch count is the same on every worker, its missing ones weigh nothing).

    python src/ppo_trainer.py --local                         # the build named in project.toml
    python src/ppo_trainer.py --local --num_envs 2 --checkpoint_dir runs/ppo-ckpt   # resumable

Results: the policy as a SavedModel in model_dir/1 (``serving_default``: observations -> actions) and
as model_dir/<behaviour>.onnx for Unity's Editor (the Behavior Parameters' Model), metrics.jsonl,
TensorBoard scalars and learning_curve.png in output_dir, checkpoints in checkpoint_dir (a run
resumes from the latest one there).
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
from template_runtime.onnx_export import Body, CategoricalPolicy, GaussianPolicy, Normalizer
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
    "multiagent": True,  # every agent of the build is a row of the batch (Unity's 3DBall has 12)
    # PPO. Published defaults (Stable-Baselines3 / CleanRL continuous) unless marked "sim": chosen for
    # 3DBall's 12 agents, checked on the simulated build, whose learning curve follows the real scene's
    # (with one agent per instance, use SB3's n_steps 2048 and batch_size 64).
    "total_timesteps": 200_000,  # sim: agent steps over all instances and agents (~90 mean reward by 150k)
    "n_steps": 256,  # sim (SB3: 2048); steps per agent per rollout
    "batch_size": 256,  # sim (SB3: 64); minibatch size
    "n_epochs": 10,  # passes over each rollout
    "learning_rate": 3e-4,  # Adam step size (annealed to 0 with anneal_lr)
    "anneal_lr": True,  # decay the learning rate linearly to 0
    "gamma": 0.99,  # discount factor of future rewards
    "gae_lambda": 0.95,  # GAE: 0 = one-step TD advantages, 1 = Monte Carlo returns
    "clip_range": 0.2,  # how far the new policy may move from the old one (ratio clip)
    "ent_coef": 0.0,  # weight of the entropy bonus (exploration)
    "vf_coef": 0.5,  # weight of the value loss
    "max_grad_norm": 0.5,  # gradients are clipped to this global norm
    "target_kl": 0.0,  # stop an update's epochs early above this approximate KL (0 = never)
    "normalize_advantage": True,  # advantages to mean 0, std 1 per minibatch
    "normalize_observations": True,  # running mean/std of vector observations (like VecNormalize)
    "hidden_sizes": [64, 64],  # tanh layers of the actor and of the critic (ML-Agents' 3DBall: 128, 128)
    "checkpoint_frequency": 20_000,  # steps between checkpoints (also saved at the end and on SIGTERM)
    "window": 100,  # episode_reward_mean is over the last `window` episodes
    # Several instances (DD-PPO, see above); no effect on one.
    "preemption_threshold": 1.0,  # stragglers stop once this fraction of workers is done (paper 0.6, 1 never)
    "min_rollout_fraction": 0.25,  # a rollout is at least this fraction of n_steps before it can be stopped
}
POSITIVE = ("total_timesteps", "n_steps", "batch_size", "n_epochs", "learning_rate", "clip_range")
POSITIVE += ("checkpoint_frequency", "window", "preemption_threshold")


# ----------------------------------------------------------------------------------------------
# The agent: TensorFlow variables for learning, NumPy copies for acting


class MLP(tf.Module):
    """tanh hidden layers and a linear output layer (orthogonal initialisation, as in CleanRL)."""

    def __init__(self, sizes: list[int], output_gain: float, rng: np.random.Generator):
        super().__init__()
        gains = [np.sqrt(2.0)] * (len(sizes) - 2) + [output_gain]
        self.w = [
            tf.Variable(orthogonal(rng, (a, b), g))
            for a, b, g in zip(sizes[:-1], sizes[1:], gains, strict=True)
        ]
        self.b = [tf.Variable(tf.zeros(b)) for b in sizes[1:]]

    def __call__(self, x):
        for i, (w, b) in enumerate(zip(self.w, self.b, strict=True)):
            x = x @ w + b if i == len(self.w) - 1 else tf.tanh(x @ w + b)
        return x

    def numpy(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(w.numpy(), b.numpy()) for w, b in zip(self.w, self.b, strict=True)]


def mlp_numpy(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    for w, b in layers[:-1]:
        x = np.tanh(x @ w + b)
    return x @ layers[-1][0] + layers[-1][1]


class Agent(tf.Module):
    """Actor (Gaussian means, or logits for each action branch) and critic, as two MLPs; a CNN for images."""

    def __init__(self, observation_space, action_space, hidden: list[int], normalize: bool, rng):
        super().__init__()
        self.visual = len(observation_space.shape) == 3
        self.normalize = normalize and not self.visual
        uint8 = observation_space.dtype == np.uint8
        self.encoder = ConvEncoder(observation_space.shape, uint8, rng) if self.visual else None
        features = ConvEncoder.size if self.visual else observation_space.shape[0]
        if isinstance(action_space, spaces.Box):
            self.branches, outputs = [], action_space.shape[0]
            self.log_std = tf.Variable(tf.zeros(outputs))
        elif isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            discrete = isinstance(action_space, spaces.Discrete)
            self.branches = [int(action_space.n)] if discrete else [int(n) for n in action_space.nvec]
            outputs = sum(self.branches)
        else:
            raise ConfigError(f"PPO cannot drive the action space {action_space}")
        self.actor = MLP([features, *hidden, outputs], 0.01, rng)
        self.critic = MLP([features, *hidden, 1], 1.0, rng)
        size = 1 if self.visual else observation_space.shape[0]  # the normaliser, exported with the model
        self.obs_mean = tf.Variable(tf.zeros(size), trainable=False)
        self.obs_std = tf.Variable(tf.ones(size), trainable=False)

    def features(self, obs):
        return self.encoder(obs) if self.visual else obs

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
        """What the SavedModel serves: raw observations -> mean action / most likely value of each branch."""
        obs = observations
        if self.normalize:
            obs = tf.clip_by_value((observations - self.obs_mean) / self.obs_std, -10, 10)
        out = self.actor(self.features(obs))
        if not self.branches:
            return tf.clip_by_value(out, -1.0, 1.0)
        actions = tf.stack([tf.argmax(x, axis=1) for x in tf.split(out, self.branches, axis=1)], axis=1)
        return actions[:, 0] if len(self.branches) == 1 else actions


def unity_policy(agent: Agent) -> GaussianPolicy | CategoricalPolicy:
    """The actor (and the normaliser) as NumPy weights for the Unity model: the same deterministic
    actions as ``deterministic_actions``, and inside Unity the same sampling as ``NumpyPolicy.act``."""
    *hidden, head = onnx_dense(agent.actor.w, agent.actor.b)
    normalizer = Normalizer(agent.obs_mean.numpy(), agent.obs_std.numpy()) if agent.normalize else None
    body = Body(tuple(hidden), "tanh", onnx_encoder(agent.encoder), normalizer)
    if agent.branches:
        return CategoricalPolicy(body, head)
    return GaussianPolicy(body, head, agent.log_std.numpy())  # clipped to [-1, 1], as acting does


class NumpyPolicy:
    """The agent's dense layers as NumPy arrays: acting costs microseconds, not a TensorFlow call."""

    def __init__(self, agent: Agent, rng: np.random.Generator):
        self.agent, self.rng = agent, rng
        self.sync()

    def sync(self) -> None:
        """Copy the weights (after each update)."""
        self.actor, self.critic = self.agent.actor.numpy(), self.agent.critic.numpy()
        self.log_std = None if self.agent.branches else self.agent.log_std.numpy()

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
    """Mean and variance of the observations so far (Chan et al.'s parallel update, as in SB3).

    Updated once per rollout, as ML-Agents does, not every step: a rollout is acted on and learned
    from with the same normalisation, and acting saves two NumPy reductions per step.
    """

    def __init__(self, size: int):
        self.load(np.zeros(size), np.ones(size), 1e-4)

    def update(self, mean: np.ndarray, var: np.ndarray, n: int) -> None:
        """Add a batch of ``n`` observations, given by its mean and variance."""
        delta, total = mean - self.mean, self.count + n
        var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.load(self.mean + delta * n / total, var, total)

    def load(self, mean: np.ndarray, var: np.ndarray, count: float) -> None:
        self.mean, self.var, self.count = mean, var, float(count)
        self.std = np.sqrt(var + 1e-8)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / self.std, -10, 10).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# The PPO update, compiled


class Learner(tf.Module):
    def __init__(self, agent: Agent, c: dict, workers):
        super().__init__()
        self.agent, self.c = agent, c
        self.params = agent.trainable_variables
        self.optimizer = Adam(self.params, epsilon=1e-5)  # CleanRL's epsilon
        self.sum_over_workers = workers.sum  # distributed: an all-reduce over gRPC; one worker: the identity
        # XLA fuses the many small ops: about 3x faster than a plain graph. On CPU a collective cannot be
        # part of an XLA program, so with several workers the epoch is a graph around the compiled halves.
        self.train_epoch = tf.function(self.epoch, jit_compile=not workers.distributed)

    def epoch(self, obs, actions, old_log_prob, advantages, returns, minibatches, weights, learning_rate):
        """One pass over the rollout, a minibatch per row of index matrix ``minibatches``; mean statistics.
        ``weights[i]`` is 1, or 0 for a row without data (a rollout cut short: see the module docstring)."""
        totals = tf.zeros(6)
        for i in tf.range(tf.shape(minibatches)[0]):
            gradients, stats = self.gradients(obs, actions, old_log_prob, advantages, returns, minibatches[i])
            # distributed: every worker's gradient, and how many there are, summed over the workers
            summed = self.sum_over_workers(tf.concat([weights[i] * gradients, weights[i][None]], axis=0))
            self.apply(summed, learning_rate)
            totals += weights[i] * tf.concat([stats, [1.0]], axis=0)
        totals = self.sum_over_workers(totals)  # distributed: the statistics of every worker's minibatches
        return totals[:5] / tf.maximum(totals[5], 1.0)

    @tf.function(jit_compile=True)
    def gradients(self, obs, actions, old_log_prob, advantages, returns, index):
        """The loss gradient on one minibatch (as one vector) and its statistics."""
        c = self.c
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
        gradients = tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, self.params)], axis=0)
        approx_kl = tf.reduce_mean((ratio - 1) - log_ratio)  # http://joschu.net/blog/kl-approx.html
        clip_fraction = tf.reduce_mean(tf.cast(tf.abs(ratio - 1) > c["clip_range"], tf.float32))
        return gradients, tf.stack([policy_loss, value_loss, entropy, approx_kl, clip_fraction])

    @tf.function(jit_compile=True)
    def apply(self, summed, learning_rate):
        """One Adam step with the mean gradient (``summed``: the gradients' sum, then their number),
        clipped to max_grad_norm."""
        if summed[-1] > 0:
            parts = tf.split(summed[:-1] / summed[-1], [int(np.prod(p.shape)) for p in self.params])
            gradients = [tf.reshape(g, p.shape) for g, p in zip(parts, self.params, strict=True)]
            gradients, _ = tf.clip_by_global_norm(gradients, self.c["max_grad_norm"])
            self.optimizer.apply(gradients, self.params, learning_rate)


# ----------------------------------------------------------------------------------------------
# The trainer


class PPOTrainer(Trainer):
    metrics = (
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "explained_variance",
        "learning_rate",
    )
    resumable = True  # run() restores the latest checkpoint in checkpoint_dir (--run_id NAME --resume)
    checks_stop_requested = True  # on SIGTERM the loop saves a checkpoint and returns
    distributed = True  # trains on several instances (DD-PPO), see the module docstring

    def run(self) -> dict:
        c = self.config
        hidden = check_hyperparameters(c, POSITIVE, ("gamma", "gae_lambda", "preemption_threshold"))
        check_hyperparameters(c, (), ("min_rollout_fraction",))
        # distributed: every instance of the job is a worker (one instance: this process alone)
        workers = self.connect_workers(c["preemption_threshold"], c["min_rollout_fraction"])
        with self.make_vec_env() as envs:
            obs = envs.reset()
            n, steps = envs.num_agents, c["n_steps"]
            if c["batch_size"] > n * steps:
                raise ConfigError(
                    f"batch_size={c['batch_size']} is more than a rollout ({n} agents x {steps} "
                    "n_steps): lower batch_size or raise n_steps"
                )
            workers.check_same("agents per worker", n)  # distributed: so every worker has as many minibatches
            agent = Agent(
                envs.observation_space, envs.action_space, hidden, c["normalize_observations"], self.rng
            )
            coefficients = ("clip_range", "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage")
            learner = Learner(agent, {key: c[key] for key in coefficients}, workers)
            normalize = RunningMeanStd(obs.shape[1]) if agent.normalize else (lambda x: x)
            # distributed: the chief restores its checkpoint; every worker starts from the chief's state
            restored = restore_training_state(self, learner, "PPO agent") if workers.is_chief else (0, {}, {})
            global_step, arrays, state = workers.from_chief(self, learner.variables, *restored)
            if agent.normalize and "obs_mean" in arrays:
                normalize.load(arrays["obs_mean"], arrays["obs_var"], arrays["obs_count"])
            recent_returns = deque(state.get("recent_returns", []), maxlen=c["window"])
            recent_lengths = deque(maxlen=c["window"])
            policy = NumpyPolicy(agent, self.rng)

            def checkpoint():
                if not workers.is_chief:  # distributed: the chief's checkpoint is the run's
                    return
                extra = {}
                if agent.normalize:
                    extra = {
                        "obs_mean": normalize.mean,
                        "obs_var": normalize.var,
                        "obs_count": normalize.count,
                    }
                save_training_state(self, global_step, learner, extra, recent_returns)

            # Rollout storage: one row per step, one column per agent.
            obs_buf = np.zeros((steps, n, *obs.shape[1:]), obs.dtype if agent.visual else np.float32)
            raw_buf = np.zeros_like(obs_buf)  # unnormalised, to update the normaliser after the rollout
            act_buf = np.zeros((steps, n, len(agent.branches) or envs.action_space.shape[0]), np.float32)
            logp_buf, value_buf, reward_buf, ended_buf = (np.zeros((steps, n), np.float32) for _ in range(4))
            single_branch = isinstance(envs.action_space, spaces.Discrete)

            bar = self.progress_bar(c["total_timesteps"], initial=global_step)
            started, start_step, last_checkpoint = time.perf_counter(), global_step, global_step
            stopped = False
            while global_step < c["total_timesteps"]:
                for t in range(steps):
                    raw_buf[t] = obs
                    obs_buf[t] = normalize(obs)
                    actions, logp_buf[t], value_buf[t] = policy.act(obs_buf[t])
                    act_buf[t] = actions
                    if not agent.branches:
                        actions = np.clip(actions, -1.0, 1.0)
                    obs, rewards, terminated, truncated, infos = envs.step(
                        actions[:, 0] if single_branch else actions
                    )
                    for row in np.flatnonzero(truncated):  # cut by the step limit: bootstrap the last state
                        last = infos[row]["terminal_observation"][None]
                        rewards[row] += c["gamma"] * policy.value(normalize(last))[0]
                    reward_buf[t], ended_buf[t] = rewards, terminated | truncated
                    bar.update(n)
                    if self.stop_requested or workers.preempted(t + 1, steps):  # distributed: DD-PPO
                        break
                workers.done_collecting()
                if workers.any(self.stop_requested):  # distributed: every worker stops at the same update
                    stopped = True
                    break  # the partial rollout is dropped: the checkpoint below is at the last update
                collected = t + 1  # n_steps, unless DD-PPO's preemption ended this worker's rollout early
                new_steps = workers.count_steps(n * collected)  # distributed: every worker's steps
                global_step += new_steps
                bar.update(new_steps - n * collected)  # distributed: the other workers' steps

                # Generalised advantage estimation; the value after the last step bootstraps the rest.
                advantages, gae, next_value = np.zeros_like(reward_buf), 0.0, policy.value(normalize(obs))
                for t in reversed(range(collected)):
                    next_value = next_value if t == collected - 1 else value_buf[t + 1]
                    delta = reward_buf[t] + c["gamma"] * next_value * (1 - ended_buf[t]) - value_buf[t]
                    gae = advantages[t] = delta + c["gamma"] * c["gae_lambda"] * (1 - ended_buf[t]) * gae
                returns = advantages + value_buf

                # The update: n_epochs passes over the rollout in shuffled minibatches, each one call.
                progress = (global_step - new_steps) / c["total_timesteps"] if c["anneal_lr"] else 0.0
                learning_rate = tf.constant(c["learning_rate"] * (1.0 - min(progress, 1.0)), tf.float32)
                rollout = [obs_buf, act_buf, logp_buf, advantages, returns]
                rollout = [tf.constant(a.reshape(n * steps, *a.shape[2:])) for a in rollout]
                count = n * steps // c["batch_size"]  # minibatches per epoch, on every worker
                usable = n * collected // c["batch_size"]  # all of them, unless the rollout was cut short
                weights = tf.constant(np.arange(count) < usable, tf.float32)
                for _ in range(c["n_epochs"]):
                    order = np.zeros((count, c["batch_size"]), np.int64)
                    shuffled = self.rng.permutation(n * collected)[: usable * c["batch_size"]]
                    order[:usable] = shuffled.reshape(usable, c["batch_size"])
                    stats = learner.train_epoch(*rollout, tf.constant(order), weights, learning_rate).numpy()
                    if c["target_kl"] and stats[3] > c["target_kl"]:  # stats: over all workers, so all stop
                        break
                workers.check_identical(learner.variables, global_step)  # distributed: raises if they differ
                policy.sync()
                if agent.normalize:  # statistics including this rollout (distributed: every worker's)
                    normalize.update(*workers.moments(raw_buf[:collected].reshape(n * collected, -1)))

                finished = workers.gather_episodes(envs.pop_finished(), c["window"])  # distributed: all
                recent_returns.extend(episode.reward for episode in finished)
                recent_lengths.extend(episode.length for episode in finished)
                target, predicted = returns[:collected], value_buf[:collected]
                explained = 1 - np.var(target - predicted) / np.var(target) if np.var(target) else np.nan
                self.log_metrics(
                    global_step,
                    episode_reward_mean=np.mean(recent_returns) if recent_returns else np.nan,
                    episode_length_mean=np.mean(recent_lengths) if recent_lengths else np.nan,
                    fps=(global_step - start_step) / (time.perf_counter() - started),
                    policy_loss=stats[0],
                    value_loss=stats[1],
                    entropy=stats[2],
                    approx_kl=stats[3],
                    clip_fraction=stats[4],
                    explained_variance=explained,
                    learning_rate=float(learning_rate),
                )
                if global_step - last_checkpoint >= c["checkpoint_frequency"]:
                    checkpoint()
                    last_checkpoint = global_step
            if global_step != last_checkpoint or not state:
                checkpoint()

        if agent.normalize:
            agent.obs_mean.assign(normalize.mean.astype(np.float32))
            agent.obs_std.assign(normalize.std.astype(np.float32))
        self.agent = agent  # for tests and notebooks
        reward = float(np.mean(recent_returns)) if recent_returns else None
        summary = {
            "total_steps": global_step,
            "resumed_from": state.get("step"),
            "stopped_early": stopped,
            "episode_reward_mean": reward,
            "config": c,
        }
        if workers.is_chief:  # distributed: the chief writes the run's results
            export_policy(self.model_dir / "1", agent.deterministic_actions, envs.observation_space, agent)
            sample = raw_buf.reshape(n * steps, *raw_buf.shape[2:])[:256]  # the last rollout's observations
            reference = (sample, agent.deterministic_actions(tf.constant(sample)).numpy())
            self.export_unity_model(
                envs, unity_policy(agent), reference, steps=global_step, episode_reward_mean=reward
            )
            plot_learning_curve(
                self.output_dir / "metrics.jsonl", self.output_dir / "learning_curve.png", "PPO"
            )
            self.write_json("summary.json", summary)
        workers.finish()  # distributed: every worker leaves once the chief has written them
        return summary


if __name__ == "__main__":
    PPOTrainer(config).run()
