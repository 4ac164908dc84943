/*
 * separable_s8.c - fused depthwise -> pointwise (-> max pool 2/2) unit, int8. Bit-exact with
 * engine_depthwise_conv_s8, engine_conv_1x1_s8 and engine_max_pool_s8 run one after the other;
 * semantics, in-place rule and ranges: see engine_separable_s8 in engine_kernels.h.
 *
 * Work is done tile by tile: the depthwise outputs of a run of positions go to a 1 KB stack
 * tile (engine_tile.h), then every output channel runs over the tile. With pooling a
 * step owns two positions; both dot products share the widened weights, and in the fast path
 * only the larger accumulator is requantised (the fast requantisation is non-decreasing in the
 * accumulator because multipliers are >= 0, so requant(max(a, b)) = max(requant(a),
 * requant(b)), saturation included). The exact path requantises both, like the composition.
 */
#include <stddef.h>
#include <stdint.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"
#include "engine_tile.h"

/*
 * The in-place rule of engine_separable_s8: 1 if out and in do not overlap, or out starts d >= 0
 * bytes before in and every output step u in [1, len_out) finds the rows it reads intact:
 * f(u) = u * c_out - c_in * max(0, q * stride * u - pad) <= d. f rises while q * stride * u <=
 * pad and is linear afterwards, so its maximum over [1, len_out - 1] is at u = 1, at the last u
 * of the rising part or the one after it, or at u = len_out - 1.
 */
