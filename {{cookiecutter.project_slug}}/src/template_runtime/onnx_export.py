"""Unity-ready ONNX policies, built from plain NumPy weights: the file a Behavior Parameters component
runs (its Model field), exactly as if ``mlagents-learn`` had written it.

``export_onnx(folder, policy, spec, ...)`` writes ``<behaviour>.onnx`` and ``<behaviour>.onnx.json``
(where it came from: job, steps, reward, behaviour, shapes, opset, the file's SHA-256). A policy is a
small dataclass of NumPy arrays (``GaussianPolicy``, ``CategoricalPolicy``, ``QPolicy``,
``RandomPolicy``), so this module knows nothing of the trainers' classes or of TensorFlow.
``python -m template_runtime.onnx_check model.onnx`` checks any such file (mlagents-learn's too).

The contract, read in the sources (file names under Unity-Technologies/ml-agents unless marked):

* Inputs. ``obs_<i>``, one per observation in the behaviour's order, float32, ``[batch, size]`` for
  vectors and ``[batch, channels, height, width]`` for images (values in [0, 1]); ``action_masks``
  ``[batch, sum of branch sizes]``, float32, 1 = allowed, 0 = masked, when there are discrete actions.
  Python mlagents 1.1.0 ``trainers/torch_entities/model_serialization.py`` (``obs_`` names,
  ``action_masks``, dynamic ``batch`` axis; images NCHW: 1.1 leaves the CHW spec as it is, releases
  before 3.x/1.0 permuted their HWC specs to CHW, so the ONNX input was NCHW in every torch-era
  export; what moved is the wire layout: mlagents_envs 1.1 ``rpc_utils.process_pixels`` turns each
  PNG to CHW, 0.28 keeps HWC). Unity side: ``Runtime/Inference/TensorGenerator.cs`` (Sentis
  version, commit c8f46d0) makes one ``obs_<sensor index>`` generator per sensor for API version 3 and
  throws "Unknown tensorProxy expected as input" for any other input name (the known ones:
  obs_*, action_masks, recurrent_in, prev_action, epsilon, batch_size, sequence_length);
  ``GeneratorImpl.cs`` ``ActionMaskInputGenerator`` writes 0 for masked, 1 for allowed.
* Outputs. ``version_number`` = 3 (``networks.py`` ``SimpleActor.MODEL_EXPORT_VERSION``;
  ``SentisModelParamLoader.cs`` ``ModelApiVersion.MLAgents2_0 = 3``, 2..3 accepted, anything else an
  error that ``ModelRunner.cs`` throws), ``memory_size`` = 0 (no recurrence); continuous:
  ``continuous_actions`` and ``deterministic_continuous_actions`` ``[batch, n]`` float32,
  ``continuous_action_output_shape`` = n; discrete: ``discrete_actions`` and
  ``deterministic_discrete_actions`` ``[batch, branches]`` (action indices, not logits: CHANGELOG
  2.0.0-exp.1), ``discrete_action_output_shape`` = the branch sizes (``[1, branches]`` in 1.1's
  export). The constants are float32 tensors: ``SentisModelInfo.cs`` reads all four as
  ``Tensor<float>``. Discrete actions must be integers: ``ApplierImpl.cs`` (ML-Agents 3.x on
  com.unity.ai.inference, commit e12369b) reads them as ``Tensor<int>`` (int64 in ONNX, as torch's
  argmax/multinomial give), continuous ones as ``Tensor<float>``, applied as they come (no clipping
  in Unity). Barracuda (com.unity.ml-agents 2.x) reads every tensor as float and casts.
* Sampling. ML-Agents samples inside the network (``action_model.py`` ``get_action_out``): Gaussian
  ``mean + N(0,1) * std``, and unless tanh-squashed ``clamp(a, -3, 3) / 3`` for both the sample and
  the mean; discrete: masked logits ``logits * mask - 1e8 * (1 - mask)`` (``distributions.py``
  ``_mask_branch``), ``multinomial`` for the sample, ``argmax`` for the deterministic output.
  Masked logits are -1e8, so their probability is exactly 0 in float32: never chosen.
* Opset 9. What mlagents-learn 1.1 writes (``settings.py`` ``SerializationSettings.onnx_opset = 9``),
  what Barracuda's own guide advises ("use ONNX opset=9, because it has wider coverage in
  Barracuda", Unity-Technologies/barracuda-release ``Documentation~/Exporting.md``), and inside
  Sentis' range (opset 7-15, needle-mirror/com.unity.sentis 1.6 ``Documentation~/supported-models.md``).
  Only operators in both engines' lists are used (Gemm with constant weights and alpha = beta = 1,
  as Barracuda's ``ONNXModelConverter.cs`` requires; Multinomial, which Sentis runs on the CPU
  backend, ML-Agents' default).

Differences from mlagents-learn, on purpose. Continuous actions: the examples train and act with
``clip(a, -1, 1)`` (ppo_trainer.py, gym-unity's Box(-1, 1)), so the default ``clip="unit"`` exports
exactly that; ``clip="mlagents"`` gives ML-Agents' ``clamp(a, -3, 3) / 3`` for a policy trained that way
(exporting /3 for the examples would shrink every action three times). The observation normaliser
(``(obs - mean) / std`` clipped to +-10) is folded into the graph, so Unity feeds raw observations.

Why not tf2onnx: its last release (1.17.0) is tested with TensorFlow 2.13-2.15 and opsets 14-18; it
does convert a plain ``tf.function`` on TensorFlow 2.21 + protobuf 6.33 here (checked), but the
SavedModel holds only the deterministic action, so the sampling, the masks, the constants and the
NCHW inputs would still have to be grafted on by hand, for small MLPs/CNNs that take a few lines each
with ``onnx.helper``. Building from weights also keeps TensorFlow out of the exporter (the random
example and the launcher's check never import it).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 9
IR_VERSION = 4  # what mlagents-learn 1.1 (torch 2.13, opset 9) writes; ONNX 1.4's, the one of opset 9
MODEL_API_VERSION = 3  # ML-Agents' ModelApiVersion.MLAgents2_0: obs_<i> inputs, action indices out
MASK_LOGIT = 1e8  # ML-Agents' distributions.py: masked logits become -1e8

OBS_PREFIX = "obs_"
ACTION_MASKS = "action_masks"
VERSION_NUMBER = "version_number"
MEMORY_SIZE = "memory_size"
CONTINUOUS_ACTIONS = "continuous_actions"
CONTINUOUS_SHAPE = "continuous_action_output_shape"
DETERMINISTIC_CONTINUOUS = "deterministic_continuous_actions"
DISCRETE_ACTIONS = "discrete_actions"
DISCRETE_SHAPE = "discrete_action_output_shape"
DETERMINISTIC_DISCRETE = "deterministic_discrete_actions"
BATCH = "batch"


# ----------------------------------------------------------------------------------------------
# What is exported: the behaviour and the policy's weights, as NumPy arrays


@dataclass(frozen=True)
class BehaviorSpec:
    """The behaviour as the trainer saw it. ``observation_shapes`` in the behaviour's order, images as
    mlagents-envs 0.28 / gym-unity give them (height, width, channels); ``channels_last=False`` for
    specs that are already (channels, height, width) (mlagents-envs 1.x). The name loses ``?team=``.
    ``policy_observations``: what the policy reads, as the env view picks it (``from_mlagents``): one
    camera, or vector observations side by side (in the graph: Concat of those ``obs_<i>``)."""

    name: str
    observation_shapes: tuple[tuple[int, ...], ...]
    continuous_size: int = 0
    discrete_branches: tuple[int, ...] = ()
    policy_observations: tuple[int, ...] = (0,)
    channels_last: bool = True

    @classmethod
    def from_mlagents(cls, name: str, spec, use_visual: bool) -> BehaviorSpec:
        """From an mlagents_envs ``BehaviorSpec``, with the policy reading what template_runtime.unity's
        views give it: the first camera (``use_visual``) or every vector observation, concatenated."""
        shapes = [tuple(o.shape) for o in spec.observation_specs]
        if use_visual:
            picked = [next(i for i, shape in enumerate(shapes) if len(shape) == 3)]
        else:
            picked = [i for i, shape in enumerate(shapes) if len(shape) == 1]
        action = spec.action_spec
        return cls(name, shapes, action.continuous_size, tuple(action.discrete_branches), tuple(picked))

    def __post_init__(self):
        object.__setattr__(self, "name", behavior_name(self.name))
        shapes = tuple(tuple(int(n) for n in shape) for shape in self.observation_shapes)
        object.__setattr__(self, "observation_shapes", shapes)
        object.__setattr__(self, "discrete_branches", tuple(int(n) for n in self.discrete_branches))
        if not shapes or any(not shape or min(shape) < 1 or len(shape) > 3 for shape in shapes):
            raise ValueError(f"observation shapes {shapes} must be one to three positive sizes each")
        if self.continuous_size < 0 or any(n < 1 for n in self.discrete_branches):
            raise ValueError(f"actions: {self.continuous_size} continuous, branches {self.discrete_branches}")
        if not self.continuous_size and not self.discrete_branches:
            raise ValueError(f"behaviour {self.name!r} has no actions")
        picked = tuple(int(i) for i in self.policy_observations)
        object.__setattr__(self, "policy_observations", picked)
        if not picked or any(not 0 <= i < len(shapes) for i in picked):
            raise ValueError(f"policy_observations {picked}: the behaviour has {len(shapes)} observations")
        if len(picked) > 1 and any(len(shapes[i]) != 1 for i in picked):
            raise ValueError(f"policy_observations {picked}: only vector observations can be concatenated")

    def onnx_shape(self, index: int) -> tuple[int, ...]:
        """The ``obs_<index>`` input's shape without the batch axis: images channels first."""
        shape = self.observation_shapes[index]
        if len(shape) == 3 and self.channels_last:
            return shape[2], shape[0], shape[1]
        return shape

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "observation_shapes": [list(s) for s in self.observation_shapes],
            "onnx_observation_shapes": [
                list(self.onnx_shape(i)) for i in range(len(self.observation_shapes))
            ],
            "continuous_size": self.continuous_size,
            "discrete_branches": list(self.discrete_branches),
            "policy_observations": list(self.policy_observations),
        }


