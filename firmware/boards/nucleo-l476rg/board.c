/* nucleo-l476rg: STM32L476RG (Cortex-M4F) at 80 MHz, USART2 on PA2/PA3 = the ST-LINK virtual
 * COM port, DWT cycle counter, DWT event counters sampled by SysTick. Register addresses from the
 * STM32L4x6 reference manual (RM0351) and, for the core, the Armv7-M Architecture Reference
 * Manual (ARM DDI 0403E), written for this board only: no vendor SDK. Counts are real cycles. */
#include "../board.h"

#include "../common/dwt_events.h"
#include "../common/irq.h"
#include "../common/systick.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* RCC, FLASH */
#define RCC_CR REG(0x40021000u)
#define RCC_CFGR REG(0x40021008u)
#define RCC_PLLCFGR REG(0x4002100Cu)
#define RCC_AHB2ENR REG(0x4002104Cu)
#define RCC_APB1ENR1 REG(0x40021058u)
#define FLASH_ACR REG(0x40022000u)
/* GPIOA */
#define GPIOA_MODER REG(0x48000000u)
#define GPIOA_OSPEEDR REG(0x48000008u)
#define GPIOA_AFRL REG(0x48000020u)
/* USART2 */
#define USART2_CR1 REG(0x40004400u)
#define USART2_BRR REG(0x4000440Cu)
#define USART2_ISR REG(0x4000441Cu)
#define USART2_ICR REG(0x40004420u)
#define USART2_RDR REG(0x40004424u)
#define USART2_TDR REG(0x40004428u)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)
#define CR1_RXNEIE (1u << 5)
#define USART2_IRQ 38
/* Debug: cycle and event counters (ARM DDI 0403E C1.8) */
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)
#define DWT_CPICNT REG(0xE0001008u)
#define DWT_EXCCNT REG(0xE000100Cu)
#define DWT_SLEEPCNT REG(0xE0001010u)
#define DWT_LSUCNT REG(0xE0001014u)
#define DWT_FOLDCNT REG(0xE0001018u)
#define DWT_NOPRFCNT (1u << 24)

/* The event sampler: SysTick (unused otherwise on this board) every 128 cycles, so that two
 * reads stay under 256 cycles apart even when the UART interrupt (same priority) or a lap delays
 * a tick. Its own events per tick are measured at start-up: CALIBRATION_LOOPS iterations of a
 * busy loop sampled every 128 and every 192 cycles. */
#define SAMPLER_RELOAD 127u
#define SAMPLER_SLOW_RELOAD 191u
#define CALIBRATION_LOOPS 300000u

#define CORE_CLOCK_HZ 80000000u
#define BAUD 921600u

static void clock_80mhz(void)
{
    /* MSI 4 MHz (reset default) -> PLL: /M=1, xN=40, /R=2 -> 80 MHz; flash 4 wait states. */
    FLASH_ACR = (FLASH_ACR & ~0x7u) | 4u | (1u << 8) | (1u << 9) | (1u << 10);
    while ((FLASH_ACR & 0x7u) != 4u) {
    }
    RCC_PLLCFGR = (1u << 0)          /* PLLSRC = MSI */
                  | (0u << 4)        /* PLLM = 1 */
                  | (40u << 8)       /* PLLN = 40 */
                  | (0u << 25)       /* PLLR = 2 */
                  | (1u << 24);      /* PLLREN */
    RCC_CR |= 1u << 24;              /* PLLON */
    while (!(RCC_CR & (1u << 25))) { /* PLLRDY */
    }
    RCC_CFGR = (RCC_CFGR & ~0x3u) | 0x3u; /* SYSCLK = PLL */
    while (((RCC_CFGR >> 2) & 0x3u) != 0x3u) {
    }
}

static void sampler_calibrate(void);

void board_init(void)
{
    clock_80mhz();
    RCC_AHB2ENR |= 1u << 0;   /* GPIOA */
    RCC_APB1ENR1 |= 1u << 17; /* USART2 (clocked from PCLK1 = 80 MHz) */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4); /* PA2, PA3: alternate */
    GPIOA_OSPEEDR |= 0xFu << 4;
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8); /* AF7 = USART2 */
    USART2_CR1 = 0;
    USART2_BRR = (CORE_CLOCK_HZ + BAUD / 2) / BAUD;
    USART2_CR1 = (1u << 3) | (1u << 2) | (1u << 0); /* TE, RE, UE */
    DEMCR |= 1u << 24;                              /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u; /* CYCCNTENA */
    if (board_events_supported()) {
        /* CPIEVTENA .. FOLDEVTENA: the event counters count (their overflow packets go to the
         * ITM, which is off) */
        DWT_CTRL |= 0x1Fu << 17;
        sampler_calibrate();
    }
}

void board_rx_start(void)
{
    irq_start(USART2_IRQ);
    board_uart_rx_irq(1);
}

/* USART2 holds one byte: when the ring is full the next bytes overrun, which the application
 * reports (ERROR OVERRUN) and the host's retransmission repairs. */
