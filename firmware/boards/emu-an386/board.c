/* emu-an386: QEMU mps2-an386, Arm's Cortex-M4 reference image (25 MHz). CMSDK APB UART0 at
 * 0x40004000 (QEMU serial0), a one-byte UART: slow (13-25 kB/s host -> board), which is the
 * point of this board: the same application behind another board.h. With
 * -icount shift=7,align=off,sleep=off SysTick advances 3.2 ticks per instruction (shift=6 would
 * give 1.6, too few to recover the instructions of a handler's window exactly). */
#include "../board.h"

#include "../common/irq.h"
#include "../common/systick.h"

#define UART_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART_BASE + 0x10u))
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define UART_INTSTATUS (*(volatile uint32_t *)(UART_BASE + 0x0Cu))
#define CTRL_RX_IRQ 0x8u
#define INT_RX 0x2u
#define UART_RX_IRQ 0 /* UART0 receive */
#define NVIC_ISPR0 (*(volatile uint32_t *)0xE000E200u)

#define CORE_CLOCK_HZ 25000000u
#define UNITS_PER_WRAP 5242880u /* 2^24 ticks * 5 / 16 */

void board_init(void)
{
    UART_BAUDDIV = 16; /* the minimum; QEMU does not pace the link by it */
    UART_CTRL = 0x3;   /* TX and RX enabled */
    systick_start(UNITS_PER_WRAP);
}

void board_rx_start(void)
{
    irq_start(UART_RX_IRQ);
    board_uart_rx_irq(1);
}

/* A byte is read only once the ring has room for it (QEMU's UART then holds the next one and
 * the host waits: no byte is ever lost on this board). */
void board_uart_irq_service(void)
{
    UART_INTSTATUS = INT_RX; /* write 1 to clear */
    while (UART_STATE & STATE_RX_FULL) {
        if (!irq_rx_room()) {
            board_uart_rx_irq(0);
            return;
        }
        irq_rx_push((uint8_t)UART_DATA);
    }
}

/* QEMU's CMSDK UART raises its receive interrupt when a byte arrives with the interrupt on:
 * a byte that arrived while it was off would wait forever, so it is handled now. */
void board_uart_rx_irq(int enable)
{
    UART_CTRL = enable ? (0x3u | CTRL_RX_IRQ) : 0x3u;
    if (enable && (UART_STATE & STATE_RX_FULL)) {
        NVIC_ISPR0 = 1u << UART_RX_IRQ;
    }
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & STATE_TX_FULL) {
        }
        UART_DATA = data[i];
    }
}

/* 3.2 ticks per instruction at 25 MHz: instructions = ticks * 5 / 16. */
#define SYSTICK_UNITS_NUM 5u
#define SYSTICK_UNITS_DEN 16u
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
    return "emu-an386";
}
