/*
 * avg_pool_s8.c - 1-D average pooling, int8 (TFLM AVERAGE_POOL_2D reference). Layout and
 * ranges: see engine_avg_pool_s8 in engine_kernels.h.
 */
#include <stddef.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"

/*
 * in [len_in * channels], out [len_out * channels], element (t, c) at [t * channels + c];
 * same scale and zero point in and out. The average is over in-bound taps only; every window
 * needs one (ENGINE_ERR_ARG otherwise, checked before anything is written).
 */
engine_status_t engine_avg_pool_s8(const int8_t *in, int len_in, int channels, int window,
                                   int stride, int pad_left, int32_t act_min, int32_t act_max,
                                   int8_t *out, int len_out)
{
    if (!engine_pool_args_valid(in, out, len_in, channels, window, stride, pad_left, len_out,
                                act_min, act_max)) {
        return ENGINE_ERR_ARG;
    }
    /* Window origins grow with t_out: if the first window reaches t >= 0 and the last one
     * starts before len_in, every window holds at least one in-bound tap (TFLM would fail on
     * an empty one, so reject it up front instead of leaving a half-written output). */
    if ((window <= pad_left) || ((len_out - 1) * stride - pad_left >= len_in)) {
        return ENGINE_ERR_ARG;
    }

    for (int t_out = 0; t_out < len_out; ++t_out) {
        const int origin = t_out * stride - pad_left;
        int k_start;
        int k_end;
        engine_window_taps(origin, window, len_in, &k_start, &k_end);
        const int32_t count = k_end - k_start;
        if (count <= 0) {
            return ENGINE_ERR_ARG; /* unreachable after the check above; kept as a guard */
        }
        int8_t *out_row = &out[t_out * channels];
        for (int c = 0; c < channels; ++c) {
            int32_t acc = 0;
            for (int k = k_start; k < k_end; ++k) {
                acc += in[(origin + k) * channels + c];
            }
            /* Round half away from zero; C division truncates toward zero. */
            acc = (acc > 0) ? (acc + count / 2) / count : (acc - count / 2) / count;
            out_row[c] = engine_clamp_s8(acc, act_min, act_max);
        }
    }
    return ENGINE_OK;
}
