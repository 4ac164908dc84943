/*
 * add_s8.c - element-wise addition, int8 (TFLM ADD reference, same-shape inputs). Layout,
 * quantisation and ranges: see engine_add_s8 in engine_kernels.h.
 */
#include <stddef.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"
#include "engine_requant.h"

/*
 * a, b, out: [n] int8 (any layout, element-wise). Offsets are -zero points of a and b and
 * +zero point of out; left_shift in [0, 31]; a_shift, b_shift, out_shift in [-31, 0].
 */
engine_status_t engine_add_s8(const int8_t *a, const int8_t *b, int n, int32_t a_offset,
                              int32_t a_mult, int a_shift, int32_t b_offset, int32_t b_mult,
                              int b_shift, int left_shift, int32_t out_offset, int32_t out_mult,
                              int out_shift, int32_t act_min, int32_t act_max, int8_t *out)
{
    if ((a == NULL) || (b == NULL) || (out == NULL) || (n < 1)) {
        return ENGINE_ERR_ARG;
    }
    if ((left_shift < 0) || (left_shift > 31) || (a_shift < ENGINE_SHIFT_MIN) || (a_shift > 0) ||
        (b_shift < ENGINE_SHIFT_MIN) || (b_shift > 0) || (out_shift < ENGINE_SHIFT_MIN) ||
        (out_shift > 0) || !engine_act_range_valid_s8(act_min, act_max)) {
        return ENGINE_ERR_ARG;
    }

    for (int i = 0; i < n; ++i) {
        const int32_t va = a_offset + a[i];
        const int32_t vb = b_offset + b[i];
        const int32_t sa = engine_shift_left_wrap_s32(va, left_shift);
        const int32_t sb = engine_shift_left_wrap_s32(vb, left_shift);
        const int32_t ra =
            engine_multiply_by_quantized_multiplier_smaller_than_one_exp(sa, a_mult, a_shift);
        const int32_t rb =
            engine_multiply_by_quantized_multiplier_smaller_than_one_exp(sb, b_mult, b_shift);
        const int32_t raw = engine_multiply_by_quantized_multiplier_smaller_than_one_exp(
                                ra + rb, out_mult, out_shift) +
                            out_offset;
        out[i] = engine_clamp_s8(raw, act_min, act_max);
    }
    return ENGINE_OK;
}