def behavior_name(name: str) -> str:
    """``3DBall?team=0`` -> ``3DBall`` (mlagents-envs appends the team; the Unity component has none)."""
    return str(name).split("?", 1)[0]


@dataclass(frozen=True)
class Dense:
    """``x @ weight + bias``; ``weight`` is [inputs, outputs] (TensorFlow's layout, the examples')."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class ConvEncoder:
    """Convolutions (each followed by ReLU), then a ReLU dense layer: tf_blocks.ConvEncoder's weights in
    TensorFlow's layout (kernels [kh, kw, in, out], the dense layer reading features flattened in
    height, width, channel order). The export reorders them for ONNX's NCHW. Unity feeds images in
    [0, 1], so an encoder trained on uint8 pixels (divided by 255 inside) needs nothing more."""

    kernels: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    strides: tuple[int, ...]
    dense: Dense


@dataclass(frozen=True)
class Normalizer:
    """``clip((obs - mean) / std, -clip, clip)``, folded into the graph (Unity feeds raw observations)."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = 10.0


@dataclass(frozen=True)
class Body:
    """The spec's ``policy_observations`` -> features: normaliser, CNN, hidden layers."""

    hidden: tuple[Dense, ...] = ()
    activation: str = "tanh"  # "tanh" or "relu", after every hidden layer
    encoder: ConvEncoder | None = None
    normalizer: Normalizer | None = None


