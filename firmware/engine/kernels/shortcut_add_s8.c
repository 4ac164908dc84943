/*
 * shortcut_add_s8.c - a residual block's position-wise shortcut stream (two separable units
 * with kernel-1 depthwise convolutions) fused with the block's ADD, int8. Bit-exact with
 * engine_depthwise_conv_s8, engine_conv_1x1_s8 (twice each) and engine_add_s8 run one after
 * the other; semantics and ranges: see engine_shortcut_add_s8 in engine_kernels.h.
 *
 * The stream may also be a single unit (second == NULL): the converter folds the two units of a
 * shortcut stream into one when their composition is exact in float (see converter.keras_mirror).
 *
 * Per tile of output positions, in stages over a 1 KB stack buffer (see engine_shortcut_fast):
 * first depthwise -> tile A, first pointwise -> int8 rows, second depthwise -> tile B, second
 * pointwise -> int8 rows, ADD with the main stream -> out. No whole intermediate tensor is
 * stored, and the first unit's positions that the second one skips (its stride) are never
 * computed. The ADD's rescale tables (2 KB) live in the caller's scratch buffer, not on the
 * stack (the generated model passes a part of its arena that is free during the step).
 */
#include <stddef.h>
#include <stdint.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"
#include "engine_requant.h"
#include "engine_requant_fast.h"
#include "engine_tile.h"

static int engine_add_params_valid(const engine_add_s8_params_t *p)
{
    return (p != NULL) && (p->left_shift >= 0) && (p->left_shift <= 31) &&
           (p->a_shift >= ENGINE_SHIFT_MIN) && (p->a_shift <= 0) &&
           (p->b_shift >= ENGINE_SHIFT_MIN) && (p->b_shift <= 0) &&
           (p->out_shift >= ENGINE_SHIFT_MIN) && (p->out_shift <= 0) &&
           engine_act_range_valid_s8(p->act_min, p->act_max);
}

/* 1 if [a, a + a_bytes) and [b, b + b_bytes) share a byte. */
static int engine_overlap(const void *a, int64_t a_bytes, const void *b, int64_t b_bytes)
{
    const uintptr_t a0 = (uintptr_t)a;
    const uintptr_t b0 = (uintptr_t)b;
    return (a0 < b0 + (uintptr_t)b_bytes) && (b0 < a0 + (uintptr_t)a_bytes);
}

/* ------------------------------------------------------------------------------------------
 * Exact path: any parameters; the composition's own arithmetic. */

/* The ADD per element, as engine_add_s8: TFLM's exact formula. */
static ENGINE_COLD int32_t engine_add_exact(int32_t a, int32_t b, const engine_add_s8_params_t *p)
{
    const int ls = (int)p->left_shift;
    const int32_t ra = engine_multiply_by_quantized_multiplier_smaller_than_one_exp(
        engine_shift_left_wrap_s32(a + p->a_offset, ls), p->a_mult, (int)p->a_shift);
    const int32_t rb = engine_multiply_by_quantized_multiplier_smaller_than_one_exp(
        engine_shift_left_wrap_s32(b + p->b_offset, ls), p->b_mult, (int)p->b_shift);
    const int32_t raw = engine_multiply_by_quantized_multiplier_smaller_than_one_exp(
                            ra + rb, p->out_mult, (int)p->out_shift) +
                        p->out_offset;
    return engine_clamp_s8(raw, p->act_min, p->act_max);
}

/* Exact path: unit u's pointwise layer over `rows` tile rows (positions v0 ..), each output
 * added to the main stream through the ADD, into out. */
static ENGINE_COLD void engine_pw_add_exact(const engine_separable_s8_t *u, const uint32_t *tile,
                                            int rows, int v0, const engine_add_s8_params_t *add,
                                            const int8_t *main_in, int8_t *out)
{
    const int c_in = u->in_channels;
    const int c_out = u->out_channels;
    const int words = engine_tile_row_words(c_in);
    for (int oc = 0; oc < c_out; ++oc) {
        const int8_t *w = u->pw_filter + oc * c_in;
        const uint32_t bias = (uint32_t)((u->pw_bias != NULL) ? u->pw_bias[oc] : 0);
        for (int r = 0; r < rows; ++r) {
            const int32_t acc =
                (int32_t)((uint32_t)engine_dot1(w, tile + r * words, c_in, 0) + bias);
            const int32_t b = engine_rq_exact(acc, u->pw_mult[oc], u->pw_shift[oc],
                                              u->pw_output_offset, u->pw_act_min, u->pw_act_max);
            const int i = (v0 + r) * c_out + oc;
            out[i] = (int8_t)engine_add_exact(main_in[i], b, add);
        }
    }
}

