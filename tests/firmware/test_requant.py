"""The requantisation helpers of the engine against TFLM's formulas: engine_requant.h (TFLM's
gemmlowp arithmetic, ported) and engine_requant_fast.h (the fused kernels' one-step form, equal
under its documented conditions). The static-inline helpers are reached through
firmware/test/kernels/requant_shim.c, compiled into the kernels' library."""

from __future__ import annotations

import numpy as np

from converter.tflm_params import multiply_by_quantized_multiplier as mbqm
from converter.tflm_params import rdbp, srdhm

from .kernel_lib import check_equal, i32, ptr
from .tflm_reference import (
    INT32_MAX,
    INT32_MIN,
    clamp,
    mbqm_lt1,
    rand_i32,
    rand_mult,
)


def call_helper(lib, name: str, *args: np.ndarray) -> np.ndarray:
    out = np.zeros(len(args[0]), dtype=np.int32)
    getattr(lib, name)(*map(ptr, args), ptr(out), len(out))
    return out


def test_sat_rounding_doubling_high_mul_edges(lib):
    cases = {
        (INT32_MIN, INT32_MIN): INT32_MAX,  # the one overflow: saturates
        (INT32_MAX, INT32_MAX): INT32_MAX - 1,
        (INT32_MIN, INT32_MAX): -INT32_MAX,
        (INT32_MAX, INT32_MIN): -INT32_MAX,
        (INT32_MIN, 1 << 30): -(1 << 30),
        (1 << 30, 1 << 30): 1 << 29,
        (1, 1 << 30): 1,  # +0.5 rounds up
        (-1, 1 << 30): 0,  # -0.5: (ab + nudge) / 2^31 truncates to 0
        (-3, 1 << 30): -1,  # -1.5 -> -1
        (3, 1 << 30): 2,  # +1.5 -> 2
        (0, INT32_MIN): 0,
        (-1, INT32_MIN): 1,
        (1, INT32_MIN): -1,
    }
    a, b = (i32([k[j] for k in cases]) for j in (0, 1))
    actual = call_helper(lib, "shim_srdhm", a, b)
    check_equal(actual, list(cases.values()), "srdhm hand-picked")
    check_equal(actual, [srdhm(*k) for k in cases], "srdhm hand-picked vs formula")


def test_rounding_divide_by_pot_edges(lib):
    cases = {
        (-5, 1): -3,  # mask 1, remainder 1, threshold 1: not above -> -5 >> 1 = -3
        (5, 1): 3,  # remainder 1 > threshold 0 -> 2 + 1
        (-4, 1): -2,
        (-1, 1): -1,
        (1, 1): 1,
        (-6, 2): -2,  # -1.5: remainder 2, threshold 2 -> -6 >> 2 = -2
        (-7, 2): -2,
        (6, 2): 2,
        (7, 0): 7,
        (INT32_MIN, 0): INT32_MIN,
        (INT32_MIN, 31): -1,
        (INT32_MAX, 31): 1,
        (-(1 << 30), 31): -1,
        (1 << 30, 31): 1,
        ((1 << 30) - 1, 31): 0,
        (-(1 << 30) + 1, 31): 0,
    }
    x, e = (i32([k[j] for k in cases]) for j in (0, 1))
    actual = call_helper(lib, "shim_rdbp", x, e)
    check_equal(actual, list(cases.values()), "rdbp hand-picked")
    check_equal(actual, [rdbp(*k) for k in cases], "rdbp hand-picked vs formula")


def test_requant_helpers_random(lib):
    rng = np.random.default_rng(1)
    n = 20000
    a, b = rand_i32(rng, n), rand_i32(rng, n)
    check_equal(
        call_helper(lib, "shim_srdhm", a, b),
        [srdhm(int(p), int(q)) for p, q in zip(a, b, strict=True)],
        "srdhm",
    )

    x = rand_i32(rng, n)
    e = i32(rng.integers(0, 32, n))
    ties = np.arange(n) % 4 == 0  # exact halves, both signs: (2m + 1) * 2^(e - 1)
    half = (2 * rng.integers(-1000, 1000, int(ties.sum())) + 1) * (
        1 << (np.maximum(e[ties], 1) - 1)
    )
    x[ties] = np.clip(half, INT32_MIN, INT32_MAX)
    check_equal(
        call_helper(lib, "shim_rdbp", x, e),
        [rdbp(int(p), int(q)) for p, q in zip(x, e, strict=True)],
        "rdbp",
    )

    m = i32([rand_mult(rng) if k % 5 else int(v) for k, v in enumerate(rand_i32(rng, n))])
    s = i32(rng.integers(-31, 32, n))
    check_equal(
        call_helper(lib, "shim_mbqm", x, m, s),
        [mbqm(int(p), int(q), int(r)) for p, q, r in zip(x, m, s, strict=True)],
        "multiply_by_quantized_multiplier",
    )
    s = i32(rng.integers(-31, 1, n))
    check_equal(
        call_helper(lib, "shim_mbqm_lt1", x, m, s),
        [mbqm_lt1(int(p), int(q), int(r)) for p, q, r in zip(x, m, s, strict=True)],
        "multiply_by_quantized_multiplier_smaller_than_one_exp",
    )


# --------------------------------------------------------------------------------------------
# Fast requantisation (engine_requant_fast.h) against TFLM's formulas


