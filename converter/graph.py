"""From an int8 .tflite to the firmware engine's plan: ops, constants, integer parameters, buffers.

The integer parameters are computed exactly as TensorFlow Lite Micro computes them when it
prepares a model (per-channel QuantizeMultiplier of input_scale * filter_scale / output_scale in
double precision; the ADD rescaling with left shift 20; activation ranges from the fused
activation), so the C engine reproduces the TFLM reference kernels bit for bit.

The extractor runs one channel row at a time: every tensor before the global average pool has
shape (1, rows, time, features) and rows never mix, so the engine keeps only one row's
activations in RAM. Buffers live in one static arena planned from tensor lifetimes.

Fusion: a depthwise -> pointwise (-> max pool 2/2) chain becomes one engine_separable_s8 step,
and a position-wise shortcut stream (two kernel-1 separable units) with the ADD that consumes
it becomes one engine_shortcut_add_s8 step, whenever every tensor inside the chain has a single
consumer; anything else keeps its unfused kernel. Fused steps may write over their input
(see plan_arena), which is what keeps the arena small. A shortcut+ADD step also gets scratch
memory (its ADD's rescale tables) in a part of the arena that is free during the step, so that
the tables take neither stack nor extra static RAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Ops the firmware's engine has kernels for (each bit-exact with TFLite Micro).
ENGINE_OPS = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "MAX_POOL_2D",
        "AVERAGE_POOL_2D",
        "ADD",
        "RESHAPE",
        "FULLY_CONNECTED",
    }
)
#: TFLite Micro builtins with int8 kernels that a model like this one may produce; an op
#: outside this set is reported with its layer name before anything is generated.
TFLM_INT8_OPS = ENGINE_OPS | {
    "MEAN",
    "SOFTMAX",
    "QUANTIZE",
    "DEQUANTIZE",
    "CONCATENATION",
    "PAD",
    "MUL",
    "LOGISTIC",
    "RELU",
    "RELU6",
    "STRIDED_SLICE",
    "TRANSPOSE",
    "SQUEEZE",
}
INT8, INT32 = 9, 2  # TFLite TensorType codes
_TYPE_NAMES = {
    0: "FLOAT32",
    1: "FLOAT16",
    2: "INT32",
    3: "UINT8",
    4: "INT64",
    9: "INT8",
    7: "INT16",
}


class UnsupportedModelError(ValueError):
    """An op, dtype or shape that TFLite Micro or the engine cannot run; names the layer."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: int
    scales: np.ndarray | None
    zero_points: np.ndarray | None
    data: np.ndarray | None  # constant tensors only

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0])


@dataclass
class Op:
    index: int
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]

    def layer_name(self, op: Op) -> str:
        """A readable layer name: the Keras layer the op's output came from."""
        name = self.tensors[op.outputs[0]].name
        parts = name.split(";")[0].split("/")
        return parts[1] if len(parts) > 1 else parts[0]


def read_tflite(model: bytes) -> Graph:
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(model, 0))
    if len(m.subgraphs) != 1:
        raise UnsupportedModelError(f"expected one subgraph, found {len(m.subgraphs)}")
    sg = m.subgraphs[0]
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    tensors = []
    for i, t in enumerate(sg.tensors):
        q = t.quantization
        scales = np.asarray(q.scale, np.float32) if q is not None and q.scale is not None else None
        zps = (
            np.asarray(q.zeroPoint, np.int64) if q is not None and q.zeroPoint is not None else None
        )
        buf = m.buffers[t.buffer].data if t.buffer < len(m.buffers) else None
        data = None
        if buf is not None and len(buf):
            dt = {INT8: np.int8, INT32: np.int32}.get(t.type)
            if dt is not None:
                data = np.frombuffer(bytes(buf), dtype=dt).reshape(tuple(t.shape))
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(
            Tensor(i, name, tuple(int(s) for s in t.shape), int(t.type), scales, zps, data)
        )
    ops = []
    for i, op in enumerate(sg.operators):
        oc = m.operatorCodes[op.opcodeIndex]
        kind = names[max(oc.builtinCode, oc.deprecatedBuiltinCode)]
        opts = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        ops.append(Op(i, kind, [int(x) for x in op.inputs], [int(x) for x in op.outputs], opts))
    return Graph(tensors, ops, [int(x) for x in sg.inputs], [int(x) for x in sg.outputs])


