/* Decoder of the coded samples of SAMPLES_RICE frames (docs/protocol.md, "Coded samples").
 * No I/O and no buffer of its own: the caller takes each sample as it is decoded, so the frame
 * goes straight into the caller's store, and nothing is called from inside the decoder (its
 * stack use adds nothing to the caller's deepest call). */
#ifndef WIRE_CODING_H
#define WIRE_CODING_H

#include <stdint.h>

#include "protocol_defs.h"

/* A frame being decoded. x is the last sample decoded (every channel). */
typedef struct {
    const uint8_t *p, *end; /* the next byte to read, the payload's end */
    uint32_t acc;           /* the next bits, from bit 31 down; the bits after them are 0 */
    uint32_t bits;          /* how many bits of acc are the payload's */
    uint16_t k;             /* k of channel c in bits 4c .. 4c+3 */
    int16_t x[PROTO_N_CHANNELS];
} wire_rice_t;

/* Starts decoding `coded`, a SAMPLES_RICE payload from its k nibbles on (payload offset 6), of
 * `len` bytes: d->x is then sample 0. Returns 0, or PROTO_CODING_OVERRUN if the head does not
 * fit. Nothing outside coded[0 .. len-1] is ever read. */
int wire_rice_begin(wire_rice_t *d, const uint8_t *coded, uint16_t len);
/* Decodes the next sample into d->x. Returns 0, or the BAD_CODING detail of the code at fault
 * (PROTO_CODING_OVERRUN or PROTO_CODING_RANGE; d->x is then undefined). */
int wire_rice_next(wire_rice_t *d);
/* After the last sample: 0 if only the zero padding of the last byte is left, else
 * PROTO_CODING_TRAILING. */
int wire_rice_end(const wire_rice_t *d);

#endif /* WIRE_CODING_H */
