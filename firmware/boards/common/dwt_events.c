/* See dwt_events.h. */
#include "dwt_events.h"

void dwt_events_start(dwt_events_t *s, uint32_t *pending, const uint8_t now[DWT_EVENTS],
                      uint32_t cycles)
{
    s->pending = pending;
    s->ticks = 0;
    s->samples = 0;
    s->late = 0;
    s->cycles = cycles;
    for (int k = 0; k < DWT_EVENTS; ++k) {
        pending[k] = 0;
        s->last[k] = now[k];
    }
}

/* Inline in both callers: the sampler's handler stays one call deep (stack, cycles). */
static inline void fold(dwt_events_t *s, const uint8_t now[DWT_EVENTS], uint32_t cycles)
{
    if (cycles - s->cycles > DWT_EVENTS_SAFE_CYCLES) {
        s->late++;
    }
    s->cycles = cycles;
    for (int k = 0; k < DWT_EVENTS; ++k) {
        s->pending[k] += (uint8_t)(now[k] - s->last[k]);
        s->last[k] = now[k];
    }
}

void dwt_events_fold(dwt_events_t *s, const uint8_t now[DWT_EVENTS], uint32_t cycles)
{
    fold(s, now, cycles);
}

void dwt_events_tick(dwt_events_t *s, const uint8_t now[DWT_EVENTS], uint32_t cycles)
{
    fold(s, now, cycles);
    s->ticks++;
    s->samples++;
}

void dwt_events_lap(dwt_events_t *s, const uint16_t per_tick_q8[DWT_EVENTS], uint32_t *row)
{
    for (int k = 0; k < DWT_EVENTS; ++k) {
        uint64_t share = ((uint64_t)s->ticks * per_tick_q8[k] + 128u) >> 8;
        uint32_t events = s->pending[k];
        row[k] += share < events ? events - (uint32_t)share : 0u;
        s->pending[k] = 0;
    }
    s->ticks = 0;
}

void dwt_events_per_tick(const uint32_t fast[DWT_EVENTS], uint32_t fast_ticks,
                         const uint32_t slow[DWT_EVENTS], uint32_t slow_ticks,
                         uint16_t per_tick_q8[DWT_EVENTS])
{
    /* 32-bit division (no 64-bit division routine in the image): differences of 2^24 events
     * or more saturate, far above a calibration's (ticks x less than 256 each). */
    for (int k = 0; k < DWT_EVENTS; ++k) {
        uint32_t q8 = 0;
        if (fast_ticks > slow_ticks && fast[k] > slow[k]) {
            uint32_t ticks = fast_ticks - slow_ticks;
            uint32_t diff = fast[k] - slow[k];
            diff = diff > 0x00FFFFFFu ? 0x00FFFFFFu : diff;
            q8 = ((diff << 8) + ticks / 2u) / ticks;
        }
        per_tick_q8[k] = q8 > 0xFFFFu ? 0xFFFFu : (uint16_t)q8;
    }
}
