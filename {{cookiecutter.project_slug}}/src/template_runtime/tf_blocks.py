"""Plumbing shared by the learning examples (ppo_trainer.py, tf_trainer.py), kept out of their way.

An algorithm file should read top to bottom as the algorithm; what is not the algorithm lives here
(and in vec_env.py, which runs several Unity instances as one batch of envs):

* ``check_hyperparameters``: the common range checks, with errors naming the key and the value;
* ``orthogonal``, ``ConvEncoder``, ``Adam``: network building blocks whose state is plain variables;
* ``save_training_state`` / ``restore_training_state``: checkpoints of variables, extra arrays, the
  step, the RNG state and recent returns (checkpoints.py: manifested, restored newest-usable-first);
* ``export_policy``: the SavedModel with a ``serving_default`` signature;
* ``onnx_dense``, ``onnx_encoder``: the same weights as NumPy arrays for the Unity model
  (template_runtime/onnx_export.py builds the ONNX file from them).

Metrics, TensorBoard and the learning curve are metrics.py's (no TensorFlow needed there).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from template_runtime import onnx_export
from template_runtime.checkpoints import Checkpoint, CheckpointError, load_latest_checkpoint, save_checkpoint
from template_runtime.config import ConfigError

# ----------------------------------------------------------------------------------------------
# Hyperparameters and network building blocks


def check_hyperparameters(c: Mapping, positive: tuple[str, ...], unit: tuple[str, ...]) -> list[int]:
    """Refuse values that cannot work before a player is started; return ``hidden_sizes`` as ints."""
    for key in positive:
        if not c[key] > 0:
            raise ConfigError(f"{key}={c[key]!r} must be positive: set {key} to a number above 0")
    for key in unit:
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


def orthogonal(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> np.ndarray:
    """Orthogonal initial weights (as in CleanRL and SB3), drawn from the trainer's seeded generator,
    so a seed fixes the whole run without TensorFlow's own random state."""
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return (gain * q[:rows, :cols]).reshape(shape).astype(np.float32)