@dataclass(frozen=True)
class GaussianPolicy:
    """PPO's continuous actor: ``mean = head(body(obs))``, samples ``mean + N(0, 1) * exp(log_std)``,
    both clipped: ``clip="unit"`` to [-1, 1] (how the examples act), ``"mlagents"`` to [-3, 3] / 3."""

    body: Body
    mean: Dense
    log_std: np.ndarray
    clip: str = "unit"


@dataclass(frozen=True)
class CategoricalPolicy:
    """PPO's discrete actor: one softmax per branch over ``head(body(obs))`` (the branches' logits side by
    side); masked actions get a logit of -1e8. Samples with Multinomial, deterministic is argmax."""

    body: Body
    logits: Dense


@dataclass(frozen=True)
class QPolicy:
    """DQN's greedy policy: argmax over masked Q-values. With several branches flattened into one
    Discrete (gym-unity's ``flatten_branched``: the last branch varies fastest), a flat action is
    allowed when each of its branch actions is, and the output is mapped back to one index per branch.
    Both action outputs are the greedy action: the trained policy is greedy."""

    body: Body
    q: Dense


@dataclass(frozen=True)
class RandomPolicy:
    """Uniform random actions (continuous in [-1, 1], discrete among the allowed ones): a valid model for
    trying the pipeline before training. Deterministic: 0 for continuous, the first allowed action."""


