/*
 * engine_tile.h - the tile of the fused kernels (separable_s8.c, shortcut_add_s8.c) and the
 * loops that fill it (depthwise rows) and consume it (pointwise dot products). Private to the
 * kernels. Their argument checks are in engine_kernels_util.h, the fast requantisation and its
 * per-layer set-up in engine_requant_fast.h.
 *
 * The tile. A fused kernel never stores a whole intermediate tensor: it computes a few
 * positions ("rows") of a depthwise output, keeps them in a small tile on the stack, and runs
 * the pointwise convolution over that tile. A tile row holds one position's channels as
 * int16 values v = y - zero_point(y) = y + pointwise input_offset (the exact path) or twice
 * that (the fast path: the pointwise accumulator then comes out doubled, as
 * engine_requant_fast_x2 wants it), so the pointwise dot product needs no offset arithmetic.
 * Rows are whole 32-bit words (ENGINE_TILE_WORDS in all), and within a row channels come in
 * groups of four, stored in the order that lets one SXTB16 pair a group's weights with them:
 *     halfwords [4g + 0, 4g + 1, 4g + 2, 4g + 3] = channels [4g, 4g + 2, 4g + 1, 4g + 3]
 * because SXTB16(w) = (w[4g], w[4g + 2]) and SXTB16(w ror 8) = (w[4g + 1], w[4g + 3]) for the
 * int8 weight word w = w[4g..4g+3]. Channels past the last whole group follow in natural
 * order. The portable build uses the same layout, so both builds share every index.
 *
 * Accumulation wraps modulo 2^32 (SMLAD does; the portable code adds in uint32_t), so the
 * result equals TFLM's int32 accumulator whenever TFLM's own sum does not overflow (which TFLM
 * requires), whatever the order of the terms.
 */
#ifndef ENGINE_TILE_H
#define ENGINE_TILE_H

#include <stdint.h>
#include <string.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"
#include "engine_requant.h"
#include "engine_requant_fast.h"

#if defined(__GNUC__)
#define ENGINE_ALWAYS_INLINE inline __attribute__((always_inline))
#define ENGINE_NOINLINE __attribute__((noinline))
/* The exact paths run only for parameters TFLite does not produce: compiled for size. */
#define ENGINE_COLD __attribute__((noinline, cold))
/* 1 where x is a compile-time constant after inlining: picks code for specialised instances. */
#define ENGINE_IS_CONSTANT(x) __builtin_constant_p(x)
#else
#define ENGINE_ALWAYS_INLINE inline
#define ENGINE_NOINLINE
#define ENGINE_COLD
#define ENGINE_IS_CONSTANT(x) 0
#endif

/* Stack tile of the fused kernels: 1 KB, at least two rows of ENGINE_FUSED_MAX_CHANNELS. */
#define ENGINE_TILE_WORDS 256

/* Words of one tile row of `channels` int16 values. */
static inline int engine_tile_row_words(int channels)
{
    return (channels + 1) / 2;
}

/* Halfword index of channel c within a tile row (see the layout above). */
static inline int engine_tile_index(int c, int channels)
{
    static const uint8_t order[4] = {0, 2, 1, 3};
    return (c < (channels & ~3)) ? ((c & ~3) | order[c & 3]) : c;
}

static inline int32_t engine_tile_get(const uint32_t *row, int index)
{
    int16_t v;
    memcpy(&v, (const uint8_t *)row + 2 * index, sizeof v);
    return v;
}

/* int8 -> [-128, 127]: SSAT on a DSP core. */
static inline int32_t engine_sat_s8(int32_t v)
{
#if defined(__ARM_FEATURE_DSP)
    return __ssat(v, 8);
#else
    return (v < -128) ? -128 : ((v > 127) ? 127 : v);
#endif
}

#if defined(__ARM_FEATURE_DSP)
/* Two words of a tile row (word-aligned) with one LDRD: one instruction instead of the two
 * LDRs GCC emits for a 64-bit load on this core (the same 3 cycles as two neighbouring LDRs,
 * ARM DDI 0439B 3.3.1: fewer instructions and code fetches, not fewer cycles). The operand is
 * the 64-bit object, so the address GCC forms for it suits LDRD. */
