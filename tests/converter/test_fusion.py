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
    assert kinds[:5] == ["separable", "separable", "separable", "separable", "add"]
