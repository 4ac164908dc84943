/* Cortex-M startup shared by the boards: vector table, .data copy, .bss zeroing, SysTick wrap
 * counting. A board provides SysTick setup through board_init(). */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);

volatile uint32_t board_systick_wraps;

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    (void)main();
    for (;;) {
    }
}

void Default_Handler(void)
{
    for (;;) {
    }
}

void SysTick_Handler(void)
{
    board_systick_wraps++;
}

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) const vector_t vector_table[16] = {
    (vector_t)(uintptr_t)&_estack, Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler,
    Default_Handler, 0, Default_Handler, SysTick_Handler,
};
