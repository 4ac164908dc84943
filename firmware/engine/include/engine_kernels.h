/*
 * engine_kernels.h - portable C11 int8 kernels of the microcontroller inference engine.
 *
 * Every kernel reproduces, bit for bit, TensorFlow Lite Micro's reference int8 kernel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/, build without
 * TFLITE_SINGLE_ROUNDING) for the special case used by the engine: one row of an NHWC
 * tensor with N = H = 1, so a tensor of `len` time steps and `channels` channels is stored
 * time-major with channels innermost: element (t, c) is at [t * channels + c].
 *
 * Conventions shared by all kernels:
 *   - int8 tensors use asymmetric affine quantisation real = scale * (q - zero_point).
 *     input_offset = -input_zero_point, output_offset = +output_zero_point (as in TFLM).
 *   - Weights are symmetric int8 (zero point 0) except in engine_fully_connected_s8, which
 *     takes a filter_offset (= -filter_zero_point).
 *   - Requantisation: acc * multiplier * 2^(shift - 31) via engine_requant.h, multiplier in
 *     Q0.31 (TFLM produces 0 or [2^30, 2^31 - 1]), shift in [ENGINE_SHIFT_MIN,
 *     ENGINE_SHIFT_MAX] = [-31, 31] (> 0: left).
 *   - The result is clamped to [act_min, act_max], with -128 <= act_min <= act_max <= 127
 *     (fused activation; -128..127 for none).
 *   - SAME/explicit padding along time is `pad_left` (>= 0) virtual samples before t = 0;
 *     taps outside [0, len_in) are skipped (they contribute nothing, and do not count in an
 *     average), like TFLM's in-image checks. Input tap of output step t_out, tap k:
 *     t_in = t_out * stride - pad_left + k. The caller gives len_out.
 *   - int32 accumulators do not overflow for realistic shapes (as in TFLM); index products
 *     (len * channels, ...) must fit in int, otherwise ENGINE_ERR_ARG.
 *   - Arguments are checked (NULL required buffers, sizes < 1, stride/window/kernel < 1,
 *     pad_left < 0, shifts or activation range out of range): ENGINE_ERR_ARG and the output
 *     is left untouched. Kernels never allocate, never print and use no floating point.
 *   - Input and output buffers must not overlap.
 */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ENGINE_OK = 0,      /* success */
    ENGINE_ERR_ARG = 1, /* invalid argument; outputs not written */
} engine_status_t;

/*
 * Depthwise 1-D convolution, depth multiplier 1 (TFLM DEPTHWISE_CONV_2D, per-channel int8).
 *   in:     [len_in * channels],  in[t * channels + c]
 *   filter: [kernel * channels],  filter[k * channels + c]  (TFLite 1 x kW x C x 1)
 *   bias:   [channels] int32 (scale in_scale * filter_scale[c]); may be NULL (no bias)
 *   out_mult, out_shift: [channels] per-channel requantisation
 *   out:    [len_out * channels]
 * out[t, c] = clamp(requant(bias[c] + sum_k filter[k, c] * (in[t_in, c] + input_offset))
 *                   + output_offset)
 * Ranges: len_in, channels, kernel, stride, len_out >= 1; pad_left >= 0.
 */
engine_status_t engine_depthwise_conv_s8(const int8_t *in, int len_in, int channels,
                                         const int8_t *filter, const int32_t *bias, int kernel,
                                         int stride, int pad_left, int32_t input_offset,
                                         int32_t output_offset, const int32_t *out_mult,
                                         const int32_t *out_shift, int32_t act_min,
                                         int32_t act_max, int8_t *out, int len_out);

/*
 * Pointwise convolution (TFLM CONV_2D, 1x1 kernel, stride 1, no padding, per-channel int8).
 *   in:     [len * in_channels],           in[t * in_channels + ic]
 *   filter: [out_channels * in_channels],  filter[oc * in_channels + ic]  (OHWI, H = W = 1)
 *   bias:   [out_channels] int32; may be NULL
 *   out_mult, out_shift: [out_channels] per-channel requantisation
 *   out:    [len * out_channels],          out[t * out_channels + oc]
 * out[t, oc] = clamp(requant(bias[oc] + sum_ic filter[oc, ic] * (in[t, ic] + input_offset))
 *                    + output_offset)
 * Ranges: len, in_channels, out_channels >= 1.
 */