/* One unit (second == NULL): the first unit's pointwise output goes straight into the ADD. */
static ENGINE_COLD void engine_shortcut1_exact(const engine_separable_s8_t *first,
                                               const engine_add_s8_params_t *add, const int8_t *in,
                                               int len_in, const int8_t *main_in, int8_t *out,
                                               int len_out)
{
    const int rows_per_tile = ENGINE_TILE_WORDS / engine_tile_row_words(first->in_channels);
    uint32_t tile[ENGINE_TILE_WORDS];
    for (int v0 = 0; v0 < len_out; v0 += rows_per_tile) {
        const int rows = (len_out - v0 < rows_per_tile) ? len_out - v0 : rows_per_tile;
        engine_dw_rows_exact(first, in, len_in, v0, 1, rows, tile);
        engine_pw_add_exact(first, tile, rows, v0, add, main_in, out);
    }
}

static ENGINE_COLD void engine_shortcut_exact(const engine_separable_s8_t *first,
                                              const engine_separable_s8_t *second,
                                              const engine_add_s8_params_t *add, const int8_t *in,
                                              int len_in, const int8_t *main_in, int8_t *out,
                                              int len_out)
{
    const int c_in = first->in_channels;
    const int c_mid = first->out_channels;
    const int words_a = engine_tile_row_words(c_in);
    const int words_b = engine_tile_row_words(c_mid);
    const int rows_per_tile = ENGINE_TILE_WORDS / (words_a + words_b); /* >= 2 */
    uint32_t tile[ENGINE_TILE_WORDS];
    uint32_t *tile_a = tile;
    uint32_t *tile_b = tile + rows_per_tile * words_a;
    for (int v0 = 0; v0 < len_out; v0 += rows_per_tile) {
        const int rows = (len_out - v0 < rows_per_tile) ? len_out - v0 : rows_per_tile;
        engine_dw_rows_exact(first, in, len_in, v0 * second->stride, second->stride, rows, tile_a);
        for (int oc = 0; oc < c_mid; ++oc) {
            const int8_t *w = first->pw_filter + oc * c_in;
            const uint32_t bias = (uint32_t)((first->pw_bias != NULL) ? first->pw_bias[oc] : 0);
            const int32_t bias2 = (second->dw_bias != NULL) ? second->dw_bias[oc] : 0;
            uint8_t *dst = (uint8_t *)tile_b + 2 * engine_tile_index(oc, c_mid);
            for (int r = 0; r < rows; ++r) {
                const int32_t acc =
                    (int32_t)((uint32_t)engine_dot1(w, tile_a + r * words_a, c_in, 0) + bias);
                const int32_t y1 =
                    engine_rq_exact(acc, first->pw_mult[oc], first->pw_shift[oc],
                                    first->pw_output_offset, first->pw_act_min, first->pw_act_max);
                const int32_t acc2 =
                    (int32_t)((uint32_t)(second->dw_filter[oc] * (y1 + second->dw_input_offset)) +
                              (uint32_t)bias2);
                const int32_t y2 = engine_rq_exact(acc2, second->dw_mult[oc], second->dw_shift[oc],
                                                   second->dw_output_offset, second->dw_act_min,
                                                   second->dw_act_max);
                engine_store_s16(dst + r * 4 * words_b, y2 - second->dw_output_offset);
            }
        }
        engine_pw_add_exact(second, tile_b, rows, v0, add, main_in, out);
    }
}

