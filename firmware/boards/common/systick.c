/* SysTick wrap counting with handler accounting (see irq.h). Linked into every board; only the
 * boards that call systick_start() enable the interrupt. */
#include "systick.h"

#include "irq.h"

volatile uint32_t board_systick_wraps;
static uint32_t k_tick;

/* Weak: a board that does not count with SysTick may use it otherwise (nucleo-l476rg counts
 * cycles with the DWT and samples the DWT event counters with SysTick). */
__attribute__((weak)) void SysTick_Handler(void)
{
    uint32_t t0 = board_raw_now();
    board_systick_wraps++;
    irq_units += board_units_since(t0) + k_tick;
}

void systick_start(uint32_t units_per_wrap)
{
    SYST_CSR = 0; /* disable before changing the clock source (QEMU quirk) */
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x4u;        /* processor clock, written on its own */
    SYST_CSR = 0x7u;        /* enable, interrupt, processor clock */
    while (SYST_CVR == 0) { /* QEMU: wait until the counter runs */
    }
    /* A pended SysTick counts one wrap that did not happen: take its units off. */
    uint32_t gained = irq_calibrate(&SYST_ICSR, SYST_ICSR_PENDSTSET);
    k_tick = gained > units_per_wrap ? gained - units_per_wrap : 0u;
}
