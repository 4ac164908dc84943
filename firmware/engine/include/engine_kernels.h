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
 *   - Input and output buffers must not overlap (the fused kernels below document the
 *     overlaps they allow).
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
                                         const int32_t *out_shift, int32_t act_min, int32_t act_max,
                                         int8_t *out, int len_out);

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
engine_status_t engine_conv_1x1_s8(const int8_t *in, int len, int in_channels, const int8_t *filter,
                                   const int32_t *bias, int out_channels, int32_t input_offset,
                                   int32_t output_offset, const int32_t *out_mult,
                                   const int32_t *out_shift, int32_t act_min, int32_t act_max,
                                   int8_t *out);

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
engine_status_t engine_fully_connected_s8(const int8_t *in, int in_features, const int8_t *weights,
                                          const int32_t *bias, int out_features,
                                          int32_t input_offset, int32_t filter_offset,
                                          int32_t output_offset, const int32_t *out_mult,
                                          const int32_t *out_shift, int32_t act_min,
                                          int32_t act_max, int8_t *out);

/* ------------------------------------------------------------------------------------------
 * Fused kernels. Each one equals, bit for bit, the composition of the kernels above that it
 * replaces, but never stores the int8 tensors between them: it computes a run of positions of
 * a depthwise output into a 1 KB stack tile and consumes them at once. Stack: about 1.2 KB per
 * call (the tile), 3.2 KB for engine_separable_s8's lookup-table path when the unit brings no
 * pw_lut (the table is then built on the stack). engine_shortcut_add_s8's ADD tables live in
 * caller-provided scratch. Kernels never allocate.
 *
 * Two arithmetic paths, one result:
 *   - fast: when every layer of the call has multipliers >= 0 (TFLM's always are), right
 *     shifts of 1 .. ENGINE_FAST_SHIFT_MAX, output offsets that are int8 zero points,
 *     activation (and pool) ranges that are the whole int8 range, and biases that keep the
 *     accumulator within ENGINE_FAST_ACC_MAX (|bias| <= 2^29 - taps * 2^15). Doubled
 *     accumulators, one engine_requant_fast_x2 per output (SMMLAR on a DSP core), dot products
 *     as SMLAD on SXTB16-widened pairs (__ARM_FEATURE_DSP) or portable C with the same
 *     integers, loops specialised for 1, 8, 16 and 32 input channels;
 *   - exact: anything else the kernels accept, with TFLM's formulas as the unfused kernels
 *     use them (slow, small).
 * Extra conventions of the fused kernels:
 *   - every offset is +-(an int8 zero point): in [-128, 128]; otherwise ENGINE_ERR_ARG;
 *   - 1 <= in_channels, out_channels <= ENGINE_FUSED_MAX_CHANNELS.
 */
#define ENGINE_FUSED_MAX_CHANNELS 64

/*
 * One depthwise-separable unit: engine_depthwise_conv_s8 (kernel, stride, pad_left; depth
 * multiplier 1) over in_channels, whose int8 output feeds engine_conv_1x1_s8 (in_channels ->
 * out_channels). The pointwise convolution reads the depthwise output with input_offset =
 * -dw_output_offset (it is one tensor). Arrays as documented for those two kernels.
 */
typedef struct {
    int in_channels;          /* depthwise channels = pointwise input channels */
    int out_channels;         /* pointwise output channels */
    int kernel;               /* depthwise taps along time, >= 1 */
    int stride;               /* depthwise stride, >= 1 */
    int pad_left;             /* depthwise virtual samples before t = 0, >= 0 */
    const int8_t *dw_filter;  /* [kernel * in_channels], filter[k * in_channels + c] */
    const int32_t *dw_bias;   /* [in_channels] or NULL */
    const int32_t *dw_mult;   /* [in_channels] */
    const int32_t *dw_shift;  /* [in_channels], [-31, 31] */
    int32_t dw_input_offset;  /* -zero point of the unit's input */
    int32_t dw_output_offset; /* +zero point of the depthwise output */
    int32_t dw_act_min;
    int32_t dw_act_max;
    const int8_t *pw_filter;  /* [out_channels * in_channels], filter[oc * in_channels + ic] */
    const int32_t *pw_bias;   /* [out_channels] or NULL */
    const int32_t *pw_mult;   /* [out_channels] */
    const int32_t *pw_shift;  /* [out_channels], [-31, 31] */
    int32_t pw_output_offset; /* +zero point of the unit's output */
    int32_t pw_act_min;
    int32_t pw_act_max;
    /* Optional (NULL: none), in_channels == 1 only: the pointwise layer precomputed for every
     * depthwise output value, [256 * out_channels], pw_lut[(v + 128) * out_channels + oc] =
     * engine_conv_1x1_s8's output channel oc for the input value v in [-128, 127]. The
     * lookup-table path of engine_separable_s8 reads it instead of building the same table
     * (2 KB) on the stack, and engine_shortcut_add_s8's one-unit lookup-table path (one input
     * channel, 4 or 8 outputs) needs it; it must hold exactly those values. Ignored by other
     * paths. */
    const int8_t *pw_lut;
} engine_separable_s8_t;

