/*
 * engine_requant.h - fixed-point requantisation helpers of the int8 inference engine.
 *
 * Bit-exact C11 ports of TensorFlow Lite Micro's reference arithmetic
 * (tensorflow/lite/kernels/internal/common.h, gemmlowp fixedpoint, the build WITHOUT
 * TFLITE_SINGLE_ROUNDING). Integer only, no allocation, no I/O.
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
     * sign-dependent correction (tests/firmware/test_kernels.py checks it against the TFLM formula). */
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
    return engine_rounding_divide_by_pot(
        engine_sat_rounding_doubling_high_mul(engine_shift_left_wrap_s32(x, left_shift),
                                              multiplier),
        right_shift);
}

/*
 * TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp: x * multiplier * 2^(shift - 31)
 * for a multiplier below one. -31 <= shift <= 0.
 */
static inline int32_t engine_multiply_by_quantized_multiplier_smaller_than_one_exp(
    int32_t x, int32_t multiplier, int shift)
{
    return engine_rounding_divide_by_pot(engine_sat_rounding_doubling_high_mul(x, multiplier),
                                         -shift);
}

/* ------------------------------------------------------------------------------------------
 * Fast requantisation (the fused kernels' hot loops).
 *
 * engine_requant_fast(acc, multiplier, round, e) returns, bit for bit,
 *     engine_multiply_by_quantized_multiplier(acc, multiplier, -e) + offset
 * with round = engine_requant_fast_round(e, offset), under these conditions (the fused kernels
 * check them once per call and otherwise use the exact helpers above):
 *     0 <= multiplier,  1 <= e <= ENGINE_FAST_SHIFT_MAX (a right shift),
 *     |acc| <= ENGINE_FAST_ACC_MAX,  -128 <= offset <= 127.
 *
 * Why it is exact. Let hi = engine_sat_rounding_doubling_high_mul(acc, multiplier)
 *   = floor((acc * multiplier + 2^30) / 2^31)   (no saturation: multiplier >= 0).
 * (1) TFLM's RoundingDivideByPOT(x, e), e >= 1, equals floor((x + 2^(e-1) - [x < 0]) / 2^e).
 *     Write x = q * 2^e + r, 0 <= r < 2^e. TFLM returns q + [r > 2^(e-1) - 1 + [x < 0]]
 *     = q + [r >= 2^(e-1) + [x < 0]]. The formula gives q + floor((r + 2^(e-1) - [x<0]) / 2^e)
 *     where r + 2^(e-1) - [x < 0] lies in [0, 2^e + 2^(e-1) - 1) (it is >= 0 because
 *     2^(e-1) >= 1), so the floor is 1 exactly when r >= 2^(e-1) + [x < 0], else 0.
 * (2) [hi < 0] may be replaced by [acc < 0]: with multiplier >= 0, hi < 0 implies acc < 0, and
 *     acc < 0 implies hi <= 0; when hi == 0 both corrections give 0 because
 *     floor((2^(e-1) - 1) / 2^e) = floor(2^(e-1) / 2^e) = 0.
 * (3) Adding offset * 2^e inside the floor adds offset outside it (offset is an integer), so
 *     round = 2^(e-1) + offset * 2^e carries both the rounding and the output offset.
 * Hence result = (hi + round - [acc < 0]) >> e with an arithmetic shift. No intermediate
 * overflows: |acc| <= 2^29 gives |hi| <= 2^29 and |2 * acc| <= 2^30, and
 * |round| <= 2^20 + 2^28, so every sum stays within (-2^31, 2^31).
 *
 * On a DSP core (Cortex-M4/M7/M33 with the DSP extension) hi + c is ONE instruction:
 * SMMLAR d, 2 * acc, multiplier, c computes (c * 2^32 + 2 * acc * multiplier + 2^31) >> 32
 * = c + floor((acc * multiplier + 2^30) / 2^31) = c + hi. ACLE (arm_acle.h) has no intrinsic
 * for SMMLAR, so it is the one instruction written as inline assembly (pure: no volatile).
 * tests/firmware/test_kernels.py checks the portable formula against TFLM's on random and edge inputs;
 * the HIL tests check the DSP build end to end against the TFLM runtime.
 */
