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
/* Thread mode, between board_critical_begin() and board_critical_end(): sleeps until an
 * interrupt is pending (WFI). Returns with interrupts still disabled; the pending handler runs
 * at board_critical_end(), so the caller re-checks its condition after that. Stops the SysTick
 * while the core sleeps: the work counter is undefined until the next board_counter_restart()
 * (handler windows, board_mark(), are measured again once it returns). */
void board_idle(void);
/* Provided by the application: run by the board at low interrupt priority. */
void app_service(void);

/* Restarts the work counter at 0. Counts of the same work are then identical run to run. */
void board_counter_restart(void);
/* Thread-mode work since the last restart, interrupt handlers excluded: instructions
 * (emulated boards) or cycles (real boards). */
uint64_t board_counter_read(void);

/* A window of work in app_service(), nested interrupt handlers excluded (as they are from
 * board_counter_read()): board_mark() starts it, board_units_since_mark() reads it, in the same
 * counter units. For windows shorter than the counter's wrap (2^24 ticks on the emulated
 * boards); the same work gives the same count run to run there. */
typedef struct {
    uint32_t raw;    /* the board's raw counter at the mark */
    uint32_t nested; /* the handler units accounted at the mark */
} board_mark_t;

void board_mark(board_mark_t *m);
uint32_t board_units_since_mark(const board_mark_t *m);

/* What board_counter_read() counts. The application maps it to its wire protocol's code. */
typedef enum {
    BOARD_COUNTER_INSTRUCTIONS = 0, /* executed instructions (emulated boards: exact) */
    BOARD_COUNTER_CYCLES = 1,       /* core clock cycles (real boards) */
} board_counter_kind_t;

board_counter_kind_t board_counter_kind(void);
uint32_t board_core_clock_hz(void);

/* DWT event counters per window (Armv7-M, ARM DDI 0403E C1.8), in register order: cycles beyond
 * the first of each instruction and instruction fetch stalls (CPICNT), exception entry and exit
 * (EXCCNT), sleep (SLEEPCNT), load/store cycles beyond the first (LSUCNT), folded instructions
 * (FOLDCNT). The hardware counters are 8 bits wide: the board samples them from an interrupt
 * that perturbs the work counter, so the application counts events in a pass of its own. */
enum {
    BOARD_EVENT_CPI,
    BOARD_EVENT_EXC,
    BOARD_EVENT_SLEEP,
    BOARD_EVENT_LSU,
    BOARD_EVENT_FOLD,
    BOARD_EVENTS
};

typedef struct {
    uint32_t samples;       /* sampler ticks between start and stop */
    uint32_t late;          /* intervals between two reads long enough for a counter to wrap */
    uint32_t period_cycles; /* cycles between two sampler ticks */
} board_events_summary_t;

/* 1 if the board counts DWT events; else 0, and the functions below must not be called. */
int board_events_supported(void);
/* Thread mode: starts the sampler. Until board_events_stop() it adds the events to
 * pending[BOARD_EVENTS] (zeroed here; the caller's memory, valid until the stop). */
void board_events_start(uint32_t pending[BOARD_EVENTS]);
/* Thread mode: adds the events since the last lap (or the start) to row[BOARD_EVENTS], less the
 * sampler's own events (measured at start-up), and zeroes pending. */
void board_events_lap(uint32_t row[BOARD_EVENTS]);
void board_events_stop(board_events_summary_t *summary);
/* Deepest stack use since reset, bytes (the free RAM is painted at reset). */
uint32_t board_stack_peak(void);
const char *board_name(void);
void board_reset(void);

#endif /* BOARD_H */
