/* See irq.h: receive ring, the service handler (PendSV), handler accounting. */
#include "irq.h"

#include "../board.h"
#include "systick.h"

#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SCB_SHPR3 (*(volatile uint32_t *)0xE000ED20u)
#define NVIC_ISER(n) (*(volatile uint32_t *)(0xE000E100u + 4u * ((uint32_t)(n) >> 5)))
#define NVIC_ISPR(n) (*(volatile uint32_t *)(0xE000E200u + 4u * ((uint32_t)(n) >> 5)))
#define NVIC_IPR(n) (*(volatile uint8_t *)(0xE000E400u + (uint32_t)(n)))
#define ICSR_PENDSVSET (1u << 28)

/* Received bytes: written by the UART interrupt, read by the service handler. */
#define RX_RING_BYTES 256u
static volatile uint8_t rx_ring[RX_RING_BYTES];
static volatile uint32_t rx_head, rx_tail;
static volatile uint8_t rx_overflowed;

volatile uint32_t irq_units;
static uint32_t k_uart, k_service;
static volatile int calibrating;

int irq_rx_room(void)
{
    return rx_head - rx_tail < RX_RING_BYTES;
}

int irq_rx_push(uint8_t byte)
{
    uint32_t head = rx_head;
    if (head - rx_tail >= RX_RING_BYTES) {
        return 0;
    }
    rx_ring[head % RX_RING_BYTES] = byte;
    rx_head = head + 1u;
    return 1;
}

void irq_rx_lost(void)
{
    rx_overflowed = 1;
}

int board_uart_read(uint8_t *byte)
{
    uint32_t tail = rx_tail;
    if (tail == rx_head) {
        return 0;
    }
    *byte = rx_ring[tail % RX_RING_BYTES];
    rx_tail = tail + 1u;
    return 1;
}

int board_rx_overflowed(void)
{
    irq_disable();
    int was = rx_overflowed;
    rx_overflowed = 0;
    irq_enable();
    return was;
}

void board_service_request(void)
{
    SCB_ICSR = ICSR_PENDSVSET;
    __asm volatile("dsb\n isb" ::: "memory");
}

void board_critical_begin(void)
{
    irq_disable();
}

void board_critical_end(void)
{
    irq_enable();
}

void board_idle(void)
{
    /* A running SysTick would wake the core at every wrap; on an emulated board, whose virtual
     * clock jumps to the next timer deadline while the core sleeps (-icount sleep=off), that
     * turns the sleep into a busy loop of wraps. No count spans an idle period. It runs again
     * on waking (if it ran before), so that the handlers that follow measure their windows
     * (board_mark) on the emulated boards. */
    uint32_t running = SYST_CSR & 0x7u;
    SYST_CSR = 0x4u;
    SYST_ICSR = SYST_ICSR_PENDSTCLR;
    __asm volatile("dsb\n wfi" ::: "memory");
    SYST_CSR = running;
}

void board_counter_restart(void)
{
    irq_disable();
    board_units_restart();
    irq_units = 0;
    irq_enable();
}

uint64_t board_counter_read(void)
{
    irq_disable();
    uint64_t units = board_units_total() - irq_units;
    irq_enable();
    return units;
}

/* Both reads with interrupts off, so that a handler falls wholly inside or outside the window. */
void board_mark(board_mark_t *m)
{
    irq_disable();
    m->raw = board_raw_now();
    m->nested = irq_units;
    irq_enable();
}

uint32_t board_units_since_mark(const board_mark_t *m)
{
    irq_disable();
    uint32_t units = board_units_since(m->raw) - (irq_units - m->nested);
    irq_enable();
    return units;
}

/* Every external interrupt line lands here; a board enables only its UART's. */
void Board_IRQ_Handler(void)
{
    uint32_t t0 = board_raw_now();
    board_uart_irq_service();
    SCB_ICSR = ICSR_PENDSVSET;
    irq_units += board_units_since(t0) + k_uart;
}

/* The service handler. A UART interrupt may preempt it: `saved` is taken with interrupts off,
 * and the final sum covers the nested handlers, so their own additions are replaced, not
 * counted twice. */
void PendSV_Handler(void)
{
    irq_disable();
    uint32_t saved = irq_units;
    uint32_t t0 = board_raw_now();
    irq_enable();
    if (!calibrating) {
        app_service(); /* empties the ring */
        board_uart_rx_irq(1);
    }
    irq_disable();
    irq_units = saved + board_units_since(t0) + k_service;
    irq_enable();
}

/* One measured region in which the store `*reg = value` may pend a handler. */
static uint32_t __attribute__((noinline)) measure(volatile uint32_t *reg, uint32_t value)
{
    board_counter_restart();
    *reg = value;
    __asm volatile("dsb\n isb\n nop\n nop\n nop\n nop" ::: "memory");
    return (uint32_t)board_counter_read();
}

uint32_t irq_calibrate(volatile uint32_t *reg, uint32_t value)
{
    calibrating = 1;
    uint32_t with = measure(reg, value);
    uint32_t without = measure(reg, 0);
    calibrating = 0;
    return with > without ? with - without : 0u;
}

void irq_start(int irqn)
{
    SCB_SHPR3 = (SCB_SHPR3 & 0x0000FFFFu) | (0x80u << 24) | (0xFFu << 16); /* SysTick, PendSV */
    NVIC_IPR(irqn) = 0x80u;
    NVIC_ISER(irqn) = 1u << ((uint32_t)irqn & 31u);
    k_service = irq_calibrate(&SCB_ICSR, ICSR_PENDSVSET);
    k_uart = irq_calibrate(&NVIC_ISPR(irqn), 1u << ((uint32_t)irqn & 31u));
}