static ENGINE_ALWAYS_INLINE void engine_ldrd(const uint32_t *p, uint32_t *lo, uint32_t *hi)
{
    uint32_t l;
    uint32_t h;
    __asm__("ldrd %0, %1, %2" : "=r"(l), "=r"(h) : "m"(*(const uint64_t *)(const void *)p));
    *lo = l;
    *hi = h;
}

/* a + w[0..3] . row[0..1] (one group of four, tile order) for two rows: SXTB16 widens the
 * weights once for both. */
static ENGINE_ALWAYS_INLINE void engine_group2(uint32_t w4, const uint32_t *row_a,
                                               const uint32_t *row_b, int32_t *a, int32_t *b)
{
    const int32_t w02 = (int32_t)__sxtb16(w4);
    const int32_t w13 = engine_sxtb16_ror8(w4);
    uint32_t a0, a1, b0, b1;
    engine_ldrd(row_a, &a0, &a1);
    engine_ldrd(row_b, &b0, &b1);
    *a = __smlad(w13, (int32_t)a1, __smlad(w02, (int32_t)a0, *a));
    *b = __smlad(w13, (int32_t)b1, __smlad(w02, (int32_t)b0, *b));
}
#endif

/*
 * Two dot products sharing one weight vector: *acc_a += w . row_a, *acc_b += w . row_b over
 * `channels` inputs (w: int8 [channels], natural order; rows: tile rows). Groups of four come
 * two at a time (eight channels per loop iteration).
 */
static ENGINE_ALWAYS_INLINE void engine_dot2(const int8_t *w, const uint32_t *row_a,
                                             const uint32_t *row_b, int channels, int32_t *acc_a,
                                             int32_t *acc_b)
{
    const int groups = channels >> 2;
    int g = 0;
#if defined(__ARM_FEATURE_DSP)
    int32_t a = *acc_a;
    int32_t b = *acc_b;
    for (; g + 2 <= groups; g += 2) {
        engine_group2(engine_load_u32(w + 4 * g), row_a + 2 * g, row_b + 2 * g, &a, &b);
        engine_group2(engine_load_u32(w + 4 * g + 4), row_a + 2 * g + 2, row_b + 2 * g + 2, &a, &b);
    }
    if (g < groups) {
        engine_group2(engine_load_u32(w + 4 * g), row_a + 2 * g, row_b + 2 * g, &a, &b);
    }
    uint32_t ua = (uint32_t)a;
    uint32_t ub = (uint32_t)b;
#else
    uint32_t ua = (uint32_t)*acc_a;
    uint32_t ub = (uint32_t)*acc_b;
    for (; g < groups; ++g) {
        for (int c = 4 * g; c < 4 * g + 4; ++c) {
            const int32_t wc = w[c];
            const int index = engine_tile_index(c, channels);
            ua += (uint32_t)(wc * engine_tile_get(row_a, index));
            ub += (uint32_t)(wc * engine_tile_get(row_b, index));
        }
    }
#endif
    for (int c = 4 * groups; c < channels; ++c) {
        const int32_t wc = w[c];
        ua += (uint32_t)(wc * engine_tile_get(row_a, c));
        ub += (uint32_t)(wc * engine_tile_get(row_b, c));
    }
    *acc_a = (int32_t)ua;
    *acc_b = (int32_t)ub;
}

/* One dot product: acc + w . row (layout as engine_dot2). */
static inline int32_t engine_dot1(const int8_t *w, const uint32_t *row, int channels, int32_t acc)
{
    const int groups = channels >> 2;
    uint32_t a = (uint32_t)acc;
    for (int g = 0; g < groups; ++g) {
#if defined(__ARM_FEATURE_DSP)
        const uint32_t w4 = engine_load_u32(w + 4 * g);
        a = (uint32_t)__smlad((int32_t)__sxtb16(w4), (int32_t)row[2 * g], (int32_t)a);
        a = (uint32_t)__smlad(engine_sxtb16_ror8(w4), (int32_t)row[2 * g + 1], (int32_t)a);
#else
        for (int c = 4 * g; c < 4 * g + 4; ++c) {
            a += (uint32_t)(w[c] * engine_tile_get(row, engine_tile_index(c, channels)));
        }
#endif
    }
    for (int c = 4 * groups; c < channels; ++c) {
        a += (uint32_t)(w[c] * engine_tile_get(row, c));
    }
    return (int32_t)a;
}

/* floor(a / b) for b > 0. */
static inline int engine_floor_div(int a, int b)
{
    return (a >= 0) ? a / b : -((b - 1 - a) / b);
}

