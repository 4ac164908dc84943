"""TFLite Micro's integer parameters: QuantizeMultiplier, padding, the gemmlowp arithmetic."""

from __future__ import annotations

from converter.tflm_params import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    same_padding,
)


def test_quantize_multiplier_and_padding_follow_tflite():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    q, s = quantize_multiplier(0.0123)
    assert abs(q * 2.0 ** (s - 31) - 0.0123) < 1e-9 and (1 << 30) <= q < (1 << 31)
    assert same_padding(375, 2, 2, 0) == (188, 0)  # odd length, SAME: ceil, no left pad
    assert same_padding(3000, 3, 1, 0) == (3000, 1)
    assert same_padding(47, 47, 47, 1) == (1, 0)


def test_multiply_by_quantized_multiplier_rounds_as_gemmlowp():
    """SaturatingRoundingDoublingHighMul rounds a tie towards +infinity, RoundingDivideByPOT
    away from zero, and a right shift rounds twice (the reference kernels' results)."""
    half = 1 << 30  # 0.5 in Q31
    assert multiply_by_quantized_multiplier(100, half, 0) == 50
    assert multiply_by_quantized_multiplier(3, half, 0) == 2  # 1.5 -> 2
    assert multiply_by_quantized_multiplier(-3, half, 0) == -1  # -1.5 -> -1
    assert multiply_by_quantized_multiplier(5, half, -1) == 2  # 2.5 -> 3, then 1.5 -> 2
    assert multiply_by_quantized_multiplier(-5, half, -1) == -1  # -2.5 -> -2, then -1
    assert multiply_by_quantized_multiplier(7, half, 1) == 7  # left shift first: 14 * 0.5
    assert multiply_by_quantized_multiplier(-(1 << 31), -(1 << 31), 0) == (1 << 31) - 1