/* ------------------------------------------------------------------------------------------
 * Fast path. Per tile of output positions, four simple stages, each a small loop:
 *   1. first depthwise (kernel 1)     in     -> tile A   (int16, doubled)
 *   2. first pointwise                tile A -> mid      (int8 rows, [rows][c_mid])
 *   3. second depthwise (kernel 1)    mid    -> tile B   (int16, doubled)
 *   4. second pointwise               tile B -> short    (int8 rows, [rows][c_out])
 *   5. ADD, element-wise              main_in, short -> out
 * The ADD rescales each input with a 256-entry table per call (its inputs are int8), both
 * tables in the caller's scratch buffer (ENGINE_SHORTCUT_SCRATCH_BYTES): entry v
 * holds twice TFLM's rescaled value, 2 * MultiplyByQuantizedMultiplierSmallerThanOneExp(
 * (v + offset) << left_shift, mult, shift), so the output requantisation sees the doubled sum. */

/* Fast-path conditions of the ADD: the table entries use the fast form and the sum of two
 * entries is within the fast form's accumulator bound. left_shift <= 20 and offsets in
 * [-128, 128] give |(v + offset) << left_shift| <= 2^28, each rescaled value at most 2^28 in
 * magnitude and the sum at most 2^29 = ENGINE_FAST_ACC_MAX. */
static int engine_add_fast_ok(const engine_add_s8_params_t *p)
{
    return (p->left_shift <= 20) && engine_offset_valid(p->a_offset) &&
           engine_offset_valid(p->b_offset) && (p->a_mult >= 0) && (p->b_mult >= 0) &&
           (p->out_mult >= 0) && (p->a_shift >= -ENGINE_FAST_SHIFT_MAX) &&
           (p->b_shift >= -ENGINE_FAST_SHIFT_MAX) && (p->out_shift >= -ENGINE_FAST_SHIFT_MAX) &&
           (p->out_shift <= -1) && (p->out_offset >= INT8_MIN) && (p->out_offset <= INT8_MAX) &&
           (p->act_min == INT8_MIN) && (p->act_max == INT8_MAX);
}

/* table[v + 128] = 2 * rescaled(v) for v in [-128, 127] (see above); shift in [-21, 0]. */
static void engine_add_table(int32_t *table, int32_t offset, int32_t mult, int32_t shift,
                             int32_t left_shift)
{
    const int e = (int)-shift;
    const int32_t round = (e > 0) ? (INT32_C(1) << (e - 1)) : 0;
    const int32_t mask = (e > 0) ? -1 : 0;
    for (int v = -128; v <= 127; ++v) {
        const int32_t x2 = engine_shift_left_wrap_s32(v + offset, (int)left_shift + 1);
        table[v + 128] = 2 * engine_requant_fast_lt1_x2(x2, mult, round, mask, e);
    }
}

/* The ADD's two tables (in the caller's scratch) and its output requantisation. */
static engine_chan_t engine_add_setup(const engine_add_s8_params_t *add, int32_t *table_a,
                                      int32_t *table_b)
{
    engine_add_table(table_a, add->a_offset, add->a_mult, add->a_shift, add->left_shift);
    engine_add_table(table_b, add->b_offset, add->b_mult, add->b_shift, add->left_shift);
    const int32_t out_shift = -add->out_shift;
    const engine_chan_t out_q = {
        0, add->out_mult, engine_requant_fast_round((int)out_shift, add->out_offset), out_shift};
    return out_q;
}

static ENGINE_NOINLINE void engine_add_run(const int8_t *a, const int8_t *b, int8_t *out, int n,
                                           const int32_t *table_a, const int32_t *table_b,
                                           const engine_chan_t *q)
{
    const int32_t mult = q->mult;
    const int32_t round = q->round;
    const int32_t shift = q->shift;
    table_a += 128;
    table_b += 128;
    for (int i = 0; i < n; ++i) {
        out[i] = (int8_t)engine_rqf_apply(table_a[a[i]] + table_b[b[i]], mult, round, shift);
    }
}

static ENGINE_NOINLINE void engine_sc_dw1_run(const int8_t *x, uint8_t *dst, int n,
                                              const engine_dw_chan_t *p, int x_step, int row_bytes)
{
    engine_dw1_run(x, dst, n, p, x_step, row_bytes);
}

/* Pointwise layer of unit u over `rows` tile rows -> int8 rows [rows][out_channels],
 * specialised on the input channel count. */
typedef void (*engine_sc_pw_fn)(const engine_separable_s8_t *u, const uint32_t *tile, int rows,
                                int8_t *dst);