class ConvEncoder(tf.Module):
    """Camera images to 256 features: ML-Agents' "simple" encoder (conv 8x8/4 16, conv 4x4/2 32, dense)."""

    size = 256
    strides = (4, 2)

    def __init__(self, shape: tuple[int, int, int], uint8: bool, rng: np.random.Generator):
        super().__init__()
        height, width, channels = shape
        if min(height, width) < 20:
            raise ConfigError(f"the camera images are {height}x{width}; this CNN needs at least 20x20 pixels")
        out = [((size - 8) // 4 + 1 - 4) // 2 + 1 for size in (height, width)]
        self.uint8 = uint8
        self.k1 = tf.Variable(orthogonal(rng, (8, 8, channels, 16), np.sqrt(2)))
        self.k2 = tf.Variable(orthogonal(rng, (4, 4, 16, 32), np.sqrt(2)))
        self.w = tf.Variable(orthogonal(rng, (out[0] * out[1] * 32, self.size), np.sqrt(2)))
        self.b1, self.b2, self.b = (tf.Variable(tf.zeros(size)) for size in (16, 32, self.size))

    @tf.function
    def __call__(self, images):
        x = tf.cast(images, tf.float32) / 255.0 if self.uint8 else images
        x = tf.nn.relu(tf.nn.conv2d(x, self.k1, self.strides[0], "VALID") + self.b1)
        x = tf.nn.relu(tf.nn.conv2d(x, self.k2, self.strides[1], "VALID") + self.b2)
        return tf.nn.relu(tf.reshape(x, [tf.shape(x)[0], -1]) @ self.w + self.b)


class Adam(tf.Module):
    """Adam written out, so its state is plain variables that a checkpoint saves with the networks."""

    def __init__(self, variables, epsilon: float, beta1: float = 0.9, beta2: float = 0.999):
        super().__init__()
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.t = tf.Variable(0.0)

    def apply(self, gradients, variables, learning_rate) -> None:
        self.t.assign_add(1.0)
        step = learning_rate * tf.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        for g, var, m, v in zip(gradients, variables, self.m, self.v, strict=True):
            m.assign(self.beta1 * m + (1 - self.beta1) * g)
            v.assign(self.beta2 * v + (1 - self.beta2) * tf.square(g))
            var.assign_sub(step * m / (tf.sqrt(v) + self.epsilon))


# ----------------------------------------------------------------------------------------------
# Checkpoints


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


def save_training_state(
    trainer, step: int, module: tf.Module, arrays: Mapping, recent_returns
) -> Path | None:
    """Checkpoint ``module``'s variables (networks, optimiser), ``arrays`` (normaliser, replay buffer),
    the step, the trainer's RNG state and recent episode returns, in ``trainer.checkpoint_dir``.

    None when the checkpoint could not be written (disk full: a warning is logged, the previous
    checkpoint stays the latest, and training goes on)."""
    saved = {f"v{i}": v.numpy() for i, v in enumerate(module.variables)}
    state = {"rng": trainer.rng.bit_generator.state, "recent_returns": list(recent_returns)}
    path = save_checkpoint(trainer.checkpoint_dir, step, {**saved, **arrays}, state)
    if path is not None:
        logging.getLogger("trainer").info("checkpoint at step %d: %s", step, path)
    return path


def restore_training_state(trainer, module: tf.Module, what: str) -> tuple[int, dict, dict]:
    """Load the newest usable checkpoint into ``module`` and the trainer's RNG: ``(step, arrays,
    state)``, or ``(0, {}, {})`` when ``checkpoint_dir`` has none (a fresh start).

    Checkpoints that fail their manifest or do not load are skipped (see checkpoints.py); one that
    loads but does not fit ``module`` (other settings) is an error, not skipped."""
    count = len(module.variables)

    def accept(checkpoint: Checkpoint) -> None:
        missing = [f"v{i}" for i in range(count) if f"v{i}" not in checkpoint.arrays]
        if not isinstance(checkpoint.state.get("rng"), dict):
            raise CheckpointError("state.json has no RNG state")
        if missing and len(missing) == count:
            raise CheckpointError(f"arrays.npz holds none of the {what}'s variables")

    found = load_latest_checkpoint(trainer.checkpoint_dir, accept)
    if found is None:
        return 0, {}, {}
    arrays, state = found.arrays, {**found.state, "path": str(found.path)}
    saved = [arrays[f"v{i}"] for i in range(len(arrays)) if f"v{i}" in arrays]
    restore_arrays(module.variables, saved, what, state["path"])
    trainer.rng.bit_generator.state = state["rng"]
    logging.getLogger("trainer").info("resuming from %s at step %d", state["path"], state["step"])
    trainer.resuming_from(int(state["step"]))  # metrics.jsonl and TensorBoard continue from there
    return int(state["step"]), arrays, state


# ----------------------------------------------------------------------------------------------
# Reporting and results


def export_policy(folder: Path, act, observation_space, owner: tf.Module) -> Path:
    """Save ``act`` (a batch of observations -> actions) as a SavedModel with a ``serving_default``
    signature taking one input, ``observations``, and returning ``{"actions": ...}``.

    ``folder`` is model_dir/1: TensorFlow Serving (and SageMaker's TensorFlow serving containers)
    expect a numbered version folder.
    """
    module = tf.Module()
    module.owner = owner  # tracks the variables ``act`` reads
    spec = tf.TensorSpec([None, *observation_space.shape], observation_space.dtype, name="observations")
    module.serve = tf.function(lambda observations: {"actions": act(observations)}, input_signature=[spec])
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return Path(folder)


def onnx_dense(weights, biases) -> tuple[onnx_export.Dense, ...]:
    """Dense layers' variables (``x @ w + b`` each) as NumPy layers for onnx_export."""
    return tuple(onnx_export.Dense(w.numpy(), b.numpy()) for w, b in zip(weights, biases, strict=True))


def onnx_encoder(encoder: ConvEncoder | None) -> onnx_export.ConvEncoder | None:
    """A ``ConvEncoder``'s variables for onnx_export (which reorders them for ONNX's NCHW images)."""
    if encoder is None:
        return None
    dense = onnx_export.Dense(encoder.w.numpy(), encoder.b.numpy())
    kernels, biases = (encoder.k1.numpy(), encoder.k2.numpy()), (encoder.b1.numpy(), encoder.b2.numpy())
    return onnx_export.ConvEncoder(kernels, biases, encoder.strides, dense)
