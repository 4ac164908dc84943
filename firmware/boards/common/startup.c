/* Cortex-M startup shared by the boards: vector table, .data copy, .bss zeroing. The handlers
 * are in irq.c and systick.c. */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);

#define STACK_PAINT 0x5AC3E1F0u

void Reset_Handler(void);
void Default_Handler(void);
uint32_t board_stack_peak(void);
void SysTick_Handler(void);
void PendSV_Handler(void);
void Board_IRQ_Handler(void);

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    /* Paint the free RAM below the stack, for board_stack_peak(). */
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *dst = &_ebss; dst < sp - 16;) {
        *dst++ = STACK_PAINT;
    }
    (void)main();
    for (;;) {
    }
}

uint32_t board_stack_peak(void)
{
    const uint32_t *p = &_ebss;
    while (p < &_estack && *p == STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

void Default_Handler(void)
{
    for (;;) {
    }
}

typedef void (*vector_t)(void);

/* 16 system exceptions, then 64 external interrupt lines (enough for every board here: the
 * highest UART line used is 38). Each board enables only its UART's line. */
#define EXTERNAL_IRQS 64
__attribute__((section(".vectors"), used)) const vector_t vector_table[16 + EXTERNAL_IRQS] = {
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2 ... 6] = Default_Handler,
    [11] = Default_Handler,
    [12] = Default_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16 ... 16 + EXTERNAL_IRQS - 1] = Board_IRQ_Handler,
};
