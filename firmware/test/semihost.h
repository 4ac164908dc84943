/* Arm semihosting (QEMU -semihosting-config enable=on,target=native): text to QEMU's stdout
 * and the exit of the emulator. Test programs only. */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stdint.h>

static inline int semihost_call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void semihost_puts(const char *s)
{
    semihost_call(0x04, s); /* SYS_WRITE0 */
}

static inline void semihost_exit(int code)
{
    const uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
    semihost_call(0x20, block);                           /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

#endif /* SEMIHOST_H */
