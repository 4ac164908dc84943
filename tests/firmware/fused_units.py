"""Random separable units and ADD parameters for the fused-kernel tests, and the composition
of unfused kernels (engine_depthwise_conv_s8, engine_conv_1x1_s8, engine_max_pool_s8) that each
fused kernel must equal bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np

from converter.tflm_params import quantize_multiplier

from .kernel_lib import ENGINE_OK, SeparableUnitC, i32, out_buffer, ptr
from .tflm_reference import (
    rand_act,
    rand_bias,
    rand_mult,
    rand_offset,
    rand_s8,
    rand_shift,
)


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
        """The pointwise layer as the converter's params (for converter.fusion.pointwise_lut)."""
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
    """engine_max_pool_s8 (window 2, stride 2) over y [len_mid][c]: [len_out * c]."""
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


def same_padding_len(len_in, kernel, stride, pad, rng) -> tuple[int, int]:
    """A dw output length (SAME or VALID, or one more/less) and a left pad that go together."""
    if rng.random() < 0.5:
        return (len_in + stride - 1) // stride, pad  # SAME-like, any pad
    len_mid = max(1, (len_in - kernel + stride) // stride)
    return len_mid, 0


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