def check_tflm(graph: Graph) -> None:
    """Every op is a TFLite Micro builtin and every activation tensor is int8."""
    for op in graph.ops:
        layer = graph.layer_name(op)
        if op.kind not in TFLM_INT8_OPS:
            raise UnsupportedModelError(
                f"op {op.kind} (layer {layer}) is not supported by TFLite Micro for int8 models"
            )
        for ti in [*op.outputs, op.inputs[0]]:
            t = graph.tensors[ti]
            if t.dtype != INT8:
                raise UnsupportedModelError(
                    f"op {op.kind} (layer {layer}): tensor {t.name!r} is "
                    f"{_TYPE_NAMES.get(t.dtype, t.dtype)}, expected INT8"
                )


# ------------------------------------------------------------------------------------------
# TFLite Micro's integer parameters


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^shift / 2^31 with q in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = math.floor(frac * (1 << 31) + 0.5)  # TfLiteRound: half away from zero (frac > 0)
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def _srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul (int32)."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = (abs(ab + nudge) >> 31) * (1 if ab + nudge >= 0 else -1)  # C division: toward zero
    return q


def _rdbp(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier (int32), as the reference kernels use it."""
    left, right = max(shift, 0), max(-shift, 0)
    x = (x * (1 << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    return _rdbp(_srdhm(x, multiplier), right)


def pointwise_lut(pw: dict) -> list[int]:
    """A one-input-channel pointwise layer's output for every input value v in [-128, 127], as
    TFLM's CONV_2D computes it: lut[(v + 128) * out_channels + oc] (engine_separable_s8_t's
    pw_lut)."""
    if pw["in_channels"] != 1:
        raise ValueError("pointwise_lut: one input channel only")
    lut = []
    for v in range(-128, 128):
        for oc in range(pw["out_channels"]):
            bias = pw["bias"][oc] if isinstance(pw.get("bias"), list) else 0
            acc = bias + pw["filter"][oc] * (v + pw["input_offset"])
            y = multiply_by_quantized_multiplier(acc, pw["mult"][oc], pw["shift"][oc])
            lut.append(min(max(y + pw["output_offset"], pw["act_min"]), pw["act_max"]))
    return lut


def separable_uses_lut(dw: dict, pw: dict, pooled: bool) -> bool:
    """Whether engine_separable_s8 may take its lookup-table path (engine_separable_lut_ok):
    then the generated unit brings pw_lut, so that the table is not built on the stack."""
    return (
        pooled
        and dw["channels"] == 1
        and dw["kernel"] == 3
        and dw["stride"] == 1
        and pw["out_channels"] in (4, 8)
    )


def activation_range(fused: int, out: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8: NONE (0), RELU (1), RELU6 (3)."""
    zp, scale = out.zero_point, np.float32(out.scale)
    if fused == 0:
        return -128, 127
    if fused == 1:
        return max(-128, zp), 127
    if fused == 3:
        return max(-128, zp), min(127, zp + round(float(np.float32(6.0) / scale)))
    raise UnsupportedModelError(f"fused activation {fused} not supported")


def conv_multipliers(inp: Tensor, filt: Tensor, out: Tensor) -> tuple[list[int], list[int]]:
    mults, shifts = [], []
    for s in filt.scales:
        eff = float(np.float32(inp.scale)) * float(np.float32(s)) / float(np.float32(out.scale))
        q, sh = quantize_multiplier(eff)
        mults.append(q)
        shifts.append(sh)
    return mults, shifts


def fc_multiplier(inp: Tensor, filt: Tensor, out: Tensor) -> tuple[int, int]:
    product = float(np.float32(inp.scale) * np.float32(filt.scale))  # float product, as TFLM
    return quantize_multiplier(product / float(np.float32(out.scale)))


ADD_LEFT_SHIFT = 20


def add_params(a: Tensor, b: Tensor, out: Tensor) -> dict:
    twice_max = 2.0 * float(max(np.float32(a.scale), np.float32(b.scale)))
    am, ash = quantize_multiplier(float(np.float32(a.scale)) / twice_max)
    bm, bsh = quantize_multiplier(float(np.float32(b.scale)) / twice_max)
    om, osh = quantize_multiplier(
        twice_max / ((1 << ADD_LEFT_SHIFT) * float(np.float32(out.scale)))
    )
    return {
        "a_offset": -a.zero_point,
        "a_mult": am,
        "a_shift": ash,
        "b_offset": -b.zero_point,
        "b_mult": bm,
        "b_shift": bsh,
        "left_shift": ADD_LEFT_SHIFT,
        "out_offset": out.zero_point,
        "out_mult": om,
        "out_shift": osh,
    }