/* The max pooling a separable unit may end with: window 2, stride 2, pad_left 0 (TFLM
 * MAX_POOL_2D, SAME or VALID), and its fused activation range. */
typedef struct {
    int32_t act_min;
    int32_t act_max;
} engine_max_pool2_s8_t;

/* Parameters of engine_add_s8 (a = main stream, b = shortcut), ranges as documented there. */
typedef struct {
    int32_t a_offset;
    int32_t a_mult;
    int32_t a_shift;
    int32_t b_offset;
    int32_t b_mult;
    int32_t b_shift;
    int32_t left_shift;
    int32_t out_offset;
    int32_t out_mult;
    int32_t out_shift;
    int32_t act_min;
    int32_t act_max;
} engine_add_s8_params_t;

/*
 * A separable unit, optionally followed by max pooling 2/2:
 *   mid = engine_depthwise_conv_s8(in)  [len_mid * in_channels], never stored whole
 *   y   = engine_conv_1x1_s8(mid)       [len_mid * out_channels]
 *   out = pool ? engine_max_pool_s8(y, window 2, stride 2, pad 0, pool->act range) : y
 *   in:  [len_in * in_channels]; out: [len_out * out_channels]
 * With pool, len_out is ceil(len_mid / 2) (SAME: the last window may hold one position) or
 * floor(len_mid / 2) (VALID); without, len_out = len_mid. A pooled output is requantised once,
 * from the larger of its two accumulators (the fast requantisation is non-decreasing in the
 * accumulator, so max(requant(a), requant(b)) = requant(max(a, b)), clamp included); the exact
 * path requantises both. With one input channel, kernel 3, stride 1, pooling and 4 or 8 output
 * channels (a network's first unit) the pointwise layer is a map of one int8 value: the fast
 * path tabulates its 256 outputs once per call and pools with a bytewise max of table rows.
 * In place: out may overlap in when out starts at or before in, d = in - out bytes, and for
 * every output step u = 1 .. len_out - 1 the bytes written before it stay below the first input
 * row it reads: u * out_channels <= d + in_channels * max(0, q * u * stride - pad_left), where
 * q = 2 with pool and 1 without. (Each tile's depthwise outputs are computed before any of its
 * outputs is written, and later steps read later rows.) Any other overlap: ENGINE_ERR_ARG.
 * Ranges: len_in, len_mid, len_out >= 1; the unit as documented for engine_separable_s8_t.
 */
engine_status_t engine_separable_s8(const engine_separable_s8_t *unit, const int8_t *in, int len_in,
                                    int len_mid, const engine_max_pool2_s8_t *pool, int8_t *out,
                                    int len_out);

/*
 * A residual block's shortcut stream and its ADD, per output position:
 *   s1  = separable unit `first` over in        [len_first * first->out_channels]
 *   s2  = separable unit `second` over s1       [len_out * second->out_channels]
 *   out = engine_add_s8(a = main_in, b = s2, n = len_out * second->out_channels, *add)
 * Both units are position-wise: kernel 1, pad_left 0, so output v reads only input row
 * v * second->stride * first->stride, and only every second->stride-th position of s1 is
 * computed. Requires first->out_channels == second->in_channels, (len_out - 1) *
 * second->stride < len_first and (len_out - 1) * second->stride * first->stride < len_in
 * (true for SAME and VALID). in: [len_in * first->in_channels]; main_in and out:
 * [len_out * second->out_channels]. out may be main_in itself (element-wise, in place) but must
 * not overlap in; otherwise ENGINE_ERR_ARG.
 * second may be NULL: the stream is the one unit `first` (s2 = s1, len_first == len_out,
 * output v reads input row v * first->stride), the form of a shortcut stream whose two units
 * the converter composed into one.
 * scratch: caller-provided working memory of scratch_bytes >= ENGINE_SHORTCUT_SCRATCH_BYTES
 * bytes, 4-byte aligned, overlapping none of in, main_in and out (its contents on entry do not
 * matter and are clobbered); otherwise ENGINE_ERR_ARG. It holds the ADD's rescale tables, which
 * would otherwise take 2 KB of stack; the generated model passes a part of its arena that is
 * free during the step.
 * The fast path also needs, of the ADD: left_shift <= 20, input offsets in [-128, 128],
 * input shifts in [-ENGINE_FAST_SHIFT_MAX, 0], output shift in [-ENGINE_FAST_SHIFT_MAX, -1],
 * multipliers >= 0, an int8 output offset and the whole int8 activation range. It then
 * rescales each ADD input with a 256-entry table built per call in scratch (the inputs are
 * int8) and requantises the sum once.
 */
#define ENGINE_SHORTCUT_SCRATCH_BYTES 2048 /* two 256-entry int32 tables */

engine_status_t engine_shortcut_add_s8(const engine_separable_s8_t *first,
                                       const engine_separable_s8_t *second,
                                       const engine_add_s8_params_t *add, const int8_t *in,
                                       int len_in, int len_first, const int8_t *main_in,
                                       int8_t *out, int len_out, void *scratch, int scratch_bytes);

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_KERNELS_H */