#define ENGINE_FAST_SHIFT_MAX 21
#define ENGINE_FAST_ACC_MAX (INT32_C(1) << 29)

/*
 * RoundingDivideByPOT as one add and one shift, (1) above: x / 2^e rounded half away from zero,
 * for 1 <= e <= 31 and x <= INT32_MAX - 2^(e-1) (so that the sum does not overflow). Equal to
 * engine_rounding_divide_by_pot(x, e) there (tests/firmware/test_kernels.py: exhaustively over a range
 * of x for every e, and on random x).
 */
static inline int32_t engine_rounding_divide_by_pot_fast(int32_t x, int exponent)
{
    return (x + (INT32_C(1) << (exponent - 1)) + (x >> 31)) >> exponent;
}

/* round = 2^(e-1) + offset * 2^e for 1 <= e <= ENGINE_FAST_SHIFT_MAX, -128 <= offset <= 127. */
static inline int32_t engine_requant_fast_round(int right_shift, int32_t offset)
{
    return (int32_t)((uint32_t)(2 * offset + 1) << (unsigned)(right_shift - 1));
}

#if defined(__ARM_FEATURE_DSP)
/* SMMLAR: (acc * 2^32 + a * b + 2^31) >> 32, i.e. acc + the rounded high word of a * b. */
static inline int32_t engine_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t result;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(acc));
    return result;
}
#endif

/*
 * engine_requant_fast with the accumulator given doubled: acc2 = 2 * acc (the fused kernels
 * accumulate doubled values for free by doubling their bias and one operand, which saves the
 * shift). acc2 >> 31 = -[acc < 0].
 */
static inline int32_t engine_requant_fast_x2(int32_t acc2, int32_t multiplier, int32_t round,
                                             int right_shift)
{
    const int32_t c = round + (acc2 >> 31);
#if defined(__ARM_FEATURE_DSP)
    return engine_smmlar(acc2, multiplier, c) >> right_shift;
#else
    /* (acc2 * m + 2^31) >> 32 = floor((acc * m + 2^30) / 2^31) = hi */
    const int32_t hi = (int32_t)(((int64_t)acc2 * multiplier + (INT64_C(1) << 31)) >> 32);
    return (hi + c) >> right_shift;
#endif
}

/* See above: TFLM's MultiplyByQuantizedMultiplier(acc, multiplier, -right_shift) + offset. */
static inline int32_t engine_requant_fast(int32_t acc, int32_t multiplier, int32_t round,
                                          int right_shift)
{
    return engine_requant_fast_x2(acc * 2, multiplier, round, right_shift);
}

/*
 * The ADD's input rescaling, TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp(x, m, -e) with
 * 0 <= e <= ENGINE_FAST_SHIFT_MAX (e == 0 allowed: no rounding division) and offset 0, x given
 * doubled (x2 = 2 * x): round = 2^(e-1) and sign_mask = -1 for e >= 1, round = sign_mask = 0
 * for e == 0. Same conditions on x and m as engine_requant_fast.
 */
static inline int32_t engine_requant_fast_lt1_x2(int32_t x2, int32_t multiplier, int32_t round,
                                                 int32_t sign_mask, int right_shift)
{
    const int32_t c = round + ((x2 >> 31) & sign_mask);
#if defined(__ARM_FEATURE_DSP)
    return engine_smmlar(x2, multiplier, c) >> right_shift;
#else
    const int32_t hi = (int32_t)(((int64_t)x2 * multiplier + (INT64_C(1) << 31)) >> 32);
    return (hi + c) >> right_shift;
#endif
}

static inline int32_t engine_requant_fast_lt1(int32_t x, int32_t multiplier, int32_t round,
                                              int32_t sign_mask, int right_shift)
{
    return engine_requant_fast_lt1_x2(x * 2, multiplier, round, sign_mask, right_shift);
}

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_REQUANT_H */
