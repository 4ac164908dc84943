/* board_reset for every Cortex-M board: a system reset request through the SCB. */
#include "../board.h"

void board_reset(void)
{
    (*(volatile uint32_t *)0xE000ED0Cu) = 0x05FA0004u; /* AIRCR: VECTKEY | SYSRESETREQ */
    for (;;) {
    }
}
