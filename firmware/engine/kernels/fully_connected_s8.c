/*
 * fully_connected_s8.c - fully connected layer, int8 (TFLM FULLY_CONNECTED reference,
 * per-channel requantisation, one input vector). Layout, quantisation and ranges: see
 * engine_fully_connected_s8 in engine_kernels.h.
 */
#include <limits.h>
#include <stddef.h>

#include "engine_kernels.h"
#include "engine_kernels_util.h"
#include "engine_requant.h"

/*
 * in [in_features], weights [out_features * in_features] at [o * in_features + i],
 * bias [out_features] or NULL, out [out_features]; out_mult / out_shift per output feature
 * (shifts in [-31, 31]; a per-tensor layer repeats its one value); filter_offset = -weights
 * zero point.
 */
engine_status_t engine_fully_connected_s8(const int8_t *in, int in_features,
                                          const int8_t *weights, const int32_t *bias,
                                          int out_features, int32_t input_offset,
                                          int32_t filter_offset, int32_t output_offset,
                                          const int32_t *out_mult, const int32_t *out_shift,
                                          int32_t act_min, int32_t act_max, int8_t *out)
{
    if ((in == NULL) || (weights == NULL) || (out == NULL) || (out_mult == NULL) ||
        (out_shift == NULL)) {
        return ENGINE_ERR_ARG;
    }
    if ((in_features < 1) || (out_features < 1) || (out_features > INT_MAX / in_features) ||
        !engine_act_range_valid_s8(act_min, act_max)) {
        return ENGINE_ERR_ARG;
    }
    for (int o = 0; o < out_features; ++o) {
        if ((out_shift[o] < ENGINE_SHIFT_MIN) || (out_shift[o] > ENGINE_SHIFT_MAX)) {
            return ENGINE_ERR_ARG;
        }
    }

    for (int o = 0; o < out_features; ++o) {
        const int8_t *w_row = &weights[o * in_features];
        int32_t acc = 0;
        for (int i = 0; i < in_features; ++i) {
            acc += ((int32_t)w_row[i] + filter_offset) * ((int32_t)in[i] + input_offset);
        }
        if (bias != NULL) {
            acc += bias[o];
        }
        acc = engine_multiply_by_quantized_multiplier(acc, out_mult[o], (int)out_shift[o]);
        acc += output_offset;
        out[o] = engine_clamp_s8(acc, act_min, act_max);
    }
    return ENGINE_OK;
}
