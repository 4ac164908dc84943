/*
 * engine_requant.h - fixed-point requantisation helpers of the int8 inference engine.
 *
 * Bit-exact C11 ports of TensorFlow Lite Micro's reference arithmetic
 * (tensorflow/lite/kernels/internal/common.h, gemmlowp fixedpoint, the build WITHOUT
 * TFLITE_SINGLE_ROUNDING). Integer only, no allocation, no I/O. The fused kernels' faster
 * equivalent of engine_multiply_by_quantized_multiplier, for the parameters TFLite produces, is
 * in engine_requant_fast.h.
 *
 * Implementation-defined behaviour relied on (true for GCC/Clang on every target we build for;
 * checked at compile time below):
 *   - `>>` on a negative signed integer is an arithmetic (sign-propagating) shift;
 *   - converting an out-of-range unsigned value to a signed type wraps modulo 2^N.
 */
#ifndef ENGINE_REQUANT_H
#define ENGINE_REQUANT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define ENGINE_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define ENGINE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

ENGINE_STATIC_ASSERT((-1 >> 1) == -1, "engine_requant.h needs an arithmetic >> on negative ints");
ENGINE_STATIC_ASSERT((int32_t)UINT32_C(0x80000000) == INT32_MIN,
                     "engine_requant.h needs unsigned -> signed conversion to wrap");

/* Valid range of a requantisation shift (`shift` of engine_multiply_by_quantized_multiplier):
 * positive = left shift, negative = right shift. */
#define ENGINE_SHIFT_MIN (-31)
#define ENGINE_SHIFT_MAX 31

/*
 * x * 2^left_shift with two's-complement wrap-around, 0 <= left_shift <= 31.
 * Equals TFLM's `x * (1 << left_shift)` whenever that product fits in int32 (and what GCC
 * produces for it when it does not), without the signed-overflow UB.
 */
static inline int32_t engine_shift_left_wrap_s32(int32_t x, int left_shift)
{
    return (int32_t)((uint32_t)x << (unsigned)left_shift);
}

/*
 * gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31) with ties rounded away from
 * zero, computed as (a*b + nudge) / 2^31 with C's truncating division. The only overflowing
 * case, INT32_MIN * INT32_MIN, saturates to INT32_MAX. Any int32 a, b.
 */
static inline int32_t engine_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    const int overflow = (a == b) && (a == INT32_MIN);
    const int64_t ab = (int64_t)a * (int64_t)b;
    /* TFLM computes (ab + nudge) / 2^31 with a truncating division, nudge = 2^30 for ab >= 0
     * and 1 - 2^30 for ab < 0. Both cases equal floor((ab + 2^30) / 2^31): for ab < 0,
     * truncation of a negative quotient is ceil(x / m) = floor((x + m - 1) / m) with
     * x = ab + 1 - 2^30, m = 2^31. So one arithmetic shift does it, bit for bit, with no
     * sign-dependent correction (tests/firmware/test_requant.py checks it against the TFLM
     * formula). */
    const int32_t hi = (int32_t)((ab + (INT64_C(1) << 30)) >> 31);
    return overflow ? INT32_MAX : hi;
}

/*
 * gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
 * 0 <= exponent <= 31; any int32 x. Relies on arithmetic >> (see top of file).
 */
static inline int32_t engine_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((INT64_C(1) << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + ((x < 0) ? 1 : 0);
    return (x >> exponent) + ((remainder > threshold) ? 1 : 0);
}

/*
 * TFLM MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^(shift - 31).
 * multiplier: Q0.31 (TFLM produces 0 or [2^30, 2^31 - 1]); ENGINE_SHIFT_MIN <= shift <=
 * ENGINE_SHIFT_MAX. A left shift that overflows int32 wraps (TFLM: undefined behaviour).
 */
static inline int32_t engine_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                              int shift)
{
    const int left_shift = (shift > 0) ? shift : 0;
    const int right_shift = (shift > 0) ? 0 : -shift;
    return engine_rounding_divide_by_pot(engine_sat_rounding_doubling_high_mul(
                                             engine_shift_left_wrap_s32(x, left_shift), multiplier),
                                         right_shift);
}

/*
 * TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp: x * multiplier * 2^(shift - 31)
 * for a multiplier below one. -31 <= shift <= 0.
 */
static inline int32_t
engine_multiply_by_quantized_multiplier_smaller_than_one_exp(int32_t x, int32_t multiplier,
                                                             int shift)
{
    return engine_rounding_divide_by_pot(engine_sat_rounding_doubling_high_mul(x, multiplier),
                                         -shift);
}

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_REQUANT_H */
