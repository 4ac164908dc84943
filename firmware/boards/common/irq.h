/* Interrupt-driven reception and handler accounting, shared by the boards (not seen by the
 * application, which only uses board.h).
 *
 *   UART interrupt (priority 0x80): the board's board_uart_irq_service() moves received bytes
 *       into a ring with irq_rx_push(), then the service handler is requested. A full ring
 *       turns the receive interrupt off until the service has emptied it.
 *   PendSV (lowest priority): runs app_service(), which parses frames and answers them. It
 *       preempts the inference running in thread mode, and the UART interrupt preempts it, so
 *       bytes are taken off the UART promptly even while a frame is handled.
 *   SysTick (priority 0x80, emulated boards): counts the 24-bit counter's wraps.
 *
 * Accounting: every handler measures the counter units (instructions or cycles) it spends and
 * adds them to irq_units, so board_counter_read() counts the thread-mode work alone. The units
 * a handler executes outside its own measurement (entry, exit) are calibrated once at boot by
 * pending the handler during a measured region. On the emulated boards the result is exact:
 * the count of an inference is the same whether or not bytes arrived during it. */
#ifndef BOARD_IRQ_H
#define BOARD_IRQ_H

#include <stdint.h>

/* Provided by each board.c. */
uint32_t board_raw_now(void);                /* raw free-running counter */
uint32_t board_units_since(uint32_t raw_t0); /* units since raw_t0 (rounded; short windows) */
uint64_t board_units_total(void);            /* units since board_units_restart() */
void board_units_restart(void);
/* Moves received bytes to irq_rx_push() while it accepts them; when it refuses (ring full),
 * disables the UART's receive interrupt, leaving the bytes in the UART (the link's own flow
 * control, or an overrun on a UART without any). */
void board_uart_irq_service(void);
void board_uart_rx_irq(int enable); /* the UART's receive interrupt on or off */

/* Provided by common/irq.c. */
extern volatile uint32_t irq_units;
/* 1 if the receive ring has room for a byte. */
int irq_rx_room(void);
/* 1 if the byte was stored, 0 if the receive ring is full. */
int irq_rx_push(uint8_t byte);
/* The UART lost bytes (overrun): reported to the application by board_rx_overflowed(). */
void irq_rx_lost(void);
/* Sets priorities, enables the UART interrupt line `irqn` and calibrates the accounting. */
void irq_start(int irqn);
/* Calibrated units of one handler beyond its own measurement: how many units a measured region
 * gains when the handler pended by writing `value` to `reg` runs inside it. */
uint32_t irq_calibrate(volatile uint32_t *reg, uint32_t value);

static inline void irq_disable(void)
{
    __asm volatile("cpsid i" ::: "memory");
}

static inline void irq_enable(void)
{
    __asm volatile("cpsie i" ::: "memory");
}

#endif /* BOARD_IRQ_H */
