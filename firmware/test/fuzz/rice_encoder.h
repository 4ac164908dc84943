/* A reference encoder of SAMPLES_RICE codes (docs/protocol.md, "Coded samples") for the tests:
 * written bit by bit from the spec's words, independently of app/wire_coding.c's decoder. Used
 * by the decoder's fuzz target (a frame that decodes must be the encoding of what it decoded to)
 * and by the on-target tests (round trips). */
#ifndef RICE_ENCODER_H
#define RICE_ENCODER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocol_defs.h"

static inline void rice_put_bit(uint8_t *out, size_t bit)
{
    out[bit >> 3] |= (uint8_t)(0x80u >> (bit & 7u));
}

/* Codes n >= 1 samples x[n][4] with k[4] into out: the payload from offset 6 on (k nibbles,
 * sample 0, the codes). Returns its length, or 0 if it needs more than cap bytes. */
static inline size_t rice_encode(const int16_t (*x)[PROTO_N_CHANNELS], int n, const uint8_t *k,
                                 uint8_t *out, size_t cap)
{
    const size_t head = PROTO_RICE_HEAD - 6;
    if (cap < head) {
        return 0;
    }
    memset(out, 0, cap);
    out[0] = (uint8_t)(k[0] | (k[1] << 4));
    out[1] = (uint8_t)(k[2] | (k[3] << 4));
    for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
        out[2 + 2 * c] = (uint8_t)((uint16_t)x[0][c] & 0xFFu);
        out[3 + 2 * c] = (uint8_t)((uint16_t)x[0][c] >> 8);
    }
    size_t bit = 8 * head;
    for (int t = 1; t < n; ++t) {
        for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
            /* d modulo 2^16 as an i16, u = (d << 1) ^ (d >> 15) as a u16 */
            uint16_t d = (uint16_t)((uint16_t)x[t][c] - (uint16_t)x[t - 1][c]);
            uint16_t sign = (d & 0x8000u) ? 0xFFFFu : 0u;
            uint16_t u = (uint16_t)((uint16_t)(d << 1) ^ sign);
            size_t q = u >> k[c];
            if (bit + q + 1 + k[c] > 8 * cap) {
                return 0;
            }
            bit += q; /* q zero bits */
            rice_put_bit(out, bit++);
            for (int i = k[c] - 1; i >= 0; --i, ++bit) {
                if ((u >> i) & 1u) {
                    rice_put_bit(out, bit);
                }
            }
        }
    }
    return (bit + 7) / 8;
}

#endif /* RICE_ENCODER_H */
