"""The firmware int8 kernels (firmware/engine/kernels) against TFLM's reference formulas.

Every kernel is compiled with gcc into a shared library, called through ctypes on random and
extreme inputs, and compared value for value with a plain-Python transcription of TensorFlow
Lite Micro's reference int8 arithmetic (integer_ops/*, no TFLITE_SINGLE_ROUNDING). The
static-inline requantisation helpers of engine_requant.h are reached through a small shim
compiled alongside. A second test builds every kernel for Cortex-M4 with arm-none-eabi-gcc.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converter.graph import SHORTCUT_SCRATCH_BYTES, pointwise_lut
from converter.native import ARM_M4_CFLAGS

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "firmware" / "engine"
INCLUDE = ENGINE / "include"
KERNELS = ENGINE / "kernels"
SOURCES = sorted(KERNELS.glob("*.c"))
KERNEL_FILES = [
    "add_s8.c",
    "avg_pool_s8.c",
    "conv_1x1_s8.c",
    "depthwise_conv_s8.c",
    "fully_connected_s8.c",
    "max_pool_s8.c",
    "separable_s8.c",
    "shortcut_add_s8.c",
]

HOST_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
ARM_FLAGS = ARM_M4_CFLAGS

ENGINE_OK, ENGINE_ERR_ARG = 0, 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
GUARD = 16  # bytes after every output buffer that a kernel must not touch
FILL = 0x5A  # their (and untouched outputs') value

# Array wrappers around the static-inline helpers, so ctypes can reach them.
SHIM = r"""
#include <stdint.h>
#include "engine_requant.h"

void shim_srdhm(const int32_t *a, const int32_t *b, int32_t *out, int n);
void shim_rdbp(const int32_t *x, const int32_t *e, int32_t *out, int n);
void shim_mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n);
void shim_mbqm_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n);
void shim_rdbp_fast(const int32_t *x, const int32_t *e, int32_t *out, int n);
void shim_rq_fast(const int32_t *x, const int32_t *m, const int32_t *s, const int32_t *off,
                  int32_t *out, int n);
void shim_rq_fast_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n);