engine_status_t engine_conv_1x1_s8(const int8_t *in, int len, int in_channels,
                                   const int8_t *filter, const int32_t *bias, int out_channels,
                                   int32_t input_offset, int32_t output_offset,
                                   const int32_t *out_mult, const int32_t *out_shift,
                                   int32_t act_min, int32_t act_max, int8_t *out);

/*
 * 1-D max pooling (TFLM MAX_POOL_2D int8). Input and output share scale and zero point.
 *   in: [len_in * channels], out: [len_out * channels], layout [t * channels + c]
 * out[t, c] = clamp(max(-128, max over in-bound taps of in[t_in, c])); a window with no
 * in-bound tap gives clamp(-128).
 * Ranges: len_in, channels, window, stride, len_out >= 1; pad_left >= 0.
 */
engine_status_t engine_max_pool_s8(const int8_t *in, int len_in, int channels, int window,
                                   int stride, int pad_left, int32_t act_min, int32_t act_max,
                                   int8_t *out, int len_out);

/*
 * 1-D average pooling (TFLM AVERAGE_POOL_2D int8). Input and output share scale and zero
 * point. Layout as engine_max_pool_s8.
 * out[t, c] = clamp(round(sum / count)) over the `count` in-bound taps, rounding half away
 * from zero: (sum +- count / 2) / count with C's truncating division.
 * Ranges as engine_max_pool_s8; additionally every output window must hold at least one
 * in-bound tap (TFLM fails otherwise): ENGINE_ERR_ARG if one does not.
 */
engine_status_t engine_avg_pool_s8(const int8_t *in, int len_in, int channels, int window,
                                   int stride, int pad_left, int32_t act_min, int32_t act_max,
                                   int8_t *out, int len_out);

/*
 * Element-wise addition of two int8 tensors of n elements (TFLM ADD int8, same shape).
 *   va = a[i] + a_offset, vb = b[i] + b_offset     (offsets = -zero points)
 *   ra = requant_lt1(va * 2^left_shift, a_mult, a_shift), rb likewise
 *   out[i] = clamp(requant_lt1(ra + rb, out_mult, out_shift) + out_offset)
 * where requant_lt1 = engine_multiply_by_quantized_multiplier_smaller_than_one_exp.
 * Ranges: n >= 1; 0 <= left_shift <= 31 (TFLM uses 20); -31 <= a_shift, b_shift,
 * out_shift <= 0. out may alias a or b exactly (element-wise).
 */
engine_status_t engine_add_s8(const int8_t *a, const int8_t *b, int n, int32_t a_offset,
                              int32_t a_mult, int a_shift, int32_t b_offset, int32_t b_mult,
                              int b_shift, int left_shift, int32_t out_offset, int32_t out_mult,
                              int out_shift, int32_t act_min, int32_t act_max, int8_t *out);

/*
 * Fully connected layer, one input vector (TFLM FULLY_CONNECTED int8; per-channel, or
 * per-tensor with the same multiplier repeated for every output feature).
 *   in:      [in_features]
 *   weights: [out_features * in_features], weights[o * in_features + i]
 *   bias:    [out_features] int32; may be NULL
 *   out:     [out_features]
 * out[o] = clamp(requant(bias[o] + sum_i (weights[o, i] + filter_offset)
 *                                         * (in[i] + input_offset), out_mult[o], out_shift[o])
 *                + output_offset)
 * Ranges: in_features, out_features >= 1; out_shift[o] in [-31, 31].
 */
engine_status_t engine_fully_connected_s8(const int8_t *in, int in_features,
                                          const int8_t *weights, const int32_t *bias,
                                          int out_features, int32_t input_offset,
                                          int32_t filter_offset, int32_t output_offset,
                                          const int32_t *out_mult, const int32_t *out_shift,
                                          int32_t act_min, int32_t act_max, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_KERNELS_H */