Policy = GaussianPolicy | CategoricalPolicy | QPolicy | RandomPolicy


# ----------------------------------------------------------------------------------------------
# The graph


class _Graph:
    """Nodes and constants with unique names (``onnx.helper`` with a counter)."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint: str, dtype=np.float32) -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self._name(op_type), **attrs))
        return output

    def constant_output(self, name: str, value) -> str:
        """An output Unity reads as a constant: a float32 initializer and an Identity, as torch writes
        ML-Agents' constant parameters (``version_number.1`` -> Identity -> ``version_number``)."""
        return self.op("Identity", [self.const(value, f"{name}_value")], name)

    def dense(self, x: str, layer: Dense, hint: str) -> str:
        weight = np.asarray(layer.weight, np.float32)
        bias = np.asarray(layer.bias, np.float32)
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ValueError(f"{hint}: weight {weight.shape} and bias {bias.shape} do not make a dense layer")
        return self.op("Gemm", [x, self.const(weight, f"{hint}_w"), self.const(bias, f"{hint}_b")])

    def penalty(self, mask: str) -> str:
        """``(mask - 1) * 1e8``: 0 for allowed actions, -1e8 for masked ones (the constant second:
        ML-Agents notes that Sentis may swap the inputs of a Sub with a constant first)."""
        minus_one, big = self.const([-1.0], "minus_one"), self.const([MASK_LOGIT], "big")
        return self.op("Mul", [self.op("Add", [mask, minus_one]), big])

    def masked(self, logits: str, mask: str) -> str:
        """``logits * mask + (mask - 1) * 1e8``: ML-Agents' ``_mask_branch``."""
        return self.op("Add", [self.op("Mul", [logits, mask]), self.penalty(mask)])

    def floor_div(self, x: str, divisor: float) -> str:
        """``floor((x + 0.5) / divisor)``: whole-number division of whole floats, safe from rounding."""
        half, d = self.const([0.5], "half"), self.const([float(divisor)], "divisor")
        return self.op("Floor", [self.op("Div", [self.op("Add", [x, half]), d])])

    def sample(self, logits: str) -> str:
        """One int64 action drawn from softmax(logits): ``Multinomial(Log(Softmax))``, the nodes torch
        writes for ML-Agents' ``torch.multinomial(probs, 1)`` (masked actions: log 0 = -inf, never drawn)."""
        log_probs = self.op("Log", [self.op("Softmax", [logits], axis=1)])
        return self.op("Multinomial", [log_probs], dtype=TensorProto.INT64, sample_size=1)

    def branch_masks(self, branches: tuple[int, ...]) -> list[str]:
        """``action_masks`` cut into one [batch, size] slice per branch."""
        out, start = [], 0
        for size in branches:
            out.append(self.op("Slice", [ACTION_MASKS], axes=[1], starts=[start], ends=[start + size]))
            start += size
        return out


def _features(g: _Graph, body: Body, spec: BehaviorSpec) -> str:
    picked = spec.policy_observations
    if len(picked) == 1:
        x, shape = f"{OBS_PREFIX}{picked[0]}", spec.onnx_shape(picked[0])
    else:  # vector observations side by side, as the env view concatenates them
        x = g.op("Concat", [f"{OBS_PREFIX}{i}" for i in picked], axis=1)
        shape = (sum(spec.observation_shapes[i][0] for i in picked),)
    if body.normalizer is not None:
        n = body.normalizer
        x = g.op("Div", [g.op("Sub", [x, g.const(n.mean, "obs_mean")]), g.const(n.std, "obs_std")])
        x = g.op("Clip", [x], min=-float(n.clip), max=float(n.clip))
    if body.encoder is not None:
        if len(shape) != 3:
            raise ValueError(f"a CNN needs an image observation; observations {picked} are {shape}")
        x = _conv_encoder(g, body.encoder, x, shape)
    elif len(shape) != 1:
        raise ValueError(f"observations {picked} have shape {shape}: an image needs an encoder")
    activation = {"tanh": "Tanh", "relu": "Relu"}.get(body.activation)
    if activation is None:
        raise ValueError(f"activation {body.activation!r}: use 'tanh' or 'relu'")
    for i, layer in enumerate(body.hidden):
        x = g.op(activation, [g.dense(x, layer, f"hidden{i}")])
    return x


