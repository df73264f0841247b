"""template_runtime.onnx_check: accepts what Unity runs (mlagents-learn's exports and ours), refuses
hand-broken models with a message naming the tensor or field at fault."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from template_runtime.onnx_check import check_onnx, main
from template_runtime.onnx_export import (
    BehaviorSpec,
    Body,
    CategoricalPolicy,
    Dense,
    GaussianPolicy,
    QPolicy,
    build_onnx,
    export_onnx,
)

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(3)


def dense(inputs: int, outputs: int) -> Dense:
    return Dense(
        RNG.standard_normal((inputs, outputs)).astype(np.float32) * 0.3, np.zeros(outputs, np.float32)
    )


def gaussian() -> tuple[GaussianPolicy, BehaviorSpec]:
    return GaussianPolicy(Body((dense(8, 16),)), dense(16, 2), np.zeros(2)), BehaviorSpec("3DBall", [(8,)], 2)


def categorical() -> tuple[CategoricalPolicy, BehaviorSpec]:
    spec = BehaviorSpec("Branched", [(8,)], discrete_branches=(3, 2))
    return CategoricalPolicy(Body((dense(8, 16),)), dense(16, 5)), spec


def mlagents_3dball_shape() -> onnx.ModelProto:
    """A model shaped exactly as FACTS.md section 7 describes mlagents-learn 1.1's 3DBall export (and as
    tests/runtime/data/mlagents_learn_3dball.onnx is): opset 9, IR 4, obs_0 [batch, 8], float32
    constants behind Identity nodes, a normaliser, swish layers, clamp(-3, 3) / 3 on both actions."""
    init = [
        numpy_helper.from_array(np.array([3.0], np.float32), "version_number.1"),
        numpy_helper.from_array(np.array([0.0], np.float32), "memory_size_vector"),
        numpy_helper.from_array(np.array([2.0], np.float32), "continuous_act_size_vector"),
        numpy_helper.from_array(np.zeros(8, np.float32), "running_mean"),
        numpy_helper.from_array(np.ones(8, np.float32), "running_std"),
        numpy_helper.from_array(RNG.standard_normal((16, 8)).astype(np.float32), "seq_layers.0.weight"),
        numpy_helper.from_array(np.zeros(16, np.float32), "seq_layers.0.bias"),
        numpy_helper.from_array(RNG.standard_normal((2, 16)).astype(np.float32), "mu.weight"),
        numpy_helper.from_array(np.zeros(2, np.float32), "mu.bias"),
        numpy_helper.from_array(np.full((1, 2), 0.5, np.float32), "std"),
        numpy_helper.from_array(np.array(3.0, np.float32), "three"),
    ]
    n = helper.make_node
    nodes = [
        n("Sub", ["obs_0", "running_mean"], ["centred"]),
        n("Div", ["centred", "running_std"], ["scaled"]),
        n("Clip", ["scaled"], ["normalised"], min=-5.0, max=5.0),
        n(
            "Gemm",
            ["normalised", "seq_layers.0.weight", "seq_layers.0.bias"],
            ["h0"],
            alpha=1.0,
            beta=1.0,
            transB=1,
        ),
        n("Sigmoid", ["h0"], ["gate"]),
        n("Mul", ["h0", "gate"], ["h1"]),
        n("Gemm", ["h1", "mu.weight", "mu.bias"], ["mu"], alpha=1.0, beta=1.0, transB=1),
        n("RandomNormalLike", ["mu"], ["noise"], dtype=TensorProto.FLOAT),
        n("Mul", ["noise", "std"], ["scaled_noise"]),
        n("Add", ["mu", "scaled_noise"], ["sample"]),
        n("Clip", ["sample"], ["clipped"], min=-3.0, max=3.0),
        n("Div", ["clipped", "three"], ["continuous_actions"]),
        n("Clip", ["mu"], ["clipped_mu"], min=-3.0, max=3.0),
        n("Div", ["clipped_mu", "three"], ["deterministic_continuous_actions"]),
        n("Identity", ["version_number.1"], ["version_number"]),
        n("Identity", ["memory_size_vector"], ["memory_size"]),
        n("Identity", ["continuous_act_size_vector"], ["continuous_action_output_shape"]),
    ]
    outputs = [
        helper.make_tensor_value_info("version_number", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("memory_size", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("continuous_actions", TensorProto.FLOAT, ["batch", 2]),
        helper.make_tensor_value_info("continuous_action_output_shape", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("deterministic_continuous_actions", TensorProto.FLOAT, ["batch", 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("obs_0", TensorProto.FLOAT, ["batch", 8])],
        outputs,
        init,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="pytorch", ir_version=4
    )
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, tmp_path: Path, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    onnx.save_model(model, str(path))
    return path


def assert_refused(report, what: str, words: str) -> None:
    assert not report.ok
    messages = [f"{f.what}: {f.message}" for f in report.errors]
    assert any(f.what == what and words in f.message for f in report.errors), messages


def rename(model: onnx.ModelProto, old: str, new: str) -> onnx.ModelProto:
    for value in [*model.graph.input, *model.graph.output]:
        if value.name == old:
            value.name = new
    for node in model.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    return model


def reroute(model: onnx.ModelProto, name: str, internal: str) -> onnx.ModelProto:
    """The node that computed output ``name`` now writes ``internal``; the output is left unproduced."""
    for node in model.graph.node:
        node.output[:] = [internal if o == name else o for o in node.output]
        node.input[:] = [internal if i == name else i for i in node.input]
    return model


def output(model: onnx.ModelProto, name: str) -> onnx.ValueInfoProto:
    return next(v for v in model.graph.output if v.name == name)


# ----------------------------------------------------------------------------------------------
# Accepted


@pytest.mark.parametrize(
    "fixture", ["mlagents_learn_3dball.onnx", "mlagents_learn_3dball_branched_masks.onnx"]
)
def test_accepts_mlagents_learns_own_exports(fixture):
    report = check_onnx(DATA / fixture)
    assert report.ok, report.text()
    assert report.summary["opset"] == 9


def test_accepts_a_model_shaped_like_mlagents_learns_3dball_export(tmp_path):
    report = check_onnx(save(mlagents_3dball_shape(), tmp_path))
    assert report.ok, report.text()
    assert report.summary["inputs"] == {"obs_0": [8]} and report.summary["continuous"] == 2


@pytest.mark.parametrize("make", [gaussian, categorical])
def test_accepts_exports_and_reports_their_provenance(make, tmp_path):
    path = export_onnx(tmp_path, *make(), training_job="job-7", steps=100, episode_reward_mean=3.5)
    report = check_onnx(path)
    assert report.ok, report.text()
    assert (report.summary["training_job"], report.summary["steps"]) == ("job-7", 100)


# ----------------------------------------------------------------------------------------------
# Refused, with the culprit named


def test_refuses_an_input_unity_does_not_generate(tmp_path):
    report = check_onnx(save(rename(build_onnx(*gaussian()), "obs_0", "observation"), tmp_path))
    assert_refused(report, "observation", "Unity has no generator for an input named 'observation'")


def test_refuses_a_missing_constant(tmp_path):
    model = build_onnx(*gaussian())
    model.graph.output.remove(output(model, "version_number"))
    assert_refused(check_onnx(save(model, tmp_path)), "version_number", "required constant")


def test_refuses_a_wrong_version_number(tmp_path):
    model = mlagents_3dball_shape()
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.array([2.0], np.float32), "version_number.1")
    )
    assert_refused(check_onnx(save(model, tmp_path)), "version_number", "must be [3]")


def test_refuses_an_action_shape_the_constant_contradicts(tmp_path):
    model = mlagents_3dball_shape()
    model.graph.initializer[2].CopyFrom(
        numpy_helper.from_array(np.array([3.0], np.float32), "continuous_act_size_vector")
    )
    assert_refused(check_onnx(save(model, tmp_path)), "continuous_actions", "must be [batch, 3]")


def test_refuses_a_fixed_batch_axis(tmp_path):
    model = build_onnx(*gaussian())
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    assert_refused(check_onnx(save(model, tmp_path)), "obs_0", "dynamic batch axis")


def test_refuses_an_action_mask_narrower_than_the_branches(tmp_path):
    model = build_onnx(*categorical())
    next(v for v in model.graph.input if v.name == "action_masks").type.tensor_type.shape.dim[1].dim_value = 4
    assert_refused(check_onnx(save(model, tmp_path)), "action_masks", "must be [batch, 5]")


def test_refuses_a_constant_that_is_not_float32(tmp_path):
    model = mlagents_3dball_shape()
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([3], np.int64), "version_number.1"))
    output(model, "version_number").type.tensor_type.elem_type = TensorProto.INT64
    assert_refused(check_onnx(save(model, tmp_path)), "version_number", "dtype int64")


def test_refuses_float_discrete_actions(tmp_path):
    model = build_onnx(*categorical())
    reroute(model, "discrete_actions", "sampled")
    model.graph.node.append(helper.make_node("Cast", ["sampled"], ["discrete_actions"], to=TensorProto.FLOAT))
    output(model, "discrete_actions").type.tensor_type.elem_type = TensorProto.FLOAT
    assert_refused(check_onnx(save(model, tmp_path)), "discrete_actions", "dtype float")


def test_refuses_an_opset_sentis_does_not_load_and_warns_above_9(tmp_path):
    model = mlagents_3dball_shape()
    model.opset_import[0].version = 17
    assert_refused(check_onnx(save(model, tmp_path, "17.onnx")), "opset", "opset 17")
    model.opset_import[0].version = 10
    report = check_onnx(save(model, tmp_path, "10.onnx"))
    assert report.ok and any(f.what == "opset" and f.level == "warning" for f in report.findings), (
        report.text()
    )


def test_refuses_operators_outside_the_default_domain(tmp_path):
    model = mlagents_3dball_shape()
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert_refused(check_onnx(save(model, tmp_path)), "opset", "'com.microsoft'")


def test_refuses_an_operator_sentis_cannot_import(tmp_path):
    model = mlagents_3dball_shape()
    model.graph.input.append(helper.make_tensor_value_info("obs_1", TensorProto.FLOAT, ["batch", 2, 2]))
    model.graph.node.append(helper.make_node("Det", ["obs_1"], ["determinant"]))
    model.graph.output.append(helper.make_tensor_value_info("determinant", TensorProto.FLOAT, ["batch"]))
    model.opset_import[0].version = 11
    assert_refused(check_onnx(save(model, tmp_path)), "operator Det", "not in Sentis")


def test_refuses_a_model_that_chooses_masked_actions(tmp_path):
    """A discrete model that ignores action_masks: always action 1, masked about half the time."""
    init = [
        numpy_helper.from_array(np.zeros((2, 3), np.float32), "w"),
        numpy_helper.from_array(np.array([0.0, 5.0, 0.0], np.float32), "b"),
        numpy_helper.from_array(np.array([3.0], np.float32), "v"),
        numpy_helper.from_array(np.array([0.0], np.float32), "m"),
        numpy_helper.from_array(np.array([[3.0]], np.float32), "branches"),
    ]
    nodes = [
        helper.make_node("Gemm", ["obs_0", "w", "b"], ["logits"]),
        helper.make_node("ArgMax", ["logits"], ["discrete_actions"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["logits"], ["deterministic_discrete_actions"], axis=1, keepdims=1),
        helper.make_node("Identity", ["v"], ["version_number"]),
        helper.make_node("Identity", ["m"], ["memory_size"]),
        helper.make_node("Identity", ["branches"], ["discrete_action_output_shape"]),
        helper.make_node("Identity", ["action_masks"], ["unused_masks"]),
    ]
    inputs = [
        helper.make_tensor_value_info("obs_0", TensorProto.FLOAT, ["batch", 2]),
        helper.make_tensor_value_info("action_masks", TensorProto.FLOAT, ["batch", 3]),
    ]
    outputs = [
        helper.make_tensor_value_info("version_number", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("memory_size", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("discrete_actions", TensorProto.INT64, ["batch", 1]),
        helper.make_tensor_value_info("discrete_action_output_shape", TensorProto.FLOAT, [1, 1]),
        helper.make_tensor_value_info("deterministic_discrete_actions", TensorProto.INT64, ["batch", 1]),
        helper.make_tensor_value_info("unused_masks", TensorProto.FLOAT, ["batch", 3]),
    ]
    graph = helper.make_graph(nodes, "ignores_masks", inputs, outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=4)
    assert_refused(check_onnx(save(model, tmp_path)), "discrete_actions", "chose a masked action")


def test_refuses_deterministic_actions_that_are_random(tmp_path):
    model = build_onnx(*gaussian())
    reroute(model, "deterministic_continuous_actions", "the_mean")
    model.graph.node.append(
        helper.make_node("Identity", ["continuous_actions"], ["deterministic_continuous_actions"])
    )
    assert_refused(
        check_onnx(save(model, tmp_path)), "deterministic_continuous_actions", "must be deterministic"
    )


def test_refuses_a_model_changed_after_export(tmp_path):
    path = export_onnx(tmp_path, *gaussian(), training_job="job")
    model = onnx.load(str(path))
    model.doc_string = "edited"
    onnx.save_model(model, str(path))
    assert_refused(check_onnx(path), "3DBall.onnx.json", "describes another file")


def test_refuses_a_file_that_is_no_onnx_model(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("not a model")
    assert_refused(check_onnx(path), "file", "cannot read an ONNX model")


# ----------------------------------------------------------------------------------------------
# The command line and make check-onnx


def test_command_line_exit_code_and_message(tmp_path, capsys):
    good = export_onnx(tmp_path / "good", *gaussian())
    bad = save(rename(build_onnx(*gaussian()), "obs_0", "state"), tmp_path)
    assert main([str(good)]) == 0
    assert "OK for Unity ML-Agents" in capsys.readouterr().out
    assert main([str(good), str(bad), "--draws", "2"]) == 1
    out = capsys.readouterr().out
    assert "ERROR   state: Unity has no generator" in out


def test_module_runs_with_src_on_the_path(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [
        sys.executable,
        "-m",
        "template_runtime.onnx_check",
        str(DATA / "mlagents_learn_3dball.onnx"),
        "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"ok": true' in result.stdout


def test_make_check_onnx(tmp_path):
    venv = Path(sys.executable).parent.parent
    command = [
        "make",
        "-s",
        "check-onnx",
        f"MODEL={DATA / 'mlagents_learn_3dball_branched_masks.onnx'}",
        f"VENV={venv}",
    ]
    result = subprocess.run(
        [*command, "-o", f"{venv}/.installed"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK for Unity ML-Agents" in result.stdout
    missing = subprocess.run(
        ["make", "-s", "check-onnx", f"VENV={venv}", "-o", f"{venv}/.installed"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert missing.returncode != 0 and "MODEL=" in missing.stderr


def test_qpolicy_export_checks_clean(tmp_path):
    spec = BehaviorSpec("Grid", [(8,)], discrete_branches=(3, 2))
    path = export_onnx(tmp_path, QPolicy(Body((dense(8, 16),), "relu"), dense(16, 6)), spec)
    assert check_onnx(path).ok