def test_rounding_divide_by_pot_fast_exhaustive_window(lib):
    """(x + 2^(e-1) - [x < 0]) >> e == RoundingDivideByPOT(x, e) for every x in [-2^17, 2^17]
    and every e in [1, 31] (numpy transcription of the TFLM formula)."""
    x = np.arange(-(1 << 17), (1 << 17) + 1, dtype=np.int64)
    for e in range(1, 32):
        mask = (1 << e) - 1
        want = (x >> e) + ((x & mask) > ((mask >> 1) + (x < 0))).astype(np.int64)
        got = call_helper(lib, "shim_rdbp_fast", i32(x), i32(np.full(len(x), e)))
        check_equal(got, want, f"rdbp_fast e={e}")


def test_rounding_divide_by_pot_fast_random_and_edges(lib):
    rng = np.random.default_rng(11)
    n = 200_000
    e = rng.integers(1, 32, n)
    x = rand_i32(rng, n).astype(np.int64)
    ties = np.arange(n) % 3 == 0  # exact halves and their neighbours
    x[ties] = (2 * rng.integers(-(1 << 12), 1 << 12, int(ties.sum())) + 1) * (
        1 << (e[ties] - 1)
    ) + rng.integers(-1, 2, int(ties.sum()))
    x = np.minimum(np.clip(x, INT32_MIN, INT32_MAX), INT32_MAX - (1 << (e - 1)))  # documented
    edges = [(INT32_MIN, 1), (INT32_MIN, 31), (INT32_MAX - 1, 1), (INT32_MAX - (1 << 30), 31)]
    x = np.concatenate([x, [v for v, _ in edges]])
    e = np.concatenate([e, [k for _, k in edges]])
    got = call_helper(lib, "shim_rdbp_fast", i32(x), i32(e))
    check_equal(got, [rdbp(int(a), int(b)) for a, b in zip(x, e, strict=True)], "rdbp_fast")


def rand_fast_case(rng: np.random.Generator, n: int):
    """acc, multiplier, shift, offset within engine_requant_fast's documented conditions."""
    acc = rng.integers(-(1 << 29), (1 << 29) + 1, n)
    small = rng.random(n) < 0.4
    acc[small] = rng.integers(-5000, 5000, int(small.sum()))
    pick = rng.random(n) < 0.05
    acc[pick] = rng.choice([-(1 << 29), (1 << 29), -1, 0, 1], int(pick.sum()))
    mult = np.array([rand_mult(rng) for _ in range(n)])
    shift = -rng.integers(1, 22, n)
    off = rng.integers(-128, 128, n)
    pick = rng.random(n) < 0.1
    off[pick] = rng.choice([-128, 127], int(pick.sum()))
    return i32(acc), i32(mult), i32(shift), i32(off)


def test_requant_fast_equals_tflm(lib):
    rng = np.random.default_rng(12)
    acc, mult, shift, off = rand_fast_case(rng, 60_000)
    got = call_helper(lib, "shim_rq_fast", acc, mult, shift, off)
    want = [
        mbqm(int(a), int(m), int(s)) + int(o)
        for a, m, s, o in zip(acc, mult, shift, off, strict=True)
    ]
    check_equal(got, want, "engine_requant_fast")
    # ties of the first rounding (acc * m = (2k + 1) * 2^30) and of the second
    acc = i32([(2 * k + 1) for k in range(-300, 300)])
    mult = i32(np.full(len(acc), 1 << 30))
    for s in (-1, -2, -5, -21):
        shift = i32(np.full(len(acc), s))
        off = i32(np.zeros(len(acc)))
        want = [mbqm(int(a), 1 << 30, s) for a in acc]
        check_equal(call_helper(lib, "shim_rq_fast", acc, mult, shift, off), want, f"ties {s}")


def test_requant_fast_lt1_equals_tflm(lib):
    rng = np.random.default_rng(13)
    n = 60_000
    va = rng.integers(-256, 257, n)
    x = i32(va * (1 << 20))  # the ADD's (input + offset) << 20
    mult = i32([rand_mult(rng) for _ in range(n)])
    shift = i32(-rng.integers(0, 22, n))
    got = call_helper(lib, "shim_rq_fast_lt1", x, mult, shift)
    want = [mbqm_lt1(int(a), int(m), int(s)) for a, m, s in zip(x, mult, shift, strict=True)]
    check_equal(got, want, "engine_requant_fast_lt1")


def test_pooled_outputs_need_one_requantisation(lib):
    """max(requant(a), requant(b)) == requant(max(a, b)) with the activation clamp, because
    TFLM's multipliers are >= 0 and every step is non-decreasing in the accumulator: checked for
    the fast form (as the fused kernels use it) and for TFLM's own formula."""
    rng = np.random.default_rng(14)
    n = 40_000
    a, mult, shift, off = rand_fast_case(rng, n)
    b = i32(np.clip(a.astype(np.int64) + rng.integers(-3000, 3000, n), -(1 << 29), 1 << 29))
    ra = call_helper(lib, "shim_rq_fast", a, mult, shift, off)
    rb = call_helper(lib, "shim_rq_fast", b, mult, shift, off)
    rmax = call_helper(lib, "shim_rq_fast", np.maximum(a, b), mult, shift, off)
    sat = lambda v: np.clip(v, -128, 127)  # noqa: E731
    check_equal(np.maximum(sat(ra), sat(rb)), sat(rmax), "fast: max then requantise")
    lo, hi = rng.integers(-128, 0, n), rng.integers(0, 128, n)
    exact = lambda v: np.array(  # noqa: E731
        [clamp(mbqm(int(x), int(m), int(s)) + int(o), int(lo_), int(hi_))
         for x, m, s, o, lo_, hi_ in zip(v, mult, shift, off, lo, hi, strict=True)]
    )  # fmt: skip
    check_equal(np.maximum(exact(a), exact(b)), exact(np.maximum(a, b)), "TFLM formula")
