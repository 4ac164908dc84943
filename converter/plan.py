"""The engine's plan of an int8 Graph: its steps (lowered, then fused), the static arena that
holds the row tensors, and the head's buffers; ``converter.codegen`` writes it as C.

The extractor runs one channel row at a time: every tensor before the global average pool has
shape (1, rows, time, features) and rows never mix, so the engine keeps only one row's
activations in RAM. Buffers live in one static arena planned from tensor lifetimes; fused steps
may write over an input that dies at that step, and a step's scratch goes in a part of the arena
free during the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fusion import fuse_steps
from .graph import Graph, Tensor, UnsupportedModelError, check_tflm
from .lowering import Step, lower_ops


@dataclass
class Plan:
    """Everything the generated engine_model.c needs. Sizes in bytes (int8 tensors)."""

    rows: int  # channel rows of the input, each run through the extractor alone
    row_len: int  # samples per row
    steps: list[Step]
    tensors: dict[int, Tensor]
    offsets: dict[int, int]  # arena offset of each row tensor
    arena_bytes: int
    feature_tensor: int  # the pooled features of all rows (the average pool's output)
    feature_bytes: int
    output_tensor: int
    input_tensor: int
    head_buffers: dict[int, int]  # head tensor -> byte size

    @property
    def activation_bytes(self) -> int:
        return self.arena_bytes + self.feature_bytes + sum(self.head_buffers.values())


def make_plan(graph: Graph) -> Plan:
    """The plan of ``graph``: checked against TFLite Micro, lowered to one step per op, fused,
    and its buffers placed. Raises UnsupportedModelError (naming the layer) for anything the
    engine cannot run."""
    check_tflm(graph)
    t = graph.tensors
    (inp_i,), (out_i,) = graph.inputs, graph.outputs
    rows, row_len = input_rows(t[inp_i])
    steps, feature_tensor = lower_ops(graph, rows)
    if feature_tensor is None or steps[-1].output != out_i:
        raise UnsupportedModelError("expected: row ops, global pooling, RESHAPE, dense head")
    pooled = next(s.output for s in steps if s.kind == "avg_pool")
    steps = fuse_steps(steps, graph.outputs)
    offsets, arena = plan_arena(steps, t, inp_i, pooled)
    share_feature_buffer(steps, feature_tensor, pooled)
    return Plan(
        rows,
        row_len,
        steps,
        {i: t[i] for i in range(len(t))},
        offsets,
        arena,
        pooled,
        int(np.prod(t[feature_tensor].shape)),
        out_i,
        inp_i,
        head_buffers(steps, t, out_i),
    )


def input_rows(inp: Tensor) -> tuple[int, int]:
    """(rows, samples per row) of the model input, which must be (1, rows, time, 1)."""
    if len(inp.shape) != 4 or inp.shape[0] != 1 or inp.shape[3] != 1:
        raise UnsupportedModelError(f"input shape {inp.shape}: expected (1, rows, time, 1)")
    return inp.shape[1], inp.shape[2]


def share_feature_buffer(steps: list[Step], feature_tensor: int, pooled: int) -> None:
    """Make the head read the pooled tensor (pre-RESHAPE) where it read the reshaped one: the
    RESHAPE has no step, both are the same bytes in the one feature buffer."""
    for s in steps:
        s.inputs = [pooled if i == feature_tensor else i for i in s.inputs]


def head_buffers(steps: list[Step], tensors: list[Tensor], output: int) -> dict[int, int]:
    """Byte size of each head step's output buffer but the model output (the caller's)."""
    return {
        s.output: int(np.prod(tensors[s.output].shape))
        for s in steps
        if s.phase == "head" and s.output != output
    }


def plan_arena(
    steps: list[Step], tensors: list[Tensor], input_tensor: int, pooled: int
) -> tuple[dict[int, int], int]:
    """(arena offset of each row tensor, arena bytes): first-fit from tensor lifetimes
    (producer .. last consumer), every block rounded up to 4 bytes.

    The row input (``input_tensor``) lives in the caller's buffer and the pooled features in
    their own buffer, so neither takes arena. A step's output is first tried in place of an
    input that dies at that step (Step.inplace: at the input's offset minus the step's lead),
    else placed first-fit. Then each step's scratch (Step.scratch_bytes) goes first-fit among
    the tensors live at that step, i.e. in a gap of the arena free during the step (the arena
    grows only if none fits); its offset is stored in Step.scratch_offset.
    """
    row_steps = [s for s in steps if s.phase == "row"]
    born, dies, alias = _lifetimes(row_steps, pooled)
    placed = _place_tensors(born, dies, alias, tensors)
    top = max((end for _start, end, _b, _d in placed.values()), default=0)
    top = max(top, _place_scratch(row_steps, placed))
    return {k: v[0] for k, v in placed.items()}, top


def row_bytes(tensor: Tensor) -> int:
    """Bytes of one channel row of a (1, rows, time, features) int8 tensor."""
    return int(tensor.shape[2] * tensor.shape[3])


def _aligned(size: int) -> int:
    return (size + 3) // 4 * 4


def _first_fit(size: int, busy) -> int:
    """The lowest offset where ``size`` bytes fit between the (start, end) ranges ``busy``."""
    offset = 0
    for a, b in sorted(busy):
        if offset + size <= a:
            break
        offset = max(offset, b)
    return offset


def _lifetimes(row_steps: list[Step], pooled: int):
    """born (tensor -> producing row step), dies (tensor -> last consuming row step) and alias
    (output -> (input, lead) where a step may write its output over an input dying there)."""
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
    return born, dies, alias


def _place_tensors(born, dies, alias, tensors) -> dict[int, tuple[int, int, int, int]]:
    """tensor -> (start, end, born, dies), placed in order of birth (larger first on ties)."""
    placed: dict[int, tuple[int, int, int, int]] = {}
    for k in sorted(born, key=lambda k: (born[k], -row_bytes(tensors[k]))):
        size = _aligned(row_bytes(tensors[k]))
        life = (born[k], dies.get(k, born[k]))
        live = {j: v for j, v in placed.items() if v[2] <= life[1] and life[0] <= v[3]}
        offset = None
        if k in alias:
            x, lead = alias[k]
            start = placed[x][0] - lead
            others = [v for j, v in live.items() if j != x]
            if start >= 0 and all(start + size <= a or b <= start for a, b, _, _ in others):
                offset = start
        if offset is None:
            offset = _first_fit(size, ((v[0], v[1]) for v in live.values()))
        placed[k] = (offset, offset + size, *life)
    return placed


def _place_scratch(row_steps: list[Step], placed) -> int:
    """Set each row step's scratch_offset (first-fit among the tensors live at that step);
    return the end of the highest scratch block (0 without scratch)."""
    top = 0
    for i, s in enumerate(row_steps):
        if s.scratch_bytes <= 0:
            continue
        size = _aligned(s.scratch_bytes)
        busy = ((v[0], v[1]) for v in placed.values() if v[2] <= i <= v[3])
        s.scratch_offset = _first_fit(size, busy)
        top = max(top, s.scratch_offset + size)
    return top
