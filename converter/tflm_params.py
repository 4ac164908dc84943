"""TensorFlow Lite Micro's integer parameters, computed exactly as its kernels' Prepare step
computes them, so that the C engine reproduces the TFLM reference kernels bit for bit.

- Per-channel QuantizeMultiplier of input_scale * filter_scale / output_scale in double
  precision (convolutions; per-tensor FULLY_CONNECTED multiplies the two float scales first).
- The ADD rescaling with a left shift of 20.
- Activation ranges from the fused activation; SAME/VALID padding offsets.
- The gemmlowp arithmetic of the reference kernels (MultiplyByQuantizedMultiplier), for tables
  the converter precomputes.
"""

from __future__ import annotations

import math

import numpy as np

from .graph import Tensor, UnsupportedModelError


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^shift / 2^31 with q in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = math.floor(frac * (1 << 31) + 0.5)  # TfLiteRound: half away from zero (frac > 0)
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul (int32)."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = (abs(ab + nudge) >> 31) * (1 if ab + nudge >= 0 else -1)  # C division: toward zero
    return q


def rdbp(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier (int32), as the reference kernels use it."""
    left, right = max(shift, 0), max(-shift, 0)
    x = (x * (1 << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    return rdbp(srdhm(x, multiplier), right)


def activation_range(fused: int, out: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8: NONE (0), RELU (1), RELU6 (3)."""
    zp, scale = out.zero_point, np.float32(out.scale)
    if fused == 0:
        return -128, 127
    if fused == 1:
        return max(-128, zp), 127
    if fused == 3:
        return max(-128, zp), min(127, zp + round(float(np.float32(6.0) / scale)))
    raise UnsupportedModelError(f"fused activation {fused} not supported")


def conv_multipliers(inp: Tensor, filt: Tensor, out: Tensor) -> tuple[list[int], list[int]]:
    """(multipliers, shifts), one per filter scale (output channel): QuantizeMultiplier of
    input_scale * filter_scale / output_scale, each scale rounded to float32 first as TFLM
    stores them."""
    mults, shifts = [], []
    for s in filt.scales:
        eff = float(np.float32(inp.scale)) * float(np.float32(s)) / float(np.float32(out.scale))
        q, sh = quantize_multiplier(eff)
        mults.append(q)
        shifts.append(sh)
    return mults, shifts


def fc_multiplier(inp: Tensor, filt: Tensor, out: Tensor) -> tuple[int, int]:
    """(multiplier, shift) of a FULLY_CONNECTED with one per-tensor filter scale."""
    product = float(np.float32(inp.scale) * np.float32(filt.scale))  # float product, as TFLM
    return quantize_multiplier(product / float(np.float32(out.scale)))


#: The left shift TFLM's int8 ADD applies to both inputs before rescaling them.
ADD_LEFT_SHIFT = 20


def add_params(a: Tensor, b: Tensor, out: Tensor) -> dict:
    """The int8 ADD's offsets, multipliers and shifts (engine_add_s8_params_t's fields but the
    activation range): each input rescaled to twice the larger input scale, the sum to the
    output scale."""
    twice_max = 2.0 * float(max(np.float32(a.scale), np.float32(b.scale)))
    am, ash = quantize_multiplier(float(np.float32(a.scale)) / twice_max)
    bm, bsh = quantize_multiplier(float(np.float32(b.scale)) / twice_max)
    om, osh = quantize_multiplier(
        twice_max / ((1 << ADD_LEFT_SHIFT) * float(np.float32(out.scale)))
    )
    return {
        "a_offset": -a.zero_point,
        "a_mult": am,
        "a_shift": ash,
        "b_offset": -b.zero_point,
        "b_mult": bm,
        "b_shift": bsh,
        "left_shift": ADD_LEFT_SHIFT,
        "out_offset": out.zero_point,
        "out_mult": om,
        "out_shift": osh,
    }


def same_padding(length: int, window: int, stride: int, padding: int) -> tuple[int, int]:
    """(output length, left padding) for TFLite padding 0 = SAME, 1 = VALID."""
    if padding == 0:
        out = (length + stride - 1) // stride
    else:
        out = (length - window + stride) // stride
    total = max((out - 1) * stride + window - length, 0)
    return out, total // 2
