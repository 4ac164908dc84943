/* Frame parser and encoder (docs/protocol.md). No I/O: the caller feeds bytes and sends the
 * encoded bytes. */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "protocol_defs.h"

typedef enum {
    PROTO_NONE = 0,  /* byte consumed, no complete frame yet */
    PROTO_FRAME = 1, /* a valid frame is in parser->frame */
    PROTO_ERROR = 2  /* a bad frame was dropped: parser->error, parser->error_seq */
} proto_event_t;

typedef struct {
    uint8_t type;
    uint8_t version; /* PROTO_VERSION_MIN .. PROTO_VERSION: replies are sent in the same */
    uint16_t seq;
    uint16_t len;
    uint8_t payload[PROTO_MAX_PAYLOAD];
} proto_frame_t;

typedef struct {
    uint8_t state;
    uint8_t header[PROTO_HEADER_LEN];
    uint16_t got;
    uint32_t crc;    /* computed over the frame so far */
    uint32_t rx_crc; /* received */
    proto_frame_t frame;
    uint8_t error;
    uint16_t error_seq;
} proto_parser_t;

void proto_parser_init(proto_parser_t *p);
/* Feeds one byte. Versions other than PROTO_VERSION_MIN .. PROTO_VERSION, oversized lengths,
 * unknown types and lengths the type cannot have are reported as soon as the header is complete;
 * the parser then resynchronises on the next sync pair. */
proto_event_t proto_parser_push(proto_parser_t *p, uint8_t byte);

/* CRC-32 as zlib's crc32(): proto_crc32(0, d, n) for d; chained, proto_crc32(crc, more, m). */
uint32_t proto_crc32(uint32_t crc, const uint8_t *data, size_t len);
/* Encodes a frame of protocol version `version` into out (room for PROTO_HEADER_LEN + len +
 * PROTO_CRC_LEN bytes); returns its length. The payload may already be in place, at
 * out + PROTO_HEADER_LEN. */
size_t proto_encode(uint8_t *out, uint8_t version, uint8_t type, uint16_t seq,
                    const uint8_t *payload, uint16_t len);

#endif /* PROTO_H */
