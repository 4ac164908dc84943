/* The only boundary between the application and a board. A board supplies these functions in
 * boards/<board>/board.c (and the shared boards/common/); application code never touches a
 * register.
 *
 * Execution model: the application's main() runs the inference in thread mode. Received bytes
 * are captured by the board's UART interrupt, and the application's app_service() is run by
 * the board in a low-priority handler whenever bytes arrived or board_service_request() was
 * called: it parses and answers frames while an inference is running. */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

void board_init(void);
/* Enables reception: from now on app_service() runs whenever bytes arrive. */
void board_rx_start(void);
/* Non-blocking: 1 and the next received byte if there is one, else 0. Call from app_service. */
int board_uart_read(uint8_t *byte);
/* 1 if received bytes were lost (receive buffer full) since the last call. */
int board_rx_overflowed(void);
/* Blocking until every byte is handed to the UART. Call from app_service only. */
void board_uart_write(const uint8_t *data, size_t len);
/* Runs app_service() soon (at once when called from thread mode). */
void board_service_request(void);
/* Thread mode: app_service() does not run between begin and end (keep it short). */
void board_critical_begin(void);
void board_critical_end(void);
/* Provided by the application: run by the board at low interrupt priority. */
void app_service(void);

/* Restarts the work counter at 0. Counts of the same work are then identical run to run. */
void board_counter_restart(void);
/* Thread-mode work since the last restart, interrupt handlers excluded: instructions
 * (emulated boards) or cycles (real boards). */
uint64_t board_counter_read(void);

/* What board_counter_read() counts. The application maps it to its wire protocol's code. */
typedef enum {
    BOARD_COUNTER_INSTRUCTIONS = 0, /* executed instructions (emulated boards: exact) */
    BOARD_COUNTER_CYCLES = 1,       /* core clock cycles (real boards) */
} board_counter_kind_t;

board_counter_kind_t board_counter_kind(void);
uint32_t board_core_clock_hz(void);
/* Deepest stack use since reset, bytes (the free RAM is painted at reset). */
uint32_t board_stack_peak(void);
const char *board_name(void);
void board_reset(void);

#endif /* BOARD_H */
