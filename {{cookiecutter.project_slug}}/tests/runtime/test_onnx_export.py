"""template_runtime.onnx_export: Unity-ready ONNX policies from NumPy weights, run with onnxruntime and
compared with NumPy references of the same policies written here (images as the env gives them, HWC)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from template_runtime import onnx_check
from template_runtime.onnx_export import (
    BehaviorSpec,
    Body,
    CategoricalPolicy,
    ConvEncoder,
    Dense,
    GaussianPolicy,
    Normalizer,
    QPolicy,
    RandomPolicy,
    build_onnx,
    export_onnx,
    onnx_file_name,
    sha256,
)

RNG = np.random.default_rng(7)
OBS = 8
IMAGE = (36, 36, 3)  # (36 - 8) / 4 + 1 = 8, (8 - 4) / 2 + 1 = 3: 3 x 3 x 32 features into the dense layer
SMALL_IMAGE = (12, 12, 1)  # the random model reads no pixels: a small camera keeps big batches cheap


def dense(inputs: int, outputs: int, scale: float = 0.5) -> Dense:
    return Dense(
        RNG.standard_normal((inputs, outputs)).astype(np.float32) * scale / np.sqrt(inputs),
        RNG.standard_normal(outputs).astype(np.float32) * 0.1,
    )


def normalizer() -> Normalizer:
    return Normalizer(RNG.standard_normal(OBS).astype(np.float32), (RNG.random(OBS) + 0.5).astype(np.float32))


def encoder() -> ConvEncoder:
    kernels = (RNG.standard_normal((8, 8, 3, 16)) * 0.1, RNG.standard_normal((4, 4, 16, 32)) * 0.1)
    biases = (RNG.standard_normal(16) * 0.1, RNG.standard_normal(32) * 0.1)
    return ConvEncoder(
        tuple(k.astype(np.float32) for k in kernels), biases, (4, 2), dense(3 * 3 * 32, 256, 2.0)
    )


def vector_body(activation: str = "tanh") -> Body:
    return Body((dense(OBS, 16), dense(16, 16)), activation, normalizer=normalizer())


def image_body(activation: str = "tanh") -> Body:
    return Body((dense(256, 16),), activation, encoder=encoder())


# ----------------------------------------------------------------------------------------------
# NumPy references


def np_body(body: Body, obs: np.ndarray) -> np.ndarray:
    x = obs.astype(np.float32)
    if body.normalizer is not None:
        n = body.normalizer
        x = np.clip((x - n.mean) / n.std, -n.clip, n.clip)
    if body.encoder is not None:
        for kernel, bias, stride in zip(
            body.encoder.kernels, body.encoder.biases, body.encoder.strides, strict=True
        ):
            kh, kw = kernel.shape[:2]
            windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[
                :, ::stride, ::stride
            ]
            x = np.maximum(np.einsum("bhwcij,ijco->bhwo", windows, kernel) + bias, 0)  # NHWC, VALID padding
        x = x.reshape(len(x), -1)
        x = np.maximum(x @ body.encoder.dense.weight + body.encoder.dense.bias, 0)
    act = np.tanh if body.activation == "tanh" else (lambda v: np.maximum(v, 0))
    for layer in body.hidden:
        x = act(x @ layer.weight + layer.bias)
    return x


def np_masked(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask > 0, logits, -np.inf)


def onnx_feeds(spec: BehaviorSpec, observations: list[np.ndarray], mask: np.ndarray | None = None) -> dict:
    feeds = {}
    for i, obs in enumerate(observations):
        feeds[f"obs_{i}"] = obs.transpose(0, 3, 1, 2).copy() if obs.ndim == 4 else obs  # Unity's NCHW
    if spec.discrete_branches:
        feeds["action_masks"] = (
            np.ones((len(observations[0]), sum(spec.discrete_branches)), np.float32) if mask is None else mask
        )
    return feeds


def run(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def random_masks(batch: int, branches: tuple[int, ...], rng=RNG) -> np.ndarray:
    mask = (rng.random((batch, sum(branches))) < 0.5).astype(np.float32)
    start = 0
    for size in branches:  # Unity refuses a branch with every action masked
        mask[np.arange(batch), start + rng.integers(0, size, batch)] = 1
        start += size
    return mask


def assert_argmax_equal(actual: np.ndarray, scores: np.ndarray) -> None:
    """``actual`` is the argmax of ``scores`` wherever the best two are not within float32 noise."""
    order = np.sort(np.where(np.isfinite(scores), scores, -1e30), axis=1)
    clear = order[:, -1] - order[:, -2] > 1e-4
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(actual[clear], scores.argmax(axis=1)[clear])


VECTOR_CONT = BehaviorSpec("3DBall?team=0", [(OBS,)], continuous_size=2)
IMAGE_CONT = BehaviorSpec("Camera?team=0", [IMAGE], continuous_size=2)
MULTI = BehaviorSpec("Branched?team=0", [(OBS,)], discrete_branches=(3, 2, 4))
SINGLE = BehaviorSpec("Discrete?team=0", [(OBS,)], discrete_branches=(9,))


def kinds() -> dict[str, tuple]:
    """One exported model per kind the examples produce: (policy, spec)."""
    return {
        "ppo-continuous": (GaussianPolicy(vector_body(), dense(16, 2), np.full(2, -0.5)), VECTOR_CONT),
        "ppo-continuous-image": (GaussianPolicy(image_body(), dense(16, 2), np.zeros(2)), IMAGE_CONT),
        "ppo-discrete": (CategoricalPolicy(vector_body(), dense(16, 9)), SINGLE),
        "ppo-multi-discrete": (CategoricalPolicy(vector_body(), dense(16, 9)), MULTI),
        "ppo-discrete-image": (
            CategoricalPolicy(image_body(), dense(16, 9)),
            BehaviorSpec("C", [IMAGE], discrete_branches=(3, 2, 4)),
        ),
        "dqn": (QPolicy(Body((dense(OBS, 16),), "relu"), dense(16, 9)), SINGLE),
        "dqn-flattened": (QPolicy(Body((dense(OBS, 16),), "relu"), dense(16, 24)), MULTI),
        "dqn-image": (
            QPolicy(image_body("relu"), dense(16, 9)),
            BehaviorSpec("C", [IMAGE], discrete_branches=(9,)),
        ),
        "random": (
            RandomPolicy(),
            BehaviorSpec("Mixed", [SMALL_IMAGE, (OBS,)], continuous_size=3, discrete_branches=(3, 2)),
        ),
    }


KINDS = kinds()


def vector_obs(batch: int) -> np.ndarray:
    return (RNG.standard_normal((batch, OBS)) * 3).astype(np.float32)


def image_obs(batch: int, shape: tuple[int, int, int] = IMAGE) -> np.ndarray:
    return RNG.random((batch, *shape), dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# The file


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_passes_onnx_checker_and_the_contract_check(kind, tmp_path):
    policy, spec = KINDS[kind]
    path = export_onnx(tmp_path, policy, spec, training_job="job", steps=10)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    report = onnx_check.check_onnx(path, draws=10)
    assert report.ok, report.text()


@pytest.mark.parametrize("kind", KINDS)
def test_opset_9_ir_4_and_only_operators_both_unity_engines_list(kind):
    model = build_onnx(*KINDS[kind])
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 9)]
    assert model.ir_version == 4
    used = {node.op_type for node in model.graph.node}
    assert used <= onnx_check.SENTIS_OPS & onnx_check.BARRACUDA_OPS


def test_constants_are_float32_tensors_with_the_values_unity_reads():
    outputs = run(
        build_onnx(*KINDS["random"]),
        onnx_feeds(KINDS["random"][1], [image_obs(2, SMALL_IMAGE), vector_obs(2)]),
    )
    for name, value in [
        ("version_number", [3]),
        ("memory_size", [0]),
        ("continuous_action_output_shape", [3]),
    ]:
        assert outputs[name].dtype == np.float32 and outputs[name].tolist() == value
    assert outputs["discrete_action_output_shape"].dtype == np.float32
    assert outputs["discrete_action_output_shape"].tolist() == [[3, 2]]  # [1, branches], as mlagents-learn
    assert outputs["discrete_actions"].dtype == np.int64  # Sentis reads discrete actions as Tensor<int>


def test_inputs_are_named_and_shaped_as_unity_generates_them():
    model = build_onnx(*KINDS["random"])
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input
    }
    assert shapes == {"obs_0": ["batch", 1, 12, 12], "obs_1": ["batch", OBS], "action_masks": ["batch", 5]}


def test_file_named_after_the_behaviour_with_a_provenance_json(tmp_path):
    policy, spec = KINDS["ppo-continuous"]
    path = export_onnx(
        tmp_path, policy, spec, training_job="ppo-20261201", steps=4096, episode_reward_mean=12.5
    )
    assert path.name == "3DBall.onnx"
    record = json.loads((tmp_path / "3DBall.onnx.json").read_text())
    assert record["sha256"] == sha256(path) and record["bytes"] == path.stat().st_size
    assert (record["training_job"], record["steps"], record["episode_reward_mean"]) == (
        "ppo-20261201",
        4096,
        12.5,
    )
    assert record["behavior"] == {
        "name": "3DBall",
        "observation_shapes": [[OBS]],
        "onnx_observation_shapes": [[OBS]],
        "continuous_size": 2,
        "discrete_branches": [],
        "policy_observations": [0],
    }
    assert record["onnx"]["opset"] == 9 and record["onnx"]["model_api_version"] == 3
    assert record["onnx"]["inputs"] == {"obs_0": ["batch", OBS]}
    assert record["policy"] == {
        "kind": "GaussianPolicy",
        "continuous_clip": "unit",
        "normalizer_inside": True,
        "encoder": None,
    }


def test_file_names_lose_the_team_and_characters_file_systems_refuse():
    assert onnx_file_name("3DBall?team=0") == "3DBall.onnx"
    assert onnx_file_name('My/Agent:"v2"') == "My_Agent__v2_.onnx"
    assert onnx_file_name("?team=1") == "policy.onnx"


def test_mismatched_weights_are_refused_with_what_does_not_fit():
    with pytest.raises(ValueError, match="3 continuous actions"):
        build_onnx(
            GaussianPolicy(vector_body(), dense(16, 2), np.zeros(2)),
            BehaviorSpec("B", [(OBS,)], continuous_size=3),
        )
    with pytest.raises(ValueError, match="need 24"):
        build_onnx(
            CategoricalPolicy(vector_body(), dense(16, 9)),
            BehaviorSpec("B", [(OBS,)], discrete_branches=(4, 6, 14)),
        )
    with pytest.raises(ValueError, match="an image needs an encoder"):
        build_onnx(GaussianPolicy(Body((dense(108, 16),)), dense(16, 2), np.zeros(2)), IMAGE_CONT)
    with pytest.raises(ValueError, match="clip='tanh'"):
        build_onnx(GaussianPolicy(vector_body(), dense(16, 2), np.zeros(2), clip="tanh"), VECTOR_CONT)
    with pytest.raises(ValueError, match="the Q-network's outputs: 7; the branches"):
        build_onnx(QPolicy(Body((dense(OBS, 16),), "relu"), dense(16, 7)), MULTI)


# ----------------------------------------------------------------------------------------------
# Continuous: deterministic = the NumPy policy, samples in range with the policy's spread


def gaussian_reference(policy: GaussianPolicy, obs: np.ndarray) -> np.ndarray:
    mean = np_body(policy.body, obs) @ policy.mean.weight + policy.mean.bias
    return np.clip(mean, -1, 1) if policy.clip == "unit" else np.clip(mean, -3, 3) / 3


@pytest.mark.parametrize("kind", ["ppo-continuous", "ppo-continuous-image"])
def test_deterministic_continuous_actions_equal_the_numpy_policy(kind):
    policy, spec = KINDS[kind]
    obs = vector_obs(2000) if kind == "ppo-continuous" else image_obs(300)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs]))
    np.testing.assert_allclose(
        outputs["deterministic_continuous_actions"], gaussian_reference(policy, obs), atol=1e-5
    )


def test_mlagents_clip_divides_the_clipped_action_by_three():
    base, spec = KINDS["ppo-continuous"]
    policy = GaussianPolicy(
        base.body, Dense(base.mean.weight * 20, base.mean.bias), base.log_std, clip="mlagents"
    )
    obs = vector_obs(2000)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs]))
    expected = gaussian_reference(policy, obs)
    assert np.abs(expected).max() == pytest.approx(1.0)  # some means beyond +-3 are clipped
    np.testing.assert_allclose(outputs["deterministic_continuous_actions"], expected, atol=1e-5)
    assert np.abs(outputs["continuous_actions"]).max() <= 1.0


def test_sampled_continuous_actions_stay_in_range_around_the_mean_with_the_policys_std():
    base, spec = KINDS["ppo-continuous"]
    policy = GaussianPolicy(base.body, base.mean, np.log([0.1, 0.3]))
    obs = np.repeat(vector_obs(1), 20000, axis=0)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs]))
    samples, mean = outputs["continuous_actions"], gaussian_reference(policy, obs[:1])[0]
    assert samples.min() >= -1.0 and samples.max() <= 1.0
    inside = np.abs(mean) < 0.4  # far from the clip, the samples are the policy's Gaussian
    np.testing.assert_allclose(samples.mean(axis=0)[inside], mean[inside], atol=0.01)
    assert inside.any()
    np.testing.assert_allclose(samples.std(axis=0)[inside], np.array([0.1, 0.3])[inside], rtol=0.05)


# ----------------------------------------------------------------------------------------------
# Discrete: deterministic = masked argmax of the NumPy logits, samples never masked


def branch_logits(policy: CategoricalPolicy, obs: np.ndarray, branches: tuple[int, ...]) -> list[np.ndarray]:
    logits = np_body(policy.body, obs) @ policy.logits.weight + policy.logits.bias
    return np.split(logits, np.cumsum(branches)[:-1], axis=1)


@pytest.mark.parametrize("kind", ["ppo-discrete", "ppo-multi-discrete", "ppo-discrete-image"])
def test_deterministic_discrete_actions_are_the_masked_argmax_of_the_numpy_policy(kind):
    policy, spec = KINDS[kind]
    obs = image_obs(300) if "image" in kind else vector_obs(2000)
    mask = random_masks(len(obs), spec.discrete_branches)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs], mask))
    masks = np.split(mask, np.cumsum(spec.discrete_branches)[:-1], axis=1)
    for b, (logits, allowed) in enumerate(
        zip(branch_logits(policy, obs, spec.discrete_branches), masks, strict=True)
    ):
        assert_argmax_equal(outputs["deterministic_discrete_actions"][:, b], np_masked(logits, allowed))


def test_sampled_discrete_actions_follow_the_masked_softmax_and_never_a_masked_action():
    policy, spec = KINDS["ppo-multi-discrete"]
    obs = np.repeat(vector_obs(1) * 0.1, 30000, axis=0)
    mask = np.ones((len(obs), 9), np.float32)
    mask[:, [1, 4, 8]] = 0  # branch 0: action 1; branch 1: action 1; branch 2: action 3
    actions = run(build_onnx(policy, spec), onnx_feeds(spec, [obs], mask))["discrete_actions"]
    for b, (logits, allowed) in enumerate(
        zip(
            branch_logits(policy, obs[:1], spec.discrete_branches),
            np.split(mask[:1], np.cumsum(spec.discrete_branches)[:-1], axis=1),
            strict=True,
        )
    ):
        masked = np_masked(logits[0], allowed[0])
        probs = np.exp(masked - masked.max())
        probs /= probs.sum()
        frequencies = np.bincount(actions[:, b], minlength=len(probs)) / len(actions)
        assert frequencies[allowed[0] == 0].sum() == 0
        np.testing.assert_allclose(frequencies, probs, atol=0.015)


def test_masked_actions_never_sampled_over_many_random_masks():
    policy, spec = KINDS["ppo-multi-discrete"]
    session = onnxruntime.InferenceSession(build_onnx(policy, spec).SerializeToString())
    rng = np.random.default_rng(1)
    starts = np.cumsum((0,) + spec.discrete_branches[:-1])
    for _ in range(40):
        mask = random_masks(500, spec.discrete_branches, rng)
        sampled, greedy = session.run(
            ["discrete_actions", "deterministic_discrete_actions"], onnx_feeds(spec, [vector_obs(500)], mask)
        )
        for actions in (sampled, greedy):
            assert (mask[np.arange(500)[:, None], starts + actions] == 1).all()


# ----------------------------------------------------------------------------------------------
# DQN: greedy over masked Q-values; flattened branches mapped back to one index per branch


def q_values(policy: QPolicy, obs: np.ndarray) -> np.ndarray:
    return np_body(policy.body, obs) @ policy.q.weight + policy.q.bias


@pytest.mark.parametrize("kind", ["dqn", "dqn-image"])
def test_dqn_single_branch_is_the_masked_argmax_of_q(kind):
    policy, spec = KINDS[kind]
    obs = image_obs(300) if "image" in kind else vector_obs(2000)
    mask = random_masks(len(obs), spec.discrete_branches)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs], mask))
    assert_argmax_equal(
        outputs["deterministic_discrete_actions"][:, 0], np_masked(q_values(policy, obs), mask)
    )
    np.testing.assert_array_equal(outputs["discrete_actions"], outputs["deterministic_discrete_actions"])


def test_dqn_flattened_branches_map_back_to_the_branches_unity_expects():
    policy, spec = KINDS["dqn-flattened"]
    obs = vector_obs(3000)
    mask = random_masks(len(obs), spec.discrete_branches)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs], mask))
    # gym-unity's flatten_branched: flat k = itertools.product order, the last branch fastest.
    combos = np.array(np.unravel_index(np.arange(24), spec.discrete_branches)).T
    starts = np.cumsum((0,) + spec.discrete_branches[:-1])
    allowed = mask[:, starts[None, :] + combos].all(axis=2)  # [batch, flat]
    flat = outputs["deterministic_discrete_actions"] @ np.array([8, 4, 1])
    assert_argmax_equal(flat, np_masked(q_values(policy, obs), allowed.astype(np.float32)))
    assert (mask[np.arange(len(obs))[:, None], starts + outputs["discrete_actions"]] == 1).all()


# ----------------------------------------------------------------------------------------------
# The random model; the normaliser


def test_random_model_samples_uniformly_among_allowed_actions():
    policy, spec = KINDS["random"]
    batch = 20000
    mask = np.ones((batch, 5), np.float32)
    mask[:, 0] = 0  # branch 0: actions 1 and 2 allowed
    outputs = run(
        build_onnx(policy, spec), onnx_feeds(spec, [image_obs(batch, SMALL_IMAGE), vector_obs(batch)], mask)
    )
    continuous = outputs["continuous_actions"]
    assert continuous.min() >= -1 and continuous.max() <= 1
    np.testing.assert_allclose(
        np.histogram(continuous, bins=4, range=(-1, 1))[0] / continuous.size, 0.25, atol=0.01
    )
    np.testing.assert_array_equal(outputs["deterministic_continuous_actions"], 0)
    frequencies = np.bincount(outputs["discrete_actions"][:, 0], minlength=3) / batch
    np.testing.assert_allclose(frequencies, [0, 0.5, 0.5], atol=0.015)
    np.testing.assert_allclose(
        np.bincount(outputs["discrete_actions"][:, 1], minlength=2) / batch, 0.5, atol=0.015
    )
    assert outputs["deterministic_discrete_actions"].tolist()[:1] == [[1, 0]]  # the first allowed action


def test_the_normaliser_is_inside_the_graph():
    policy, spec = KINDS["ppo-continuous"]
    body = policy.body
    raw = vector_obs(500) * 5  # some beyond the +-10 clip after normalising
    model = build_onnx(policy, spec)
    stored = [onnx.numpy_helper.to_array(i) for i in model.graph.initializer]
    assert any(np.array_equal(a, body.normalizer.mean) for a in stored)
    assert any(np.array_equal(a, body.normalizer.std) for a in stored)
    plain = GaussianPolicy(Body(body.hidden, body.activation), policy.mean, policy.log_std)
    normalised = np.clip((raw - body.normalizer.mean) / body.normalizer.std, -10, 10).astype(np.float32)
    with_normaliser = run(model, onnx_feeds(spec, [raw]))["deterministic_continuous_actions"]
    without = run(build_onnx(plain, spec), onnx_feeds(spec, [normalised]))["deterministic_continuous_actions"]
    np.testing.assert_allclose(with_normaliser, without, atol=1e-6)


def test_export_checks_the_file_against_the_trainers_own_actions(tmp_path):
    policy, spec = KINDS["ppo-continuous-image"]
    pixels = RNG.integers(0, 256, (64, *IMAGE), dtype=np.uint8)  # as use_uint8_visual gives them
    expected = gaussian_reference(policy, pixels / np.float32(255))
    path = export_onnx(tmp_path / "good", policy, spec, reference=(pixels, expected))
    check = json.loads(path.with_name("Camera.onnx.json").read_text())["check"]
    assert check["matches"] and check["observations"] == 64 and check["max_abs_difference"] < 1e-5
    wrong = export_onnx(tmp_path / "wrong", policy, spec, reference=(pixels, expected + 0.1))
    assert json.loads(wrong.with_name("Camera.onnx.json").read_text())["check"]["matches"] is False
    report = onnx_check.check_onnx(wrong, draws=2)
    assert any(f.what == "Camera.onnx.json" and "disagreeing" in f.message for f in report.errors), (
        report.text()
    )


def test_export_check_counts_discrete_disagreements(tmp_path):
    policy, spec = KINDS["dqn-flattened"]
    obs = vector_obs(500)
    flat = q_values(policy, obs).argmax(axis=1)
    expected = np.array(np.unravel_index(flat, spec.discrete_branches)).T
    check = json.loads(
        export_onnx(tmp_path, policy, spec, reference=(obs, expected)).with_suffix(".onnx.json").read_text()
    )["check"]
    assert check["matches"] and check["disagreements"] <= 1


def test_several_vector_observations_are_concatenated_as_the_env_view_does(tmp_path):
    spec = BehaviorSpec("Two", [(3,), IMAGE, (5,)], continuous_size=2, policy_observations=(0, 2))
    policy = GaussianPolicy(Body((dense(OBS, 16),), normalizer=normalizer()), dense(16, 2), np.zeros(2))
    first, second = vector_obs(400)[:, :3], vector_obs(400)[:, :5]
    feeds = onnx_feeds(spec, [first, image_obs(400), second])
    outputs = run(build_onnx(policy, spec), feeds)
    expected = gaussian_reference(policy, np.concatenate([first, second], axis=1))
    np.testing.assert_allclose(outputs["deterministic_continuous_actions"], expected, atol=1e-5)
    path = export_onnx(tmp_path, policy, spec, reference=(np.concatenate([first, second], axis=1), expected))
    assert json.loads(path.with_suffix(".onnx.json").read_text())["check"]["matches"]


def test_spec_from_mlagents_picks_what_the_env_view_gives_the_policy():
    from mlagents_envs.base_env import ActionSpec, ObservationSpec, ObservationType
    from mlagents_envs.base_env import BehaviorSpec as MLSpec

    def observation(shape):
        return ObservationSpec(shape, (), ObservationType.DEFAULT, "sensor")

    ml = MLSpec([observation((4,)), observation((36, 36, 3)), observation((2,))], ActionSpec(0, (3, 2)))
    vector = BehaviorSpec.from_mlagents("Agent?team=0", ml, use_visual=False)
    assert (vector.name, vector.policy_observations, vector.discrete_branches) == ("Agent", (0, 2), (3, 2))
    assert BehaviorSpec.from_mlagents("Agent?team=0", ml, use_visual=True).policy_observations == (1,)


def test_ppo_over_flattened_branches_samples_and_argmaxes_combinations_unity_understands():
    spec = BehaviorSpec("Flat", [(OBS,)], discrete_branches=(3, 2, 4))
    policy = CategoricalPolicy(vector_body(), dense(16, 24, 3.0))
    obs = vector_obs(3000)
    mask = random_masks(len(obs), spec.discrete_branches)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs], mask))
    combos = np.array(np.unravel_index(np.arange(24), spec.discrete_branches)).T
    starts = np.cumsum((0,) + spec.discrete_branches[:-1])
    allowed = mask[:, starts[None, :] + combos].all(axis=2).astype(np.float32)
    logits = np_body(policy.body, obs) @ policy.logits.weight + policy.logits.bias
    flat = outputs["deterministic_discrete_actions"] @ np.array([8, 4, 1])
    assert_argmax_equal(flat, np_masked(logits, allowed))
    for actions in (outputs["discrete_actions"], outputs["deterministic_discrete_actions"]):
        assert (mask[np.arange(len(obs))[:, None], starts + actions] == 1).all()


def test_dqn_per_branch_q_values_take_each_branchs_masked_argmax():
    spec = BehaviorSpec("Heads", [(OBS,)], discrete_branches=(3, 2))
    policy = QPolicy(Body((dense(OBS, 16),), "relu"), dense(16, 5))
    obs = vector_obs(1000)
    mask = random_masks(len(obs), spec.discrete_branches)
    outputs = run(build_onnx(policy, spec), onnx_feeds(spec, [obs], mask))
    q = q_values(policy, obs)
    assert_argmax_equal(outputs["deterministic_discrete_actions"][:, 0], np_masked(q[:, :3], mask[:, :3]))
    assert_argmax_equal(outputs["deterministic_discrete_actions"][:, 1], np_masked(q[:, 3:], mask[:, 3:]))