static ENGINE_ALWAYS_INLINE void engine_sc_pw(const engine_separable_s8_t *u, const uint32_t *tile,
                                              int rows, int8_t *dst, const int c_in)
{
    const int pairs = rows / 2;
    engine_pw_tile_rows(u, tile, pairs, dst, 0, c_in);
    if (2 * pairs < rows) {
        engine_pw_row(u, tile + 2 * pairs * engine_tile_row_words(c_in),
                      dst + 2 * pairs * u->out_channels);
    }
}

#define ENGINE_SC_PW(c)                                                                            \
    static ENGINE_NOINLINE void engine_sc_pw_##c(const engine_separable_s8_t *u,                   \
                                                 const uint32_t *tile, int rows, int8_t *dst)      \
    {                                                                                              \
        engine_sc_pw(u, tile, rows, dst, c);                                                       \
    }
ENGINE_SC_PW(1)
ENGINE_SC_PW(4)
ENGINE_SC_PW(8)
ENGINE_SC_PW(16)
ENGINE_SC_PW(32)

static ENGINE_NOINLINE void engine_sc_pw_any(const engine_separable_s8_t *u, const uint32_t *tile,
                                             int rows, int8_t *dst)
{
    engine_sc_pw(u, tile, rows, dst, u->in_channels);
}

static engine_sc_pw_fn engine_sc_pw_for(int c_in)
{
    return (c_in == 1)    ? engine_sc_pw_1
           : (c_in == 4)  ? engine_sc_pw_4
           : (c_in == 8)  ? engine_sc_pw_8
           : (c_in == 16) ? engine_sc_pw_16
           : (c_in == 32) ? engine_sc_pw_32
                          : engine_sc_pw_any;
}

static void engine_shortcut_fast(const engine_separable_s8_t *first,
                                 const engine_separable_s8_t *second,
                                 const engine_add_s8_params_t *add, const int8_t *in, int len_in,
                                 const int8_t *main_in, int8_t *out, int len_out, int32_t *scratch)
{
    const int c_in = first->in_channels;
    const int c_mid = first->out_channels;
    const int c_out = second->out_channels;
    /* Per row: tile A (or, later, the int8 shortcut output, which replaces it), the int8
     * first pointwise output, tile B. */
    const int words_a = engine_tile_row_words(c_in);
    const int words_s = (c_out + 3) / 4;
    const int words_1 = (words_a > words_s) ? words_a : words_s;
    const int words_m = (c_mid + 3) / 4;
    const int words_b = engine_tile_row_words(c_mid);
    const int rows_per_tile = ENGINE_TILE_WORDS / (words_1 + words_m + words_b); /* >= 1 */
    uint32_t tile[ENGINE_TILE_WORDS];
    uint32_t *tile_a = tile;
    int8_t *shortcut = (int8_t *)tile;
    int8_t *mid = (int8_t *)(tile + rows_per_tile * words_1);
    uint32_t *tile_b = tile + rows_per_tile * (words_1 + words_m);

    int32_t *const table_a = scratch;
    int32_t *const table_b = scratch + 256;
    const engine_chan_t out_q = engine_add_setup(add, table_a, table_b);
    const engine_sc_pw_fn pw1 = engine_sc_pw_for(c_in);
    const engine_sc_pw_fn pw2 = engine_sc_pw_for(c_mid);
    const int step = first->stride * second->stride; /* input rows per output position */

    for (int v0 = 0; v0 < len_out; v0 += rows_per_tile) {
        const int rows = (len_out - v0 < rows_per_tile) ? len_out - v0 : rows_per_tile;
        engine_dw_rows_fast(first, in, len_in, v0 * step, step, rows, tile_a, engine_sc_dw1_run);
        pw1(first, tile_a, rows, mid);
        engine_dw_rows_fast(second, mid, rows, 0, 1, rows, tile_b, engine_sc_dw1_run);
        pw2(second, tile_b, rows, shortcut);
        engine_add_run(main_in + v0 * c_out, shortcut, out + v0 * c_out, rows * c_out, table_a,
                       table_b, &out_q);
    }
}

/* One unit (second == NULL): tile A, then the int8 shortcut rows beside it (the pointwise
 * output would overrun its own unread input rows if it replaced tile A), then the ADD. */
