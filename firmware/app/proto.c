#include "proto.h"

#include <string.h>

enum { WAIT_SYNC0, WAIT_SYNC1, HEADER, PAYLOAD, CRC };

static int known_type(uint8_t type)
{
    return type == PROTO_MSG_HELLO || type == PROTO_MSG_SAMPLES || type == PROTO_MSG_RESET_STREAM ||
           type == PROTO_MSG_PROFILE || type == PROTO_MSG_STATUS || type == PROTO_MSG_RESEND ||
           type == PROTO_MSG_REBOOT || type == PROTO_MSG_SAMPLES_RICE;
}

/* The payload lengths a message type can have. Checked when the header is complete, so that a
 * damaged type or length field does not make the parser take the next frames as payload. */
static int length_ok(uint8_t type, uint16_t len)
{
    switch (type) {
    case PROTO_MSG_SAMPLES:
        /* n = 5, 10, ... 125 samples of 8 bytes */
        return len >= 6u + 8u * PROTO_SAMPLE_BLOCK &&
               len <= 6u + 8u * PROTO_MAX_SAMPLES_PER_FRAME &&
               (len - 6u) % (8u * PROTO_SAMPLE_BLOCK) == 0;
    case PROTO_MSG_SAMPLES_RICE:
        /* the head, then at least one bit per code of n = 5 samples: whether the codes fit is
         * the decoder's to say (ERROR BAD_CODING) */
        return len >= PROTO_RICE_HEAD + (4u * (PROTO_SAMPLE_BLOCK - 1) + 7u) / 8u;
    case PROTO_MSG_PROFILE:
        return len == 1;
    case PROTO_MSG_RESEND:
        return len == 4;
    default: /* HELLO, RESET_STREAM, STATUS, REBOOT */
        return len == 0;
    }
}

void proto_parser_init(proto_parser_t *p)
{
    memset(p, 0, sizeof(*p));
    p->state = WAIT_SYNC0;
}

uint32_t proto_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    /* CRC-32 (IEEE 802.3, as zlib's crc32): reflected poly 0xEDB88320, init and final xor
     * 0xFFFFFFFF, four bits at a time (a 64-byte table). */
    static const uint32_t nibble[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ nibble[crc & 0x0Fu];
    }
    return ~crc;
}

static proto_event_t fail(proto_parser_t *p, uint8_t code)
{
    p->error = code;
    p->error_seq = (uint16_t)(p->header[4] | (p->header[5] << 8));
    p->state = WAIT_SYNC0;
    return PROTO_ERROR;
}

proto_event_t proto_parser_push(proto_parser_t *p, uint8_t byte)
{
    switch (p->state) {
    case WAIT_SYNC0:
        if (byte == PROTO_SYNC0) {
            p->state = WAIT_SYNC1;
        }
        return PROTO_NONE;
    case WAIT_SYNC1:
        if (byte == PROTO_SYNC1) {
            p->header[0] = PROTO_SYNC0;
            p->header[1] = PROTO_SYNC1;
            p->got = 2;
            p->state = HEADER;
        } else if (byte != PROTO_SYNC0) {
            p->state = WAIT_SYNC0;
        }
        return PROTO_NONE;
    case HEADER:
        p->header[p->got++] = byte;
        if (p->got < PROTO_HEADER_LEN) {
            return PROTO_NONE;
        }
        p->frame.version = p->header[2];
        p->frame.type = p->header[3];
        p->frame.seq = (uint16_t)(p->header[4] | (p->header[5] << 8));
        p->frame.len = (uint16_t)(p->header[6] | (p->header[7] << 8));
        if (p->frame.version < PROTO_VERSION_MIN || p->frame.version > PROTO_VERSION) {
            return fail(p, PROTO_ERR_BAD_VERSION);
        }
        if (p->frame.len > PROTO_MAX_PAYLOAD) {
            return fail(p, PROTO_ERR_TOO_LONG);
        }
        if (!known_type(p->frame.type)) {
            return fail(p, PROTO_ERR_UNKNOWN_TYPE);
        }
        if (!length_ok(p->frame.type, p->frame.len)) {
            return fail(p, PROTO_ERR_BAD_LENGTH);
        }
        p->crc = proto_crc32(0, &p->header[2], PROTO_HEADER_LEN - 2);
        p->got = 0;
        p->rx_crc = 0;
        p->state = p->frame.len ? PAYLOAD : CRC;
        return PROTO_NONE;
    case PAYLOAD:
        p->frame.payload[p->got++] = byte;
        if (p->got == p->frame.len) {
            p->crc = proto_crc32(p->crc, p->frame.payload, p->frame.len);
            p->got = 0;
            p->rx_crc = 0;
            p->state = CRC;
        }
        return PROTO_NONE;
    default: /* CRC, little-endian */
        p->rx_crc |= (uint32_t)byte << (8u * p->got);
        if (++p->got < PROTO_CRC_LEN) {
            return PROTO_NONE;
        }
        if (p->rx_crc != p->crc) {
            return fail(p, PROTO_ERR_BAD_CRC);
        }
        p->state = WAIT_SYNC0;
        return PROTO_FRAME;
    }
}

size_t proto_encode(uint8_t *out, uint8_t version, uint8_t type, uint16_t seq,
                    const uint8_t *payload, uint16_t len)
{
    out[0] = PROTO_SYNC0;
    out[1] = PROTO_SYNC1;
    out[2] = version;
    out[3] = type;
    out[4] = (uint8_t)(seq & 0xFF);
    out[5] = (uint8_t)(seq >> 8);
    out[6] = (uint8_t)(len & 0xFF);
    out[7] = (uint8_t)(len >> 8);
    if (len && payload != &out[PROTO_HEADER_LEN]) {
        memcpy(&out[PROTO_HEADER_LEN], payload, len);
    }
    uint32_t crc = proto_crc32(0, &out[2], (size_t)PROTO_HEADER_LEN - 2 + len);
    for (int i = 0; i < PROTO_CRC_LEN; ++i) {
        out[PROTO_HEADER_LEN + len + i] = (uint8_t)(crc >> (8 * i));
    }
    return (size_t)PROTO_HEADER_LEN + len + PROTO_CRC_LEN;
}