void board_uart_irq_service(void)
{
    uint32_t isr;
    while ((isr = USART2_ISR) & (ISR_RXNE | ISR_ORE)) {
        if (isr & ISR_ORE) {
            USART2_ICR = ISR_ORE;
            irq_rx_lost();
        }
        if (isr & ISR_RXNE) {
            if (!irq_rx_room()) {
                board_uart_rx_irq(0);
                return;
            }
            irq_rx_push((uint8_t)USART2_RDR);
        }
    }
}

void board_uart_rx_irq(int enable)
{
    if (enable) {
        USART2_CR1 |= CR1_RXNEIE;
    } else {
        USART2_CR1 &= ~CR1_RXNEIE;
    }
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (!(USART2_ISR & ISR_TXE)) {
        }
        USART2_TDR = data[i];
    }
}

/* DWT cycles: 32 bits, 53 s at 80 MHz, far longer than one inference. */
uint32_t board_raw_now(void)
{
    return DWT_CYCCNT;
}

uint32_t board_units_since(uint32_t raw_t0)
{
    return DWT_CYCCNT - raw_t0;
}

uint64_t board_units_total(void)
{
    return DWT_CYCCNT;
}

void board_units_restart(void)
{
    DWT_CYCCNT = 0;
}

board_counter_kind_t board_counter_kind(void)
{
    return BOARD_COUNTER_CYCLES;
}

uint32_t board_core_clock_hz(void)
{
    return CORE_CLOCK_HZ;
}

const char *board_name(void)
{
    return "nucleo-l476rg";
}

static dwt_events_t sampler;
static uint16_t sampler_per_tick_q8[DWT_EVENTS]; /* the sampler's own events per tick, 1/256 */

_Static_assert((int)DWT_EVENTS == (int)BOARD_EVENTS, "board.h and dwt_events.h count alike");

static inline void read_events(uint8_t now[DWT_EVENTS])
{
    now[DWT_CPI] = (uint8_t)DWT_CPICNT;
    now[DWT_EXC] = (uint8_t)DWT_EXCCNT;
    now[DWT_SLEEP] = (uint8_t)DWT_SLEEPCNT;
    now[DWT_LSU] = (uint8_t)DWT_LSUCNT;
    now[DWT_FOLD] = (uint8_t)DWT_FOLDCNT;
}

/* Overrides common/systick.c's handler: on this board SysTick runs only as the sampler. */
void SysTick_Handler(void)
{
    uint8_t now[DWT_EVENTS];
    uint32_t cycles = DWT_CYCCNT;
    read_events(now);
    dwt_events_tick(&sampler, now, cycles);
}

static void sampler_start(uint32_t *pending, int slow)
{
    uint8_t now[DWT_EVENTS];
    irq_disable();
    SYST_CSR = 0;
    if (slow) {
        SYST_RVR = SAMPLER_SLOW_RELOAD;
    } else {
        SYST_RVR = SAMPLER_RELOAD;
    }
    SYST_CVR = 0;
    SYST_ICSR = SYST_ICSR_PENDSTCLR;
    uint32_t cycles = DWT_CYCCNT;
    read_events(now);
    dwt_events_start(&sampler, pending, now, cycles);
    SYST_CSR = 0x7u;
    irq_enable();
}

/* A last fold (the events up to here), then the sampler off. */
static void sampler_stop(void)
{
    uint8_t now[DWT_EVENTS];
    irq_disable();
    uint32_t cycles = DWT_CYCCNT;
    read_events(now);
    dwt_events_fold(&sampler, now, cycles);
    SYST_CSR = 0;
    SYST_ICSR = SYST_ICSR_PENDSTCLR;
    irq_enable();
}

static void busy_loop(void)
{
    uint32_t n = CALIBRATION_LOOPS;
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
}

/* The same busy loop sampled at two periods: its own events cancel in the difference, which is
 * the sampler's events (handler, entry and exit, and its effect on the interrupted code) times
 * the difference in ticks. Before the UART interrupt is on: nothing else runs. */
static void sampler_calibrate(void)
{
    uint32_t fast[DWT_EVENTS], slow[DWT_EVENTS];
    sampler_start(fast, 0);
    busy_loop();
    sampler_stop();
    uint32_t fast_ticks = sampler.samples;
    sampler_start(slow, 1);
    busy_loop();
    sampler_stop();
    dwt_events_per_tick(fast, fast_ticks, slow, sampler.samples, sampler_per_tick_q8);
}

int board_events_supported(void)
{
    return !(DWT_CTRL & DWT_NOPRFCNT);
}

void board_events_start(uint32_t pending[BOARD_EVENTS])
{
    sampler_start(pending, 0);
}

void board_events_lap(uint32_t row[BOARD_EVENTS])
{
    uint8_t now[DWT_EVENTS];
    irq_disable();
    uint32_t cycles = DWT_CYCCNT;
    read_events(now);
    dwt_events_fold(&sampler, now, cycles);
    dwt_events_lap(&sampler, sampler_per_tick_q8, row);
    irq_enable();
}

void board_events_stop(board_events_summary_t *summary)
{
    sampler_stop();
    summary->samples = sampler.samples;
    summary->late = sampler.late;
    summary->period_cycles = SAMPLER_RELOAD + 1u;
}
