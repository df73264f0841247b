"""Does this .onnx file run in Unity's ML-Agents? Checks any policy file, this template's or
mlagents-learn's, against the contract Unity's inference code reads (onnx_export.py's docstring says
where each point comes from), then runs it with onnxruntime on random observations.

    python -m template_runtime.onnx_check results/<job>/3DBall.onnx       (from src/, or PYTHONPATH=src)
    make check-onnx MODEL=results/<job>/3DBall.onnx

What is checked, each failure naming the tensor or field at fault:

* the file: onnx's own checker; opset 7-15 in the default domain (Sentis' range; above 9 a warning:
  mlagents-learn writes 9 and Barracuda, ML-Agents 2.x, covers it best); operators Sentis and
  Barracuda both list (one only Barracuda lacks: a warning);
* inputs: only names Unity generates (``obs_<i>``, ``action_masks``, ``recurrent_in``, ...), float32,
  a dynamic batch axis, vectors ``[batch, n]`` or images ``[batch, C, H, W]``;
* outputs: the constants ``version_number`` (= 3), ``memory_size``, ``continuous_action_output_shape``,
  ``discrete_action_output_shape``, float32 and independent of the inputs; the action outputs in
  pairs (sampled and deterministic), float32 continuous and integer discrete, with the sizes the
  constants announce; ``action_masks`` as wide as the branches;
* a run: both batch sizes 1 and 16 give ``[batch, n]`` outputs; continuous values finite (outside
  [-1, 1] a warning); discrete ones inside their branch and never a masked action over ``--draws``
  batches; deterministic outputs equal on equal inputs;
* the provenance file ``<model>.onnx.json`` beside it, when there is one: the SHA-256 is this file's and
  the behaviour matches the model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from template_runtime import onnx_export as c

SENTIS_MIN_OPSET, SENTIS_MAX_OPSET = 7, 15  # com.unity.sentis Documentation~/supported-models.md
# Unity's TensorGenerator.cs has a generator for these input names and throws for any other.
KNOWN_INPUTS = ("action_masks", "recurrent_in", "prev_action", "epsilon", "batch_size", "sequence_length")


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Operators in Sentis' list (Documentation~/supported-operators.md, Sentis 1.6) ...
SENTIS_OPS = _names(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
Bernoulli Cast CastLike Ceil Celu Clip Compress Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DepthToSpace Div Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements GatherND
Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GridSample Hardmax HardSigmoid HardSwish Identity
InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax LRN LSTM MatMul
Max MaxPool Mean Min Mod Mul Multinomial Neg NonMaxSuppression NonZero Not OneHot Or Pad Pow PRelu
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum
ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
RoiAlign Round Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu
Unsqueeze Upsample Where Xor"""
)
# ... and in Barracuda's (barracuda-release Documentation~/SupportedOperators.md, plus ArgMax/ArgMin,
# Range and ConstantOfShape from its newer ONNXModelConverter.cs).
BARRACUDA_OPS = _names(
    """Constant Reshape Shape Unsqueeze Squeeze Flatten Concat Expand Slice Gather OneHot TopK
LSTM Add Sum Sub Mul Div Pow Min Max Mean Greater Less Equal Or And Not Xor Pad AveragePool MaxPool
GlobalAveragePool GlobalMaxPool Upsample Resize Transpose Gemm MatMul Conv ConvTranspose BatchNormalization
ImageScaler InstanceNormalization RandomNormal RandomNormalLike RandomUniform RandomUniformLike Multinomial
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum Identity Cast Dropout DepthToSpace SpaceToDepth LRN Relu
Softmax LogSoftmax Tanh Sqrt Sigmoid Elu LeakyRelu Selu PRelu Exp Log Reciprocal Abs Neg Ceil Floor Clip Acos
Acosh Asin Asinh Atan Atanh Cos Cosh Sin Sinh Tan ArgMax ArgMin Range ConstantOfShape"""
)
FLOAT, INTEGERS = 1, (6, 7)  # TensorProto.FLOAT; INT32, INT64


@dataclass
class Finding:
    level: str  # "error" | "warning" | "info"
    what: str  # the tensor, field or check at fault
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():7} {self.what}: {self.message}"


