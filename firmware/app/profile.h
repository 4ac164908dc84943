/* Per-layer counts and DWT events. Force-included into every file of every build (-include
 * app/profile.h: firmware/Makefile, platformio.ini), because the generated engine_model.c cannot
 * include it: there, ENGINE_LAYER_DONE(index) adds the work (or the events) since the previous
 * layer to that layer's total (rows accumulate).
 *
 * Recording runs in thread mode around an inference (profile_record.c); the service reads the
 * results (profile.c). Both passes share one buffer (RAM is short): the cycles pass's counts
 * must be sent (LAYER_COUNTS) before an events pass starts. */
#ifndef PROFILE_H
#define PROFILE_H

#include <stdint.h>

/* Cycles pass: the work counter per layer if `on`, else nothing (the buffer is zeroed alike). */
void profile_begin(int on);
/* Events pass (a board with DWT events only): the board's events per layer. */
void profile_events_begin(void);
void profile_layer_done(int index);
/* Ends the events pass and completes the EVENT_COUNTS payload (profile_events_frame). */
void profile_events_end(void);

/* Count of layer `index` in the last cycles pass (0 when it was not recorded). */
uint32_t profile_layer_count(int index);
/* The last events pass as an EVENT_COUNTS frame, built in place: the payload (its length
 * PROFILE_EVENTS_PAYLOAD) at PROTO_HEADER_LEN, room for the header before it and the CRC after
 * it. */
uint8_t *profile_events_frame(void);

/* The EVENT_COUNTS frame's layout (expanded where protocol_defs.h, board.h and engine_model.h
 * are included): the first row's word in the buffer, and the payload's length. */
#define PROFILE_ROW0 ((PROTO_HEADER_LEN + PROTO_EVENT_COUNTS_HEAD) / 4)
#define PROFILE_EVENTS_PAYLOAD                                                                     \
    (PROTO_EVENT_COUNTS_HEAD + 4 * PROTO_EVENTS_PER_LAYER * ENGINE_MODEL_LAYERS)

#define ENGINE_LAYER_DONE(index) profile_layer_done(index)

#endif /* PROFILE_H */
