/* SysTick as a 64-bit counter (24-bit hardware counter + wraps counted in the interrupt). */
#ifndef SYSTICK_H
#define SYSTICK_H

#include <stdint.h>

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

extern volatile uint32_t board_systick_wraps;

static inline void systick_start(void)
{
    SYST_CSR = 0;           /* disable before changing the clock source (QEMU quirk) */
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x4u;        /* processor clock, written on its own */
    SYST_CSR = 0x7u;        /* enable, interrupt, processor clock */
    while (SYST_CVR == 0) { /* QEMU: wait until the counter runs */
    }
}

/* Restarts the count at 0 with the counter at a fixed phase, so that the count of the same
 * work is the same however long the board idled before (a wrap interrupt costs instructions). */
static inline void systick_restart(void)
{
    SYST_CSR = 0x4u;                                 /* stop, keep the processor clock */
    (*(volatile uint32_t *)0xE000ED04u) = 1u << 25; /* ICSR.PENDSTCLR: drop a pending wrap */
    board_systick_wraps = 0;
    SYST_CVR = 0;
    SYST_CSR = 0x7u;
    while (SYST_CVR == 0) {
    }
}

static inline uint64_t systick_ticks(void)
{
    uint32_t wraps, value;
    do {
        wraps = board_systick_wraps;
        value = SYST_CVR;
    } while (wraps != board_systick_wraps);
    return ((uint64_t)wraps << 24) + (0x00FFFFFFu - value);
}

#endif /* SYSTICK_H */
