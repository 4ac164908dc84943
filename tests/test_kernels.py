"""The firmware int8 kernels (firmware/engine/kernels) against TFLM's reference formulas.

Every kernel is compiled with gcc into a shared library, called through ctypes on random and
extreme inputs, and compared value for value with a plain-Python transcription of TensorFlow
Lite Micro's reference int8 arithmetic (integer_ops/*, no TFLITE_SINGLE_ROUNDING). The
static-inline requantisation helpers of engine_requant.h are reached through a small shim
compiled alongside. A second test builds every kernel for Cortex-M4 with arm-none-eabi-gcc.
"""

from __future__ import annotations

import ctypes
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converter.native import ARM_M4_CFLAGS

REPO = Path(__file__).resolve().parents[1]
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
