/* emu-an386: QEMU mps2-an386, Arm's Cortex-M4 reference image (25 MHz). CMSDK APB UART0 at
 * 0x40004000 (QEMU serial0), a one-byte UART: slow (13-25 kB/s host -> board), which is the
 * point of this board: the same application behind another board.h. With
 * -icount shift=6,align=off,sleep=off SysTick advances 1.6 ticks per instruction. */
#include "../board.h"

#include "../../app/protocol_defs.h"
#include "../common/systick.h"

#define UART_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART_BASE + 0x10u))
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u

#define CORE_CLOCK_HZ 25000000u

void board_init(void)
{
    UART_BAUDDIV = 16; /* the minimum; QEMU does not pace the link by it */
    UART_CTRL = 0x3;   /* TX and RX enabled */
    systick_start();
}

int board_uart_read(uint8_t *byte)
{
    if (UART_STATE & STATE_RX_FULL) {
        *byte = (uint8_t)UART_DATA;
        return 1;
    }
    return 0;
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & STATE_TX_FULL) {
        }
        UART_DATA = data[i];
    }
}

void board_counter_restart(void)
{
    systick_restart();
}

uint64_t board_counter_read(void)
{
    /* 1.6 ticks per instruction at 25 MHz: instructions = ticks * 5 / 8 (exact). */
    return systick_ticks() * 5u / 8u;
}

uint8_t board_counter_kind(void)
{
    return PROTO_COUNTER_INSTRUCTIONS;
}

uint32_t board_core_clock_hz(void)
{
    return CORE_CLOCK_HZ;
}

const char *board_name(void)
{
    return "emu-an386";
}
