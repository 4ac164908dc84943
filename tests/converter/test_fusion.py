"""Fusion: which chains become one fused step, and the separable kernel's in-place lead."""

from __future__ import annotations

import dataclasses

from converter.fusion import (
    fuse_steps,
    separable_lead_bytes,
)


def test_separable_lead_bytes():
    # the model's second unit of a block: output t never reaches input row 2t + 1
    assert separable_lead_bytes(8, 8, True, 1, 1, 750) == 0
    # twice the channels at half the length: 8 bytes ahead (one input row)
    assert separable_lead_bytes(8, 16, True, 1, 1, 375) == 8
    # a unit that grows its tensor cannot be in place with a bounded lead
    assert separable_lead_bytes(1, 8, True, 1, 1, 1500) > 8000
    assert separable_lead_bytes(4, 4, False, 1, 0, 1) == 0


def test_fusion_needs_single_consumers_and_a_2_2_pool(shipped_plan):
    """Unfused steps come back when a tensor inside a chain has another consumer or the pool
    is not window 2 / stride 2; the fused plan otherwise."""
    graph, plan = shipped_plan
    unfused = [p for s in plan.steps for p in (s.parts or [s])]
    assert [s.kind for s in fuse_steps(unfused, graph.outputs)] == [s.kind for s in plan.steps]

    steps = [dataclasses.replace(s) for s in unfused]
    dw1 = steps[0]  # dssc1_main1 depthwise: let the head read its output too
    steps[-1] = dataclasses.replace(steps[-1], inputs=[*steps[-1].inputs, dw1.output])
    kinds = [s.kind for s in fuse_steps(steps, graph.outputs)]
    assert kinds[:4] == ["depthwise", "pointwise", "max_pool", "separable"]

    steps = [dataclasses.replace(s) for s in unfused]
    steps[2] = dataclasses.replace(steps[2], params={**steps[2].params, "window": 3})
    kinds = [s.kind for s in fuse_steps(steps, graph.outputs)]
    assert kinds[:3] == ["separable", "max_pool", "separable"]  # dw+pw fused, pool alone

    steps = [dataclasses.replace(s) for s in unfused]
    add = next(i for i, s in enumerate(steps) if s.kind == "add")
    short_pw = steps[add - 1]  # the shortcut's last pointwise feeds the ADD and the head
    steps[-1] = dataclasses.replace(steps[-1], inputs=[*steps[-1].inputs, short_pw.output])
    kinds = [s.kind for s in fuse_steps(steps, graph.outputs)]
    assert kinds[:4] == ["separable", "separable", "separable", "add"]


def test_two_unit_shortcut_streams_fuse_too(shipped_plan):
    """A shortcut stream as trained (two kernel-1 units of stride 2, the converter's
    --shortcut as-trained) is one shortcut_add step with both units; the shipped graph's
    composed stream (one unit of stride 4) one with `second` None."""
    graph, plan = shipped_plan
    unfused = [p for s in plan.steps for p in (s.parts or [s])]
    add = next(i for i, s in enumerate(unfused) if s.kind == "add")
    dw, pw = unfused[add - 2], unfused[add - 1]
    assert (dw.params["stride"], dw.params["len_out"]) == (4, 750)
    half = dw.params["len_in"] // 2
    c = pw.params["out_channels"]
    t1, t2, t3 = 10_000, 10_001, 10_002  # new tensor ids
    dw1 = dataclasses.replace(dw, output=t1, params={**dw.params, "stride": 2, "len_out": half})
    pw1 = dataclasses.replace(
        pw, inputs=[t1], output=t2, params={**pw.params, "len_in": half, "len_out": half}
    )
    dw2 = dataclasses.replace(dw, inputs=[t2], output=t3, params={
        **dw.params, "channels": c, "stride": 2, "len_in": half, "len_out": half // 2,
        "input_offset": -pw.params["output_offset"],
    })  # fmt: skip
    pw2 = dataclasses.replace(pw, inputs=[t3], params={**pw.params, "in_channels": c})
    steps = [*unfused[: add - 2], dw1, pw1, dw2, pw2, *unfused[add:]]
    fused = fuse_steps(steps, graph.outputs)
    assert [s.kind for s in fused] == [s.kind for s in plan.steps]
    two = fused[2]
    assert two.params["second"] is not None and two.params["len_first"] == half
    assert [p.kind for p in two.parts] == ["depthwise", "pointwise"] * 2 + ["add"]
    assert plan.steps[2].params["second"] is None
