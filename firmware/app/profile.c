/* The per-layer results the service sends (profile.h). */
#include "profile.h"

#include <string.h>

#include "board.h"
#include "engine_model.h"
#include "proto.h"

_Static_assert(BOARD_EVENTS == PROTO_EVENTS_PER_LAYER, "board.h's events are the protocol's");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the event rows are sent as stored: the wire is little-endian");
_Static_assert(PROTO_HEADER_LEN + PROTO_EVENT_COUNTS_HEAD == 4 * PROFILE_ROW0,
               "the event rows must be word-aligned in the frame");

/* One buffer, two uses. Cycles pass: word i is layer i's count (host_tools/cycles watches the
 * stores into it, by this name). Events pass: the EVENT_COUNTS frame in place: header, payload
 * (u8 n, u8 events per layer, u16 sampler period, u32 samples, u32 late, then PROFILE_ROW0's
 * rows of BOARD_EVENTS words per layer), CRC; while the pass runs, its first BOARD_EVENTS words
 * (header and head, written at its end) hold the board's pending events. */
uint32_t profile_counts[PROFILE_ROW0 + BOARD_EVENTS * ENGINE_MODEL_LAYERS + 1];
_Static_assert(sizeof(profile_counts) >= PROTO_HEADER_LEN + PROFILE_EVENTS_PAYLOAD + PROTO_CRC_LEN,
               "profile_counts holds the EVENT_COUNTS frame");
_Static_assert(PROFILE_ROW0 >= BOARD_EVENTS, "the pending events fit before the rows");

uint32_t profile_layer_count(int index)
{
    return profile_counts[index];
}

uint8_t *profile_events_frame(void)
{
    return (uint8_t *)profile_counts;
}
