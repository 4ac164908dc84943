/* nucleo-l476rg: STM32L476RG (Cortex-M4F) at 80 MHz, USART2 on PA2/PA3 = the ST-LINK virtual
 * COM port, DWT cycle counter. Register addresses from the STM32L4x6 reference manual (RM0351),
 * written for this board only: no vendor SDK. Counts are real cycles. */
#include "../board.h"

#include "../../app/protocol_defs.h"

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
    RCC_PLLCFGR = (1u << 0)       /* PLLSRC = MSI */
                  | (0u << 4)     /* PLLM = 1 */
                  | (40u << 8)    /* PLLN = 40 */
                  | (0u << 25)    /* PLLR = 2 */
                  | (1u << 24);   /* PLLREN */
    RCC_CR |= 1u << 24;           /* PLLON */
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
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4);      /* PA2, PA3: alternate */
    GPIOA_OSPEEDR |= 0xFu << 4;
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8);       /* AF7 = USART2 */
    USART2_CR1 = 0;
    USART2_BRR = (CORE_CLOCK_HZ + BAUD / 2) / BAUD;
    USART2_CR1 = (1u << 3) | (1u << 2) | (1u << 0);                 /* TE, RE, UE */
    DEMCR |= 1u << 24;                                              /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;                                                 /* CYCCNTENA */
}

int board_uart_read(uint8_t *byte)
{
    uint32_t isr = USART2_ISR;
    if (isr & ISR_ORE) { /* a host that ignored flow control: the frame's CRC will fail */
        USART2_ICR = ISR_ORE;
    }
    if (isr & ISR_RXNE) {
        *byte = (uint8_t)USART2_RDR;
        return 1;
    }
    return 0;
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (!(USART2_ISR & ISR_TXE)) {
        }
        USART2_TDR = data[i];
    }
}

void board_counter_restart(void)
{
    DWT_CYCCNT = 0;
}

uint64_t board_counter_read(void)
{
    return DWT_CYCCNT; /* 32 bits: 53 s at 80 MHz, far longer than one inference */
}

uint8_t board_counter_kind(void)
{
    return PROTO_COUNTER_CYCLES;
}

uint32_t board_core_clock_hz(void)
{
    return CORE_CLOCK_HZ;
}

const char *board_name(void)
{
    return "nucleo-l476rg";
}
