/* The only boundary between the application and a board. A board supplies these functions in
 * boards/<board>/board.c; application code never touches a register. */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

void board_init(void);
/* Non-blocking: 1 and the byte if one was received, else 0. */
int board_uart_read(uint8_t *byte);
/* Blocking until every byte is handed to the UART. */
void board_uart_write(const uint8_t *data, size_t len);
/* Restarts the work counter at 0. Counts of the same work are then identical run to run. */
void board_counter_restart(void);
/* Work since the last restart: instructions (emulated boards) or cycles (real boards). */
uint64_t board_counter_read(void);
/* PROTO_COUNTER_INSTRUCTIONS or PROTO_COUNTER_CYCLES. */
uint8_t board_counter_kind(void);
uint32_t board_core_clock_hz(void);
const char *board_name(void);
void board_reset(void);

#endif /* BOARD_H */
