/* board.h's DWT event functions for a board without DWT event counters (the emulated boards:
 * QEMU models no DWT). board_events_supported() says so, and the application then refuses
 * requests for events (ERROR NO_EVENTS) and never starts a pass: the other functions only
 * complete the interface. Included by that board's board.c (once). */
#ifndef NO_EVENTS_H
#define NO_EVENTS_H

#include "../board.h"

int board_events_supported(void)
{
    return 0;
}

void board_events_start(uint32_t pending[BOARD_EVENTS])
{
    (void)pending;
}

void board_events_lap(uint32_t row[BOARD_EVENTS])
{
    (void)row;
}

void board_events_stop(board_events_summary_t *summary)
{
    summary->samples = 0;
    summary->late = 0;
    summary->period_cycles = 0;
}

#endif /* NO_EVENTS_H */
