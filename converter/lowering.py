"""From the ops of an int8 Graph to the engine's unfused steps: one kernel call per op, with
TFLite Micro's integer parameters (``converter.tflm_params``) and the op's constants.

Every tensor before the global average pool has shape (1, rows, time, features) and rows never
mix, so those steps run once per channel row ("row" phase); after the RESHAPE that flattens the
pooled features, the dense layers run once per input ("head" phase). ``converter.fusion`` then
merges chains of these steps, and ``converter.plan`` places their buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .graph import ENGINE_OPS, Graph, Op, Tensor, UnsupportedModelError
from .tflm_params import (
    activation_range,
    add_params,
    conv_multipliers,
    fc_multiplier,
    same_padding,
)


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

    @property
    def name(self) -> str:
        """The engine layer name, "<label>:<layer>" (engine_model_layer_names, profiling)."""
        return f"{self.label}:{self.layer}"


def param_arrays(params: dict):
    """(name, values) of every constant array in a step's params, fused steps included."""
    for name, value in params.items():
        if isinstance(value, dict):
            yield from param_arrays(value)
        elif isinstance(value, list) and name in ("filter", "weights", "bias", "mult", "shift"):
            yield name, value


@dataclass
class _OpContext:
    """What every per-op lowering needs: the op, its layer name, phase and the row count."""

    graph: Graph
    op: Op
    layer: str
    phase: str
    rows: int

    def tensor(self, k: int) -> Tensor:
        """The op's k-th input tensor."""
        return self.graph.tensors[self.op.inputs[k]]

    @property
    def out(self) -> Tensor:
        return self.graph.tensors[self.op.outputs[0]]

    def bias(self) -> np.ndarray | None:
        """The optional third input's constant data (int32 bias), or None."""
        ins = self.op.inputs
        return self.graph.tensors[ins[2]].data if len(ins) > 2 and ins[2] >= 0 else None

    def step(self, kind: str, inputs: list[int], params: dict, macs: int = 0) -> Step:
        return Step(
            kind, self.layer, self.op.index, inputs, self.op.outputs[0], params, self.phase, macs
        )


def lower_ops(graph: Graph, rows: int) -> tuple[list[Step], int | None]:
    """The unfused steps of every op in graph order, and the feature tensor (the RESHAPE's
    output, else the last average pool's; None without pooling). Raises UnsupportedModelError,
    naming the layer, for an op without an engine kernel or in the wrong place."""
    steps: list[Step] = []
    phase, feature_tensor = "row", None
    for op in graph.ops:
        layer = graph.layer_name(op)
        if op.kind not in ENGINE_OPS:
            raise UnsupportedModelError(f"op {op.kind} (layer {layer}) has no engine kernel")
        if op.kind == "RESHAPE":
            if phase != "row" or feature_tensor is None:
                raise UnsupportedModelError(f"RESHAPE (layer {layer}) only after the pooling")
            phase = "head"
            feature_tensor = op.outputs[0]
            continue
        o = graph.tensors[op.outputs[0]]
        if phase == "row" and (len(o.shape) != 4 or o.shape[1] != rows):
            raise UnsupportedModelError(f"{op.kind} (layer {layer}) mixes channel rows")
        step = _LOWER[op.kind](_OpContext(graph, op, layer, phase, rows))
        steps.append(step)
        if step.kind == "avg_pool":
            feature_tensor = op.outputs[0]
    return steps, feature_tensor


def _conv_common(c: _OpContext) -> dict:
    """Parameters shared by the depthwise and 1x1 convolutions (per-channel requantisation)."""
    x, w, o = c.tensor(0), c.tensor(1), c.out
    bias = c.bias()
    mults, shifts = conv_multipliers(x, w, o)
    act = activation_range(c.op.options["fusedActivationFunction"], o)
    if w.shape[1] != 1:
        raise UnsupportedModelError(f"{c.op.kind} (layer {c.layer}): kernel height {w.shape[1]}")
    return {
        "len_in": x.shape[2],
        "len_out": o.shape[2],
        "input_offset": -x.zero_point,
        "output_offset": o.zero_point,
        "mult": mults,
        "shift": shifts,
        "act_min": act[0],
        "act_max": act[1],
        "bias": None if bias is None else bias.astype(np.int64).tolist(),
    }


