/*
 * depthwise_conv_s8.c - 1-D depthwise convolution, int8 (TFLM DEPTHWISE_CONV_2D reference,
 * per-channel quantisation, depth multiplier 1). Layout, quantisation and ranges: see
 * engine_depthwise_conv_s8 in engine_kernels.h.
 */
#include <stddef.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"
#include "engine_requant.h"

/*
 * in [len_in * channels], filter [kernel * channels], bias [channels] or NULL,
 * out_mult/out_shift [channels] (shift in [-31, 31]), out [len_out * channels];
 * element (t, c) at [t * channels + c]. Taps outside [0, len_in) are skipped.
 */
engine_status_t engine_depthwise_conv_s8(const int8_t *in, int len_in, int channels,
                                         const int8_t *filter, const int32_t *bias, int kernel,
                                         int stride, int pad_left, int32_t input_offset,
                                         int32_t output_offset, const int32_t *out_mult,
                                         const int32_t *out_shift, int32_t act_min, int32_t act_max,
                                         int8_t *out, int len_out)
{
    if ((in == NULL) || (filter == NULL) || (out_mult == NULL) || (out_shift == NULL) ||
        (out == NULL)) {
        return ENGINE_ERR_ARG;
    }
    if ((len_in < 1) || (channels < 1) || (kernel < 1) || (stride < 1) || (pad_left < 0) ||
        (len_out < 1)) {
        return ENGINE_ERR_ARG;
    }
    if (!engine_window_geometry_valid(len_in, channels, kernel, stride, len_out) ||
        !engine_act_range_valid_s8(act_min, act_max) ||
        !engine_shifts_valid(out_shift, channels, ENGINE_SHIFT_MIN, ENGINE_SHIFT_MAX)) {
        return ENGINE_ERR_ARG;
    }

    for (int t_out = 0; t_out < len_out; ++t_out) {
        const int origin = t_out * stride - pad_left;
        int k_start;
        int k_end;
        engine_window_taps(origin, kernel, len_in, &k_start, &k_end);
        int8_t *out_row = &out[t_out * channels];
        for (int c = 0; c < channels; ++c) {
            int32_t acc = 0;
            for (int k = k_start; k < k_end; ++k) {
                const int32_t x = in[(origin + k) * channels + c];
                const int32_t w = filter[k * channels + c];
                acc += w * (x + input_offset);
            }
            if (bias != NULL) {
                acc += bias[c];
            }
            acc = engine_multiply_by_quantized_multiplier(acc, out_mult[c], (int)out_shift[c]);
            acc += output_offset;
            out_row[c] = engine_clamp_s8(acc, act_min, act_max);
        }
    }
    return ENGINE_OK;
}
