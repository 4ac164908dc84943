/* SysTick as a 64-bit counter (24-bit hardware counter + wraps counted in the interrupt), for
 * the emulated boards, where QEMU's -icount makes it count executed instructions. */
#ifndef SYSTICK_H
#define SYSTICK_H

#include <stdint.h>

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SYST_ICSR_PENDSTSET (1u << 26)
#define SYST_ICSR_PENDSTCLR (1u << 25)

extern volatile uint32_t board_systick_wraps;

/* Starts the counter and calibrates the wrap handler's accounting; `units_per_wrap` is
 * board_units_total()'s increase over 2^24 ticks. */
void systick_start(uint32_t units_per_wrap);

/* Restarts the count at 0 with the counter at a fixed phase, so that the count of the same
 * work is the same however long the board idled before. Called with interrupts disabled. */
static inline void systick_restart(void)
{
    SYST_CSR = 0x4u;                 /* stop, keep the processor clock */
    SYST_ICSR = SYST_ICSR_PENDSTCLR; /* drop a pending wrap */
    board_systick_wraps = 0;
    SYST_CVR = 0;
    SYST_CSR = 0x7u;
    while (SYST_CVR == 0) {
    }
}

/* Ticks since the restart; called with interrupts disabled, so a wrap may be pending and not
 * yet counted. The pending flag read after the value tells: if it is set and the value is in
 * the upper half (just reloaded), the value is from after that wrap. Branch-free, so that
 * reading the counter always costs the same number of instructions. */
static inline uint64_t systick_ticks(void)
{
    uint32_t value = SYST_CVR;
    uint32_t pending = (SYST_ICSR >> 26) & 1u;
    uint32_t extra = pending & (value >> 23);
    return ((uint64_t)(board_systick_wraps + extra) << 24) + (0x00FFFFFFu - value);
}

/* The raw counter for handler windows (modulo 2^24). */
static inline uint32_t systick_raw(void)
{
    return 0x00FFFFFFu - SYST_CVR;
}

#endif /* SYSTICK_H */