def _conv_encoder(g: _Graph, enc: ConvEncoder, x: str, chw: tuple[int, int, int]) -> str:
    channels, height, width = chw
    for i, (kernel, bias, stride) in enumerate(zip(enc.kernels, enc.biases, enc.strides, strict=True)):
        kernel = np.asarray(kernel, np.float32)  # [kh, kw, in, out] -> ONNX [out, in, kh, kw]
        if kernel.shape[2] != channels:
            raise ValueError(f"conv{i} reads {kernel.shape[2]} channels, the input has {channels}")
        w = g.const(kernel.transpose(3, 2, 0, 1), f"conv{i}_w")
        b = g.const(np.asarray(bias, np.float32), f"conv{i}_b")
        x = g.op(
            "Relu", [g.op("Conv", [x, w, b], kernel_shape=list(kernel.shape[:2]), strides=[stride, stride])]
        )
        channels = kernel.shape[3]
        height, width = (height - kernel.shape[0]) // stride + 1, (width - kernel.shape[1]) // stride + 1
    weight = np.asarray(enc.dense.weight, np.float32)
    if weight.shape[0] != height * width * channels:
        raise ValueError(
            f"the encoder's dense layer reads {weight.shape[0]} features, the convolutions give "
            f"{height}x{width}x{channels}"
        )
    # TensorFlow flattened (h, w, c); ONNX's Flatten of NCHW gives (c, h, w): reorder the rows.
    weight = weight.reshape(height, width, channels, -1).transpose(2, 0, 1, 3).reshape(weight.shape[0], -1)
    x = g.op("Flatten", [x], axis=1)
    return g.op("Relu", [g.dense(x, Dense(weight, enc.dense.bias), "encoder")])


def _gaussian(g: _Graph, policy: GaussianPolicy, spec: BehaviorSpec) -> None:
    n = spec.continuous_size
    mean = g.dense(_features(g, policy.body, spec), policy.mean, "mean")
    log_std = np.asarray(policy.log_std, np.float32).reshape(-1)
    if log_std.shape != (n,) or np.shape(policy.mean.bias) != (n,):
        raise ValueError(
            f"the policy gives {np.shape(policy.mean.bias)} means / {log_std.shape} log_std, "
            f"the behaviour has {n} continuous actions"
        )
    noise = g.op("RandomNormalLike", [mean], dtype=TensorProto.FLOAT, mean=0.0, scale=1.0)
    sample = g.op("Add", [mean, g.op("Mul", [noise, g.const(np.exp(log_std), "std")])])
    for source, output in ((sample, CONTINUOUS_ACTIONS), (mean, DETERMINISTIC_CONTINUOUS)):
        if policy.clip == "unit":
            g.op("Clip", [source], output, min=-1.0, max=1.0)
        elif policy.clip == "mlagents":
            g.op("Div", [g.op("Clip", [source], min=-3.0, max=3.0), g.const([3.0], "three")], output)
        else:
            raise ValueError(
                f"clip={policy.clip!r}: use 'unit' (clip to [-1, 1]) or 'mlagents' ([-3, 3] / 3)"
            )


def _categorical(g: _Graph, policy: CategoricalPolicy, spec: BehaviorSpec) -> None:
    branches = spec.discrete_branches
    weight, bias = np.asarray(policy.logits.weight), np.asarray(policy.logits.bias)
    x = _features(g, policy.body, spec)
    if _flattened(bias.shape[0], branches, "the policy's logits"):  # one softmax over every combination
        logits = g.masked(g.dense(x, policy.logits, "logits"), _flat_allowed(g, branches))
        g.op("Identity", [_unravel(g, g.sample(logits), branches)], DISCRETE_ACTIONS)
        greedy = g.op("ArgMax", [logits], axis=1, keepdims=1)
        g.op("Identity", [_unravel(g, greedy, branches)], DETERMINISTIC_DISCRETE)
        return
    samples, greedy, start = [], [], 0
    for i, (size, mask) in enumerate(zip(branches, g.branch_masks(branches), strict=True)):
        part = Dense(weight[:, start : start + size], bias[start : start + size])
        logits = g.masked(g.dense(x, part, f"branch{i}"), mask)
        samples.append(g.sample(logits))
        greedy.append(g.op("ArgMax", [logits], axis=1, keepdims=1))
        start += size
    g.op("Concat", samples, DISCRETE_ACTIONS, axis=1)
    g.op("Concat", greedy, DETERMINISTIC_DISCRETE, axis=1)


