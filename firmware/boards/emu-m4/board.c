/* emu-m4: QEMU ast1030-evb (Cortex-M4F, 200 MHz, 768 KB SRAM at 0), UART5 = 16550 at
 * 0x7E784000 (QEMU serial0). Run QEMU with -icount shift=6,align=off,sleep=off: SysTick then
 * advances 12.8 ticks per executed instruction, and counts are exact instructions. */
#include "../board.h"

#include "../common/irq.h"
#include "../common/systick.h"

#define UART_BASE 0x7E784000u
#define UART_REG(off) (*(volatile uint32_t *)(UART_BASE + (off)))
#define UART_RBR UART_REG(0x00)
#define UART_THR UART_REG(0x00)
#define UART_DLL UART_REG(0x00)
#define UART_DLM UART_REG(0x04)
#define UART_IER UART_REG(0x04)
#define UART_FCR UART_REG(0x08)
#define UART_LCR UART_REG(0x0C)
#define UART_MCR UART_REG(0x10)
#define UART_LSR UART_REG(0x14)
#define LSR_DATA_READY 0x01u
#define LSR_THR_EMPTY 0x20u

#define CORE_CLOCK_HZ 200000000u
#define UART_IRQ 8
#define UNITS_PER_WRAP 1310720u /* 2^24 ticks * 5 / 64 */

void board_init(void)
{
    UART_LCR = 0x80; /* divisor latch */
    UART_DLL = 1;
    UART_DLM = 0;
    UART_LCR = 0x03; /* 8N1 */
    UART_IER = 0;
    UART_FCR = 0xC7; /* FIFO on, trigger 14: without it the link runs at ~18 kB/s */
    UART_MCR = 0x03;
    systick_start(UNITS_PER_WRAP);
}

void board_rx_start(void)
{
    irq_start(UART_IRQ);
    board_uart_rx_irq(1); /* received data available (FIFO at its trigger level, or timeout) */
}

/* A byte is read only once the ring has room for it (QEMU's 16550 then holds the rest and
 * the host waits: no byte is ever lost on this board). */
void board_uart_irq_service(void)
{
    while (UART_LSR & LSR_DATA_READY) {
        if (!irq_rx_room()) {
            board_uart_rx_irq(0);
            return;
        }
        irq_rx_push((uint8_t)UART_RBR);
    }
}

void board_uart_rx_irq(int enable)
{
    UART_IER = enable ? 0x01u : 0x00u;
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (!(UART_LSR & LSR_THR_EMPTY)) {
        }
        UART_THR = data[i];
    }
}

/* 12.8 ticks per instruction at 200 MHz: instructions = ticks * 5 / 64. */
#define SYSTICK_UNITS_NUM 5u
#define SYSTICK_UNITS_DEN 64u
#include "../common/no_events.h"
#include "../common/systick_counter.h"

board_counter_kind_t board_counter_kind(void)
{
    return BOARD_COUNTER_INSTRUCTIONS;
}

uint32_t board_core_clock_hz(void)
{
    return CORE_CLOCK_HZ;
}

const char *board_name(void)
{
    return "emu-m4";
}