static inline void engine_store_s16(uint8_t *dst, int32_t value)
{
    const int16_t v = (int16_t)value;
    memcpy(dst, &v, sizeof v);
}

/* Rows j_lo .. j_hi - 1 of a run of depthwise positions whose taps are all in range:
 * 0 <= origin0 + j * step_in <= len_in - kernel. */
static inline void engine_interior_rows(int origin0, int step_in, int kernel, int len_in, int rows,
                                        int *j_lo, int *j_hi)
{
    int lo = (origin0 >= 0) ? 0 : (step_in - 1 - origin0) / step_in;
    int hi = engine_floor_div(len_in - kernel - origin0, step_in) + 1;
    lo = (lo < rows) ? lo : rows;
    hi = (hi < lo) ? lo : ((hi < rows) ? hi : rows);
    *j_lo = lo;
    *j_hi = hi;
}

/* Depthwise accumulator of channel c at input origin `origin`, TFLM's way: taps outside
 * [0, len_in) skipped, bias added last (wrapping, so never undefined). */
static inline int32_t engine_dw_acc(const engine_separable_s8_t *u, const int8_t *in, int len_in,
                                    int origin, int c)
{
    const int channels = u->in_channels;
    uint32_t acc = 0;
    for (int k = 0; k < u->kernel; ++k) {
        const int t = origin + k;
        if ((t >= 0) && (t < len_in)) {
            const int32_t x = in[t * channels + c] + u->dw_input_offset;
            acc += (uint32_t)(u->dw_filter[k * channels + c] * x);
        }
    }
    return (int32_t)(acc + (uint32_t)((u->dw_bias != NULL) ? u->dw_bias[c] : 0));
}

/* ------------------------------------------------------------------------------------------
 * The exact path: TFLM's requantisation formula, any parameters the kernels accept. */

/* TFLM's requantisation of one channel: clamp(MultiplyByQuantizedMultiplier + offset). */
static inline int32_t engine_rq_exact(int32_t acc, int32_t mult, int32_t shift, int32_t offset,
                                      int32_t act_min, int32_t act_max)
{
    const int32_t v = engine_multiply_by_quantized_multiplier(acc, mult, (int)shift) + offset;
    return engine_clamp_s8(v, act_min, act_max);
}

/*
 * Exact path: depthwise outputs of unit u at positions p = p_first + j * p_step, j = 0 ..
 * rows - 1, into tile row j as y - dw_output_offset.
 */
