/* Recording per-layer counts or DWT events during an inference (thread mode; profile.h). Apart
 * from profile.c because only the firmware records: test programs link the service alone. */
#include <string.h>

#include "board.h"
#include "engine_model.h"
#include "profile.h"
#include "proto.h"

extern uint32_t profile_counts[];

enum { PASS_OFF, PASS_CYCLES, PASS_EVENTS };

static uint8_t profile_pass;
static uint64_t profile_last;

void profile_begin(int on)
{
    profile_pass = on ? PASS_CYCLES : PASS_OFF;
    for (int i = 0; i < ENGINE_MODEL_LAYERS; ++i) {
        profile_counts[i] = 0;
    }
    profile_last = board_counter_read();
}

void profile_events_begin(void)
{
    profile_pass = PASS_EVENTS;
    memset(&profile_counts[PROFILE_ROW0], 0, 4u * BOARD_EVENTS * ENGINE_MODEL_LAYERS);
    board_events_start(profile_counts);
}

void profile_layer_done(int index)
{
    if (profile_pass == PASS_CYCLES) {
        uint64_t now = board_counter_read();
        profile_counts[index] += (uint32_t)(now - profile_last);
        profile_last = now;
    } else if (profile_pass == PASS_EVENTS) {
        board_events_lap(&profile_counts[PROFILE_ROW0 + BOARD_EVENTS * index]);
    }
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void profile_events_end(void)
{
    board_events_summary_t summary;
    board_events_stop(&summary);
    profile_pass = PASS_OFF;
    uint8_t *p = (uint8_t *)profile_counts + PROTO_HEADER_LEN;
    p[0] = ENGINE_MODEL_LAYERS;
    p[1] = BOARD_EVENTS;
    p[2] = (uint8_t)summary.period_cycles;
    p[3] = (uint8_t)(summary.period_cycles >> 8);
    put_u32(&p[4], summary.samples);
    put_u32(&p[8], summary.late);
}