@dataclass
class Report:
    path: Path
    findings: list[Finding] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def add(self, level: str, what: str, message: str) -> None:
        self.findings.append(Finding(level, what, message))

    def text(self) -> str:
        head = f"{self.path}: " + ("OK for Unity ML-Agents" if self.ok else f"{len(self.errors)} problem(s)")
        lines = [head, *(f"  {f}" for f in self.findings)]
        if self.summary:
            lines.append("  " + ", ".join(f"{k}={v}" for k, v in self.summary.items()))
        return "\n".join(lines)


def check_onnx(path: Path, draws: int = 50, seed: int = 0) -> Report:
    """Check ``path`` (see the module docstring); ``draws`` random batches of 16 for the masks."""
    import onnx

    report = Report(Path(path))
    try:
        model = onnx.load(str(path))
    except Exception as error:  # a missing file, or bytes that are no ONNX model
        report.add("error", "file", f"cannot read an ONNX model from {path}: {error}")
        return report
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:
        report.add("error", "onnx checker", str(error).strip().splitlines()[0])
    _check_opset_and_ops(model, report)
    inputs = _check_inputs(model, report)
    constants = _constant_values(model)
    outputs = {v.name: v for v in model.graph.output}
    spec = _check_outputs(model, outputs, inputs, constants, report)
    if report.ok:
        _run(Path(path), inputs, spec, report, draws, np.random.default_rng(seed))
    _check_provenance(Path(path), inputs, spec, report)
    return report


def _dims(value) -> list:
    return [
        d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
        for d in value.type.tensor_type.shape.dim
    ]


def _check_opset_and_ops(model, report: Report) -> None:
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    version = opsets.pop("ai.onnx", None)
    report.summary["opset"] = version
    if version is None:
        report.add("error", "opset", "no default-domain (ai.onnx) opset: Unity's importers need one")
    elif not SENTIS_MIN_OPSET <= version <= SENTIS_MAX_OPSET:
        report.add(
            "error",
            "opset",
            f"opset {version}: Sentis (ML-Agents 3.x) loads opsets "
            f"{SENTIS_MIN_OPSET}-{SENTIS_MAX_OPSET}; export with opset 9, as mlagents-learn does",
        )
    elif version > 9:
        report.add(
            "warning",
            "opset",
            f"opset {version}: mlagents-learn writes 9, the one Barracuda (ML-Agents "
            "2.x) covers best; Sentis is fine with it",
        )
    for domain in opsets:
        report.add(
            "error", "opset", f"operators from domain {domain!r}: Unity only runs the default ONNX domain"
        )
    for op in sorted({n.op_type for n in model.graph.node}):
        if op not in SENTIS_OPS:
            report.add(
                "error", f"operator {op}", "not in Sentis' supported operators: Unity cannot import it"
            )
        elif op not in BARRACUDA_OPS:
            report.add(
                "warning", f"operator {op}", "not in Barracuda's list (ML-Agents 2.x); fine with Sentis"
            )


def _check_inputs(model, report: Report) -> dict[str, list]:
    """``{name: dims}`` of the inputs Unity will feed (initializers listed as inputs, IR < 4, skipped)."""
    constant = {i.name for i in model.graph.initializer}
    inputs = {v.name: v for v in model.graph.input if v.name not in constant}
    shapes = {}
    for name, value in inputs.items():
        dims = shapes[name] = _dims(value)
        if not (re.fullmatch(r"obs_\d+", name) or name in KNOWN_INPUTS):
            report.add(
                "error",
                name,
                f"Unity has no generator for an input named {name!r} (TensorGenerator.cs "
                "throws 'Unknown tensorProxy expected as input'): name observations obs_0, obs_1, ... "
                "in the behaviour's order, and the mask action_masks",
            )
            continue
        if value.type.tensor_type.elem_type != FLOAT:
            report.add(
                "error",
                name,
                f"dtype {_type_name(value.type.tensor_type.elem_type)}: Unity feeds every input as float32",
            )
        if not dims or isinstance(dims[0], int):
            report.add(
                "error",
                name,
                f"shape {dims}: the first axis must be a dynamic batch axis (e.g. 'batch'), "
                "Unity sets it to the number of agents deciding",
            )
        elif name.startswith("obs_") and (
            len(dims) not in (2, 3, 4) or not all(isinstance(d, int) and d > 0 for d in dims[1:])
        ):
            report.add(
                "error",
                name,
                f"shape {dims}: an observation is [batch, size], [batch, a, b] or an image "
                "[batch, channels, height, width], with fixed sizes",
            )
    observations = sorted(n for n in shapes if n.startswith("obs_"))
    if not observations:
        report.add("error", "inputs", "no observation input (obs_0, obs_1, ...)")
    report.summary["inputs"] = {n: shapes[n][1:] for n in sorted(shapes)}
    return shapes


