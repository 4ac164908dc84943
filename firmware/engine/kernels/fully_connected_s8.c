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
 * sum_i w[i] * (x[i] + input_offset) over n inputs. On a DSP core, four at a time: SXTB16
 * widens the weights and SXTAB16 widens the inputs and adds the offset to each, so one SMLAD
 * does two MACs (|x + input_offset| must fit in int16: checked by the caller). The sum wraps
 * modulo 2^32 like TFLM's int32 sum (which must not overflow).
 */
static int32_t engine_fc_dot(const int8_t *w, const int8_t *x, int n, int32_t input_offset,
                             int simd)
{
    uint32_t acc = 0;
    int i = 0;
#if defined(__ARM_FEATURE_DSP)
    if (simd) {
        const int32_t off2 =
            (int32_t)(((uint32_t)input_offset & 0xFFFFu) | ((uint32_t)input_offset << 16));
        for (; i + 4 <= n; i += 4) {
            const uint32_t wv = engine_load_u32(w + i);
            const uint32_t xv = engine_load_u32(x + i);
            acc = (uint32_t)__smlad((int32_t)__sxtb16(wv), __sxtab16(off2, xv), (int32_t)acc);
            acc = (uint32_t)__smlad(engine_sxtb16_ror8(wv), engine_sxtab16_ror8(off2, xv),
                                    (int32_t)acc);
        }
    }
#else
    (void)simd;
#endif
    for (; i < n; ++i) {
        acc += (uint32_t)((int32_t)w[i] * ((int32_t)x[i] + input_offset));
    }
    return (int32_t)acc;
}

/*
 * in [in_features], weights [out_features * in_features] at [o * in_features + i],
 * bias [out_features] or NULL, out [out_features]; out_mult / out_shift per output feature
 * (shifts in [-31, 31]; a per-tensor layer repeats its one value); filter_offset = -weights
 * zero point.
 */
engine_status_t engine_fully_connected_s8(const int8_t *in, int in_features, const int8_t *weights,
                                          const int32_t *bias, int out_features,
                                          int32_t input_offset, int32_t filter_offset,
                                          int32_t output_offset, const int32_t *out_mult,
                                          const int32_t *out_shift, int32_t act_min,
                                          int32_t act_max, int8_t *out)
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

    /* Symmetric weights (TFLM's int8 weights) and an int8 zero point: the SIMD dot product. */
    const int simd = (filter_offset == 0) && (input_offset >= -256) && (input_offset <= 256);
    for (int o = 0; o < out_features; ++o) {
        const int8_t *w_row = &weights[o * in_features];
        int32_t acc = 0;
        if (simd) {
            acc = engine_fc_dot(w_row, in, in_features, input_offset, 1);
        } else {
            for (int i = 0; i < in_features; ++i) {
                acc += ((int32_t)w_row[i] + filter_offset) * ((int32_t)in[i] + input_offset);
            }
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