static void engine_shortcut1_fast(const engine_separable_s8_t *first,
                                  const engine_add_s8_params_t *add, const int8_t *in, int len_in,
                                  const int8_t *main_in, int8_t *out, int len_out, int32_t *scratch)
{
    const int c_in = first->in_channels;
    const int c_out = first->out_channels;
    const int words_a = engine_tile_row_words(c_in);
    const int words_s = (c_out + 3) / 4;
    const int rows_per_tile = ENGINE_TILE_WORDS / (words_a + words_s); /* >= 5 */
    uint32_t tile[ENGINE_TILE_WORDS];
    int8_t *shortcut = (int8_t *)(tile + rows_per_tile * words_a);

    int32_t *const table_a = scratch;
    int32_t *const table_b = scratch + 256;
    const engine_chan_t out_q = engine_add_setup(add, table_a, table_b);
    const engine_sc_pw_fn pw = engine_sc_pw_for(c_in);
    const int step = first->stride;

    for (int v0 = 0; v0 < len_out; v0 += rows_per_tile) {
        const int rows = (len_out - v0 < rows_per_tile) ? len_out - v0 : rows_per_tile;
        engine_dw_rows_fast(first, in, len_in, v0 * step, step, rows, tile, engine_sc_dw1_run);
        pw(first, tile, rows, shortcut);
        engine_add_run(main_in + v0 * c_out, shortcut, out + v0 * c_out, rows * c_out, table_a,
                       table_b, &out_q);
    }
}

/* One unit with one input channel, 4 or 8 outputs, and the converter's pw_lut (a network's first
 * shortcut stream): the pointwise layer is one table row per depthwise output value, as in
 * engine_separable_s8's lookup-table path, so an output costs two table reads for the ADD's
 * rescaled inputs, one add and one requantisation. */
static int engine_shortcut1_lut_ok(const engine_separable_s8_t *u)
{
    return (u->in_channels == 1) && (u->pw_lut != NULL) &&
           ((u->out_channels == 4) || (u->out_channels == 8));
}

/* rows tile rows (one channel: 2 * (y - mid) per word) -> out, c_out outputs per row. */
static ENGINE_ALWAYS_INLINE void engine_shortcut1_lut_rows(const int8_t *base, const uint32_t *tile,
                                                           int rows, const int8_t *main_in,
                                                           int8_t *out, const int32_t *table_a,
                                                           const int32_t *table_b,
                                                           const engine_chan_t *q, const int c_out)
{
    const int32_t mult = q->mult;
    const int32_t round = q->round;
    const int32_t shift = q->shift;
    for (int r = 0; r < rows; ++r) {
        const int8_t *s = base + (engine_tile_get(&tile[r], 0) / 2) * c_out;
        for (int oc = 0; oc < c_out; ++oc) {
            out[oc] =
                (int8_t)engine_rqf_apply(table_a[main_in[oc]] + table_b[s[oc]], mult, round, shift);
        }
        main_in += c_out;
        out += c_out;
    }
}

#define ENGINE_SC_LUT(c)                                                                           \
    static ENGINE_NOINLINE void engine_shortcut1_lut_##c(                                          \
        const int8_t *base, const uint32_t *tile, int rows, const int8_t *main_in, int8_t *out,    \
        const int32_t *table_a, const int32_t *table_b, const engine_chan_t *q)                    \
    {                                                                                              \
        engine_shortcut1_lut_rows(base, tile, rows, main_in, out, table_a, table_b, q, c);         \
    }
ENGINE_SC_LUT(4)
ENGINE_SC_LUT(8)

static void engine_shortcut1_lut(const engine_separable_s8_t *first,
                                 const engine_add_s8_params_t *add, const int8_t *in, int len_in,
                                 const int8_t *main_in, int8_t *out, int len_out, int32_t *scratch)
{
    const int c_out = first->out_channels;
    /* A tile value is t = 2 * (y - mid): its table row is t / 2 + mid + 128. */
    const int8_t *base = first->pw_lut + (first->dw_output_offset + 128) * c_out;
    uint32_t tile[ENGINE_TILE_WORDS]; /* one channel: a row per word */
    int32_t *const table_a = scratch;
    int32_t *const table_b = scratch + 256;
    const engine_chan_t out_q = engine_add_setup(add, table_a, table_b);
    const int step = first->stride;
    for (int v0 = 0; v0 < len_out; v0 += ENGINE_TILE_WORDS) {
        const int rows = (len_out - v0 < ENGINE_TILE_WORDS) ? len_out - v0 : ENGINE_TILE_WORDS;
        engine_dw_rows_fast(first, in, len_in, v0 * step, step, rows, tile, engine_sc_dw1_run);
        ((c_out == 8) ? engine_shortcut1_lut_8 : engine_shortcut1_lut_4)(
            base, tile, rows, main_in + v0 * c_out, out + v0 * c_out, table_a + 128, table_b + 128,
            &out_q);
    }
}

