/* The model's integer input transform (docs/preprocessing.md), bit-identical to
 * training.normalise.Normaliser.to_int8. */
#ifndef PREPROCESS_H
#define PREPROCESS_H

#include <stdint.h>

#include "protocol_defs.h"

/* epoch: int16 [channel][sample]; out: int8 [channel][sample]. out may alias epoch exactly
 * (in-place: each int8 is written at or before the int16 it comes from). */
void preprocess_epoch_s16_to_s8(const int16_t *epoch, int8_t *out);

#endif /* PREPROCESS_H */