def _q_greedy(g: _Graph, policy: QPolicy, spec: BehaviorSpec) -> None:
    branches = spec.discrete_branches
    q = g.dense(_features(g, policy.body, spec), policy.q, "q")
    if _flattened(np.shape(policy.q.bias)[0], branches, "the Q-network's outputs"):
        greedy = g.op("ArgMax", [g.masked(q, _flat_allowed(g, branches))], axis=1, keepdims=1)
        best = _unravel(g, greedy, branches)
    else:  # one Q-value per branch action (one branch, or action-branching heads): argmax per branch
        best, start = [], 0
        for size, mask in zip(branches, g.branch_masks(branches), strict=True):
            part = g.op("Slice", [q], axes=[1], starts=[start], ends=[start + size])
            best.append(g.op("ArgMax", [g.masked(part, mask)], axis=1, keepdims=1))
            start += size
        best = g.op("Concat", best, axis=1)
    g.op("Identity", [best], DISCRETE_ACTIONS)
    g.op("Identity", [best], DETERMINISTIC_DISCRETE)


def _flattened(outputs: int, branches: tuple[int, ...], what: str) -> bool:
    """True for one output per combination of branch actions (gym-unity's ``flatten_branched``),
    False for the branches side by side (one branch: the same thing)."""
    if outputs == sum(branches):
        return False
    if outputs == math.prod(branches):
        return True
    raise ValueError(
        f"{what}: {outputs}; the branches {branches} need {sum(branches)} (side by side) or "
        f"{math.prod(branches)} (flattened)"
    )


def _flat_allowed(g: _Graph, branches: tuple[int, ...]) -> str:
    """[batch, prod(branches)]: 1 where every branch action of the combination is allowed."""
    flat = math.prod(branches)
    table = np.array(np.unravel_index(np.arange(flat), branches)).T  # combination -> action per branch
    pick = np.zeros((sum(branches), flat), np.float32)
    for b, offset in enumerate(np.cumsum((0,) + branches[:-1])):
        pick[offset + table[:, b], np.arange(flat)] = 1.0
    # relu(the number of allowed branch actions - (n - 1)): 1 when all n are, else 0.
    count = g.op("MatMul", [ACTION_MASKS, g.const(pick, "flat_pick")])
    return g.op("Relu", [g.op("Add", [count, g.const([1.0 - len(branches)], "one_minus_n")])])


def _unravel(g: _Graph, flat: str, branches: tuple[int, ...]) -> str:
    """[batch, 1] combination indices -> [batch, branches] int64 actions, the last branch varying
    fastest (itertools.product, as gym-unity flattens): ``(k // stride) % size`` in exact floats."""
    k, columns = g.op("Cast", [flat], to=TensorProto.FLOAT), []
    for b, size in enumerate(branches):
        quotient = g.floor_div(k, math.prod(branches[b + 1 :]))
        wraps = g.op("Mul", [g.floor_div(quotient, size), g.const([float(size)], "size")])
        columns.append(g.op("Sub", [quotient, wraps]))
    joined = g.op("Concat", columns, axis=1) if len(columns) > 1 else columns[0]
    return g.op("Cast", [joined], to=TensorProto.INT64)


def _random(g: _Graph, spec: BehaviorSpec) -> None:
    if spec.continuous_size:
        # A [batch, n] tensor of zeros shaped by obs_0, for RandomUniformLike to take its shape from.
        rank = len(spec.onnx_shape(0))
        summary = g.op(
            "Flatten",
            [g.op("ReduceMean", [f"{OBS_PREFIX}0"], axes=list(range(1, rank + 1)), keepdims=1)],
            axis=1,
        )
        n = spec.continuous_size
        zeros = g.dense(summary, Dense(np.zeros((1, n)), np.zeros(n)), "template")
        g.op("RandomUniformLike", [zeros], CONTINUOUS_ACTIONS, dtype=TensorProto.FLOAT, low=-1.0, high=1.0)
        g.op("Identity", [zeros], DETERMINISTIC_CONTINUOUS)
    if spec.discrete_branches:
        samples, first = [], []
        for mask in g.branch_masks(spec.discrete_branches):
            logits = g.penalty(mask)  # 0 where allowed: uniform over the allowed actions
            samples.append(g.sample(logits))
            first.append(g.op("ArgMax", [logits], axis=1, keepdims=1))
        g.op("Concat", samples, DISCRETE_ACTIONS, axis=1)
        g.op("Concat", first, DETERMINISTIC_DISCRETE, axis=1)


