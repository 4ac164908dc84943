/* The counter functions of irq.h for an emulated board whose SysTick runs at the core clock
 * under QEMU -icount: instructions = ticks * SYSTICK_UNITS_NUM / SYSTICK_UNITS_DEN. Included by
 * that board's board.c (once), after it defines both. With at least 2 ticks per instruction, a
 * window between two reads is off by less than one tick, under half an instruction: rounding
 * recovers its instructions exactly. */
#ifndef SYSTICK_COUNTER_H
#define SYSTICK_COUNTER_H

#include "irq.h"
#include "systick.h"

#if !defined(SYSTICK_UNITS_NUM) || !defined(SYSTICK_UNITS_DEN)
#error "define SYSTICK_UNITS_NUM and SYSTICK_UNITS_DEN before including systick_counter.h"
#endif

uint32_t board_raw_now(void)
{
    return systick_raw();
}

uint32_t board_units_since(uint32_t raw_t0)
{
    uint32_t ticks = (systick_raw() - raw_t0) & 0x00FFFFFFu;
    return (ticks * SYSTICK_UNITS_NUM + SYSTICK_UNITS_DEN / 2u) / SYSTICK_UNITS_DEN;
}

uint64_t board_units_total(void)
{
    return systick_ticks() * SYSTICK_UNITS_NUM / SYSTICK_UNITS_DEN;
}

void board_units_restart(void)
{
    systick_restart();
}

#endif /* SYSTICK_COUNTER_H */
