"""TensorFlow Lite Micro's int8 reference kernels (integer_ops/*, the build without
TFLITE_SINGLE_ROUNDING) transcribed into plain Python, on the converter's transcription of its
fixed-point arithmetic (converter.tflm_params: srdhm, rdbp, MultiplyByQuantizedMultiplier,
QuantizeMultiplier), and random kernel parameters with their extremes: what the kernel tests
compare the firmware's kernels with. Arrays are flat Python lists in the kernels' layouts
([t * channels + c])."""

from __future__ import annotations

import numpy as np

from converter.tflm_params import multiply_by_quantized_multiplier as mbqm
from converter.tflm_params import rdbp, srdhm

from .kernel_lib import i32

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# --------------------------------------------------------------------------------------------
# Reference: TFLM's formulas, transcribed


def c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


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


INTERESTING = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, INT32_MAX]


def rand_i32(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    small = rng.random(n) < 0.3
    x[small] = rng.integers(-100000, 100000, int(small.sum()))
    pick = rng.random(n) < 0.15
    x[pick] = rng.choice(INTERESTING, int(pick.sum()))
    return i32(x)