def build_onnx(policy: Policy, spec: BehaviorSpec, doc: str = "") -> onnx.ModelProto:
    """The ONNX model of ``policy`` for ``spec``, checked with onnx's own checker."""
    g = _Graph()
    inputs = [
        helper.make_tensor_value_info(f"{OBS_PREFIX}{i}", TensorProto.FLOAT, [BATCH, *spec.onnx_shape(i)])
        for i in range(len(spec.observation_shapes))
    ]
    outputs = [(VERSION_NUMBER, TensorProto.FLOAT, [1]), (MEMORY_SIZE, TensorProto.FLOAT, [1])]
    g.constant_output(VERSION_NUMBER, [MODEL_API_VERSION])
    g.constant_output(MEMORY_SIZE, [0])
    if spec.continuous_size:
        if isinstance(policy, CategoricalPolicy | QPolicy):
            raise ValueError(
                f"{type(policy).__name__} cannot drive {spec.continuous_size} continuous actions"
            )
        n = spec.continuous_size
        g.constant_output(CONTINUOUS_SHAPE, [n])
        outputs += [
            (CONTINUOUS_ACTIONS, TensorProto.FLOAT, [BATCH, n]),
            (CONTINUOUS_SHAPE, TensorProto.FLOAT, [1]),
            (DETERMINISTIC_CONTINUOUS, TensorProto.FLOAT, [BATCH, n]),
        ]
    if spec.discrete_branches:
        if isinstance(policy, GaussianPolicy):
            raise ValueError(f"a Gaussian policy cannot drive the discrete branches {spec.discrete_branches}")
        nb = len(spec.discrete_branches)
        inputs.append(
            helper.make_tensor_value_info(
                ACTION_MASKS, TensorProto.FLOAT, [BATCH, sum(spec.discrete_branches)]
            )
        )
        g.constant_output(DISCRETE_SHAPE, [list(spec.discrete_branches)])
        outputs += [
            (DISCRETE_ACTIONS, TensorProto.INT64, [BATCH, nb]),
            (DISCRETE_SHAPE, TensorProto.FLOAT, [1, nb]),
            (DETERMINISTIC_DISCRETE, TensorProto.INT64, [BATCH, nb]),
        ]
    if isinstance(policy, GaussianPolicy):
        _gaussian(g, policy, spec)
    elif isinstance(policy, CategoricalPolicy):
        _categorical(g, policy, spec)
    elif isinstance(policy, QPolicy):
        _q_greedy(g, policy, spec)
    elif isinstance(policy, RandomPolicy):
        _random(g, spec)
    else:
        raise TypeError(f"cannot export {type(policy).__name__}: use one of the policies of {__name__}")
    graph = helper.make_graph(
        g.nodes, spec.name, inputs, [helper.make_tensor_value_info(*o) for o in outputs], g.initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="unity-sagemaker-rl",
        producer_version="1",
        doc_string=doc,
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------------------------------------------------------
# Files


def onnx_file_name(name: str) -> str:
    """``<behaviour>.onnx`` as mlagents-learn names it, with characters no file system likes replaced."""
    stem = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", behavior_name(name)).strip(". ")
    return f"{stem or 'policy'}.onnx"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_onnx(
    folder: Path, policy: Policy, spec: BehaviorSpec, reference: tuple | None = None, **provenance
) -> Path:
    """Write ``folder/<behaviour>.onnx`` and ``<behaviour>.onnx.json`` beside it; return the .onnx path.

    ``provenance``: what a reader should know of the model, e.g. ``training_job``, ``trainer``,
    ``steps``, ``episode_reward_mean`` (the JSON gets them as given, plus the behaviour, the policy
    kind, the inputs/outputs, the opset and the file's SHA-256). ``reference``: ``(observations,
    actions)``, a batch of what the policy reads, as the env view gives it, and the trainer's own
    deterministic actions for it, no masks (flat indices with ``flatten_branched``); the file is run on
    them with onnxruntime (observations the policy does not read as zeros) and the JSON's ``check``
    records how well it agrees (``matches``: continuous within 1e-5, discrete identical but for
    near-ties, at most 0.1%).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / onnx_file_name(spec.name)
    kind = type(policy).__name__
    doc = f"{kind} for {spec.name}" + "".join(
        f"; {k}={v}" for k, v in provenance.items() if k in ("training_job", "steps")
    )
    model = build_onnx(policy, spec, doc)
    partial = path.with_name(f".{path.name}.partial")
    onnx.save_model(model, str(partial))
    partial.replace(path)
    describe = {"kind": kind}
    if isinstance(policy, GaussianPolicy):
        describe["continuous_clip"] = policy.clip
    body = getattr(policy, "body", None)
    if body is not None:
        describe.update(
            normalizer_inside=body.normalizer is not None,
            encoder="cnn" if body.encoder is not None else None,
        )
    record = {
        "onnx_file": path.name,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **provenance,
        "behavior": spec.as_dict(),
        "policy": describe,
        "onnx": {
            "opset": OPSET,
            "ir_version": model.ir_version,
            "model_api_version": MODEL_API_VERSION,
            "inputs": {v.name: _dims(v) for v in model.graph.input},
            "outputs": {v.name: _dims(v) for v in model.graph.output},
        },
    }
    if reference is not None:
        record["check"] = _compare(path, spec, *reference)
    path.with_name(path.name + ".json").write_text(
        json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8"
    )
    return path


def deterministic_actions(path: Path, observations, masks: np.ndarray | None = None) -> np.ndarray:
    """The model's deterministic actions (continuous or discrete, whichever it has) for a batch of
    observations as the env gives them: one array for ``obs_0`` or a list, one per ``obs_<i>``; images
    (batch, height, width, channels), uint8 pixels or floats in [0, 1], are turned into what Unity
    feeds (NCHW floats in [0, 1]). ``masks``: ``action_masks`` (default: every action allowed)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    observations = observations if isinstance(observations, list | tuple) else [observations]
    feeds = {}
    for i, obs in enumerate(observations):
        obs = np.asarray(obs)
        if obs.ndim == 4:
            obs = (obs / 255.0 if obs.dtype == np.uint8 else obs).transpose(0, 3, 1, 2)
        feeds[f"{OBS_PREFIX}{i}"] = np.ascontiguousarray(obs, dtype=np.float32)
    names = [i.name for i in session.get_inputs()]
    if ACTION_MASKS in names:
        width = next(i for i in session.get_inputs() if i.name == ACTION_MASKS).shape[1]
        batch = len(observations[0])
        feeds[ACTION_MASKS] = np.ones((batch, width), np.float32) if masks is None else masks
    outputs = [o.name for o in session.get_outputs()]
    wanted = [n for n in (DETERMINISTIC_CONTINUOUS, DETERMINISTIC_DISCRETE) if n in outputs]
    return np.concatenate(session.run(wanted, {k: v for k, v in feeds.items() if k in names}), axis=1)


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _compare(path: Path, spec: BehaviorSpec, observations, expected) -> dict:
    """onnxruntime's deterministic actions for ``observations`` against the trainer's ``expected``."""
    observations = np.asarray(observations)
    inputs, start = [], 0
    for i, shape in enumerate(spec.observation_shapes):  # the policy's input split back into obs_<i>
        if i in spec.policy_observations and len(spec.policy_observations) > 1:
            inputs.append(observations[:, start : start + shape[0]])
            start += shape[0]
        elif i in spec.policy_observations:
            inputs.append(observations)
        else:
            inputs.append(np.zeros((len(observations), *shape), np.float32))
    actual = deterministic_actions(path, inputs)
    expected = np.asarray(expected)
    branches = spec.discrete_branches
    if expected.ndim == 1 and len(branches) > 1:  # flat indices (flatten_branched) -> one per branch
        expected = np.array(np.unravel_index(expected.astype(np.int64), branches)).T
    expected = expected.reshape(actual.shape)
    if np.issubdtype(actual.dtype, np.integer):
        disagree = int((actual != expected).any(axis=1).sum())
        share = disagree / max(len(actual), 1)
        return {"observations": len(actual), "disagreements": disagree, "matches": share <= 0.001}
    difference = float(np.abs(actual - expected).max()) if actual.size else 0.0
    return {"observations": len(actual), "max_abs_difference": difference, "matches": difference <= 1e-5}