void shim_srdhm(const int32_t *a, const int32_t *b, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) out[i] = engine_sat_rounding_doubling_high_mul(a[i], b[i]);
}
void shim_rdbp(const int32_t *x, const int32_t *e, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) out[i] = engine_rounding_divide_by_pot(x[i], (int)e[i]);
}
void shim_mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i)
        out[i] = engine_multiply_by_quantized_multiplier(x[i], m[i], (int)s[i]);
}
void shim_mbqm_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i)
        out[i] = engine_multiply_by_quantized_multiplier_smaller_than_one_exp(x[i], m[i],
                                                                              (int)s[i]);
}
void shim_rdbp_fast(const int32_t *x, const int32_t *e, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) out[i] = engine_rounding_divide_by_pot_fast(x[i], (int)e[i]);
}
/* shift s = -e, e in [1, 21] */
void shim_rq_fast(const int32_t *x, const int32_t *m, const int32_t *s, const int32_t *off,
                  int32_t *out, int n)
{
    for (int i = 0; i < n; ++i)
        out[i] = engine_requant_fast(x[i], m[i], engine_requant_fast_round(-(int)s[i], off[i]),
                                     -(int)s[i]);
}
/* shift s = -e, e in [0, 21] */
void shim_rq_fast_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        const int e = -(int)s[i];
        out[i] = engine_requant_fast_lt1(x[i], m[i], e > 0 ? (INT32_C(1) << (e - 1)) : 0,
                                         e > 0 ? -1 : 0, e);
    }
}
"""

# Argument types, one letter each: p pointer, i int, w int32_t.
CTYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int, "w": ctypes.c_int32}
SIGNATURES = {
    "engine_depthwise_conv_s8": "piippiiiwwppwwpi",
    "engine_conv_1x1_s8": "piippiwwppwwp",
    "engine_max_pool_s8": "piiiiiwwpi",
    "engine_avg_pool_s8": "piiiiiwwpi",
    "engine_add_s8": "ppiwwiwwiiwwiwwp",
    "engine_fully_connected_s8": "pippiwwwppwwp",
    "shim_srdhm": "pppi",
    "shim_rdbp": "pppi",
    "shim_mbqm": "ppppi",
    "shim_mbqm_lt1": "ppppi",
    "shim_rdbp_fast": "pppi",
    "shim_rq_fast": "pppppi",
    "shim_rq_fast_lt1": "ppppi",
}


# --------------------------------------------------------------------------------------------
# Build and call


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> ctypes.CDLL:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    out = tmp_path_factory.mktemp("kernels")
    shim = out / "shim.c"
    shim.write_text(SHIM)
    so = out / "libengine_kernels.so"
    cmd = ["gcc", *HOST_FLAGS, "-shared", "-fPIC", f"-I{INCLUDE}", *map(str, SOURCES)]
    cmd += [str(shim), "-o", str(so)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"{' '.join(cmd)}\n{run.stdout}{run.stderr}"
    assert run.stderr == "", run.stderr
    library = ctypes.CDLL(str(so))
    for name, argtypes in SIGNATURES.items():
        fn = getattr(library, name)
        fn.argtypes = [CTYPES[c] for c in argtypes]
        fn.restype = None if name.startswith("shim_") else ctypes.c_int
    declare_fused(library)
    return library


def ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def out_buffer(n: int) -> np.ndarray:
    return np.full(n + GUARD, FILL, dtype=np.int8)


def check_equal(actual, expected, what: str) -> None:
    """Exact equality; lists the first mismatches (index, actual, expected)."""
    actual = [int(v) for v in actual]
    expected = [int(v) for v in expected]
    assert len(actual) == len(expected), f"{what}: {len(actual)} values, {len(expected)} expected"
    bad = [i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if a != e]
    if bad:
        lines = [f"{what}: {len(bad)} of {len(expected)} values differ"]
        lines += [f"  index {i}: actual {actual[i]}, expected {expected[i]}" for i in bad[:10]]
        print("\n".join(lines))
        pytest.fail("\n".join(lines))


def check_output(buf: np.ndarray, expected: list[int], what: str) -> None:
    n = len(expected)
    check_equal(buf[:n], expected, what)
    assert (buf[n:] == FILL).all(), f"{what}: wrote past the end of the output"


def i32(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int32)


# --------------------------------------------------------------------------------------------
# Reference: TFLM's formulas, transcribed


def wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def rdbp(x: int, exponent: int) -> int:
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    left_shift = shift if shift > 0 else 0
    right_shift = 0 if shift > 0 else -shift
    return rdbp(srdhm(wrap32(x * (1 << left_shift)), multiplier), right_shift)


def mbqm_lt1(x: int, multiplier: int, shift: int) -> int:
    assert shift <= 0
    return rdbp(srdhm(x, multiplier), -shift)


def clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def fits32(v: int) -> int:
    assert INT32_MIN <= v <= INT32_MAX, "test case overflows int32 (UB in TFLM too)"
    return v


def ref_depthwise(x, len_in, ch, w, bias, kernel, stride, pad, in_off, out_off, mult, shift, lo,
                  hi, len_out):  # fmt: skip
    out = []
    for t in range(len_out):
        for c in range(ch):
            acc = 0
            for k in range(kernel):
                t_in = t * stride - pad + k
                if 0 <= t_in < len_in:
                    acc += w[k * ch + c] * (x[t_in * ch + c] + in_off)
            if bias is not None:
                acc += bias[c]
            acc = mbqm(fits32(acc), mult[c], shift[c]) + out_off
            out.append(clamp(acc, lo, hi))
    return out


def ref_conv_1x1(x, length, ic_n, w, bias, oc_n, in_off, out_off, mult, shift, lo, hi):
    out = []
    for t in range(length):
        for oc in range(oc_n):
            acc = sum(w[oc * ic_n + ic] * (x[t * ic_n + ic] + in_off) for ic in range(ic_n))
            if bias is not None:
                acc += bias[oc]
            out.append(clamp(mbqm(fits32(acc), mult[oc], shift[oc]) + out_off, lo, hi))
    return out


def taps(x, len_in, ch, window, stride, pad, t, c):
    return [
        x[(t * stride - pad + k) * ch + c]
        for k in range(window)
        if 0 <= t * stride - pad + k < len_in
    ]


def ref_max_pool(x, len_in, ch, window, stride, pad, lo, hi, len_out):
    return [
        clamp(max([-128, *taps(x, len_in, ch, window, stride, pad, t, c)]), lo, hi)
        for t in range(len_out)
        for c in range(ch)
    ]


def ref_avg_pool(x, len_in, ch, window, stride, pad, lo, hi, len_out):
    """The expected output, or None where TFLM fails (a window without in-bound taps)."""
    out = []
    for t in range(len_out):
        for c in range(ch):
            values = taps(x, len_in, ch, window, stride, pad, t, c)
            count = len(values)
            if count == 0:
                return None
            acc = sum(values)
            acc = c_div(acc + count // 2, count) if acc > 0 else c_div(acc - count // 2, count)
            out.append(clamp(acc, lo, hi))
    return out


def ref_add(a, b, a_off, a_mult, a_shift, b_off, b_mult, b_shift, left_shift, out_off, out_mult,
            out_shift, lo, hi):  # fmt: skip
    out = []
    for va, vb in zip(a, b, strict=True):
        ra = mbqm_lt1(fits32((a_off + va) * (1 << left_shift)), a_mult, a_shift)
        rb = mbqm_lt1(fits32((b_off + vb) * (1 << left_shift)), b_mult, b_shift)
        raw = mbqm_lt1(fits32(ra + rb), out_mult, out_shift) + out_off
        out.append(clamp(raw, lo, hi))
    return out


def ref_fully_connected(x, w, bias, n_out, in_off, w_off, out_off, mult, shift, lo, hi):
    n_in = len(x)
    out = []
    for o in range(n_out):
        acc = sum((w[o * n_in + i] + w_off) * (x[i] + in_off) for i in range(n_in))
        if bias is not None:
            acc += bias[o]
        out.append(clamp(mbqm(fits32(acc), mult[o], shift[o]) + out_off, lo, hi))
    return out


# --------------------------------------------------------------------------------------------
# Random parameters (with extremes)


def rand_s8(rng: np.random.Generator, n: int) -> np.ndarray:
    """int8 values, about a third of them -128 or 127."""
    x = rng.integers(-128, 128, n)
    extreme = rng.random(n) < 0.35
    x[extreme] = rng.choice([-128, 127], int(extreme.sum()))
    return np.ascontiguousarray(x, dtype=np.int8)


def rand_mult(rng: np.random.Generator) -> int:
    kind = rng.integers(0, 6)
    if kind == 0:
        return int(rng.choice([1 << 30, INT32_MAX, (1 << 30) + 1, INT32_MAX - 1]))
    if kind == 1:
        return int(rng.integers(0, 1 << 12))  # small / zero
    return int(rng.integers(1 << 30, 1 << 31))  # what TFLM's QuantizeMultiplier produces


def rand_shift(rng: np.random.Generator, lo: int = -31, hi: int = 8) -> int:
    if rng.random() < 0.5:
        return int(rng.integers(max(lo, -12), min(hi, -3) + 1))  # outputs mostly in range
    return int(rng.integers(lo, hi + 1))


def rand_act(rng: np.random.Generator) -> tuple[int, int]:
    if rng.random() < 0.4:
        return -128, 127
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
    return lo, hi


def rand_offset(rng: np.random.Generator) -> int:
    """-zero point or +zero point: [-128, 128], extremes often."""
    if rng.random() < 0.3:
        return int(rng.choice([-128, 127, 128, 0]))
    return int(rng.integers(-128, 129))


def rand_bias(rng: np.random.Generator, n: int) -> np.ndarray | None:
    if rng.random() < 0.2:
        return None
    return i32(rng.integers(-(1 << 20), 1 << 20, n))


# --------------------------------------------------------------------------------------------
# Requantisation helpers


INTERESTING = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, INT32_MAX]


def rand_i32(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    small = rng.random(n) < 0.3
    x[small] = rng.integers(-100000, 100000, int(small.sum()))
    pick = rng.random(n) < 0.15
    x[pick] = rng.choice(INTERESTING, int(pick.sum()))
    return i32(x)


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
# Fast requantisation (engine_requant.h) against TFLM's formulas


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


# --------------------------------------------------------------------------------------------
# Kernels against the reference


def test_depthwise_conv(lib):
    rng = np.random.default_rng(2)
    total = 0
    while total < 6000:
        len_in, ch = int(rng.integers(1, 41)), int(rng.integers(1, 9))
        kernel, stride = int(rng.integers(1, 10)), int(rng.integers(1, 4))
        pad = int(rng.integers(0, kernel + 1))
        len_out = int(rng.integers(1, -(-len_in // stride) + 3))
        x, w = rand_s8(rng, len_in * ch), rand_s8(rng, kernel * ch)
        bias = rand_bias(rng, ch)
        mult = i32([rand_mult(rng) for _ in range(ch)])
        shift = i32([rand_shift(rng) for _ in range(ch)])
        in_off, out_off = rand_offset(rng), int(rng.integers(-128, 128))
        lo, hi = rand_act(rng)
        out = out_buffer(len_out * ch)
        status = lib.engine_depthwise_conv_s8(
            ptr(x), len_in, ch, ptr(w), ptr(bias), kernel, stride, pad, in_off, out_off,
            ptr(mult), ptr(shift), lo, hi, ptr(out), len_out,
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_depthwise(
            x.tolist(), len_in, ch, w.tolist(), None if bias is None else bias.tolist(), kernel,
            stride, pad, in_off, out_off, mult.tolist(), shift.tolist(), lo, hi, len_out,
        )  # fmt: skip
        check_output(out, expected, f"depthwise len_in={len_in} C={ch} K={kernel} s={stride}")
        total += len(expected)


def test_conv_1x1(lib):
    rng = np.random.default_rng(3)
    total = 0
    while total < 6000:
        length, ic_n, oc_n = (int(v) for v in rng.integers(1, [30, 17, 17]))
        x, w = rand_s8(rng, length * ic_n), rand_s8(rng, oc_n * ic_n)
        bias = rand_bias(rng, oc_n)
        mult = i32([rand_mult(rng) for _ in range(oc_n)])
        shift = i32([rand_shift(rng) for _ in range(oc_n)])
        in_off, out_off = rand_offset(rng), int(rng.integers(-128, 128))
        lo, hi = rand_act(rng)
        out = out_buffer(length * oc_n)
        status = lib.engine_conv_1x1_s8(
            ptr(x), length, ic_n, ptr(w), ptr(bias), oc_n, in_off, out_off, ptr(mult),
            ptr(shift), lo, hi, ptr(out),
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_conv_1x1(
            x.tolist(), length, ic_n, w.tolist(), None if bias is None else bias.tolist(), oc_n,
            in_off, out_off, mult.tolist(), shift.tolist(), lo, hi,
        )  # fmt: skip
        check_output(out, expected, f"conv_1x1 len={length} IC={ic_n} OC={oc_n}")
        total += len(expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool(lib, kind):
    rng = np.random.default_rng(4 if kind == "max" else 5)
    kernel_fn = lib.engine_max_pool_s8 if kind == "max" else lib.engine_avg_pool_s8
    reference = ref_max_pool if kind == "max" else ref_avg_pool
    total = rejected = 0
    while total < 6000:
        len_in, ch = int(rng.integers(1, 41)), int(rng.integers(1, 9))
        window, stride = int(rng.integers(1, 9)), int(rng.integers(1, 5))
        pad = int(rng.integers(0, window + 2))  # sometimes whole windows out of bounds
        len_out = int(rng.integers(1, -(-len_in // stride) + 3))
        x = rand_s8(rng, len_in * ch)
        lo, hi = rand_act(rng)
        out = out_buffer(len_out * ch)
        status = kernel_fn(ptr(x), len_in, ch, window, stride, pad, lo, hi, ptr(out), len_out)
        expected = reference(x.tolist(), len_in, ch, window, stride, pad, lo, hi, len_out)
        if expected is None:  # avg pool over a window with no in-bound tap: TFLM fails
            assert status == ENGINE_ERR_ARG
            assert (out == FILL).all(), "output written although the call failed"
            rejected += 1
            continue
        assert status == ENGINE_OK
        check_output(out, expected, f"{kind}_pool len_in={len_in} C={ch} W={window} s={stride}")
        total += len(expected)
    assert kind == "max" or rejected > 0


def test_add(lib):
    rng = np.random.default_rng(6)
    total = 0
    while total < 8000:
        n = int(rng.integers(1, 300))
        a, b = rand_s8(rng, n), rand_s8(rng, n)
        left_shift = int(rng.choice([20, 20, 0, 1, 8, 22]))
        a_mult, b_mult, out_mult = (rand_mult(rng) for _ in range(3))
        a_shift, b_shift, out_shift = (rand_shift(rng, -31, 0) for _ in range(3))
        a_off, b_off, out_off = rand_offset(rng), rand_offset(rng), int(rng.integers(-128, 128))
        lo, hi = rand_act(rng)
        out = out_buffer(n)
        status = lib.engine_add_s8(
            ptr(a), ptr(b), n, a_off, a_mult, a_shift, b_off, b_mult, b_shift, left_shift,
            out_off, out_mult, out_shift, lo, hi, ptr(out),
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_add(
            a.tolist(), b.tolist(), a_off, a_mult, a_shift, b_off, b_mult, b_shift, left_shift,
            out_off, out_mult, out_shift, lo, hi,
        )  # fmt: skip
        check_output(out, expected, f"add n={n} left_shift={left_shift}")
        total += n


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    frac, shift = math.frexp(real)
    multiplier = round(frac * 2**31)
    if multiplier == 2**31:
        multiplier, shift = multiplier // 2, shift + 1
    return multiplier, shift


def test_add_realistic_scales(lib):
    """Parameters as TFLM's ADD prepares them (left_shift 20): outputs mostly in range."""
    rng = np.random.default_rng(7)
    n = 4000
    a, b = rand_s8(rng, n), rand_s8(rng, n)
    a_scale, b_scale, out_scale = 0.05, 0.03, 0.06
    twice_max = 2 * max(a_scale, b_scale)
    a_mult, a_shift = quantize_multiplier(a_scale / twice_max)
    b_mult, b_shift = quantize_multiplier(b_scale / twice_max)
    out_mult, out_shift = quantize_multiplier(twice_max / ((1 << 20) * out_scale))
    assert max(a_shift, b_shift, out_shift) <= 0
    out = out_buffer(n)
    args = (3, a_mult, a_shift, -7, b_mult, b_shift, 20, 5, out_mult, out_shift, -128, 127)
    assert lib.engine_add_s8(ptr(a), ptr(b), n, *args, ptr(out)) == ENGINE_OK
    expected = ref_add(a.tolist(), b.tolist(), *args)
    check_output(out, expected, "add realistic")
    assert len(set(expected)) > 100  # a real spread of values, not only saturation


