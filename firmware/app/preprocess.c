#include "preprocess.h"

#include "model_norm.h"

#if MODEL_NORM_CHANNELS != PROTO_N_CHANNELS
#error "model_norm.h does not describe PROTO_N_CHANNELS channels"
#endif

/* floor(num / den) for den > 0 (C division truncates toward zero). */
static int32_t floor_div(int32_t num, int32_t den)
{
    int32_t q = num / den;
    return (num % den != 0 && num < 0) ? q - 1 : q;
}

void preprocess_epoch_s16_to_s8(const int16_t *epoch, int8_t *out)
{
    for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
        const int16_t *s = epoch + c * PROTO_EPOCH_SAMPLES;
        int8_t *q = out + c * PROTO_EPOCH_SAMPLES;
        int32_t m = model_norm_offset[c];
        if (model_norm_remove_dc[c]) {
            int32_t sum = 0; /* |sum| <= 3000 * 32768 < 2^27 */
            for (int n = 0; n < PROTO_EPOCH_SAMPLES; ++n) {
                sum += s[n];
            }
            m = floor_div(sum + PROTO_EPOCH_SAMPLES / 2, PROTO_EPOCH_SAMPLES);
        }
        const int32_t mult = model_norm_multiplier[c];
        const int shift = model_norm_shift[c];
        const int32_t round = (int32_t)1 << (shift - 1);
        for (int n = 0; n < PROTO_EPOCH_SAMPLES; ++n) {
            int32_t p = ((int32_t)s[n] - m) * mult; /* |s - m| <= 65535, mult < 2^15 */
            int32_t v = (p + round) >> shift;        /* arithmetic shift: floor */
            q[n] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
        }
    }
}
