/* The model's integer input transform (docs/preprocessing.md), bit-identical to
 * training.normalise.Normaliser.to_int8, done in two steps so that the receive buffer stays
 * small: channels with a fixed offset are converted to int8 as their samples arrive; channels
 * that remove the epoch mean are kept as int16 until the epoch is complete. */
#ifndef PREPROCESS_H
#define PREPROCESS_H

#include <stdint.h>

#include "model_norm.h"
#include "protocol_defs.h"

#define PREPROCESS_FIXED_CHANNELS (MODEL_NORM_CHANNELS - MODEL_NORM_DC_CHANNELS)

/* An epoch as it is received. */
typedef struct {
    int16_t dc[MODEL_NORM_DC_CHANNELS > 0 ? MODEL_NORM_DC_CHANNELS : 1][PROTO_EPOCH_SAMPLES];
    int8_t fixed[PREPROCESS_FIXED_CHANNELS > 0 ? PREPROCESS_FIXED_CHANNELS : 1]
                [PROTO_EPOCH_SAMPLES];
} preprocess_epoch_t;

/* Stores sample t (0..2999) of every channel: s[c] for c = 0..3, as on the wire. */
void preprocess_store(preprocess_epoch_t *epoch, int t, const int16_t *s);
/* The model input, int8 [channel][sample], of a complete epoch. */
void preprocess_finish(const preprocess_epoch_t *epoch, int8_t *out);

#endif /* PREPROCESS_H */