def _depthwise(c: _OpContext) -> Step:
    """DEPTHWISE_CONV_2D with a (1, k) kernel and depth multiplier 1."""
    common = _conv_common(c)
    x, w, o, opts = c.tensor(0), c.tensor(1), c.out, c.op.options
    kw, cin, cout = w.shape[2], x.shape[3], o.shape[3]
    if opts.get("depthMultiplier", 1) != 1 or cin != cout:
        raise UnsupportedModelError(f"depthwise layer {c.layer}: depth multiplier")
    _out_len, pad = same_padding(x.shape[2], kw, opts["strideW"], opts["padding"])
    params = {
        **common,
        "channels": cin,
        "kernel": kw,
        "stride": opts["strideW"],
        "pad_left": pad,
        "filter": w.data.reshape(-1).tolist(),
    }
    return c.step("depthwise", [c.op.inputs[0]], params, c.rows * o.shape[2] * cout * kw)


def _pointwise(c: _OpContext) -> Step:
    """CONV_2D 1x1, stride 1 (the pointwise half of a separable unit)."""
    common = _conv_common(c)
    x, w, o, opts = c.tensor(0), c.tensor(1), c.out, c.op.options
    cin, cout = x.shape[3], o.shape[3]
    if w.shape[2] != 1 or opts["strideW"] != 1:
        raise UnsupportedModelError(f"CONV_2D (layer {c.layer}): only 1x1, stride 1")
    params = {
        **common,
        "in_channels": cin,
        "out_channels": cout,
        "filter": w.data.reshape(-1).tolist(),
    }
    return c.step("pointwise", [c.op.inputs[0]], params, c.rows * o.shape[2] * cout * cin)


def _pool(c: _OpContext) -> Step:
    """MAX_POOL_2D or AVERAGE_POOL_2D along time; the average pool may not rescale."""
    x, o, opts, kind = c.tensor(0), c.out, c.op.options, c.op.kind
    if opts["filterHeight"] != 1:
        raise UnsupportedModelError(f"{kind} (layer {c.layer}): pooling across rows")
    if kind == "AVERAGE_POOL_2D" and (x.scale, x.zero_point) != (o.scale, o.zero_point):
        raise UnsupportedModelError(f"AVERAGE_POOL_2D (layer {c.layer}) rescales")
    out_len, pad = same_padding(x.shape[2], opts["filterWidth"], opts["strideW"], opts["padding"])
    act = activation_range(opts["fusedActivationFunction"], o)
    params = {
        "len_in": x.shape[2],
        "len_out": out_len,
        "channels": x.shape[3],
        "window": opts["filterWidth"],
        "stride": opts["strideW"],
        "pad_left": pad,
        "act_min": act[0],
        "act_max": act[1],
    }
    return c.step("max_pool" if kind == "MAX_POOL_2D" else "avg_pool", [c.op.inputs[0]], params)


def _add(c: _OpContext) -> Step:
    """Element-wise ADD of two tensors of the same shape."""
    x, b, o = c.tensor(0), c.tensor(1), c.out
    if x.shape != b.shape:
        raise UnsupportedModelError(f"ADD (layer {c.layer}) with broadcasting")
    act = activation_range(c.op.options["fusedActivationFunction"], o)
    n = x.shape[2] * x.shape[3]
    params = {**add_params(x, b, o), "n": n, "act_min": act[0], "act_max": act[1]}
    return c.step("add", c.op.inputs[:2], params)


def _fully_connected(c: _OpContext) -> Step:
    """FULLY_CONNECTED of the head, per-tensor or per-channel weight scales."""
    if c.phase != "head":
        raise UnsupportedModelError(f"FULLY_CONNECTED (layer {c.layer}) before the head")
    x, w, o = c.tensor(0), c.tensor(1), c.out
    bias = c.bias()
    if w.scales is None or len(w.scales) not in (1, w.shape[0]):
        raise UnsupportedModelError(f"FULLY_CONNECTED (layer {c.layer}): weight scales")
    if len(w.scales) == 1:  # per tensor: TFLM multiplies the two float scales first
        m, sh = fc_multiplier(x, w, o)
        m, sh = [m] * w.shape[0], [sh] * w.shape[0]
    else:  # per channel: as for convolutions
        m, sh = conv_multipliers(x, w, o)
    act = activation_range(c.op.options["fusedActivationFunction"], o)
    params = {
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
    }
    return c.step("fully_connected", [c.op.inputs[0]], params, w.shape[0] * w.shape[1])


#: TFLite op -> its lowering (RESHAPE is handled by lower_ops: it only changes the phase)
_LOWER = {
    "CONV_2D": _pointwise,
    "DEPTHWISE_CONV_2D": _depthwise,
    "MAX_POOL_2D": _pool,
    "AVERAGE_POOL_2D": _pool,
    "ADD": _add,
    "FULLY_CONNECTED": _fully_connected,
}
