/*
 * engine_kernels_util.h - private helpers shared by the kernel files (not a public header):
 * argument checks (run once per call, never in a hot loop) and word-sized loads and DSP
 * widening instructions.
 */
#ifndef ENGINE_KERNELS_UTIL_H
#define ENGINE_KERNELS_UTIL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine_kernels.h"
#include "engine_requant.h"
#include "engine_requant_fast.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* 1 if [act_min, act_max] is a non-empty sub-range of int8, else 0. */
static inline int engine_act_range_valid_s8(int32_t act_min, int32_t act_max)
{
    return (act_min >= INT8_MIN) && (act_min <= act_max) && (act_max <= INT8_MAX);
}

/* 1 if every shift[0..n) lies in [lo, hi], else 0. */
static inline int engine_shifts_valid(const int32_t *shift, int n, int32_t lo, int32_t hi)
{
    for (int i = 0; i < n; ++i) {
        if ((shift[i] < lo) || (shift[i] > hi)) {
            return 0;
        }
    }
    return 1;
}

/* v clamped to [lo, hi]; [lo, hi] must lie within int8. */
static inline int8_t engine_clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    v = (v < lo) ? lo : v;
    v = (v > hi) ? hi : v;
    return (int8_t)v;
}

/*
 * Window geometry check of the 1-D sliding kernels: 1 if every input index
 * t_out * stride - pad_left + k (0 <= t_out < len_out, 0 <= k < window) and every
 * len * channels product fits in int, else 0. Sizes must already be >= 1, pad_left >= 0.
 */
static inline int engine_window_geometry_valid(int len_in, int channels, int window, int stride,
                                               int len_out)
{
    return (len_in <= INT_MAX / channels) && (len_out <= INT_MAX / channels) &&
           (window <= INT_MAX / channels) && (len_out - 1 <= (INT_MAX - (window - 1)) / stride);
}

/*
 * Taps [*k_start, *k_end) of a window starting at input index `origin` that fall inside
 * [0, len_in) (empty range when none does). origin >= -INT_MAX.
 */
static inline void engine_window_taps(int origin, int window, int len_in, int *k_start, int *k_end)
{
    *k_start = (origin < 0) ? -origin : 0;
    *k_end = (origin < len_in - window) ? window : len_in - origin;
}

/* The argument checks shared by the pooling kernels (max and average). */
static inline int engine_pool_args_valid(const int8_t *in, const int8_t *out, int len_in,
                                         int channels, int window, int stride, int pad_left,
                                         int len_out, int32_t act_min, int32_t act_max)
{
    return (in != NULL) && (out != NULL) && (len_in >= 1) && (channels >= 1) && (window >= 1) &&
           (stride >= 1) && (pad_left >= 0) && (len_out >= 1) &&
           engine_window_geometry_valid(len_in, channels, window, stride, len_out) &&
           engine_act_range_valid_s8(act_min, act_max);
}

/* ------------------------------------------------------------------------------------------
 * Checks shared by the fused kernels. */

/* Offsets the fused kernels accept: +-(int8 zero point), i.e. [-128, 128]. */
static inline int engine_offset_valid(int32_t offset)
{
    return (offset >= -128) && (offset <= 128);
}

/* Pointers, channel counts, geometry basics, shifts, activation ranges, offsets of a unit. */
static inline int engine_separable_unit_valid(const engine_separable_s8_t *u)
{
    if ((u == NULL) || (u->dw_filter == NULL) || (u->dw_mult == NULL) || (u->dw_shift == NULL) ||
        (u->pw_filter == NULL) || (u->pw_mult == NULL) || (u->pw_shift == NULL)) {
        return 0;
    }
    if ((u->in_channels < 1) || (u->in_channels > ENGINE_FUSED_MAX_CHANNELS) ||
        (u->out_channels < 1) || (u->out_channels > ENGINE_FUSED_MAX_CHANNELS) || (u->kernel < 1) ||
        (u->stride < 1) || (u->pad_left < 0)) {
        return 0;
    }
    return engine_offset_valid(u->dw_input_offset) && engine_offset_valid(u->dw_output_offset) &&
           engine_offset_valid(u->pw_output_offset) &&
           engine_act_range_valid_s8(u->dw_act_min, u->dw_act_max) &&
           engine_act_range_valid_s8(u->pw_act_min, u->pw_act_max) &&
           engine_shifts_valid(u->dw_shift, u->in_channels, ENGINE_SHIFT_MIN, ENGINE_SHIFT_MAX) &&
           engine_shifts_valid(u->pw_shift, u->out_channels, ENGINE_SHIFT_MIN, ENGINE_SHIFT_MAX);
}

/* 1 if both layers of a unit may use the fast requantisation (engine_requant_fast.h). */
static inline int engine_unit_fast_ok(const engine_separable_s8_t *u)
{
    return engine_rq_fast_ok(u->dw_mult, u->dw_shift, u->dw_bias, u->in_channels, u->kernel,
                             u->dw_output_offset, u->dw_act_min, u->dw_act_max) &&
           engine_rq_fast_ok(u->pw_mult, u->pw_shift, u->pw_bias, u->out_channels, u->in_channels,
                             u->pw_output_offset, u->pw_act_min, u->pw_act_max);
}

/* Four bytes as one word, at any alignment. */
static inline uint32_t engine_load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* one LDR: the M4 allows unaligned word loads */
    return v;
}

/* Widening helpers of the DSP paths (Cortex-M4/M7/M33 with the DSP extension). */
#if defined(__ARM_FEATURE_DSP)

/* PKHBT: the low halfword of lo and the low halfword of hi as (lo, hi) int16 pair (the compiler
 * does not form it from C here). */
static inline int32_t engine_pkhbt(int32_t lo, int32_t hi)
{
    int32_t result;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(result) : "r"(lo), "r"(hi));
    return result;
}

/* SXTB16 of w rotated right by 8 bits: bytes 1 and 3 of w as two int16 (ACLE's __sxtb16 has
 * no rotation operand; this is the one-instruction form). */
static inline int32_t engine_sxtb16_ror8(uint32_t w)
{
    int32_t result;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(result) : "r"(w));
    return result;
}

/* SXTAB16 of w rotated right by 8 bits: (a.lo + w[1], a.hi + w[3]) as two int16. */
static inline int32_t engine_sxtab16_ror8(int32_t a, uint32_t w)
{
    int32_t result;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(result) : "r"(a), "r"(w));
    return result;
}
#endif

#endif /* ENGINE_KERNELS_UTIL_H */
