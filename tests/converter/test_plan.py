"""The engine's plan of the shipped model: fused steps, and the arena's in-place and scratch
rules (no conversion needed)."""

from __future__ import annotations

import pytest

from converter.fusion import SHORTCUT_SCRATCH_BYTES, separable_lead_bytes
from converter.graph import UnsupportedModelError
from converter.plan import input_rows, plan_arena, row_bytes


def test_plan_fuses_every_unit_and_shortcut(shipped_plan):
    _graph, plan = shipped_plan
    kinds = [s.kind for s in plan.steps]
    assert kinds == ["separable", "separable", "shortcut_add"] * 3 + [
        "avg_pool",
        "fully_connected",
        "fully_connected",
    ]
    names = [s.name for s in plan.steps]
    assert names[:3] == ["dw+pw+pool:dssc1_main1", "dw+pw+pool:dssc1_main2", "shortcut+add:dssc1"]
    # a fused step counts all its parts; the composed shortcut streams compute fewer MACs than
    # the trained network's 3,498,352 (converter.keras_mirror)
    assert sum(s.macs for s in plan.steps) == 2_651_288
    for s in plan.steps[:9]:
        assert s.macs == sum(p.macs for p in s.parts)
        # a separable unit: dw, pw, pool; a composed shortcut: dw (stride 4), pw, ADD
        assert len(s.parts) == 3
        if s.kind == "shortcut_add":
            assert s.params["second"] is None and s.params["first"]["dw"]["stride"] == 4
    assert plan.arena_bytes <= 12_000


def test_plan_buffers_of_the_shipped_model(shipped_plan):
    """Rows of 3000 samples; the head reads the pooled features (the RESHAPE has no step)."""
    _graph, plan = shipped_plan
    assert (plan.rows, plan.row_len) == (4, 3000)
    assert plan.feature_bytes == 128 and plan.tensors[plan.feature_tensor].shape[1] == 4
    dense1 = plan.steps[-2]
    assert dense1.inputs == [plan.feature_tensor]
    assert plan.steps[-1].output == plan.output_tensor
    assert list(plan.head_buffers.values()) == [64]  # dense1's output; the logits are the caller's
    assert plan.activation_bytes == plan.arena_bytes + 128 + 64


def test_input_must_be_one_batch_of_rows_with_one_feature():
    class T:
        shape = (1, 4, 3000, 2)

    with pytest.raises(UnsupportedModelError, match=r"expected \(1, rows, time, 1\)"):
        input_rows(T())


def test_arena_plan_respects_the_in_place_rules(shipped_plan):
    """Fused steps write over inputs only as the kernels allow; no other live tensors overlap."""
    _graph, plan = shipped_plan
    row = [s for s in plan.steps if s.phase == "row"]
    size = {t: row_bytes(plan.tensors[t]) for t in plan.offsets}
    born = {s.output: i for i, s in enumerate(row) if s.output in plan.offsets}
    dies = {}
    for i, s in enumerate(row):
        for x in s.inputs:
            dies[x] = i
    aliased = 0
    for i, s in enumerate(row):
        if s.output not in plan.offsets:
            continue
        out0, out1 = plan.offsets[s.output], plan.offsets[s.output] + size[s.output]
        for t, t0 in plan.offsets.items():
            live = born[t] <= i <= dies.get(t, born[t])
            if t == s.output or not live or not (t0 < out1 and out0 < t0 + size[t]):
                continue
            assert t in s.inputs and dies[t] == i, (s.layer, t)  # only a dying input
            aliased += 1
            if s.kind == "shortcut_add":
                assert t == s.inputs[1] and out0 == t0  # exactly over the main stream
            else:
                p = s.params
                lead = separable_lead_bytes(
                    p["dw"]["channels"], p["pw"]["out_channels"], p["pool"] is not None,
                    p["dw"]["stride"], p["dw"]["pad_left"], p["len_out"],
                )  # fmt: skip
                assert 0 <= t0 - out0 and t0 - out0 >= lead, (s.layer, t0 - out0, lead)
    assert aliased >= 6  # main2 units and shortcuts of every block, and dssc2/3 main1


def test_shortcut_scratch_is_free_arena(shipped_plan):
    """Each shortcut+ADD step's scratch (its ADD tables) lies in the arena, 4-byte aligned,
    clear of every tensor live during that step; no other step gets scratch."""
    _graph, plan = shipped_plan
    row = [s for s in plan.steps if s.phase == "row"]
    life = {}
    for i, s in enumerate(row):
        if s.output in plan.offsets:
            life.setdefault(s.output, [i, i])
        for x in s.inputs:
            if x in life:
                life[x][1] = i
    shortcuts = 0
    for i, s in enumerate(row):
        if s.kind != "shortcut_add":
            assert s.scratch_bytes == 0 and s.scratch_offset is None
            continue
        shortcuts += 1
        lo, hi = s.scratch_offset, s.scratch_offset + s.scratch_bytes
        assert s.scratch_bytes == SHORTCUT_SCRATCH_BYTES and lo % 4 == 0
        assert 0 <= lo and hi <= plan.arena_bytes
        for t, (b, d) in life.items():
            if b <= i <= d:
                start = plan.offsets[t]
                assert hi <= start or start + row_bytes(plan.tensors[t]) <= lo, (s.layer, t)
    assert shortcuts == 3


def test_plan_without_fusion_matches_the_old_arena(shipped_plan):
    graph, plan = shipped_plan
    unfused = [p for s in plan.steps for p in (s.parts or [s])]
    pooled = next(s.output for s in unfused if s.kind == "avg_pool")
    _offsets, arena = plan_arena(unfused, graph.tensors, plan.input_tensor, pooled)
    assert arena == 39_000  # the unfused engine's arena, for comparison in the docs