def _constant_values(model) -> dict[str, np.ndarray]:
    """Tensors computed from initializers and Constant nodes only (through Identity/Cast/Reshape)."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _check_outputs(model, outputs: dict, inputs: dict, constants: dict, report: Report) -> dict:
    """The action spec the constants announce: ``{"continuous": n, "branches": [...]}``."""
    spec: dict = {"continuous": 0, "branches": []}

    def constant(name: str) -> np.ndarray | None:
        if name not in outputs:
            report.add(
                "error",
                name,
                f"required constant {name!r} is not an output of the model (Unity "
                "refuses the model: SentisModelInfo.CheckExpectedTensors)",
            )
            return None
        elem = outputs[name].type.tensor_type.elem_type
        if elem != FLOAT:
            report.add(
                "error", name, f"dtype {_type_name(elem)}: Unity reads {name} as float32 (Tensor<float>)"
            )
        if name not in constants:
            report.add("error", name, f"{name} depends on the inputs: it must be a constant of the model")
            return None
        return np.asarray(constants[name]).reshape(-1)

    version = constant(c.VERSION_NUMBER)
    if version is not None and (version.size != 1 or version[0] != c.MODEL_API_VERSION):
        report.add(
            "error",
            c.VERSION_NUMBER,
            f"is {version.tolist()}, must be [{c.MODEL_API_VERSION}] (ML-Agents' "
            "MLAgents2_0 format: obs_<i> inputs, action indices out); 2 is the 1.x format",
        )
    memory = constant(c.MEMORY_SIZE)
    if memory is not None and memory.size == 1 and memory[0] > 0:
        spec["memory"] = int(memory[0])
        for name, where in (("recurrent_in", inputs), ("recurrent_out", outputs)):
            if name not in where:
                report.add("error", name, f"memory_size is {int(memory[0])} but the model has no {name}")
    kinds = [
        ("continuous", c.CONTINUOUS_ACTIONS, c.CONTINUOUS_SHAPE, c.DETERMINISTIC_CONTINUOUS, (FLOAT,)),
        ("discrete", c.DISCRETE_ACTIONS, c.DISCRETE_SHAPE, c.DETERMINISTIC_DISCRETE, INTEGERS),
    ]
    for kind, sampled, shape_name, deterministic, dtypes in kinds:
        if not {sampled, shape_name, deterministic} & set(outputs):
            continue
        sizes = constant(shape_name)
        if sizes is None:
            continue
        if kind == "continuous":
            if sizes.size != 1 or sizes[0] < 1 or sizes[0] != int(sizes[0]):
                report.add(
                    "error", shape_name, f"is {sizes.tolist()}: one positive whole number, the action count"
                )
                continue
            spec["continuous"], width = int(sizes[0]), int(sizes[0])
        else:
            if not sizes.size or (sizes < 1).any() or (sizes != sizes.astype(int)).any():
                report.add(
                    "error", shape_name, f"is {sizes.tolist()}: the branch sizes, positive whole numbers"
                )
                continue
            spec["branches"], width = [int(s) for s in sizes], int(sizes.size)
            mask = inputs.get(c.ACTION_MASKS)
            if mask is None:
                report.add(
                    "error",
                    c.ACTION_MASKS,
                    "discrete actions without an action_masks input: masked actions could be chosen",
                )
            elif mask[-1] != sum(spec["branches"]):
                report.add(
                    "error",
                    c.ACTION_MASKS,
                    f"shape {mask}: must be [batch, {sum(spec['branches'])}] "
                    f"(the sum of the branch sizes {spec['branches']})",
                )
        for name in (sampled, deterministic):
            if name not in outputs:
                report.add("error", name, f"missing: {kind} actions need both {sampled} and {deterministic}")
                continue
            elem, dims = outputs[name].type.tensor_type.elem_type, _dims(outputs[name])
            if elem not in dtypes:
                need = (
                    "float32 (Unity reads Tensor<float>)"
                    if kind == "continuous"
                    else ("int64 or int32 action indices (Sentis reads Tensor<int>: ApplierImpl.cs)")
                )
                report.add("error", name, f"dtype {_type_name(elem)}: must be {need}")
            if dims and (len(dims) != 2 or dims[1] != width):
                report.add(
                    "error",
                    name,
                    f"shape {dims}: must be [batch, {width}] ({shape_name} says {sizes.tolist()})",
                )
    if not spec["continuous"] and not spec["branches"]:
        report.add(
            "error",
            "outputs",
            "no action output: continuous_actions and/or discrete_actions, with their shape constants",
        )
    extra = (
        set(outputs)
        - {c.VERSION_NUMBER, c.MEMORY_SIZE, "recurrent_out"}
        - {k[i] for k in kinds for i in (1, 2, 3)}
    )
    if extra:
        report.add("info", "outputs", f"also outputs {sorted(extra)} (Unity ignores them)")
    report.summary.update(continuous=spec["continuous"], branches=spec["branches"])
    return spec


def _run(path: Path, inputs: dict, spec: dict, report: Report, draws: int, rng: np.random.Generator) -> None:
    try:
        import onnxruntime
    except ImportError:
        report.add(
            "warning", "run", "onnxruntime is not installed: the model was not run (pip install onnxruntime)"
        )
        return
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        report.add("error", "run", f"onnxruntime cannot load the model: {error}")
        return
    names = [o.name for o in session.get_outputs()]
    branches, n = spec["branches"], spec["continuous"]
    for batch in (1, 16):
        feeds = {name: _random_input(name, dims, batch, branches, rng) for name, dims in inputs.items()}
        try:
            first = dict(zip(names, session.run(None, feeds), strict=True))
            again = dict(zip(names, session.run(None, feeds), strict=True))
        except Exception as error:
            report.add("error", "run", f"onnxruntime failed on a batch of {batch}: {error}")
            return
        for name, width in (
            (c.CONTINUOUS_ACTIONS, n),
            (c.DETERMINISTIC_CONTINUOUS, n),
            (c.DISCRETE_ACTIONS, len(branches)),
            (c.DETERMINISTIC_DISCRETE, len(branches)),
        ):
            if width and first[name].shape != (batch, width):
                report.add(
                    "error",
                    name,
                    f"gave shape {list(first[name].shape)} for a batch of {batch}, not [{batch}, {width}]",
                )
                return
        for name in (c.DETERMINISTIC_CONTINUOUS, c.DETERMINISTIC_DISCRETE):
            if name in first and not np.array_equal(first[name], again[name]):
                report.add(
                    "error", name, "changed between two runs on the same inputs: it must be deterministic"
                )
    if n:
        values = np.concatenate(session.run([c.CONTINUOUS_ACTIONS, c.DETERMINISTIC_CONTINUOUS], feeds))
        if not np.isfinite(values).all():
            report.add("error", c.CONTINUOUS_ACTIONS, "gave NaN or infinite actions on random observations")
        elif np.abs(values).max() > 1.0 + 1e-6:
            report.add(
                "warning",
                c.CONTINUOUS_ACTIONS,
                f"reached {np.abs(values).max():.3g}; ML-Agents' actions are "
                "in [-1, 1] (Unity applies them unclipped)",
            )
    if branches:
        _check_masks(session, inputs, branches, report, draws, rng)


def _check_masks(session, inputs: dict, branches: list[int], report: Report, draws: int, rng) -> None:
    starts = np.cumsum([0, *branches[:-1]])
    seen = [set() for _ in branches]
    for _ in range(max(1, draws)):
        feeds = {name: _random_input(name, dims, 16, branches, rng) for name, dims in inputs.items()}
        mask = feeds[c.ACTION_MASKS]
        for name, actions in zip(
            (c.DISCRETE_ACTIONS, c.DETERMINISTIC_DISCRETE),
            session.run([c.DISCRETE_ACTIONS, c.DETERMINISTIC_DISCRETE], feeds),
            strict=True,
        ):
            for b, (start, size) in enumerate(zip(starts, branches, strict=True)):
                column = actions[:, b].astype(np.int64)
                if ((column < 0) | (column >= size)).any():
                    report.add(
                        "error",
                        name,
                        f"branch {b} gave {sorted(set(column.tolist()))}, outside 0..{size - 1}",
                    )
                    return
                if (mask[np.arange(len(column)), start + column] == 0).any():
                    report.add(
                        "error", name, f"branch {b} chose a masked action (action_masks 0 = not allowed)"
                    )
                    return
                if name == c.DISCRETE_ACTIONS:
                    seen[b].update(column.tolist())
    report.summary["sampled_actions_seen"] = [len(s) for s in seen]


def _random_input(name: str, dims: list, batch: int, branches: list[int], rng) -> np.ndarray:
    shape = [batch, *(d if isinstance(d, int) else 1 for d in dims[1:])]
    if name == c.ACTION_MASKS:  # 0/1, at least one allowed action per branch
        mask = (rng.random(shape) < 0.6).astype(np.float32)
        start = 0
        for size in branches:
            mask[np.arange(batch), start + rng.integers(0, size, batch)] = 1.0
            start += size
        return mask
    if name.startswith("obs_") and len(shape) == 4:
        return rng.random(shape, dtype=np.float32)  # pixels in [0, 1], as Unity writes them
    return rng.standard_normal(shape).astype(np.float32) * (0 if name == "recurrent_in" else 1)


def _check_provenance(path: Path, inputs: dict, spec: dict, report: Report) -> None:
    side = path.with_name(path.name + ".json")
    if not side.is_file():
        return
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except ValueError as error:
        report.add("error", side.name, f"is not JSON: {error}")
        return
    if record.get("sha256") != c.sha256(path):
        report.add(
            "error",
            side.name,
            f"describes another file (its sha256 is not {path.name}'s): the model was "
            "changed or replaced after export",
        )
        return
    check = record.get("check")
    if isinstance(check, dict) and check.get("matches") is False:
        report.add(
            "error",
            side.name,
            f"the export check found the model disagreeing with the trained policy: {check}",
        )
    behavior = record.get("behavior", {})
    if spec["branches"] and behavior.get("discrete_branches") != spec["branches"]:
        report.add(
            "error",
            side.name,
            f"says branches {behavior.get('discrete_branches')}, the model {spec['branches']}",
        )
    if spec["continuous"] != behavior.get("continuous_size", spec["continuous"]):
        report.add(
            "error",
            side.name,
            f"says {behavior.get('continuous_size')} continuous actions, the model {spec['continuous']}",
        )
    for key in ("behavior_name", "training_job", "steps", "episode_reward_mean"):
        value = behavior.get("name") if key == "behavior_name" else record.get(key)
        if value is not None:
            report.summary[key] = value


def _type_name(elem_type: int) -> str:
    from onnx import TensorProto

    return TensorProto.DataType.Name(elem_type).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m template_runtime.onnx_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("models", nargs="+", type=Path, help=".onnx files to check")
    parser.add_argument(
        "--draws", type=int, default=50, help="random batches of 16 for the action-mask check"
    )
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args(argv)
    reports = [check_onnx(path, draws=args.draws) for path in args.models]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "path": str(r.path),
                        "ok": r.ok,
                        "summary": r.summary,
                        "findings": [f.__dict__ for f in r.findings],
                    }
                    for r in reports
                ],
                indent=1,
                default=str,
            )
        )
    else:
        print("\n".join(r.text() for r in reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