def same_padding(length: int, window: int, stride: int, padding: int) -> tuple[int, int]:
    """(output length, left padding) for TFLite padding 0 = SAME, 1 = VALID."""
    if padding == 0:
        out = (length + stride - 1) // stride
    else:
        out = (length - window + stride) // stride
    total = max((out - 1) * stride + window - length, 0)
    return out, total // 2


# ------------------------------------------------------------------------------------------
# The engine's plan


@dataclass
class Step:
    """One kernel call. Buffers are arena tensors, the input row, or the feature vector."""

    kind: str  # depthwise | pointwise | max_pool | avg_pool | add | fully_connected
    #            | separable | shortcut_add (fused; params hold the parts' params)
    layer: str
    op_index: int
    inputs: list[int]
    output: int
    params: dict
    phase: str  # "row" (once per channel row) or "head"
    macs: int = 0
    #: input tensor -> lead in bytes: the output may start that many bytes before the input
    #: (or earlier) and overlap it, when the input dies at this step (see plan_arena).
    inplace: dict[int, int] = field(default_factory=dict)
    #: the unfused steps a fused step replaces, in graph order
    parts: list[Step] = field(default_factory=list)
    #: bytes of scratch memory the kernel needs during the step (placed by plan_arena)
    scratch_bytes: int = 0
    #: arena offset of that scratch, set by plan_arena
    scratch_offset: int | None = None

    @property
    def label(self) -> str:
        """Kind as shown in layer names: a fused step lists what it computes."""
        if self.kind == "separable":
            return "dw+pw+pool" if self.params["pool"] is not None else "dw+pw"
        if self.kind == "shortcut_add":
            return "shortcut+add"
        return self.kind


@dataclass
class Plan:
    rows: int
    row_len: int
    steps: list[Step]
    tensors: dict[int, Tensor]
    offsets: dict[int, int]  # arena offset of each row tensor
    arena_bytes: int
    feature_tensor: int
    feature_bytes: int
    output_tensor: int
    input_tensor: int
    head_buffers: dict[int, int]  # head tensor -> byte size

    @property
    def activation_bytes(self) -> int:
        return self.arena_bytes + self.feature_bytes + sum(self.head_buffers.values())


