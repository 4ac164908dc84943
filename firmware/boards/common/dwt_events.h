/* Folding the DWT event counters (Armv7-M, ARM DDI 0403E C1.8: CPICNT, EXCCNT, SLEEPCNT, LSUCNT,
 * FOLDCNT) into 32-bit totals. The counters are 8 bits wide and wrap; CPICNT and LSUCNT can
 * advance every cycle, so a board reads them from a sampler interrupt less than 256 cycles apart
 * and adds each counter's modulo-256 change since the previous read. Pure arithmetic, no
 * registers: the board passes the values it read (tests/firmware/test_dwt_events.py compiles
 * this file for the host and feeds it synthetic counter sequences). */
#ifndef DWT_EVENTS_H
#define DWT_EVENTS_H

#include <stdint.h>

/* The counters, in register order. */
enum { DWT_CPI, DWT_EXC, DWT_SLEEP, DWT_LSU, DWT_FOLD, DWT_EVENTS };

/* A counter advances at most once per cycle, so it can only have wrapped unseen between two
 * reads at least 256 cycles apart. The reads of one fold are a few cycles apart from the cycle
 * counter's read, hence the margin: an interval longer than this is counted as late. */
#define DWT_EVENTS_SAFE_CYCLES 240u

typedef struct {
    uint32_t *pending; /* the events since the last lap are added here */
    uint32_t ticks;    /* sampler ticks since the last lap */
    uint32_t samples;  /* sampler ticks since the start */
    uint32_t late;     /* intervals between two reads longer than DWT_EVENTS_SAFE_CYCLES */
    uint32_t cycles;   /* the cycle counter at the last read */
    uint8_t last[DWT_EVENTS];
} dwt_events_t;

/* Starts folding into pending[DWT_EVENTS] (zeroed) from the counters' values `now` read at
 * cycle `cycles`. */
void dwt_events_start(dwt_events_t *s, uint32_t *pending, const uint8_t now[DWT_EVENTS],
                      uint32_t cycles);
/* Adds each counter's change since the previous read to pending (modulo 256). */
void dwt_events_fold(dwt_events_t *s, const uint8_t now[DWT_EVENTS], uint32_t cycles);
/* A fold made by the sampler: it counts as one tick. */
void dwt_events_tick(dwt_events_t *s, const uint8_t now[DWT_EVENTS], uint32_t cycles);
/* Adds the pending events to row[DWT_EVENTS], less the sampler's own share (ticks since the last
 * lap x per_tick_q8 / 256, rounded; a counter never goes below 0), then zeroes pending and the
 * ticks. */
void dwt_events_lap(dwt_events_t *s, const uint16_t per_tick_q8[DWT_EVENTS], uint32_t *row);
/* The sampler's own events per tick, in 1/256: the same work folded at two sampler periods
 * gives totals work + ticks x per tick each, so per tick = (fast - slow) / (fast ticks - slow
 * ticks), whatever the work's own events. 0 where the difference is not positive. */
void dwt_events_per_tick(const uint32_t fast[DWT_EVENTS], uint32_t fast_ticks,
                         const uint32_t slow[DWT_EVENTS], uint32_t slow_ticks,
                         uint16_t per_tick_q8[DWT_EVENTS]);

#endif /* DWT_EVENTS_H */
