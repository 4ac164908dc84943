"""Reading an int8 .tflite flatbuffer into a Graph of tensors and ops, and checking that
TensorFlow Lite Micro can run it (every op an int8 builtin, every activation tensor int8).

The engine's plan is made from this Graph by ``converter.plan``; TFLite Micro's integer
parameters are in ``converter.tflm_params``, the fused kernels' rules in ``converter.fusion``.
"""

from __future__ import annotations

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
    """One tensor of the flatbuffer. Shapes are TFLite's (NHWC for activations: 1, rows, time,
    features); scales and zero points are per tensor (one entry) or per output channel."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: int  # TFLite TensorType code (INT8, INT32, ...)
    scales: np.ndarray | None
    zero_points: np.ndarray | None
    data: np.ndarray | None  # constant tensors only, in ``shape``

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0])


@dataclass
class Op:
    """One operator: its builtin name (``CONV_2D``), tensor indices, and builtin options as the
    schema's object API names them (``strideW``, ``fusedActivationFunction``, ...)."""

    index: int
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    """The single subgraph of a .tflite: tensors by index, ops in execution order."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]

    def layer_name(self, op: Op) -> str:
        """A readable layer name: the Keras layer the op's output came from."""
        name = self.tensors[op.outputs[0]].name
        parts = name.split(";")[0].split("/")
        return parts[1] if len(parts) > 1 else parts[0]


def _tensor(index: int, t, buffers) -> Tensor:
    """A Tensor from the schema's TensorT; constant int8/int32 data read from its buffer."""
    q = t.quantization
    scales = np.asarray(q.scale, np.float32) if q is not None and q.scale is not None else None
    zps = np.asarray(q.zeroPoint, np.int64) if q is not None and q.zeroPoint is not None else None
    buf = buffers[t.buffer].data if t.buffer < len(buffers) else None
    data = None
    if buf is not None and len(buf):
        dt = {INT8: np.int8, INT32: np.int32}.get(t.type)
        if dt is not None:
            data = np.frombuffer(bytes(buf), dtype=dt).reshape(tuple(t.shape))
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
    return Tensor(index, name, tuple(int(s) for s in t.shape), int(t.type), scales, zps, data)


def read_tflite(model: bytes) -> Graph:
    """The Graph of a .tflite flatbuffer (read with TensorFlow's schema bindings); one subgraph
    only."""
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(model, 0))
    if len(m.subgraphs) != 1:
        raise UnsupportedModelError(f"expected one subgraph, found {len(m.subgraphs)}")
    sg = m.subgraphs[0]
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    tensors = [_tensor(i, t, m.buffers) for i, t in enumerate(sg.tensors)]
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