static inline void engine_dw_rows_exact(const engine_separable_s8_t *u, const int8_t *in,
                                        int len_in, int p_first, int p_step, int rows,
                                        uint32_t *tile)
{
    const int channels = u->in_channels;
    const int row_bytes = 4 * engine_tile_row_words(channels);
    const int step_in = p_step * u->stride;
    const int origin0 = p_first * u->stride - u->pad_left;
    for (int c = 0; c < channels; ++c) {
        uint8_t *dst = (uint8_t *)tile + 2 * engine_tile_index(c, channels);
        for (int j = 0; j < rows; ++j) {
            const int32_t acc = engine_dw_acc(u, in, len_in, origin0 + j * step_in, c);
            const int32_t y = engine_rq_exact(acc, u->dw_mult[c], u->dw_shift[c],
                                              u->dw_output_offset, u->dw_act_min, u->dw_act_max);
            engine_store_s16(dst + j * row_bytes, y - u->dw_output_offset);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * The fast path (every layer passed engine_rq_fast_ok): doubled accumulators, one SMMLAR per
 * requantisation, tiles holding 2 * (y - zero point). The hot loops are small functions with
 * few live values (so that every value stays in a register), specialised on the channel count
 * where it sets a stride or a dot-product length. */

/* Doubled accumulator -> int8 output (as int32): the activation range is the whole of int8. */
static ENGINE_ALWAYS_INLINE int32_t engine_rqf_apply(int32_t acc2, int32_t mult, int32_t round,
                                                     int32_t shift)
{
    return engine_sat_s8(engine_requant_fast_x2(acc2, mult, round, (int)shift));
}

/* engine_rqf_apply with one channel's parameters (engine_chan_setup). */
static ENGINE_ALWAYS_INLINE int32_t engine_chan_apply(int32_t acc2, const engine_chan_t *q)
{
    return engine_rqf_apply(acc2, q->mult, q->round, q->shift);
}

/* One depthwise channel at interior positions: doubled taps, doubled bias with the input
 * offset folded in (bias + sum_k w_k (x_k + offset) = (bias + offset sum_k w_k) + sum_k w_k x_k,
 * equal modulo 2^32, so equal), requantisation, and 2 * output offset for the tile. */
typedef struct {
    int32_t w0;
    int32_t w1;
    int32_t w2;
    int32_t bias2;
    int32_t mult;
    int32_t round;
    int32_t shift;
    int32_t mid2;
} engine_dw_chan_t;

/* Kernel-1 depthwise over n rows: x advances by x_step bytes, dst (a tile column) by row_bytes. */
static ENGINE_ALWAYS_INLINE void engine_dw1_run(const int8_t *x, uint8_t *dst, int n,
                                                const engine_dw_chan_t *p, int x_step,
                                                const int row_bytes)
{
    const int32_t w0 = p->w0;
    const int32_t bias2 = p->bias2;
    const int32_t mult = p->mult;
    const int32_t round = p->round;
    const int32_t shift = p->shift;
    const int32_t mid2 = p->mid2;
    for (int i = 0; i < n; ++i) {
        const int32_t y = engine_rqf_apply(bias2 + w0 * *x, mult, round, shift);
        x += x_step;
        engine_store_s16(dst, 2 * y - mid2);
        dst += row_bytes;
    }
}

/*
 * Fast path: depthwise outputs into tile rows 0 .. rows - 1 (as 2 * (y - dw_output_offset)),
 * row j from input origin origin0 + j * step_in (taps outside [0, len_in) skipped). Channel by
 * channel, so a channel's weights and requantisation are set up once per tile. Interior rows
 * go to run(x, dst, n, &chan, channel count) (the caller's specialised loops); border rows are
 * computed here, TFLM's way.
 */
typedef void (*engine_dw_run_fn)(const int8_t *x, uint8_t *dst, int n, const engine_dw_chan_t *p,
                                 int x_step, int row_bytes);

static inline void engine_dw_rows_fast(const engine_separable_s8_t *u, const int8_t *in, int len_in,
                                       int origin0, int step_in, int rows, uint32_t *tile,
                                       engine_dw_run_fn run)
{
    const int channels = u->in_channels;
    const int kernel = u->kernel;
    const int row_bytes = 4 * engine_tile_row_words(channels);
    int j_lo;
    int j_hi;
    engine_interior_rows(origin0, step_in, kernel, len_in, rows, &j_lo, &j_hi);
    for (int c = 0; c < channels; ++c) {
        engine_dw_chan_t p;
        const engine_chan_t q =
            engine_chan_setup(u->dw_bias, u->dw_mult, u->dw_shift, u->dw_output_offset, c);
        p.mult = q.mult;
        p.round = q.round;
        p.shift = q.shift;
        p.mid2 = 2 * u->dw_output_offset;
        uint8_t *const dst0 = (uint8_t *)tile + 2 * engine_tile_index(c, channels);
        for (int j = 0; j < rows; ++j) { /* border rows */
            if (j == j_lo) {
                j = j_hi;
                if (j == rows) {
                    break;
                }
            }
            const int32_t acc = engine_dw_acc(u, in, len_in, origin0 + j * step_in, c);
            const int32_t y = engine_rqf_apply(2 * acc, p.mult, p.round, p.shift);
            engine_store_s16(dst0 + j * row_bytes, 2 * y - p.mid2);
        }
        if (j_lo >= j_hi) {
            continue;
        }
        const int8_t *w = u->dw_filter + c; /* tap k at w[k * channels] */
        uint32_t wsum = 0;
        for (int k = 0; k < kernel; ++k) {
            wsum += (uint32_t)w[k * channels];
        }
        p.bias2 = (int32_t)((uint32_t)q.bias2 + 2 * wsum * (uint32_t)u->dw_input_offset);
        p.w0 = 2 * w[0];
        p.w1 = (kernel > 1) ? 2 * w[channels] : 0;
        p.w2 = (kernel > 2) ? 2 * w[2 * channels] : 0;
        const int8_t *x = in + (origin0 + j_lo * step_in) * channels + c;
        uint8_t *dst = dst0 + j_lo * row_bytes;
        const int n = j_hi - j_lo;
        if (((kernel == 3) && (step_in == 1)) || (kernel == 1)) {
            run(x, dst, n, &p, step_in * channels, row_bytes);
        } else { /* any other kernel and stride: the plain sum */
            for (int i = 0; i < n; ++i) {
                int32_t a = 0;
                for (int k = 0; k < kernel; ++k) {
                    a += w[k * channels] * x[k * channels];
                }
                x += step_in * channels;
                const int32_t y = engine_rqf_apply(p.bias2 + 2 * a, p.mult, p.round, p.shift);
                engine_store_s16(dst, 2 * y - p.mid2);
                dst += row_bytes;
            }
        }
    }
}

/*
 * Fast pointwise convolution of ONE output channel over `pairs` pairs of tile rows (row, row +
 * row_words, row + 2 * row_words, ...): pooled, one output per pair from the larger
 * accumulator (the fast requantisation is non-decreasing because multipliers are >= 0, so this
 * equals max(requant(a), requant(b)), saturation included); else one output per row. Outputs
 * are dst_step bytes apart. The channel's parameters stay in registers for the whole run, and
 * with four or eight input channels so do its widened weights.
 */
static ENGINE_ALWAYS_INLINE void engine_pw_run(const int8_t *w, const uint32_t *row, int pairs,
                                               int8_t *dst, int dst_step, const engine_chan_t *q,
                                               const int pooled, const int c_in)
{
    const int row_words = engine_tile_row_words(c_in);
    const int32_t bias2 = q->bias2;
    const int32_t mult = q->mult;
    const int32_t round = q->round;
    const int32_t shift = q->shift;
    const uint32_t *const end = row + 2 * row_words * pairs;
#if defined(__ARM_FEATURE_DSP)
    if (ENGINE_IS_CONSTANT(c_in) && ((c_in == 4) || (c_in == 8))) {
        const uint32_t w4a = engine_load_u32(w);
        const uint32_t w4b = (c_in == 8) ? engine_load_u32(w + 4) : 0;
        const int32_t w02a = (int32_t)__sxtb16(w4a);
        const int32_t w13a = engine_sxtb16_ror8(w4a);
        const int32_t w02b = (int32_t)__sxtb16(w4b);
        const int32_t w13b = engine_sxtb16_ror8(w4b);
        for (; row != end; row += 2 * row_words) {
            const uint32_t *rb = row + row_words;
            uint32_t x0, x1, y0, y1;
            engine_ldrd(row, &x0, &x1);
            engine_ldrd(rb, &y0, &y1);
            int32_t a = __smlad(w13a, (int32_t)x1, __smlad(w02a, (int32_t)x0, bias2));
            int32_t b = __smlad(w13a, (int32_t)y1, __smlad(w02a, (int32_t)y0, bias2));
            if (c_in == 8) {
                engine_ldrd(row + 2, &x0, &x1);
                engine_ldrd(rb + 2, &y0, &y1);
                a = __smlad(w13b, (int32_t)x1, __smlad(w02b, (int32_t)x0, a));
                b = __smlad(w13b, (int32_t)y1, __smlad(w02b, (int32_t)y0, b));
            }
            if (pooled) {
                *dst = (int8_t)engine_rqf_apply((a > b) ? a : b, mult, round, shift);
                dst += dst_step;
            } else {
                dst[0] = (int8_t)engine_rqf_apply(a, mult, round, shift);
                dst[dst_step] = (int8_t)engine_rqf_apply(b, mult, round, shift);
                dst += 2 * dst_step;
            }
        }
        return;
    }
#endif
    for (; row != end; row += 2 * row_words) {
        int32_t a = bias2;
        int32_t b = bias2;
        engine_dot2(w, row, row + row_words, c_in, &a, &b);
        if (pooled) {
            *dst = (int8_t)engine_rqf_apply((a > b) ? a : b, mult, round, shift);
            dst += dst_step;
        } else {
            dst[0] = (int8_t)engine_rqf_apply(a, mult, round, shift);
            dst[dst_step] = (int8_t)engine_rqf_apply(b, mult, round, shift);
            dst += 2 * dst_step;
        }
    }
}

/*
 * engine_pw_run for c_in a multiple of 4 (specialised instances only: the group loop unrolls
 * completely): four rows (two pairs) per iteration, so each widened weight serves four rows;
 * a last lone pair goes through engine_pw_run.
 */
static ENGINE_ALWAYS_INLINE void engine_pw_run4(const int8_t *w, const uint32_t *row, int pairs,
                                                int8_t *dst, int dst_step, const engine_chan_t *q,
                                                const int pooled, const int c_in)
{
#if defined(__ARM_FEATURE_DSP)
    const int rw = engine_tile_row_words(c_in);
    const int32_t bias2 = q->bias2;
    const uint32_t *const end = row + 4 * rw * (pairs / 2);
    for (; row != end; row += 4 * rw) {
        int32_t a0 = bias2;
        int32_t a1 = bias2;
        int32_t a2 = bias2;
        int32_t a3 = bias2;
#pragma GCC unroll 8
        for (int g = 0; g < c_in / 4; ++g) {
            const uint32_t u = engine_load_u32(w + 4 * g);
            const int32_t w02 = (int32_t)__sxtb16(u);
            const int32_t w13 = engine_sxtb16_ror8(u);
            const uint32_t *r = row + 2 * g;
            uint32_t x0, x1;
            engine_ldrd(r, &x0, &x1);
            a0 = __smlad(w13, (int32_t)x1, __smlad(w02, (int32_t)x0, a0));
            engine_ldrd(r + rw, &x0, &x1);
            a1 = __smlad(w13, (int32_t)x1, __smlad(w02, (int32_t)x0, a1));
            engine_ldrd(r + 2 * rw, &x0, &x1);
            a2 = __smlad(w13, (int32_t)x1, __smlad(w02, (int32_t)x0, a2));
            engine_ldrd(r + 3 * rw, &x0, &x1);
            a3 = __smlad(w13, (int32_t)x1, __smlad(w02, (int32_t)x0, a3));
        }
        if (pooled) {
            dst[0] = (int8_t)engine_chan_apply((a0 > a1) ? a0 : a1, q);
            dst[dst_step] = (int8_t)engine_chan_apply((a2 > a3) ? a2 : a3, q);
            dst += 2 * dst_step;
        } else {
            dst[0] = (int8_t)engine_chan_apply(a0, q);
            dst[dst_step] = (int8_t)engine_chan_apply(a1, q);
            dst[2 * dst_step] = (int8_t)engine_chan_apply(a2, q);
            dst[3 * dst_step] = (int8_t)engine_chan_apply(a3, q);
            dst += 4 * dst_step;
        }
    }
    if (pairs & 1) {
        engine_pw_run(w, row, 1, dst, dst_step, q, pooled, c_in);
    }
#else
    engine_pw_run(w, row, pairs, dst, dst_step, q, pooled, c_in);
#endif
}

/*
 * A whole tile's pointwise layer of unit u: `pairs` pairs of rows from `tile` into out
 * [rows][out_channels] (one output row per pooled pair, two per unpooled pair), output channel
 * by output channel (its parameters set up once per tile). Specialised instances with 16 or
 * more input channels take four rows per iteration.
 */
static ENGINE_ALWAYS_INLINE void engine_pw_tile_rows(const engine_separable_s8_t *u,
                                                     const uint32_t *tile, int pairs, int8_t *out,
                                                     const int pooled, const int c_in)
{
    const int c_out = u->out_channels;
    for (int oc = 0; oc < c_out; ++oc) {
        const engine_chan_t q =
            engine_chan_setup(u->pw_bias, u->pw_mult, u->pw_shift, u->pw_output_offset, oc);
        const int8_t *w = u->pw_filter + oc * c_in;
        if (ENGINE_IS_CONSTANT(c_in) && (c_in % 4 == 0) && (c_in >= 16)) {
            engine_pw_run4(w, tile, pairs, out + oc, c_out, &q, pooled, c_in);
        } else {
            engine_pw_run(w, tile, pairs, out + oc, c_out, &q, pooled, c_in);
        }
    }
}

/* One tile row (the lone last one of a run) of unit u into every output channel. */
static inline void engine_pw_row(const engine_separable_s8_t *u, const uint32_t *row, int8_t *dst)
{
    const int c_in = u->in_channels;
    for (int oc = 0; oc < u->out_channels; ++oc) {
        const engine_chan_t q =
            engine_chan_setup(u->pw_bias, u->pw_mult, u->pw_shift, u->pw_output_offset, oc);
        dst[oc] = (int8_t)engine_chan_apply(
            engine_dot1(u->pw_filter + oc * c_in, row, c_in, q.bias2), &q);
    }
}

#endif /* ENGINE_TILE_H */
