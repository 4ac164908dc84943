#include "preprocess.h"

#include <string.h>

#if MODEL_NORM_CHANNELS != PROTO_N_CHANNELS
#error "model_norm.h does not describe PROTO_N_CHANNELS channels"
#endif

/* floor(num / den) for den > 0 (C division truncates toward zero). */
static int32_t floor_div(int32_t num, int32_t den)
{
    int32_t q = num / den;
    return (num % den != 0 && num < 0) ? q - 1 : q;
}

/* q = clamp(((s - m) * M + 2^(S-1)) >> S): |s - m| <= 65535 and M < 2^15, so p fits int32;
 * >> of a negative int32 is an arithmetic (floor) shift with GCC. */
static int8_t quantise(int c, int32_t s, int32_t m)
{
    const int shift = model_norm_shift[c];
    int32_t p = (s - m) * model_norm_multiplier[c];
    int32_t v = (p + ((int32_t)1 << (shift - 1))) >> shift;
    return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
}

void preprocess_store(preprocess_epoch_t *epoch, int t, const int16_t *s)
{
    int dc = 0, fixed = 0;
    for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
        if (model_norm_remove_dc[c]) {
            epoch->dc[dc++][t] = s[c];
        } else {
            epoch->fixed[fixed++][t] = quantise(c, s[c], model_norm_offset[c]);
        }
    }
}

void preprocess_finish(const preprocess_epoch_t *epoch, int8_t *out)
{
    int dc = 0, fixed = 0;
    for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
        int8_t *q = out + c * PROTO_EPOCH_SAMPLES;
        if (!model_norm_remove_dc[c]) {
            memcpy(q, epoch->fixed[fixed++], PROTO_EPOCH_SAMPLES);
            continue;
        }
        const int16_t *s = epoch->dc[dc++];
        int32_t sum = 0; /* |sum| <= 3000 * 32768 < 2^27 */
        for (int n = 0; n < PROTO_EPOCH_SAMPLES; ++n) {
            sum += s[n];
        }
        int32_t m = floor_div(sum + PROTO_EPOCH_SAMPLES / 2, PROTO_EPOCH_SAMPLES);
        for (int n = 0; n < PROTO_EPOCH_SAMPLES; ++n) {
            q[n] = quantise(c, s[n], m);
        }
    }
}