def make_plan(graph: Graph) -> Plan:
    check_tflm(graph)
    t = graph.tensors
    (inp_i,), (out_i,) = graph.inputs, graph.outputs
    inp = t[inp_i]
    if len(inp.shape) != 4 or inp.shape[0] != 1 or inp.shape[3] != 1:
        raise UnsupportedModelError(f"input shape {inp.shape}: expected (1, rows, time, 1)")
    rows, row_len = inp.shape[1], inp.shape[2]
    steps: list[Step] = []
    phase, feature_tensor = "row", None
    for op in graph.ops:
        layer = graph.layer_name(op)
        if op.kind not in ENGINE_OPS:
            raise UnsupportedModelError(f"op {op.kind} (layer {layer}) has no engine kernel")
        o = t[op.outputs[0]]
        x = t[op.inputs[0]]
        if op.kind == "RESHAPE":
            if phase != "row" or feature_tensor is None:
                raise UnsupportedModelError(f"RESHAPE (layer {layer}) only after the pooling")
            phase = "head"
            feature_tensor = op.outputs[0]
            continue
        if phase == "row" and (len(o.shape) != 4 or o.shape[1] != rows):
            raise UnsupportedModelError(f"{op.kind} (layer {layer}) mixes channel rows")
        opts = op.options
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = t[op.inputs[1]]
            bias = t[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            mults, shifts = conv_multipliers(x, w, o)
            act = activation_range(opts["fusedActivationFunction"], o)
            kh, kw = w.shape[1], w.shape[2]
            if kh != 1:
                raise UnsupportedModelError(f"{op.kind} (layer {layer}): kernel height {kh}")
            len_in, cin, cout = x.shape[2], x.shape[3], o.shape[3]
            common = {
                "len_in": len_in,
                "len_out": o.shape[2],
                "input_offset": -x.zero_point,
                "output_offset": o.zero_point,
                "mult": mults,
                "shift": shifts,
                "act_min": act[0],
                "act_max": act[1],
                "bias": None if bias is None else bias.astype(np.int64).tolist(),
            }
            if op.kind == "DEPTHWISE_CONV_2D":
                if opts.get("depthMultiplier", 1) != 1 or cin != cout:
                    raise UnsupportedModelError(f"depthwise layer {layer}: depth multiplier")
                out_len, pad = same_padding(len_in, kw, opts["strideW"], opts["padding"])
                steps.append(
                    Step(
                        "depthwise",
                        layer,
                        op.index,
                        [op.inputs[0]],
                        op.outputs[0],
                        {
                            **common,
                            "channels": cin,
                            "kernel": kw,
                            "stride": opts["strideW"],
                            "pad_left": pad,
                            "filter": w.data.reshape(-1).tolist(),
                        },
                        phase,
                        macs=rows * o.shape[2] * cout * kw,
                    )
                )
            else:
                if kw != 1 or opts["strideW"] != 1:
                    raise UnsupportedModelError(f"CONV_2D (layer {layer}): only 1x1, stride 1")
                steps.append(
                    Step(
                        "pointwise",
                        layer,
                        op.index,
                        [op.inputs[0]],
                        op.outputs[0],
                        {
                            **common,
                            "in_channels": cin,
                            "out_channels": cout,
                            "filter": w.data.reshape(-1).tolist(),
                        },
                        phase,
                        macs=rows * o.shape[2] * cout * cin,
                    )
                )
        elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            if opts["filterHeight"] != 1:
                raise UnsupportedModelError(f"{op.kind} (layer {layer}): pooling across rows")
            if op.kind == "AVERAGE_POOL_2D" and (x.scale, x.zero_point) != (o.scale, o.zero_point):
                raise UnsupportedModelError(f"AVERAGE_POOL_2D (layer {layer}) rescales")
            out_len, pad = same_padding(
                x.shape[2], opts["filterWidth"], opts["strideW"], opts["padding"]
            )
            act = activation_range(opts["fusedActivationFunction"], o)
            kind = "max_pool" if op.kind == "MAX_POOL_2D" else "avg_pool"
            steps.append(
                Step(
                    kind,
                    layer,
                    op.index,
                    [op.inputs[0]],
                    op.outputs[0],
                    {
                        "len_in": x.shape[2],
                        "len_out": out_len,
                        "channels": x.shape[3],
                        "window": opts["filterWidth"],
                        "stride": opts["strideW"],
                        "pad_left": pad,
                        "act_min": act[0],
                        "act_max": act[1],
                    },
                    phase,
                )
            )
            if kind == "avg_pool":
                feature_tensor = op.outputs[0]
        elif op.kind == "ADD":
            b = t[op.inputs[1]]
            if x.shape != b.shape:
                raise UnsupportedModelError(f"ADD (layer {layer}) with broadcasting")
            act = activation_range(opts["fusedActivationFunction"], o)
            n = x.shape[2] * x.shape[3]
            steps.append(
                Step(
                    "add",
                    layer,
                    op.index,
                    op.inputs[:2],
                    op.outputs[0],
                    {**add_params(x, b, o), "n": n, "act_min": act[0], "act_max": act[1]},
                    phase,
                )
            )
        elif op.kind == "FULLY_CONNECTED":
            if phase != "head":
                raise UnsupportedModelError(f"FULLY_CONNECTED (layer {layer}) before the head")
            w = t[op.inputs[1]]
            bias = t[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            if w.scales is None or len(w.scales) not in (1, w.shape[0]):
                raise UnsupportedModelError(f"FULLY_CONNECTED (layer {layer}): weight scales")
            if len(w.scales) == 1:  # per tensor: TFLM multiplies the two float scales first
                m, sh = fc_multiplier(x, w, o)
                m, sh = [m] * w.shape[0], [sh] * w.shape[0]
            else:  # per channel: as for convolutions
                m, sh = conv_multipliers(x, w, o)
            act = activation_range(opts["fusedActivationFunction"], o)
            steps.append(
                Step(
                    "fully_connected",
                    layer,
                    op.index,
                    [op.inputs[0]],
                    op.outputs[0],
                    {
                        "in_features": w.shape[1],
                        "out_features": w.shape[0],
                        "input_offset": -x.zero_point,
                        "filter_offset": -w.zero_point,
                        "output_offset": o.zero_point,
                        "mult": m,
                        "shift": sh,
                        "act_min": act[0],
                        "act_max": act[1],
                        "weights": w.data.reshape(-1).tolist(),
                        "bias": None if bias is None else bias.tolist(),
                    },
                    phase,
                    macs=w.shape[0] * w.shape[1],
                )
            )
    if feature_tensor is None or steps[-1].output != out_i:
        raise UnsupportedModelError("expected: row ops, global pooling, RESHAPE, dense head")
    # Map the pooled tensor (pre-reshape) and the reshaped one to the same feature buffer.
    pooled = next(s.output for s in steps if s.kind == "avg_pool")
    steps = fuse_steps(steps, graph.outputs)
    offsets, arena = plan_arena(steps, t, inp_i, pooled)
    head = {
        s.output: int(np.prod(t[s.output].shape))
        for s in steps
        if s.phase == "head" and s.output != out_i
    }
    feature_bytes = int(np.prod(t[feature_tensor].shape))
    for s in steps:
        s.inputs = [pooled if i == feature_tensor else i for i in s.inputs]
    return Plan(
        rows,
        row_len,
        steps,
        {i: t[i] for i in range(len(t))},
        offsets,
        arena,
        pooled,
        feature_bytes,
        out_i,
        inp_i,
        head,
    )


def row_bytes(tensor: Tensor) -> int:
    return int(tensor.shape[2] * tensor.shape[3])


def plan_arena(
    steps: list[Step], tensors: list[Tensor], input_tensor: int, pooled: int
) -> tuple[dict[int, int], int]:
    """First-fit offsets for the row tensors from their lifetimes (producer .. last consumer).

    The row input lives in the caller's buffer and the pooled features in their own buffer.
    A step's output is first tried in place of an input that dies at that step
    (Step.inplace: at the input's offset minus the step's lead), else placed first-fit.
    Then each step's scratch (Step.scratch_bytes) goes first-fit among the tensors live at that
    step, i.e. in a gap of the arena free during the step (the arena grows only if none fits);
    its offset is stored in Step.scratch_offset.
    """
    row_steps = [s for s in steps if s.phase == "row"]
    born, dies, alias = {}, {}, {}
    for i, s in enumerate(row_steps):
        if s.output != pooled:
            born[s.output] = i
        for x in s.inputs:
            dies[x] = i
    for i, s in enumerate(row_steps):
        for x, lead in s.inplace.items():
            if x in born and dies.get(x) == i and s.output in born:
                alias[s.output] = (x, lead)
    order = sorted(born, key=lambda k: (born[k], -row_bytes(tensors[k])))
    placed: dict[int, tuple[int, int, int, int]] = {}  # tensor -> (start, end, born, dies)
    offsets, top = {}, 0
    for k in order:
        size = (row_bytes(tensors[k]) + 3) // 4 * 4
        life = (born[k], dies.get(k, born[k]))
        live = {j: v for j, v in placed.items() if v[2] <= life[1] and life[0] <= v[3]}
        offset = None
        if k in alias:
            x, lead = alias[k]
            start = offsets[x] - lead
            others = [v for j, v in live.items() if j != x]
            if start >= 0 and all(start + size <= a or b <= start for a, b, _, _ in others):
                offset = start
        if offset is None:
            offset = 0
            for a, b in sorted((v[0], v[1]) for v in live.values()):
                if offset + size <= a:
                    break
                offset = max(offset, b)
        offsets[k] = offset
        placed[k] = (offset, offset + size, *life)
        top = max(top, offset + size)
    for i, s in enumerate(row_steps):
        if s.scratch_bytes <= 0:
            continue
        size = (s.scratch_bytes + 3) // 4 * 4
        offset = 0
        for a, b in sorted((v[0], v[1]) for v in placed.values() if v[2] <= i <= v[3]):
            if offset + size <= a:
                break
            offset = max(offset, b)
        s.scratch_offset = offset
        top = max(top, offset + size)
    return offsets, top


# ------------------------------------------------------------------------------------------
# Fusion

#: Channel limit of the fused kernels (ENGINE_FUSED_MAX_CHANNELS in engine_kernels.h).
FUSED_MAX_CHANNELS = 64
#: Scratch bytes of engine_shortcut_add_s8 (ENGINE_SHORTCUT_SCRATCH_BYTES in engine_kernels.h).
SHORTCUT_SCRATCH_BYTES = 2048


def separable_lead_bytes(
    c_in: int, c_out: int, pooled: bool, stride: int, pad_left: int, len_out: int
) -> int:
    """Smallest lead d (bytes) with which engine_separable_s8 may write its output over its input
    (output starting d bytes before the input), the rule documented in engine_kernels.h:
    u * c_out <= d + c_in * max(0, q * u * stride - pad_left) for u = 1 .. len_out - 1."""
    q = 2 if pooled else 1
    worst = 0
    for u in range(1, len_out):
        worst = max(worst, u * c_out - c_in * max(0, q * u * stride - pad_left))
    return worst


def _offsets_ok(*offsets: int) -> bool:
    return all(-128 <= o <= 128 for o in offsets)


def _unit_ok(dw: Step, pw: Step) -> bool:
    """The depthwise -> pointwise pair is one engine_separable_s8_t."""
    d, p = dw.params, pw.params
    return (
        d["channels"] == p["in_channels"]
        and d["len_out"] == p["len_in"]
        and p["input_offset"] == -d["output_offset"]
        and d["channels"] <= FUSED_MAX_CHANNELS
        and p["out_channels"] <= FUSED_MAX_CHANNELS
        and _offsets_ok(d["input_offset"], d["output_offset"], p["output_offset"])
    )


def _pool2_ok(pool: Step, len_mid: int) -> bool:
    p = pool.params
    return (
        pool.kind == "max_pool"
        and (p["window"], p["stride"], p["pad_left"]) == (2, 2, 0)
        and p["len_in"] == len_mid
        and p["len_out"] in (len_mid // 2, (len_mid + 1) // 2)
    )


def fuse_steps(steps: list[Step], graph_outputs: list[int]) -> list[Step]:
    """Steps with the recognised chains fused (see the module docstring); the rest unchanged.

    A chain is fused only if each tensor inside it has exactly one consumer (the next step of
    the chain) and is not a graph output. The fused step runs where the chain's last step ran:
    its external inputs exist by then, and nothing else reads the tensors it no longer stores.
    """
    consumers: dict[int, list[int]] = {}
    for i, s in enumerate(steps):
        for x in s.inputs:
            consumers.setdefault(x, []).append(i)
    producer = {s.output: i for i, s in enumerate(steps)}
    taken: set[int] = set()

    def sole_consumer(tensor: int) -> int | None:
        users = consumers.get(tensor, [])
        if len(users) != 1 or tensor in graph_outputs:
            return None
        return users[0]

    def feeds(i: int, kind: str) -> int | None:
        """The index of step i's one consumer if it has that kind and is free."""
        j = sole_consumer(steps[i].output)
        if j is None or j in taken or steps[j].kind != kind or steps[j].phase != "row":
            return None
        return j

    fused: dict[int, Step] = {}  # index of the chain's last step -> fused step

    # 1. Shortcut stream + ADD: dw(k1) -> pw -> dw(k1) -> pw -> ADD, from the ADD backwards.
    for i, add in enumerate(steps):
        if add.kind != "add" or add.phase != "row" or add.inputs[0] == add.inputs[1]:
            continue
        for side in (1, 0):
            chain = _shortcut_chain(steps, producer, add.inputs[side], feeds, i)
            if chain is None:
                continue
            d1, p1, d2, p2 = (steps[k] for k in chain)
            main = add.inputs[1 - side]
            fused[i] = _fused_shortcut(d1, p1, d2, p2, add, main, side)
            taken.update([*chain, i])
            break

    # 2. Separable units: dw -> pw (-> max pool 2/2).
    for i, dw in enumerate(steps):
        if i in taken or dw.kind != "depthwise" or dw.phase != "row":
            continue
        j = feeds(i, "pointwise")
        if j is None or not _unit_ok(dw, steps[j]):
            continue
        k = feeds(j, "max_pool")
        pooled = k is not None and _pool2_ok(steps[k], dw.params["len_out"])
        chain = [i, j, k] if pooled else [i, j]
        fused[chain[-1]] = _fused_separable(*(steps[c] for c in chain))
        taken.update(chain)

    return [fused.get(i, s) for i, s in enumerate(steps) if i in fused or i not in taken]


def _shortcut_chain(steps, producer, tensor, feeds, add_index) -> list[int] | None:
    """[dw1, pw1, dw2, pw2] step indices if `tensor` comes out of such a position-wise chain
    whose inner tensors each feed only the next step (and pw2 feeds only the ADD)."""
    idx = []
    t = tensor
    for kind in ("pointwise", "depthwise", "pointwise", "depthwise"):
        k = producer.get(t)
        if k is None or steps[k].kind != kind or steps[k].phase != "row":
            return None
        idx.append(k)
        t = steps[k].inputs[0]
    p2, d2, p1, d1 = idx
    if feeds(d1, "pointwise") != p1 or feeds(p1, "depthwise") != d2:
        return None
    if feeds(d2, "pointwise") != p2 or feeds(p2, "add") != add_index:
        return None
    dw1, pw1, dw2, pw2 = (steps[k] for k in (d1, p1, d2, p2))
    if not (_unit_ok(dw1, pw1) and _unit_ok(dw2, pw2)):
        return None
    a, b = dw1.params, dw2.params
    if (a["kernel"], a["pad_left"], b["kernel"], b["pad_left"]) != (1, 0, 1, 0):
        return None
    if pw1.params["out_channels"] != b["channels"] or b["len_in"] != a["len_out"]:
        return None
    last_first = (b["len_out"] - 1) * b["stride"]
    if last_first >= a["len_out"] or last_first * a["stride"] >= a["len_in"]:
        return None
    return [d1, p1, d2, p2]


def _layer_prefix(steps: list[Step]) -> str:
    """The fused layers' common name prefix ("dssc1_main1"), or their names joined."""
    names = [s.layer for s in steps]
    prefix = names[0]
    for n in names[1:]:
        while not n.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix.rstrip("_")
    return prefix if prefix else "+".join(names)


def _fused_separable(dw: Step, pw: Step, pool: Step | None = None) -> Step:
    parts = [dw, pw] + ([pool] if pool is not None else [])
    d, p = dw.params, pw.params
    len_out = pool.params["len_out"] if pool is not None else p["len_in"]
    lead = separable_lead_bytes(
        d["channels"], p["out_channels"], pool is not None, d["stride"], d["pad_left"], len_out
    )
    return Step(
        "separable",
        _layer_prefix(parts),
        dw.op_index,
        [dw.inputs[0]],
        parts[-1].output,
        {
            "dw": d,
            "pw": p,
            "pool": None if pool is None else pool.params,
            "len_in": d["len_in"],
            "len_mid": d["len_out"],
            "len_out": len_out,
        },
        "row",
        macs=sum(s.macs for s in parts),
        inplace={dw.inputs[0]: lead},
        parts=parts,
    )


def _fused_shortcut(d1, p1, d2, p2, add: Step, main: int, side: int) -> Step:
    """side: which ADD input (0 or 1) the shortcut is; the kernel's `a` is the main stream."""
    parts = [d1, p1, d2, p2, add]
    a = add.params
    if side == 0:  # the ADD is symmetric in its inputs: swap a and b's parameters
        a = {**a}
        for name in ("offset", "mult", "shift"):
            a[f"a_{name}"], a[f"b_{name}"] = add.params[f"b_{name}"], add.params[f"a_{name}"]
    return Step(
        "shortcut_add",
        _layer_prefix(parts),
        d1.op_index,
        [d1.inputs[0], main],
        add.output,
        {
            "first": {"dw": d1.params, "pw": p1.params},
            "second": {"dw": d2.params, "pw": p2.params},
            "add": a,
            "len_in": d1.params["len_in"],
            "len_first": d1.params["len_out"],
            "len_out": d2.params["len_out"],
        },
        "row",
        macs=sum(s.macs for s in parts),
        inplace={main: 0},
        parts=parts,
        scratch_bytes=SHORTCUT_SCRATCH_BYTES,
    )


def param_arrays(params: dict):
    """(name, values) of every constant array in a step's params, fused steps included."""
    for name, value in params.items():
        if isinstance(value, dict):
            yield from param_arrays(value)
        elif isinstance(value, list) and name in ("filter", "weights", "bias", "mult", "shift"):
            yield name, value