engine_status_t engine_shortcut_add_s8(const engine_separable_s8_t *first,
                                       const engine_separable_s8_t *second,
                                       const engine_add_s8_params_t *add, const int8_t *in,
                                       int len_in, int len_first, const int8_t *main_in,
                                       int8_t *out, int len_out, void *scratch, int scratch_bytes)
{
    if ((scratch == NULL) || (scratch_bytes < ENGINE_SHORTCUT_SCRATCH_BYTES) ||
        (((uintptr_t)scratch & 3u) != 0)) {
        return ENGINE_ERR_ARG;
    }
    const int one_unit = (second == NULL);
    if ((in == NULL) || (main_in == NULL) || (out == NULL) || !engine_separable_unit_valid(first) ||
        (!one_unit && !engine_separable_unit_valid(second)) || !engine_add_params_valid(add)) {
        return ENGINE_ERR_ARG;
    }
    if ((first->kernel != 1) || (first->pad_left != 0) || (len_in < 1) || (len_first < 1) ||
        (len_out < 1)) {
        return ENGINE_ERR_ARG;
    }
    if (!one_unit && ((second->kernel != 1) || (second->pad_left != 0) ||
                      (first->out_channels != second->in_channels))) {
        return ENGINE_ERR_ARG;
    }
    if (one_unit && (len_first != len_out)) {
        return ENGINE_ERR_ARG;
    }
    const int c_in = first->in_channels;
    const int c_out = one_unit ? first->out_channels : second->out_channels;
    const int64_t last_first = (int64_t)(len_out - 1) * (one_unit ? 1 : second->stride);
    const int64_t last_in = last_first * first->stride;
    if ((last_first >= len_first) || (last_in >= len_in) || (len_in > INT_MAX / c_in) ||
        (len_out > INT_MAX / c_out)) {
        return ENGINE_ERR_ARG;
    }
    const int64_t n_out = (int64_t)len_out * c_out;
    if (engine_overlap(out, n_out, in, (int64_t)len_in * c_in) ||
        ((out != main_in) && engine_overlap(out, n_out, main_in, n_out))) {
        return ENGINE_ERR_ARG;
    }
    const int64_t n_scratch = ENGINE_SHORTCUT_SCRATCH_BYTES;
    if (engine_overlap(scratch, n_scratch, in, (int64_t)len_in * c_in) ||
        engine_overlap(scratch, n_scratch, main_in, n_out) ||
        engine_overlap(scratch, n_scratch, out, n_out)) {
        return ENGINE_ERR_ARG;
    }

    if (one_unit) {
        if (engine_unit_fast_ok(first) && engine_add_fast_ok(add) &&
            engine_shortcut1_lut_ok(first)) {
            engine_shortcut1_lut(first, add, in, len_in, main_in, out, len_out, (int32_t *)scratch);
        } else if (engine_unit_fast_ok(first) && engine_add_fast_ok(add)) {
            engine_shortcut1_fast(first, add, in, len_in, main_in, out, len_out,
                                  (int32_t *)scratch);
        } else {
            engine_shortcut1_exact(first, add, in, len_in, main_in, out, len_out);
        }
        return ENGINE_OK;
    }
    if (engine_unit_fast_ok(first) && engine_unit_fast_ok(second) && engine_add_fast_ok(add)) {
        engine_shortcut_fast(first, second, add, in, len_in, main_in, out, len_out,
                             (int32_t *)scratch);
    } else {
        engine_shortcut_exact(first, second, add, in, len_in, main_in, out, len_out);
    }
    return ENGINE_OK;
}
