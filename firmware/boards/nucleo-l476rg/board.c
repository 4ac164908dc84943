/* nucleo-l476rg: STM32L476RG (Cortex-M4F) at 80 MHz, USART2 on PA2/PA3 = the ST-LINK virtual
 * COM port, DWT cycle counter. Register addresses from the STM32L4x6 reference manual (RM0351),
 * written for this board only: no vendor SDK. Counts are real cycles. */
#include "../board.h"

#include "../common/irq.h"

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
/* Debug: cycle counter */
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

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
