/* SAMPLES_RICE decoder (docs/protocol.md, "Coded samples"): per channel the first sample, then
 * Rice codes of the zigzag-mapped differences, sample-major. The bits are read through a 32-bit
 * buffer filled a byte at a time, and a code's run of zero bits is counted with one CLZ per
 * buffer (Cortex-M4: one instruction), so a typical code of 3-12 bits costs one refill test,
 * one CLZ and a few shifts. */
#include "wire_coding.h"

/* The payload bytes before the codes that the decoder is given: the k nibbles, sample 0. */
#define CODED_HEAD (PROTO_RICE_HEAD - 6)

int wire_rice_begin(wire_rice_t *d, const uint8_t *coded, uint16_t len)
{
    if (len < CODED_HEAD) {
        return PROTO_CODING_OVERRUN;
    }
    d->k = (uint16_t)(coded[0] | (coded[1] << 8));
    for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
        d->x[c] = (int16_t)(coded[2 + 2 * c] | (coded[3 + 2 * c] << 8));
    }
    d->p = coded + CODED_HEAD;
    d->end = coded + len;
    d->acc = 0;
    d->bits = 0;
    return 0;
}

int wire_rice_next(wire_rice_t *d)
{
    const uint8_t *p = d->p;
    const uint8_t *const end = d->end;
    uint32_t acc = d->acc, bits = d->bits;
    uint32_t ks = d->k; /* channel c's k in its low 4 bits */
#define REFILL()                                                                                   \
    while (bits <= 24u && p < end) {                                                               \
        acc |= (uint32_t)*p++ << (24u - bits);                                                     \
        bits += 8u;                                                                                \
    }
    for (int c = 0; c < PROTO_N_CHANNELS; ++c, ks >>= 4) {
        const uint32_t k = ks & 0x0Fu;
        const uint32_t q_max = 0xFFFFu >> k; /* a larger q: u would not fit 16 bits */
        /* q zero bits, then a one: acc's leading zeros, over as many buffers as it takes. Too
         * many zeros is RANGE even where the payload ends before the one (as the host's
         * decoder, host_tools/samples.py, and docs/protocol.md say). */
        uint32_t q = 0;
        for (;;) {
            REFILL();
            if (acc != 0u) {
                break;
            }
            q += bits; /* all zero */
            bits = 0;
            if (q > q_max) {
                return PROTO_CODING_RANGE;
            }
            if (p == end) {
                return PROTO_CODING_OVERRUN; /* no one bit left */
            }
        }
        const uint32_t z = (uint32_t)__builtin_clz(acc); /* acc != 0: z < bits */
        q += z;
        if (q > q_max) {
            return PROTO_CODING_RANGE;
        }
        acc = acc << z << 1;
        bits -= z + 1u;
        /* then k bits, most significant first */
        if (bits < k) {
            REFILL();
            if (bits < k) {
                return PROTO_CODING_OVERRUN;
            }
        }
        const uint32_t u = (q << k) | (acc >> 1 >> (31u - k)); /* (k = 0: no bits) */
        acc <<= k;
        bits -= k;
        /* zigzag back, and the difference added modulo 2^16 */
        const uint32_t diff = (u >> 1) ^ (0u - (u & 1u));
        d->x[c] = (int16_t)(uint16_t)((uint32_t)(uint16_t)d->x[c] + diff);
    }
#undef REFILL
    d->p = p;
    d->acc = acc;
    d->bits = bits;
    return 0;
}

int wire_rice_end(const wire_rice_t *d)
{
    /* no byte unread or wholly unused, and the last byte's padding all zero */
    return d->p != d->end || d->bits >= 8u || d->acc != 0u ? PROTO_CODING_TRAILING : 0;
}