static int engine_separable_alias_ok(const int8_t *in, int64_t in_bytes, const int8_t *out,
                                     int64_t out_bytes, int c_in, int c_out, int q, int stride,
                                     int pad, int len_out)
{
    const uintptr_t i0 = (uintptr_t)in;
    const uintptr_t o0 = (uintptr_t)out;
    if ((o0 + (uintptr_t)out_bytes <= i0) || (i0 + (uintptr_t)in_bytes <= o0)) {
        return 1;
    }
    if (o0 > i0) {
        return 0;
    }
    const int64_t d = (int64_t)(i0 - o0);
    const int64_t step = (int64_t)q * stride;
    const int64_t rise_end = (pad / q) / stride; /* floor(pad / step), in int arithmetic */
    const int64_t candidates[4] = {1, rise_end, rise_end + 1, len_out - 1};
    for (int i = 0; i < 4; ++i) {
        const int64_t u = candidates[i];
        if ((u < 1) || (u > len_out - 1)) {
            continue;
        }
        const int64_t first_row = (step * u > pad) ? step * u - pad : 0;
        if (u * c_out - (int64_t)c_in * first_row > d) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Exact path: any parameters; the composition's own arithmetic, one tile at a time. */

static ENGINE_COLD void engine_separable_exact(const engine_separable_s8_t *u, const int8_t *in,
                                               int len_in, int len_mid,
                                               const engine_max_pool2_s8_t *pool, int8_t *out,
                                               int len_out)
{
    const int c_in = u->in_channels;
    const int c_out = u->out_channels;
    const int q = (pool != NULL) ? 2 : 1;
    const int row_words = engine_tile_row_words(c_in);
    const int steps_per_tile = (ENGINE_TILE_WORDS / row_words) / q; /* >= 1 */
    uint32_t tile[ENGINE_TILE_WORDS];
    for (int t0 = 0; t0 < len_out; t0 += steps_per_tile) {
        const int steps = (len_out - t0 < steps_per_tile) ? len_out - t0 : steps_per_tile;
        const int p0 = q * t0;
        const int rows = (q * steps < len_mid - p0) ? q * steps : len_mid - p0;
        engine_dw_rows_exact(u, in, len_in, p0, 1, rows, tile);
        for (int oc = 0; oc < c_out; ++oc) {
            const int8_t *w = u->pw_filter + oc * c_in;
            const int32_t bias = (u->pw_bias != NULL) ? u->pw_bias[oc] : 0;
            for (int t = 0; t < steps; ++t) {
                int32_t y = INT8_MIN; /* max pool: max(-128, in-bound taps) */
                for (int r = q * t; (r < q * t + q) && (r < rows); ++r) {
                    const int32_t acc =
                        (int32_t)((uint32_t)engine_dot1(w, tile + r * row_words, c_in, 0) +
                                  (uint32_t)bias);
                    const int32_t v =
                        engine_rq_exact(acc, u->pw_mult[oc], u->pw_shift[oc], u->pw_output_offset,
                                        u->pw_act_min, u->pw_act_max);
                    y = (v > y) ? v : y;
                }
                if (pool != NULL) {
                    y = engine_clamp_s8(y, pool->act_min, pool->act_max);
                }
                out[(t0 + t) * c_out + oc] = (int8_t)y;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Fast path: the hot loops, specialised on the input channel count (1, 4, 8, 16, 32: strides
 * become immediates and dot products unroll); other counts run the same code with run-time
 * counts. */

/* Kernel-3, stride-1 depthwise over n consecutive rows: a sliding window, two outputs per
 * iteration so that no sample is moved between registers. On a DSP core the first two taps
 * are one SMLAD on (x[t-1], x[t]) packed by PKHBT, which keeps both weights in one register. */
static ENGINE_ALWAYS_INLINE void engine_dw3_run(const int8_t *x, uint8_t *dst, int n,
                                                const engine_dw_chan_t *p, const int x_step,
                                                const int row_bytes)
{
#if defined(__ARM_FEATURE_DSP)
    const int32_t w01 = engine_pkhbt(p->w0, p->w1);
#define ENGINE_DW3_ACC(xa, xb, xc) __smlabb(w2, (xc), __smlad(w01, engine_pkhbt((xa), (xb)), bias2))
#else
    const int32_t w0 = p->w0;
    const int32_t w1 = p->w1;
#define ENGINE_DW3_ACC(xa, xb, xc) (bias2 + w0 * (xa) + w1 * (xb) + w2 * (xc))
#endif
    const int32_t w2 = p->w2;
    const int32_t bias2 = p->bias2;
    const int32_t mult = p->mult;
    const int32_t round = p->round;
    const int32_t shift = p->shift;
    const int32_t mid2 = p->mid2;
    int32_t x0 = x[0];
    int32_t x1 = x[x_step];
    x += 2 * x_step;
    const uint8_t *const end = dst + (n & ~1) * row_bytes;
    while (dst != end) {
        const int32_t x2 = x[0];
        const int32_t x3 = x[x_step];
        x += 2 * x_step;
        const int32_t ya = engine_rqf_apply(ENGINE_DW3_ACC(x0, x1, x2), mult, round, shift);
        const int32_t yb = engine_rqf_apply(ENGINE_DW3_ACC(x1, x2, x3), mult, round, shift);
        engine_store_s16(dst, 2 * ya - mid2);
        engine_store_s16(dst + row_bytes, 2 * yb - mid2);
        dst += 2 * row_bytes;
        x0 = x2;
        x1 = x3;
    }
    if (n & 1) {
        const int32_t y = engine_rqf_apply(ENGINE_DW3_ACC(x0, x1, x[0]), mult, round, shift);
        engine_store_s16(dst, 2 * y - mid2);
    }
#undef ENGINE_DW3_ACC
}

#define ENGINE_DW3_RUN(c)                                                                          \
    static ENGINE_NOINLINE void engine_dw3_run_##c(const int8_t *x, uint8_t *dst, int n,           \
                                                   const engine_dw_chan_t *p, int x_step,          \
                                                   int row_bytes)                                  \
    {                                                                                              \
        (void)x_step;                                                                              \
        (void)row_bytes;                                                                           \
        engine_dw3_run(x, dst, n, p, c, 4 * ((c + 1) / 2));                                        \
    }
ENGINE_DW3_RUN(1)
ENGINE_DW3_RUN(4)
ENGINE_DW3_RUN(8)
ENGINE_DW3_RUN(16)
ENGINE_DW3_RUN(32)

static ENGINE_NOINLINE void engine_dw3_run_any(const int8_t *x, uint8_t *dst, int n,
                                               const engine_dw_chan_t *p, int x_step, int row_bytes)
{
    engine_dw3_run(x, dst, n, p, x_step, row_bytes);
}

static ENGINE_NOINLINE void engine_dw1_run_any(const int8_t *x, uint8_t *dst, int n,
                                               const engine_dw_chan_t *p, int x_step, int row_bytes)
{
    engine_dw1_run(x, dst, n, p, x_step, row_bytes);
}

/* Pointwise convolution (and pooling) of the pairs of tile rows of one tile, specialised on the
 * input channel count (pooled: the common case); other counts and unpooled units run the same
 * code with run-time counts. */
typedef void (*engine_pw_tile_fn)(const engine_separable_s8_t *u, const uint32_t *tile, int pairs,
                                  int pooled, int8_t *out);

#define ENGINE_PW_TILE(c)                                                                          \
    static ENGINE_NOINLINE void engine_pw_tile_##c(                                                \
        const engine_separable_s8_t *u, const uint32_t *tile, int pairs, int pooled, int8_t *out)  \
    {                                                                                              \
        (void)pooled;                                                                              \
        engine_pw_tile_rows(u, tile, pairs, out, 1, c);                                            \
    }
ENGINE_PW_TILE(4)
ENGINE_PW_TILE(8)
ENGINE_PW_TILE(16)
ENGINE_PW_TILE(32)

static ENGINE_NOINLINE void engine_pw_tile_any(const engine_separable_s8_t *u, const uint32_t *tile,
                                               int pairs, int pooled, int8_t *out)
{
    if (pooled) {
        engine_pw_tile_rows(u, tile, pairs, out, 1, u->in_channels);
    } else {
        engine_pw_tile_rows(u, tile, pairs, out, 0, u->in_channels);
    }
}

static void engine_separable_fast(const engine_separable_s8_t *u, const int8_t *in, int len_in,
                                  int len_mid, int pooled, int8_t *out, int len_out)
{
    const int c_in = u->in_channels;
    const int c_out = u->out_channels;
    const int row_words = engine_tile_row_words(c_in);
    const int q = pooled ? 2 : 1;
    const int steps_per_tile = (ENGINE_TILE_WORDS / row_words) / q; /* >= 1 */

    engine_dw_run_fn dw_run = NULL; /* NULL: the plain sum for other kernels and strides */
    if ((u->kernel == 3) && (u->stride == 1)) {
        dw_run = (c_in == 1)    ? engine_dw3_run_1
                 : (c_in == 4)  ? engine_dw3_run_4
                 : (c_in == 8)  ? engine_dw3_run_8
                 : (c_in == 16) ? engine_dw3_run_16
                 : (c_in == 32) ? engine_dw3_run_32
                                : engine_dw3_run_any;
    } else if (u->kernel == 1) {
        dw_run = engine_dw1_run_any;
    }
    const engine_pw_tile_fn pw_tile = !pooled        ? engine_pw_tile_any
                                      : (c_in == 4)  ? engine_pw_tile_4
                                      : (c_in == 8)  ? engine_pw_tile_8
                                      : (c_in == 16) ? engine_pw_tile_16
                                      : (c_in == 32) ? engine_pw_tile_32
                                                     : engine_pw_tile_any;
    uint32_t tile[ENGINE_TILE_WORDS];
    for (int t0 = 0; t0 < len_out; t0 += steps_per_tile) {
        const int steps = (len_out - t0 < steps_per_tile) ? len_out - t0 : steps_per_tile;
        const int p0 = q * t0;
        const int rows = (q * steps < len_mid - p0) ? q * steps : len_mid - p0;
        engine_dw_rows_fast(u, in, len_in, p0 * u->stride - u->pad_left, u->stride, rows, tile,
                            dw_run);
        const int pairs = rows / 2;
        int8_t *dst = out + t0 * c_out;
        pw_tile(u, tile, pairs, pooled, dst);
        if (2 * pairs < rows) { /* a lone last row: a SAME pool's last window, or odd */
            engine_pw_row(u, tile + 2 * pairs * row_words,
                          dst + (pooled ? pairs : 2 * pairs) * c_out);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * One input channel, pooled, 4 or 8 output channels (a network's first unit): the pointwise
 * layer then maps one int8 value v to out_channels int8 outputs, so a 256-row table of them
 * (the unit's pw_lut, precomputed by the converter and kept in flash, or else built on the
 * stack once per call, exactly as the fast path computes them) replaces it, and each pooled
 * output row is the bytewise max of two table rows: SSUB8 + SEL on four channels at once. */

#define ENGINE_LUT_MAX_CHANNELS 8

static int engine_separable_lut_ok(const engine_separable_s8_t *u, int pooled)
{
    return pooled && (u->in_channels == 1) && (u->kernel == 3) && (u->stride == 1) &&
           ((u->out_channels == 4) || (u->out_channels == 8));
}

/* Bytewise signed max of two words of four int8. */
static inline uint32_t engine_max_s8x4(uint32_t a, uint32_t b)
{
#if defined(__ARM_FEATURE_DSP)
    (void)__ssub8((int8x4_t)a, (int8x4_t)b); /* GE flags: a >= b, per byte */
    return (uint32_t)__sel((uint8x4_t)a, (uint8x4_t)b);
#else
    uint32_t r = 0;
    for (int k = 0; k < 32; k += 8) {
        const int8_t x = (int8_t)(a >> k);
        const int8_t y = (int8_t)(b >> k);
        r |= (uint32_t)(uint8_t)((x > y) ? x : y) << k;
    }
    return r;
#endif
}

/* The lookup-table path over lut ([256 * out_channels], as engine_separable_s8_t.pw_lut). */
static ENGINE_NOINLINE void engine_separable_lut_run(const engine_separable_s8_t *u,
                                                     const int8_t *lut, const int8_t *in,
                                                     int len_in, int len_mid, int8_t *out,
                                                     int len_out)
{
    const int c_out = u->out_channels;
    const int words = c_out / 4;
    /* A tile value is t = 2 * (v - mid): its table row is (t / 2 + mid + 128). */
    const int8_t *base = lut + (u->dw_output_offset + 128) * c_out;

    uint32_t tile[ENGINE_TILE_WORDS]; /* one channel: a row per word */
    const int steps_per_tile = ENGINE_TILE_WORDS / 2;
    for (int t0 = 0; t0 < len_out; t0 += steps_per_tile) {
        const int steps = (len_out - t0 < steps_per_tile) ? len_out - t0 : steps_per_tile;
        const int p0 = 2 * t0;
        const int rows = (2 * steps < len_mid - p0) ? 2 * steps : len_mid - p0;
        engine_dw_rows_fast(u, in, len_in, p0 - u->pad_left, 1, rows, tile, engine_dw3_run_1);
        int8_t *dst = out + t0 * c_out;
        for (int r = 0; r < rows; r += 2) {
            const int8_t *ra = base + (engine_tile_get(&tile[r], 0) / 2) * c_out;
            const int8_t *rb =
                (r + 1 < rows) ? base + (engine_tile_get(&tile[r + 1], 0) / 2) * c_out : ra;
            for (int k = 0; k < words; ++k) {
                const uint32_t m =
                    engine_max_s8x4(engine_load_u32(ra + 4 * k), engine_load_u32(rb + 4 * k));
                memcpy(dst + 4 * k, &m, sizeof m);
            }
            dst += c_out;
        }
    }
}

/* The lookup-table path without pw_lut: the table built on the stack, exactly as the fast path
 * computes the pointwise outputs. */
static ENGINE_NOINLINE void engine_separable_lut(const engine_separable_s8_t *u, const int8_t *in,
                                                 int len_in, int len_mid, int8_t *out, int len_out)
{
    const int c_out = u->out_channels;
    const int32_t mid = u->dw_output_offset;
    int8_t table[256 * ENGINE_LUT_MAX_CHANNELS];
    for (int oc = 0; oc < c_out; ++oc) {
        const engine_chan_t q =
            engine_chan_setup(u->pw_bias, u->pw_mult, u->pw_shift, u->pw_output_offset, oc);
        const int32_t w2 = 2 * u->pw_filter[oc];
        int8_t *col = table + oc;
        for (int v = -128; v <= 127; ++v) { /* pointwise input offset: -mid */
            col[(v + 128) * c_out] = (int8_t)engine_chan_apply(q.bias2 + w2 * (v - mid), &q);
        }
    }
    engine_separable_lut_run(u, table, in, len_in, len_mid, out, len_out);
}

engine_status_t engine_separable_s8(const engine_separable_s8_t *unit, const int8_t *in, int len_in,
                                    int len_mid, const engine_max_pool2_s8_t *pool, int8_t *out,
                                    int len_out)
{
    if ((in == NULL) || (out == NULL) || !engine_separable_unit_valid(unit)) {
        return ENGINE_ERR_ARG;
    }
    const int c_in = unit->in_channels;
    const int c_out = unit->out_channels;
    if ((len_in < 1) || (len_mid < 1) || (len_out < 1) ||
        !engine_window_geometry_valid(len_in, c_in, unit->kernel, unit->stride, len_mid) ||
        (len_mid > INT_MAX / c_out)) {
        return ENGINE_ERR_ARG;
    }
    const int q = (pool != NULL) ? 2 : 1;
    if (pool != NULL) {
        if (((len_out != len_mid / 2) && (len_out != (len_mid + 1) / 2)) ||
            !engine_act_range_valid_s8(pool->act_min, pool->act_max)) {
            return ENGINE_ERR_ARG;
        }
    } else if (len_out != len_mid) {
        return ENGINE_ERR_ARG;
    }
    if (!engine_separable_alias_ok(in, (int64_t)len_in * c_in, out, (int64_t)len_out * c_out, c_in,
                                   c_out, q, unit->stride, unit->pad_left, len_out)) {
        return ENGINE_ERR_ARG;
    }

    /* The pool's clamp after the pointwise one: the fast path needs both to be the whole int8
     * range (then SSAT is the only clamp). */
    const int pool_full =
        (pool == NULL) || ((pool->act_min == INT8_MIN) && (pool->act_max == INT8_MAX));
    if (pool_full && engine_unit_fast_ok(unit)) {
        if (engine_separable_lut_ok(unit, pool != NULL)) {
            if (unit->pw_lut != NULL) {
                engine_separable_lut_run(unit, unit->pw_lut, in, len_in, len_mid, out, len_out);
            } else {
                engine_separable_lut(unit, in, len_in, len_mid, out, len_out);
            }
        } else {
            engine_separable_fast(unit, in, len_in, len_mid, pool != NULL, out, len_out);
        }
    } else {
        engine_separable_exact(unit, in, len_in, len_mid, pool, out, len_out);
    }
    return ENGINE_OK;
}
