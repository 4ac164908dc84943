/*
 * max_pool_s8.c - 1-D max pooling, int8 (TFLM MAX_POOL_2D reference). Layout and ranges: see
 * engine_max_pool_s8 in engine_kernels.h.
 */
#include <stddef.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"

/*
 * in [len_in * channels], out [len_out * channels], element (t, c) at [t * channels + c];
 * same scale and zero point in and out. Taps outside [0, len_in) are skipped.
 */
engine_status_t engine_max_pool_s8(const int8_t *in, int len_in, int channels, int window,
                                   int stride, int pad_left, int32_t act_min, int32_t act_max,
                                   int8_t *out, int len_out)
{
    if (!engine_pool_args_valid(in, out, len_in, channels, window, stride, pad_left, len_out,
                                act_min, act_max)) {
        return ENGINE_ERR_ARG;
    }

    for (int t_out = 0; t_out < len_out; ++t_out) {
        const int origin = t_out * stride - pad_left;
        int k_start;
        int k_end;
        engine_window_taps(origin, window, len_in, &k_start, &k_end);
        int8_t *out_row = &out[t_out * channels];
        for (int c = 0; c < channels; ++c) {
            int32_t max = INT8_MIN;
            for (int k = k_start; k < k_end; ++k) {
                const int32_t x = in[(origin + k) * channels + c];
                max = (x > max) ? x : max;
            }
            out_row[c] = engine_clamp_s8(max, act_min, act_max);
        }
    }
    return ENGINE_OK;
}