def test_fully_connected(lib):
    rng = np.random.default_rng(8)
    total = 0
    while total < 4000:
        n_in, n_out = int(rng.integers(1, 65)), int(rng.integers(1, 33))
        x, w = rand_s8(rng, n_in), rand_s8(rng, n_out * n_in)
        bias = rand_bias(rng, n_out)
        in_off, w_off, out_off = rand_offset(rng), rand_offset(rng), int(rng.integers(-128, 128))
        mult = np.array([rand_mult(rng) for _ in range(n_out)], dtype=np.int32)
        shift = np.array([rand_shift(rng) for _ in range(n_out)], dtype=np.int32)
        lo, hi = rand_act(rng)
        out = out_buffer(n_out)
        status = lib.engine_fully_connected_s8(
            ptr(x), n_in, ptr(w), ptr(bias), n_out, in_off, w_off, out_off, ptr(mult),
            ptr(shift), lo, hi, ptr(out),
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_fully_connected(
            x.tolist(), w.tolist(), None if bias is None else bias.tolist(), n_out, in_off,
            w_off, out_off, mult.tolist(), shift.tolist(), lo, hi,
        )  # fmt: skip
        check_output(out, expected, f"fully_connected in={n_in} out={n_out}")
        total += n_out


# --------------------------------------------------------------------------------------------
# Fused kernels against the composition of the kernels they replace


class SeparableUnitC(ctypes.Structure):
    """engine_separable_s8_t."""

    _fields_ = [
        *[(n, ctypes.c_int) for n in ("in_channels", "out_channels", "kernel", "stride", "pad")],
        *[(n, ctypes.c_void_p) for n in ("dw_filter", "dw_bias", "dw_mult", "dw_shift")],
        *[(n, ctypes.c_int32) for n in ("dw_in_off", "dw_out_off", "dw_lo", "dw_hi")],
        *[(n, ctypes.c_void_p) for n in ("pw_filter", "pw_bias", "pw_mult", "pw_shift")],
        *[(n, ctypes.c_int32) for n in ("pw_out_off", "pw_lo", "pw_hi")],
        ("pw_lut", ctypes.c_void_p),
    ]


class MaxPool2C(ctypes.Structure):
    """engine_max_pool2_s8_t."""

    _fields_ = [("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32)]


ADD_FIELDS = ("a_off", "a_mult", "a_shift", "b_off", "b_mult", "b_shift", "left_shift",
              "out_off", "out_mult", "out_shift", "lo", "hi")  # fmt: skip


class AddParamsC(ctypes.Structure):
    """engine_add_s8_params_t."""

    _fields_ = [(n, ctypes.c_int32) for n in ADD_FIELDS]


def declare_fused(library: ctypes.CDLL) -> None:
    unit, p, i = ctypes.POINTER(SeparableUnitC), ctypes.c_void_p, ctypes.c_int
    library.engine_separable_s8.argtypes = [unit, p, i, i, ctypes.POINTER(MaxPool2C), p, i]
    library.engine_shortcut_add_s8.argtypes = [
        unit, unit, ctypes.POINTER(AddParamsC), p, i, i, p, p, i, p, i,
    ]  # fmt: skip
    for name in ("engine_separable_s8", "engine_shortcut_add_s8"):
        getattr(library, name).restype = ctypes.c_int


@dataclasses.dataclass
class Unit:
    """One separable unit's parameters (numpy arrays kept alive for the C struct)."""

    c_in: int
    c_out: int
    kernel: int
    stride: int
    pad: int
    dw_w: np.ndarray
    dw_bias: np.ndarray | None
    dw_mult: np.ndarray
    dw_shift: np.ndarray
    dw_in_off: int
    dw_out_off: int
    dw_act: tuple[int, int]
    pw_w: np.ndarray
    pw_bias: np.ndarray | None
    pw_mult: np.ndarray
    pw_shift: np.ndarray
    pw_out_off: int
    pw_act: tuple[int, int]

    def struct(self, lut: np.ndarray | None = None) -> SeparableUnitC:
        return SeparableUnitC(
            self.c_in, self.c_out, self.kernel, self.stride, self.pad,
            ptr(self.dw_w), ptr(self.dw_bias), ptr(self.dw_mult), ptr(self.dw_shift),
            self.dw_in_off, self.dw_out_off, *self.dw_act,
            ptr(self.pw_w), ptr(self.pw_bias), ptr(self.pw_mult), ptr(self.pw_shift),
            self.pw_out_off, *self.pw_act, ptr(lut),
        )  # fmt: skip

    def pw_params(self) -> dict:
        """The pointwise layer as the converter's params (for converter.graph.pointwise_lut)."""
        return {
            "in_channels": self.c_in, "out_channels": self.c_out,
            "filter": self.pw_w.tolist(), "input_offset": -self.dw_out_off,
            "output_offset": self.pw_out_off, "act_min": self.pw_act[0],
            "act_max": self.pw_act[1], "mult": self.pw_mult.tolist(),
            "shift": self.pw_shift.tolist(),
            "bias": None if self.pw_bias is None else self.pw_bias.tolist(),
        }  # fmt: skip

    def run_unfused(self, lib, x: np.ndarray, len_in: int, len_mid: int) -> np.ndarray:
        """engine_depthwise_conv_s8 then engine_conv_1x1_s8: int8 [len_mid * c_out]."""
        mid = out_buffer(len_mid * self.c_in)
        status = lib.engine_depthwise_conv_s8(
            ptr(x), len_in, self.c_in, ptr(self.dw_w), ptr(self.dw_bias), self.kernel,
            self.stride, self.pad, self.dw_in_off, self.dw_out_off, ptr(self.dw_mult),
            ptr(self.dw_shift), *self.dw_act, ptr(mid), len_mid,
        )  # fmt: skip
        assert status == ENGINE_OK
        y = out_buffer(len_mid * self.c_out)
        status = lib.engine_conv_1x1_s8(
            ptr(mid), len_mid, self.c_in, ptr(self.pw_w), ptr(self.pw_bias), self.c_out,
            -self.dw_out_off, self.pw_out_off, ptr(self.pw_mult), ptr(self.pw_shift),
            *self.pw_act, ptr(y),
        )  # fmt: skip
        assert status == ENGINE_OK
        return y[: len_mid * self.c_out].copy()

    def fast_layers(self, pool_act=(-128, 127)) -> tuple[bool, bool]:
        """Whether the kernel's fast requantisation applies to (depthwise, pointwise): the
        conditions documented in engine_kernels.h, for test coverage of both paths."""

        def ok(mult, shift, bias, taps, off, act):
            bound = (1 << 29) - taps * 128 * 256
            b = np.abs(bias.astype(np.int64)) if bias is not None else np.zeros(1, np.int64)
            return bool(
                act == (-128, 127) and -128 <= off <= 127 and (mult >= 0).all()
                and (shift <= -1).all() and (shift >= -21).all() and (b <= bound).all()
            )  # fmt: skip

        dw = ok(self.dw_mult, self.dw_shift, self.dw_bias, self.kernel, self.dw_out_off,
                self.dw_act)  # fmt: skip
        pw = ok(self.pw_mult, self.pw_shift, self.pw_bias, self.c_in, self.pw_out_off,
                self.pw_act) and tuple(pool_act) == (-128, 127)  # fmt: skip
        return dw, pw


def rand_unit(rng, c_in, c_out, kernel, stride, pad, *, realistic: bool) -> Unit:
    """Realistic: parameters as TFLite produces them (the fast path). Otherwise anything the
    unfused kernels accept with offsets in [-128, 128] (mostly TFLM's exact path)."""
    if realistic:

        def layer(n, taps):
            mult = i32(rng.integers(1 << 30, 1 << 31, n))
            shift = i32(rng.integers(-12, -4, n))
            bias = i32(rng.integers(-3000 * taps, 3000 * taps, n)) if rng.random() < 0.9 else None
            return mult, shift, bias

        dw_mult, dw_shift, dw_bias = layer(c_in, kernel)
        pw_mult, pw_shift, pw_bias = layer(c_out, c_in)
        dw_out, pw_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        if rng.random() < 0.5:
            pw_out = -128  # a fused ReLU with zero point -128, as in the model: whole range
        dw_act, pw_act = (-128, 127), (-128, 127)
    else:
        dw_mult = i32([rand_mult(rng) for _ in range(c_in)])
        dw_shift = i32([rand_shift(rng) for _ in range(c_in)])
        dw_bias = rand_bias(rng, c_in)
        pw_mult = i32([rand_mult(rng) for _ in range(c_out)])
        pw_shift = i32([rand_shift(rng) for _ in range(c_out)])
        pw_bias = rand_bias(rng, c_out)
        if rng.random() < 0.2:  # a negative multiplier: never from TFLM, still exact
            pw_mult[0] = -int(pw_mult[0])
        if rng.random() < 0.2 and pw_bias is not None:  # beyond the fast path's accumulator
            pw_bias[0] = int(rng.choice([-1, 1])) * ((1 << 29) - 1000)
        dw_out, pw_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        dw_act, pw_act = rand_act(rng), rand_act(rng)
    return Unit(
        c_in, c_out, kernel, stride, pad,
        rand_s8(rng, kernel * c_in), dw_bias, dw_mult, dw_shift, rand_offset(rng), dw_out,
        dw_act, rand_s8(rng, c_out * c_in), pw_bias, pw_mult, pw_shift, pw_out, pw_act,
    )  # fmt: skip


def unfused_pool(lib, y, len_mid, c, act, len_out) -> np.ndarray:
    out = out_buffer(len_out * c)
    status = lib.engine_max_pool_s8(ptr(y), len_mid, c, 2, 2, 0, *act, ptr(out), len_out)
    assert status == ENGINE_OK
    return out[: len_out * c].copy()


def inplace_lead_bytes(c_in, c_out, q, stride, pad, len_out) -> int:
    """Smallest d = in - out for which engine_separable_s8 may run in place (brute force over
    every output step, as documented in engine_kernels.h)."""
    worst = 0
    for u in range(1, len_out):
        worst = max(worst, u * c_out - c_in * max(0, q * u * stride - pad))
    return worst


@pytest.mark.parametrize("seed", [20, 21, 22, 23])
def test_separable_equals_composition(lib, seed):
    rng = np.random.default_rng(seed)
    total, paths = 0, set()
    while total < 20_000:
        c_in, c_out = (int(v) for v in rng.integers(1, [21, 21]))
        if rng.random() < 0.3:
            c_in, c_out = int(rng.choice([1, 8, 16, 32])), int(rng.choice([8, 16, 32]))
        kernel, stride = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        pad = int(rng.integers(0, kernel))
        len_in = int(rng.integers(1, 70))
        len_mid, pad_same = same_padding_len(len_in, kernel, stride, pad, rng)
        pool_kind = rng.choice(["none", "same", "valid"])
        if pool_kind == "valid" and len_mid < 2:
            pool_kind = "same"
        unit = rand_unit(rng, c_in, c_out, kernel, stride, pad_same,
                         realistic=rng.random() < 0.6)  # fmt: skip
        x = rand_s8(rng, len_in * c_in)
        y = unit.run_unfused(lib, x, len_in, len_mid)
        pool, pool_act = None, (-128, 127)
        if pool_kind == "none":
            len_out, want = len_mid, y
        else:
            len_out = (len_mid + 1) // 2 if pool_kind == "same" else len_mid // 2
            pool_act = (-128, 127) if rng.random() < 0.7 else rand_act(rng)
            pool = MaxPool2C(*pool_act)
            want = unfused_pool(lib, y, len_mid, c_out, pool_act, len_out)
        out = out_buffer(len_out * c_out)
        struct = unit.struct()
        status = lib.engine_separable_s8(
            ctypes.byref(struct), ptr(x), len_in, len_mid,
            None if pool is None else ctypes.byref(pool), ptr(out), len_out,
        )  # fmt: skip
        assert status == ENGINE_OK
        what = (f"separable C={c_in}->{c_out} K={kernel} s={stride} pad={pad_same} "
                f"len={len_in}->{len_mid} pool={pool_kind}")  # fmt: skip
        check_output(out, want.tolist(), what)
        total += len(want)
        paths.add(unit.fast_layers(pool_act))
    assert {(True, True), (False, False)} <= paths, paths  # fast and exact paths both covered


@pytest.mark.parametrize("c_out", [4, 8])
def test_separable_pw_lut(lib, c_out):
    """The first unit's lookup-table path with a precomputed pw_lut (the converter's
    pointwise_lut, as the generated model passes it) equals the composition, and pointwise_lut
    equals engine_conv_1x1_s8 on every input value."""
    rng = np.random.default_rng(60 + c_out)
    for case in range(6):
        unit = rand_unit(rng, 1, c_out, 3, 1, 1, realistic=True)
        lut = np.array(pointwise_lut(unit.pw_params()), np.int8)
        values = np.arange(-128, 128, dtype=np.int8)
        want_lut = out_buffer(256 * c_out)
        status = lib.engine_conv_1x1_s8(
            ptr(values), 256, 1, ptr(unit.pw_w), ptr(unit.pw_bias), c_out, -unit.dw_out_off,
            unit.pw_out_off, ptr(unit.pw_mult), ptr(unit.pw_shift), *unit.pw_act, ptr(want_lut),
        )  # fmt: skip
        assert status == ENGINE_OK
        check_equal(lut, want_lut[: 256 * c_out], f"pointwise_lut C=1->{c_out}")
        len_in = int(rng.integers(1, 700)) if case else 3000
        x = rand_s8(rng, len_in)
        len_out = (len_in + 1) // 2
        want = unfused_pool(lib, unit.run_unfused(lib, x, len_in, len_in), len_in, c_out,
                            (-128, 127), len_out)  # fmt: skip
        pool = MaxPool2C(-128, 127)
        for table in (lut, None):
            out = out_buffer(len_out * c_out)
            struct = unit.struct(table)
            status = lib.engine_separable_s8(ctypes.byref(struct), ptr(x), len_in, len_in,
                                             ctypes.byref(pool), ptr(out), len_out)  # fmt: skip
            assert status == ENGINE_OK
            check_output(out, want.tolist(), f"lut C=1->{c_out} len={len_in} {table is None}")


def same_padding_len(len_in, kernel, stride, pad, rng) -> tuple[int, int]:
    """A dw output length (SAME or VALID, or one more/less) and a left pad that go together."""
    if rng.random() < 0.5:
        return (len_in + stride - 1) // stride, pad  # SAME-like, any pad
    len_mid = max(1, (len_in - kernel + stride) // stride)
    return len_mid, 0


def test_separable_model_shapes_and_in_place(lib):
    """The model's units (k3 s1 pad1 + pool 2/2, SAME, odd lengths), in place at the smallest
    allowed lead, equal the composition; one byte less of lead is refused."""
    rng = np.random.default_rng(30)
    for c_in, c_out, len_in in [(1, 8, 3000), (8, 8, 1500), (8, 16, 750), (16, 16, 375),
                                (16, 32, 188), (32, 32, 94), (8, 8, 7), (16, 16, 5)]:  # fmt: skip
        unit = rand_unit(rng, c_in, c_out, 3, 1, 1, realistic=True)
        x = rand_s8(rng, len_in * c_in)
        len_out = (len_in + 1) // 2
        want = unfused_pool(lib, unit.run_unfused(lib, x, len_in, len_in), len_in, c_out,
                            (-128, 127), len_out)  # fmt: skip
        lead = inplace_lead_bytes(c_in, c_out, 2, 1, 1, len_out)
        n_in, n_out = len_in * c_in, len_out * c_out
        if c_out <= 2 * c_in:  # the output fits in the input's place
            buf = np.full(lead + n_in + GUARD, FILL, np.int8)
            buf[lead : lead + n_in] = x
            struct, pool = unit.struct(), MaxPool2C(-128, 127)
            base = buf.ctypes.data
            status = lib.engine_separable_s8(ctypes.byref(struct), base + lead, len_in, len_in,
                                             ctypes.byref(pool), base, len_out)  # fmt: skip
            assert status == ENGINE_OK
            check_equal(buf[:n_out], want, f"in place C={c_in}->{c_out} len={len_in} d={lead}")
            if lead > 0:
                status = lib.engine_separable_s8(
                    ctypes.byref(struct), base + lead, len_in, len_in, ctypes.byref(pool),
                    base + 1, len_out,
                )  # fmt: skip
                assert status == ENGINE_ERR_ARG
        out = out_buffer(n_out)
        struct, pool = unit.struct(), MaxPool2C(-128, 127)
        status = lib.engine_separable_s8(ctypes.byref(struct), ptr(x), len_in, len_in,
                                         ctypes.byref(pool), ptr(out), len_out)  # fmt: skip
        assert status == ENGINE_OK
        check_output(out, want.tolist(), f"model unit C={c_in}->{c_out} len={len_in}")


def test_separable_one_input_channel_table_path(lib):
    """One input channel, 4 or 8 outputs, pooled: the 256-row table and bytewise max path."""
    rng = np.random.default_rng(32)
    for case in range(200):
        c_out = 4 if case % 3 == 0 else 8
        len_in = int(rng.integers(1, 300)) if case % 4 else int(rng.integers(1, 6))
        same = case % 2 == 0 or len_in < 2
        len_out = (len_in + 1) // 2 if same else len_in // 2
        unit = rand_unit(rng, 1, c_out, 3, 1, 1, realistic=True)
        x = rand_s8(rng, len_in)
        want = unfused_pool(lib, unit.run_unfused(lib, x, len_in, len_in), len_in, c_out,
                            (-128, 127), len_out)  # fmt: skip
        out = out_buffer(len_out * c_out)
        struct, pool = unit.struct(), MaxPool2C(-128, 127)
        status = lib.engine_separable_s8(ctypes.byref(struct), ptr(x), len_in, len_in,
                                         ctypes.byref(pool), ptr(out), len_out)  # fmt: skip
        assert status == ENGINE_OK
        check_output(out, want.tolist(), f"table path C=1->{c_out} len={len_in} same={same}")


def test_separable_in_place_rule_random(lib):
    """Random geometries in place at exactly the documented lead: equal to the composition."""
    rng = np.random.default_rng(31)
    done = refused = 0
    while done < 300:
        c_in, c_out = (int(v) for v in rng.integers(1, [17, 17]))
        kernel, stride = int(rng.integers(1, 5)), int(rng.integers(1, 3))
        pad = int(rng.integers(0, kernel))
        len_in = int(rng.integers(1, 80))
        len_mid = (len_in + stride - 1) // stride
        pooled = rng.random() < 0.6
        len_out = (len_mid + 1) // 2 if pooled else len_mid
        q = 2 if pooled else 1
        lead = inplace_lead_bytes(c_in, c_out, q, stride, pad, len_out)
        n_in, n_out = len_in * c_in, len_out * c_out
        if lead + n_in < n_out:  # the output would not overlap its input: not in place
            continue
        unit = rand_unit(rng, c_in, c_out, kernel, stride, pad, realistic=rng.random() < 0.7)
        x = rand_s8(rng, n_in)
        want = unit.run_unfused(lib, x, len_in, len_mid)
        if pooled:
            want = unfused_pool(lib, want, len_mid, c_out, (-128, 127), len_out)
        buf = np.full(lead + n_in + GUARD, FILL, np.int8)
        buf[lead : lead + n_in] = x
        struct, pool = unit.struct(), MaxPool2C(-128, 127)
        status = lib.engine_separable_s8(
            ctypes.byref(struct), buf.ctypes.data + lead, len_in, len_mid,
            ctypes.byref(pool) if pooled else None, buf.ctypes.data, len_out,
        )  # fmt: skip
        assert status == ENGINE_OK
        check_equal(buf[:n_out], want, f"in place C={c_in}->{c_out} K={kernel} s={stride} d={lead}")
        if lead > 0:  # one byte less would overwrite a row still to be read: refused
            status = lib.engine_separable_s8(
                ctypes.byref(struct), buf.ctypes.data + lead, len_in, len_mid,
                ctypes.byref(pool) if pooled else None, buf.ctypes.data + 1, len_out,
            )  # fmt: skip
            assert status == ENGINE_ERR_ARG, (c_in, c_out, kernel, stride, pad, len_out, lead)
            refused += 1
        done += 1
    assert refused > 50


def rand_add_params(rng, realistic: bool) -> tuple:
    if realistic:  # as TFLM's ADD prepares them
        a_scale, b_scale, out_scale = (float(v) for v in rng.uniform(0.01, 0.2, 3))
        twice_max = 2 * max(a_scale, b_scale)
        am, ash = quantize_multiplier(a_scale / twice_max)
        bm, bsh = quantize_multiplier(b_scale / twice_max)
        om, osh = quantize_multiplier(twice_max / ((1 << 20) * out_scale))
        return (rand_offset(rng), am, ash, rand_offset(rng), bm, bsh, 20,
                int(rng.integers(-128, 128)), om, osh, -128, 127)  # fmt: skip
    lo, hi = rand_act(rng)
    return (rand_offset(rng), rand_mult(rng), rand_shift(rng, -31, 0), rand_offset(rng),
            rand_mult(rng), rand_shift(rng, -31, 0), int(rng.choice([20, 0, 8, 21])),
            int(rng.integers(-128, 128)), rand_mult(rng), rand_shift(rng, -31, 0),
            lo, hi)  # fmt: skip


@pytest.mark.parametrize("seed", [40, 41, 42])
def test_shortcut_add_equals_composition(lib, seed):
    rng = np.random.default_rng(seed)
    total = 0
    while total < 15_000:
        c_in, c_mid, c_out = (int(v) for v in rng.integers(1, [21, 21, 21]))
        if rng.random() < 0.3:
            c_in = int(rng.choice([1, 8, 16]))
            c_mid = c_out = 2 * c_in if c_in > 1 else 8
        s1, s2 = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        len_in = int(rng.integers(1, 90))
        len_first = (len_in + s1 - 1) // s1
        len_out = (len_first + s2 - 1) // s2
        realistic = rng.random() < 0.6
        first = rand_unit(rng, c_in, c_mid, 1, s1, 0, realistic=realistic)
        second = rand_unit(rng, c_mid, c_out, 1, s2, 0, realistic=realistic)
        add = rand_add_params(rng, realistic)
        x = rand_s8(rng, len_in * c_in)
        main = rand_s8(rng, len_out * c_out)
        s = second.run_unfused(lib, first.run_unfused(lib, x, len_in, len_first), len_first,
                               len_out)  # fmt: skip
        want = out_buffer(len_out * c_out)
        assert lib.engine_add_s8(ptr(main), ptr(s), len_out * c_out, *add, ptr(want)) == 0
        want = want[: len_out * c_out]
        what = f"shortcut C={c_in}->{c_mid}->{c_out} s={s1},{s2} len={len_in}"
        structs = (first.struct(), second.struct(), AddParamsC(*add))
        args = [ctypes.byref(v) for v in structs] + [ptr(x), len_in, len_first, ptr(main)]
        out = out_buffer(len_out * c_out)
        scratch = np.full(SHORTCUT_SCRATCH_BYTES, FILL, np.int8)
        tail = (ptr(scratch), SHORTCUT_SCRATCH_BYTES)
        assert lib.engine_shortcut_add_s8(*args, ptr(out), len_out, *tail) == ENGINE_OK
        check_output(out, want.tolist(), what)
        in_place = main.copy()  # out = main_in: element-wise in place
        args[-1] = ptr(in_place)
        assert lib.engine_shortcut_add_s8(*args, ptr(in_place), len_out, *tail) == ENGINE_OK
        check_equal(in_place, want, what + " in place")
        total += len(want)


def test_fused_invalid_arguments(lib):
    rng = np.random.default_rng(50)
    unit = rand_unit(rng, 8, 8, 3, 1, 1, realistic=True)
    x = rand_s8(rng, 64 * 8)
    out = out_buffer(64 * 8)
    pool = MaxPool2C(-128, 127)

    def sep(u=None, len_in=64, len_mid=64, pool_=pool, out_=None, len_out=32, in_=None):
        struct = (u or unit).struct()
        return lib.engine_separable_s8(
            ctypes.byref(struct), ptr(x) if in_ is None else in_, len_in, len_mid,
            None if pool_ is None else ctypes.byref(pool_), ptr(out) if out_ is None else out_,
            len_out,
        )  # fmt: skip

    assert sep() == ENGINE_OK
    assert sep(pool_=None, len_out=64) == ENGINE_OK
    assert sep(len_out=33) == ENGINE_ERR_ARG  # neither ceil nor floor of 64 / 2
    assert sep(pool_=None, len_out=32) == ENGINE_ERR_ARG
    assert sep(pool_=MaxPool2C(5, 4)) == ENGINE_ERR_ARG
    assert sep(len_in=0) == ENGINE_ERR_ARG
    assert sep(out_=x.ctypes.data + 1) == ENGINE_ERR_ARG  # out starts inside in
    assert lib.engine_separable_s8(None, ptr(x), 64, 64, None, ptr(out), 64) == ENGINE_ERR_ARG
    for field, value in [("in_channels", 0), ("in_channels", 65), ("out_channels", 0),
                         ("kernel", 0), ("stride", 0), ("pad_left", -1), ("dw_input_offset", 129),
                         ("dw_output_offset", -129), ("pw_output_offset", 200)]:  # fmt: skip
        bad = dataclasses.replace(unit)
        attr = {"in_channels": "c_in", "out_channels": "c_out", "pad_left": "pad",
                "dw_input_offset": "dw_in_off", "dw_output_offset": "dw_out_off",
                "pw_output_offset": "pw_out_off"}.get(field, field)  # fmt: skip
        setattr(bad, attr, value)
        assert sep(u=bad) == ENGINE_ERR_ARG, field
    bad = dataclasses.replace(unit, pw_shift=i32([-8] * 7 + [32]))
    assert sep(u=bad) == ENGINE_ERR_ARG
    bad = dataclasses.replace(unit, dw_act=(3, 2))
    assert sep(u=bad) == ENGINE_ERR_ARG
    bad = dataclasses.replace(unit, pw_w=None)
    assert sep(u=bad) == ENGINE_ERR_ARG
    assert (out[64 * 8 :] == FILL).all()

    first = rand_unit(rng, 8, 8, 1, 2, 0, realistic=True)
    second = rand_unit(rng, 8, 8, 1, 2, 0, realistic=True)
    add = AddParamsC(*rand_add_params(rng, True))
    main = rand_s8(rng, 16 * 8)

    scratch = np.zeros(SHORTCUT_SCRATCH_BYTES + 4, np.int8)
    scratch_ptr = (scratch.ctypes.data + 3) & ~3  # 4-byte aligned

    def short(f=first, s=second, len_in=64, len_first=32, len_out=16, out_=None,
              scratch_=scratch_ptr, scratch_bytes=SHORTCUT_SCRATCH_BYTES):  # fmt: skip
        sf, ss = f.struct(), s.struct()
        return lib.engine_shortcut_add_s8(
            ctypes.byref(sf), ctypes.byref(ss), ctypes.byref(add), ptr(x), len_in, len_first,
            ptr(main), ptr(out) if out_ is None else out_, len_out, scratch_, scratch_bytes,
        )  # fmt: skip

    assert short() == ENGINE_OK
    assert short(out_=ptr(main)) == ENGINE_OK  # in place over main_in
    assert short(out_=main.ctypes.data + 1) == ENGINE_ERR_ARG  # partly over main_in
    assert short(out_=ptr(x)) == ENGINE_ERR_ARG  # over in
    assert short(f=dataclasses.replace(first, kernel=3, dw_w=rand_s8(rng, 24))) == ENGINE_ERR_ARG
    assert short(s=dataclasses.replace(second, pad=1)) == ENGINE_ERR_ARG
    assert short(s=rand_unit(rng, 4, 8, 1, 2, 0, realistic=True)) == ENGINE_ERR_ARG  # 8 != 4
    assert short(len_out=17) == ENGINE_ERR_ARG  # reads past len_first
    assert short(len_first=16) == ENGINE_ERR_ARG
    assert short(len_in=48) == ENGINE_ERR_ARG  # reads past len_in
    assert short(scratch_bytes=SHORTCUT_SCRATCH_BYTES + 1) == ENGINE_OK
    assert short(scratch_=None) == ENGINE_ERR_ARG
    assert short(scratch_bytes=SHORTCUT_SCRATCH_BYTES - 1) == ENGINE_ERR_ARG  # too small
    assert short(scratch_=scratch_ptr + 1, scratch_bytes=4096) == ENGINE_ERR_ARG  # misaligned
    big = np.zeros(4096, np.int32)  # in, main_in or out inside the scratch
    assert short(scratch_=ptr(big), out_=big.ctypes.data + 100) == ENGINE_ERR_ARG
    assert short(scratch_=main.ctypes.data - 1024) == ENGINE_ERR_ARG  # ends inside main_in


# --------------------------------------------------------------------------------------------
# The DSP path: the same random checks built for the host (portable C) and for a Cortex-M4 in
# QEMU (SMLAD/SMMLAR paths); each build compares the fused kernels with the composition of the
# unfused ones, and both must print the same checksum of every fused output.

DRIVER = r"""
#include <stdint.h>
#include <string.h>
#include "engine_kernels.h"

static uint32_t rng = 2463534242u;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }
static int rint_(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }
static int8_t rs8(void) { int v = rint_(-128, 127); int e = rint_(0, 9);
    return (int8_t)(e == 0 ? -128 : e == 1 ? 127 : v); }

#define MAXC 36
#define MAXL 90
static int8_t x[MAXL * MAXC], mid[MAXL * MAXC], y[MAXL * MAXC], ref[MAXL * MAXC + 16];
static int8_t got[MAXL * MAXC + 16], mainv[MAXL * MAXC];
static int8_t dw_w[2][5 * MAXC], pw_w[2][MAXC * MAXC];
static int32_t dw_b[2][MAXC], dw_m[2][MAXC], dw_s[2][MAXC], pw_b[2][MAXC], pw_m[2][MAXC];
static int32_t pw_s[2][MAXC];

static void layer(int32_t *m, int32_t *s, int32_t *b, int n, int taps, int real) {
    for (int i = 0; i < n; ++i) {
        if (real) {
            m[i] = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            s[i] = -rint_(5, 12);
            b[i] = rint_(-3000, 3000) * taps;
        } else {
            int k = rint_(0, 4);
            m[i] = k == 0 ? rint_(0, 4096) : (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            s[i] = rint_(-31, 6);
            b[i] = k == 1 ? (int32_t)(rnd() >> 2) - 0x20000000 : rint_(-1000000, 1000000);
        }
    }
}
static void act(int32_t *lo, int32_t *hi, int real) {
    *lo = -128; *hi = 127;
    if (!real && rint_(0, 2) == 0) { *lo = rint_(-128, 0); *hi = rint_(*lo, 127); }
}
static uint32_t scratch[ENGINE_SHORTCUT_SCRATCH_BYTES / 4];
static engine_separable_s8_t unit(int j, int ci, int co, int k, int st, int pad, int real) {
    engine_separable_s8_t u;
    for (int i = 0; i < k * ci; ++i) dw_w[j][i] = rs8();
    for (int i = 0; i < co * ci; ++i) pw_w[j][i] = rs8();
    layer(dw_m[j], dw_s[j], dw_b[j], ci, k, real);
    layer(pw_m[j], pw_s[j], pw_b[j], co, ci, real);
    u.in_channels = ci; u.out_channels = co; u.kernel = k; u.stride = st; u.pad_left = pad;
    u.dw_filter = dw_w[j]; u.dw_bias = rint_(0, 9) ? dw_b[j] : 0; u.dw_mult = dw_m[j];
    u.dw_shift = dw_s[j]; u.dw_input_offset = rint_(-128, 128);
    u.dw_output_offset = rint_(-128, 127);
    act(&u.dw_act_min, &u.dw_act_max, real);
    u.pw_filter = pw_w[j]; u.pw_bias = rint_(0, 9) ? pw_b[j] : 0; u.pw_mult = pw_m[j];
    u.pw_shift = pw_s[j]; u.pw_output_offset = rint_(0, 1) ? -128 : rint_(-128, 127);
    act(&u.pw_act_min, &u.pw_act_max, real);
    u.pw_lut = 0;
    return u;
}
static int unfused(const engine_separable_s8_t *u, const int8_t *in, int len_in, int len_mid,
                   int8_t *out) {
    int s = engine_depthwise_conv_s8(in, len_in, u->in_channels, u->dw_filter, u->dw_bias,
        u->kernel, u->stride, u->pad_left, u->dw_input_offset, u->dw_output_offset, u->dw_mult,
        u->dw_shift, u->dw_act_min, u->dw_act_max, mid, len_mid);
    s |= engine_conv_1x1_s8(mid, len_mid, u->in_channels, u->pw_filter, u->pw_bias,
        u->out_channels, -u->dw_output_offset, u->pw_output_offset, u->pw_mult, u->pw_shift,
        u->pw_act_min, u->pw_act_max, out);
    return s;
}
static const int widths[] = {1, 2, 3, 4, 5, 8, 8, 12, 16, 16, 32, 32};
static int width(void) { return rint_(0, 3) ? widths[rint_(0, 11)] : rint_(1, MAXC); }

int run_checks(uint32_t *checksum, int *cases);
int run_checks(uint32_t *checksum, int *cases) {
    int bad = 0;
    uint32_t h = 2166136261u;
    for (int c = 0; c < 700; ++c) {
        const int real = rint_(0, 9) < 7;
        int n = 0;
        if (c % 3 != 2) { /* separable (+ pool) */
            int ci = width(), co = width(), k = rint_(1, 5), st = rint_(1, 3);
            if (rint_(0, 2) == 0) { k = 3; st = 1; }
            if (ci == 1 && rint_(0, 1)) { co = rint_(0, 1) ? 8 : 4; k = 3; st = 1; }
            int pad = rint_(0, k - 1), len_in = rint_(1, MAXL);
            int len_mid = (len_in + st - 1) / st, pool = rint_(0, 2);
            if (pool == 2 && len_mid < 2) pool = 1;
            engine_separable_s8_t u = unit(0, ci, co, k, st, pad, real);
            engine_max_pool2_s8_t pp = {-128, 127};
            if (!real && rint_(0, 2) == 0) { pp.act_min = rint_(-128, 0); pp.act_max = 127; }
            for (int i = 0; i < len_in * ci; ++i) x[i] = rs8();
            bad += unfused(&u, x, len_in, len_mid, y) != 0;
            int len_out = len_mid;
            if (pool) {
                len_out = pool == 1 ? (len_mid + 1) / 2 : len_mid / 2;
                bad += engine_max_pool_s8(y, len_mid, co, 2, 2, 0, pp.act_min, pp.act_max, ref,
                                          len_out) != 0;
            } else {
                memcpy(ref, y, (size_t)(len_mid * co));
            }
            n = len_out * co;
            memset(got, 0x5A, sizeof got);
            bad += engine_separable_s8(&u, x, len_in, len_mid, pool ? &pp : 0, got, len_out) != 0;
        } else { /* shortcut + ADD */
            int ci = width(), cm = width(), co = width(), s1 = rint_(1, 3), s2 = rint_(1, 3);
            int len_in = rint_(1, MAXL), len_first = (len_in + s1 - 1) / s1;
            int len_out = (len_first + s2 - 1) / s2;
            engine_separable_s8_t u1 = unit(0, ci, cm, 1, s1, 0, real);
            engine_separable_s8_t u2 = unit(1, cm, co, 1, s2, 0, real);
            engine_add_s8_params_t a;
            a.a_offset = rint_(-128, 128); a.b_offset = rint_(-128, 128);
            a.a_mult = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)); a.a_shift = -rint_(0, 3);
            a.b_mult = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)); a.b_shift = -rint_(0, 3);
            a.left_shift = 20; a.out_offset = rint_(-128, 127);
            a.out_mult = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            a.out_shift = -rint_(17, 21); a.act_min = -128; a.act_max = 127;
            if (!real) {
                a.out_shift = -rint_(0, 31); a.a_shift = -rint_(0, 31);
                a.left_shift = rint_(0, 1) ? 20 : rint_(0, 22);
                act(&a.act_min, &a.act_max, 0);
            }
            for (int i = 0; i < len_in * ci; ++i) x[i] = rs8();
            for (int i = 0; i < len_out * co; ++i) mainv[i] = rs8();
            bad += unfused(&u1, x, len_in, len_first, y) != 0;
            bad += unfused(&u2, y, len_first, len_out, ref) != 0;
            n = len_out * co;
            bad += engine_add_s8(mainv, ref, n, a.a_offset, a.a_mult, a.a_shift, a.b_offset,
                a.b_mult, a.b_shift, a.left_shift, a.out_offset, a.out_mult, a.out_shift,
                a.act_min, a.act_max, ref) != 0;
            memset(got, 0x5A, sizeof got);
            bad += engine_shortcut_add_s8(&u1, &u2, &a, x, len_in, len_first, mainv, got,
                                          len_out, scratch, (int)sizeof scratch) != 0;
        }
        bad += memcmp(got, ref, (size_t)n) != 0 || got[n] != 0x5A;
        for (int i = 0; i < n; ++i) { h ^= (uint8_t)got[i]; h *= 16777619u; }
    }
    for (int c = 0; c < 100; ++c) { /* fully connected: its DSP dot product, by checksum */
        const int n_in = rint_(1, MAXL), n_out = rint_(1, MAXC); /* weights fit in y */
        for (int i = 0; i < n_in; ++i) x[i] = rs8();
        for (int i = 0; i < n_in * n_out; ++i) y[i] = rs8();
        layer(pw_m[0], pw_s[0], pw_b[0], n_out, n_in, c % 2);
        const int32_t w_off = rint_(0, 3) ? 0 : rint_(-128, 128);
        const int32_t in_off = rint_(-128, 128); /* (one call per statement: sequenced) */
        const int32_t out_off = rint_(-128, 127);
        memset(got, 0x5A, sizeof got);
        bad += engine_fully_connected_s8(x, n_in, y, pw_b[0], n_out, in_off, w_off, out_off,
                                         pw_m[0], pw_s[0], -128, 127, got) != 0;
        for (int i = 0; i < n_out; ++i) { h ^= (uint8_t)got[i]; h *= 16777619u; }
    }
    *checksum = h;
    *cases = 800;
    return bad;
}

#if defined(__arm__)
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ __volatile__("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static char *put_u(char *p, uint32_t v, int base) {
    char tmp[12]; int n = 0;
    do { tmp[n++] = "0123456789abcdef"[v % (uint32_t)base]; v /= (uint32_t)base; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void reset_handler(void);
void reset_handler(void) {
    uint32_t *s = &_sidata, *d = &_sdata;
    while (d < &_edata) *d++ = *s++;
    for (d = &_sbss; d < &_ebss; ) *d++ = 0;
    const uint32_t block[2] = {0x20026u, (uint32_t)main()};
    semihost(0x20, block); /* SYS_EXIT_EXTENDED */
    for (;;) {}
}
__attribute__((section(".vectors"), used)) static const void *const vectors[4] = {
    &_estack, (const void *)reset_handler, (const void *)reset_handler,
    (const void *)reset_handler};
#else
#include <stdio.h>
#endif

int main(void) {
    uint32_t h; int cases;
    const int bad = run_checks(&h, &cases);
#if defined(__arm__)
    char line[64], *p = line;
    memcpy(p, "cases=", 6); p = put_u(p + 6, (uint32_t)cases, 10);
    memcpy(p, " bad=", 5); p = put_u(p + 5, (uint32_t)bad, 10);
    memcpy(p, " checksum=", 10); p = put_u(p + 10, h, 16);
    *p++ = '\n'; *p = 0;
    semihost(0x04, line); /* SYS_WRITE0 */
#else
    printf("cases=%d bad=%d checksum=%x\n", cases, bad, (unsigned)h);
#endif
    return bad != 0;
}
"""

LINKER = """
MEMORY { CODE (rx) : ORIGIN = 0x00000000, LENGTH = 4M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
_estack = ORIGIN(RAM) + LENGTH(RAM);
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); } > CODE
  .data : { _sdata = .; *(.data*) . = ALIGN(4); _edata = .; } > RAM AT > CODE
  _sidata = LOADADDR(.data);
  .bss (NOLOAD) : { _sbss = .; *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; } > RAM
}
"""


def test_dsp_path_equals_portable_path(tmp_path):
    """On a Cortex-M4 (QEMU mps2-an386, DSP extension: SMLAD, SXTB16, SMMLAR, SSAT, SEL) the
    fused kernels equal the unfused composition on 700 random shapes and parameters, and their
    outputs (and 100 fully connected layers') hash to the same checksum as the portable C build
    on this machine."""
    for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    (tmp_path / "driver.c").write_text(DRIVER)
    (tmp_path / "link.ld").write_text(LINKER)
    sources = [str(p) for p in SOURCES] + [str(tmp_path / "driver.c")]
    host = tmp_path / "host"
    cmd = ["gcc", *HOST_FLAGS, f"-I{INCLUDE}", *sources, "-o", str(host)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    want = subprocess.run([str(host)], capture_output=True, text=True, check=False)
    assert want.returncode == 0 and " bad=0 " in want.stdout, want.stdout

    elf = tmp_path / "m4.elf"
    cmd = [
        "arm-none-eabi-gcc", "-std=c11", "-O2", "-mcpu=cortex-m4", "-mthumb",
        "-mfloat-abi=soft", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}", *sources,
        "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
        f"-T{tmp_path / 'link.ld'}", "-o", str(elf),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    nm = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    assert "smlad" in nm and "smmlar" in nm and "sxtb16" in nm  # the DSP path was built
    got = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
         "-serial", "null", "-chardev", "stdio,id=semihosting",
         "-semihosting-config", "enable=on,target=native,chardev=semihosting",
         "-kernel", str(elf)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert got.returncode == 0, (got.stdout, got.stderr)
    assert got.stdout == want.stdout, (got.stdout, want.stdout)


# --------------------------------------------------------------------------------------------
# Argument checks


def test_invalid_arguments(lib):
    x = rand_s8(np.random.default_rng(9), 64)
    mult, shift, bad_shift = i32([1 << 30] * 8), i32([-8] * 8), i32([-8] * 7 + [32])
    out = out_buffer(64)
    px, po, pm, ps = ptr(x), ptr(out), ptr(mult), ptr(shift)

    def dw(**kw):
        args = dict(in_=px, len_in=8, ch=2, w=px, bias=None, k=3, stride=1, pad=1, ioff=0,
                    ooff=0, mult=pm, shift=ps, lo=-128, hi=127, out=po, len_out=8)  # fmt: skip
        args.update(kw)
        return lib.engine_depthwise_conv_s8(*args.values())

    assert dw() == ENGINE_OK
    for kw in [
        {"in_": None}, {"w": None}, {"mult": None}, {"shift": None}, {"out": None},
        {"len_in": 0}, {"ch": 0}, {"k": 0}, {"stride": 0}, {"pad": -1}, {"len_out": 0},
        {"lo": 5, "hi": 4}, {"lo": -129}, {"hi": 128}, {"shift": ptr(bad_shift), "ch": 8},
        {"len_in": 2**30, "ch": 4},
    ]:  # fmt: skip
        out[:] = FILL
        assert dw(**kw) == ENGINE_ERR_ARG, kw
        assert (out == FILL).all(), kw

    def c11(**kw):
        args = dict(in_=px, length=4, ic=2, w=px, bias=None, oc=2, ioff=0, ooff=0, mult=pm,
                    shift=ps, lo=-128, hi=127, out=po)  # fmt: skip
        args.update(kw)
        return lib.engine_conv_1x1_s8(*args.values())

    assert c11() == ENGINE_OK
    for kw in [{"in_": None}, {"w": None}, {"out": None}, {"length": 0}, {"ic": -1}, {"oc": 0}]:
        assert c11(**kw) == ENGINE_ERR_ARG, kw

    for pool in (lib.engine_max_pool_s8, lib.engine_avg_pool_s8):
        assert pool(px, 8, 2, 2, 2, 0, -128, 127, po, 4) == ENGINE_OK
        assert pool(None, 8, 2, 2, 2, 0, -128, 127, po, 4) == ENGINE_ERR_ARG
        assert pool(px, 8, 2, 2, 2, 0, -128, 127, None, 4) == ENGINE_ERR_ARG
        assert pool(px, 8, 2, 0, 2, 0, -128, 127, po, 4) == ENGINE_ERR_ARG  # window
        assert pool(px, 8, 2, 2, 0, 0, -128, 127, po, 4) == ENGINE_ERR_ARG  # stride
        assert pool(px, 8, 0, 2, 2, 0, -128, 127, po, 4) == ENGINE_ERR_ARG  # channels
        assert pool(px, 8, 2, 2, 2, 0, -128, 127, po, 0) == ENGINE_ERR_ARG  # len_out
        assert pool(px, 8, 2, 2, 2, 0, 10, 9, po, 4) == ENGINE_ERR_ARG  # act range
    # avg pool: the first window entirely in the padding, or the last one past the end
    assert lib.engine_avg_pool_s8(px, 8, 2, 2, 1, 2, -128, 127, po, 4) == ENGINE_ERR_ARG
    assert lib.engine_avg_pool_s8(px, 8, 2, 2, 2, 0, -128, 127, po, 5) == ENGINE_ERR_ARG
    # ... where max pool gives clamp(-128)
    out[:] = FILL
    assert lib.engine_max_pool_s8(px, 8, 2, 2, 2, 0, -100, 127, po, 5) == ENGINE_OK
    assert out[8:10].tolist() == [-100, -100]

    add_ok = (0, 1 << 30, -1, 0, 1 << 30, -1, 20, 0, 1 << 30, -1, -128, 127)
    assert lib.engine_add_s8(px, px, 8, *add_ok, po) == ENGINE_OK
    assert lib.engine_add_s8(None, px, 8, *add_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_add_s8(px, None, 8, *add_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_add_s8(px, px, 8, *add_ok, None) == ENGINE_ERR_ARG
    assert lib.engine_add_s8(px, px, 0, *add_ok, po) == ENGINE_ERR_ARG
    for index, value in [(2, 1), (5, -32), (6, -1), (6, 32), (9, 1)]:  # shifts out of range
        args = list(add_ok)
        args[index] = value
        assert lib.engine_add_s8(px, px, 8, *args, po) == ENGINE_ERR_ARG, (index, value)

    fc_mult = np.full(4, 1 << 30, dtype=np.int32)
    fc_shift = np.full(4, -8, dtype=np.int32)
    fc_ok = (0, 0, 0, ptr(fc_mult), ptr(fc_shift), -128, 127)
    assert lib.engine_fully_connected_s8(px, 8, px, None, 4, *fc_ok, po) == ENGINE_OK
    assert lib.engine_fully_connected_s8(None, 8, px, None, 4, *fc_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 8, None, None, 4, *fc_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 8, px, None, 4, *fc_ok, None) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 0, px, None, 4, *fc_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 8, px, None, 0, *fc_ok, po) == ENGINE_ERR_ARG
    assert (
        lib.engine_fully_connected_s8(
            px, 8, px, None, 4, 0, 0, 0, None, ptr(fc_shift), -128, 127, po
        )
        == ENGINE_ERR_ARG
    )
    bad_shift = np.array([-8, -8, 32, -8], dtype=np.int32)  # one channel out of range
    bad_fc = (0, 0, 0, ptr(fc_mult), ptr(bad_shift), -128, 127)
    assert lib.engine_fully_connected_s8(px, 8, px, None, 4, *bad_fc, po) == ENGINE_ERR_ARG


# --------------------------------------------------------------------------------------------
# Layout of the sources and the Cortex-M4 build


def test_one_kernel_per_file_no_float():
    assert sorted(p.name for p in SOURCES) == KERNEL_FILES
    for path in [*SOURCES, *KERNELS.glob("*.h"), *INCLUDE.glob("engine_*.h")]:
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(), flags=re.S)
        assert not re.search(r"\b(float|double|malloc|calloc|realloc|free|printf)\b", code), path


def test_builds_for_cortex_m4(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    for src in SOURCES:
        obj = tmp_path / f"{src.stem}.o"
        cmd = ["arm-none-eabi-gcc", *ARM_FLAGS, f"-I{INCLUDE}", "-c", str(src), "-o", str(obj)]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert run.returncode == 0 and run.stderr == "", f"{' '.join(cmd)}\n{run.stderr}"
        # Soft-float build: any floating point would show up as a libgcc helper call.
        soft = tmp_path / f"{src.stem}.soft.o"
        cmd = [
            "arm-none-eabi-gcc",
            *[f for f in ARM_FLAGS if not f.startswith(("-mfloat-abi", "-mfpu"))],
            "-mfloat-abi=soft",
            f"-I{INCLUDE}",
            "-c",
            str(src),
            "-o",
            str(soft),
        ]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        nm = shutil.which("arm-none-eabi-nm")
        if nm:
            undefined = subprocess.run(
                [nm, "-u", str(soft)], capture_output=True, text=True, check=True
            ).stdout
            assert not re.search(r"__aeabi_[fdlu]|__\w*[sd]f\w*", undefined), (src, undefined)
