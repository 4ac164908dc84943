"""Fusion: chains of unfused steps that one fused engine kernel computes, and those kernels'
rules (channel limit, in-place lead, scratch, lookup table).

A depthwise -> pointwise (-> max pool 2/2) chain becomes one engine_separable_s8 step, and a
position-wise shortcut stream (one or two kernel-1 separable units) with the ADD that consumes
it becomes one engine_shortcut_add_s8 step, whenever every tensor inside the chain has a single
consumer; anything else keeps its unfused kernel. Fused steps may write over their input (see
``converter.plan.plan_arena``), which is what keeps the arena small. A shortcut+ADD step also
gets scratch memory (its ADD's rescale tables) in a part of the arena that is free during the
step, so that the tables take neither stack nor extra static RAM.
"""

from __future__ import annotations

from .lowering import Step
from .tflm_params import multiply_by_quantized_multiplier

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

    # 1. Shortcut stream + ADD: dw(k1) -> pw (-> dw(k1) -> pw) -> ADD, from the ADD backwards.
    for i, add in enumerate(steps):
        if add.kind != "add" or add.phase != "row" or add.inputs[0] == add.inputs[1]:
            continue
        for side in (1, 0):
            chain = _shortcut_chain(steps, producer, add.inputs[side], feeds, i)
            if chain is None:
                continue
            main = add.inputs[1 - side]
            fused[i] = _fused_shortcut([steps[k] for k in chain], add, main, side)
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
    whose inner tensors each feed only the next step (and pw2 feeds only the ADD), or [dw, pw]
    for a one-unit stream (the form converter.keras_mirror gives a composed shortcut)."""
    idx = []
    t = tensor
    for kind in ("pointwise", "depthwise", "pointwise", "depthwise"):
        k = producer.get(t)
        if k is None or steps[k].kind != kind or steps[k].phase != "row":
            break
        idx.append(k)
        t = steps[k].inputs[0]
    if len(idx) == 4 and _position_wise(steps, feeds, add_index, idx[3], idx[2], idx[1], idx[0]):
        return idx[::-1]
    if len(idx) >= 2 and _position_wise(steps, feeds, add_index, idx[1], idx[0]):
        return idx[1::-1]
    return None


def _position_wise(steps, feeds, add_index, d1, p1, d2=None, p2=None) -> bool:
    """Whether dw1 -> pw1 (-> dw2 -> pw2) -> ADD is a chain engine_shortcut_add_s8 computes:
    kernel-1 depthwise layers without padding, each tensor feeding only the next step, and
    every output position reading inside its input."""
    last = p1 if p2 is None else p2
    if feeds(d1, "pointwise") != p1 or feeds(last, "add") != add_index:
        return False
    dw1, pw1 = steps[d1], steps[p1]
    a = dw1.params
    if not _unit_ok(dw1, pw1) or (a["kernel"], a["pad_left"]) != (1, 0):
        return False
    if p2 is None:
        return True
    if feeds(p1, "depthwise") != d2 or feeds(d2, "pointwise") != p2:
        return False
    dw2, pw2 = steps[d2], steps[p2]
    b = dw2.params
    if not _unit_ok(dw2, pw2) or (b["kernel"], b["pad_left"]) != (1, 0):
        return False
    if pw1.params["out_channels"] != b["channels"] or b["len_in"] != a["len_out"]:
        return False
    last_first = (b["len_out"] - 1) * b["stride"]
    return last_first < a["len_out"] and last_first * a["stride"] < a["len_in"]


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


def _fused_shortcut(units: list[Step], add: Step, main: int, side: int) -> Step:
    """units: [dw1, pw1] or [dw1, pw1, dw2, pw2]; side: which ADD input (0 or 1) the shortcut
    is; the kernel's `a` is the main stream."""
    parts = [*units, add]
    a = add.params
    if side == 0:  # the ADD is symmetric in its inputs: swap a and b's parameters
        a = {**a}
        for name in ("offset", "mult", "shift"):
            a[f"a_{name}"], a[f"b_{name}"] = add.params[f"b_{name}"], add.params[f"a_{name}"]
    d1, p1 = units[0], units[1]
    second = None if len(units) == 2 else {"dw": units[2].params, "pw": units[3].params}
    return Step(
        "shortcut_add",
        _layer_prefix(parts),
        d1.op_index,
        [d1.inputs[0], main],
        add.output,
        {
            "first": {"dw": d1.params, "pw": p1.params},
            "second": second,
            "add": a,
            "len_in": d1.params["len_in"],
            "len_first": d1.params["len_out"],
            "len_out": units[-2].params["len_out"],
        },
        "row",
        macs=sum(s.macs for s in parts),
        inplace={main: 0},
        parts=parts,
        scratch_bytes=SHORTCUT_SCRATCH_BYTES,
    )


def pointwise_lut(pw: dict) -> list[int]:
    """A one-input-channel pointwise layer's output for every input value v in [-128, 127], as
    TFLM's CONV_2D computes it: lut[(v + 128) * out_channels + oc] (engine_separable_s8_t's
    pw_lut)."""
    if pw["in_channels"] != 1:
        raise ValueError(
            f"pointwise_lut: the layer has {pw['in_channels']} input channels; a table of "
            "outputs per input value needs exactly one"
        )
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


def shortcut_uses_lut(dw: dict, pw: dict) -> bool:
    """Whether engine_shortcut_add_s8 may take its one-unit lookup-table path
    (engine_shortcut1_lut_ok, given pw_lut): then the generated unit brings pw_lut."""
    return dw["channels"] == 1 and pw["out_channels"] in (4, 8)
