/*
 * conv_1x1_s8.c - pointwise (1x1, stride 1) convolution, int8 (TFLM CONV_2D reference,
 * per-channel quantisation). Layout, quantisation and ranges: see engine_conv_1x1_s8 in
 * engine_kernels.h.
 */
#include <limits.h>
#include <stddef.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"
#include "engine_requant.h"

/*
 * in [len * in_channels] at [t * in_channels + ic], filter [out_channels * in_channels] at
 * [oc * in_channels + ic], bias [out_channels] or NULL, out_mult/out_shift [out_channels]
 * (shift in [-31, 31]), out [len * out_channels] at [t * out_channels + oc].
 */
engine_status_t engine_conv_1x1_s8(const int8_t *in, int len, int in_channels, const int8_t *filter,
                                   const int32_t *bias, int out_channels, int32_t input_offset,
                                   int32_t output_offset, const int32_t *out_mult,
                                   const int32_t *out_shift, int32_t act_min, int32_t act_max,
                                   int8_t *out)
{
    if ((in == NULL) || (filter == NULL) || (out_mult == NULL) || (out_shift == NULL) ||
        (out == NULL)) {
        return ENGINE_ERR_ARG;
    }
    if ((len < 1) || (in_channels < 1) || (out_channels < 1)) {
        return ENGINE_ERR_ARG;
    }
    if ((len > INT_MAX / in_channels) || (len > INT_MAX / out_channels) ||
        (out_channels > INT_MAX / in_channels) || !engine_act_range_valid_s8(act_min, act_max) ||
        !engine_shifts_valid(out_shift, out_channels, ENGINE_SHIFT_MIN, ENGINE_SHIFT_MAX)) {
        return ENGINE_ERR_ARG;
    }

    for (int t = 0; t < len; ++t) {
        const int8_t *in_row = &in[t * in_channels];
        int8_t *out_row = &out[t * out_channels];
        for (int oc = 0; oc < out_channels; ++oc) {
            const int8_t *w_row = &filter[oc * in_channels];
            int32_t acc = 0;
            for (int ic = 0; ic < in_channels; ++ic) {
                acc += (int32_t)w_row[ic] * ((int32_t)in_row[ic] + input_offset);
            }
            if (bias != NULL) {
                acc += bias[oc];
            }
            acc = engine_multiply_by_quantized_multiplier(acc, out_mult[oc], (int)out_shift[oc]);
            acc += output_offset;
            out_row[oc] = engine_clamp_s8(acc, act_min, act_max);
        }
    }
    return ENGINE_OK;
}
