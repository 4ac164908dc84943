/*
 * engine_requant_fast.h - the fused kernels' requantisation: one SMMLAR (or a few portable
 * integer operations) per output instead of TFLM's two rounding steps, bit for bit equal to
 * engine_requant.h under the conditions below, and the per-layer set-up that checks those
 * conditions and precomputes each channel's parameters once per call.
 *
 * engine_requant_fast(acc, multiplier, round, e) returns, bit for bit,
 *     engine_multiply_by_quantized_multiplier(acc, multiplier, -e) + offset
 * with round = engine_requant_fast_round(e, offset), under these conditions (the fused kernels
 * check them once per call and otherwise use engine_requant.h):
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
 * tests/firmware/test_requant.py checks the portable formula against TFLM's on random and
 * edge inputs; the HIL tests check the DSP build end to end against the TFLM runtime.
 */
#ifndef ENGINE_REQUANT_FAST_H
#define ENGINE_REQUANT_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "engine_requant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENGINE_FAST_SHIFT_MAX 21
#define ENGINE_FAST_ACC_MAX (INT32_C(1) << 29)

/*
 * RoundingDivideByPOT as one add and one shift, (1) above: x / 2^e rounded half away from zero,
 * for 1 <= e <= 31 and x <= INT32_MAX - 2^(e-1) (so that the sum does not overflow). Equal to
 * engine_rounding_divide_by_pot(x, e) there (tests/firmware/test_requant.py: exhaustively over
 * a range of x for every e, and on random x).
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

/* ------------------------------------------------------------------------------------------
 * Per-layer set-up: whether a layer qualifies, and each output channel's parameters. */

/*
 * 1 if one layer (n output channels) may use the fast requantisation: every multiplier >= 0,
 * every shift a right shift in [1, ENGINE_FAST_SHIFT_MAX], the offset an int8 zero point, the
 * activation the whole int8 range, and every accumulator bounded by ENGINE_FAST_ACC_MAX:
 * |acc| <= |bias| + taps * 128 * 256 (|weight| <= 128, |input + input_offset| <= 256).
 * bias may be NULL (no bias).
 */
static inline int engine_rq_fast_ok(const int32_t *mult, const int32_t *shift, const int32_t *bias,
                                    int n, int taps, int32_t offset, int32_t act_min,
                                    int32_t act_max)
{
    if ((act_min != INT8_MIN) || (act_max != INT8_MAX) || (offset < INT8_MIN) ||
        (offset > INT8_MAX)) {
        return 0;
    }
    const int64_t bias_max = (int64_t)ENGINE_FAST_ACC_MAX - (int64_t)taps * 128 * 256;
    for (int i = 0; i < n; ++i) {
        const int64_t b = (bias != NULL) ? bias[i] : 0;
        if ((mult[i] < 0) || (shift[i] > -1) || (shift[i] < -ENGINE_FAST_SHIFT_MAX) ||
            (b > bias_max) || (-b > bias_max)) {
            return 0;
        }
    }
    return 1;
}

/* One output channel of a layer that passed engine_rq_fast_ok: doubled bias and
 * engine_requant_fast_x2's parameters. */
typedef struct {
    int32_t bias2;
    int32_t mult;
    int32_t round; /* engine_requant_fast_round(shift, output offset) */
    int32_t shift; /* right shift, >= 1 */
} engine_chan_t;

/* Channel c's parameters from the layer's arrays (bias may be NULL) and output offset. */
static inline engine_chan_t engine_chan_setup(const int32_t *bias, const int32_t *mult,
                                              const int32_t *shift, int32_t offset, int c)
{
    engine_chan_t q;
    q.bias2 = 2 * ((bias != NULL) ? bias[c] : 0);
    q.mult = mult[c];
    q.shift = -shift[c];
    q.round = engine_requant_fast_round((int)q.shift, offset);
    return q;
}

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_REQUANT_FAST_H */
