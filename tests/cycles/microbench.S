/* Microbenchmarks of the cycle estimate (tests/cycles/test_microbench.py): short instruction
 * sequences whose Cortex-M4 cycle counts follow by hand from the TRM (ARM DDI 0439B, 3.3).
 * Runs bare on QEMU's ast1030-evb (RAM at 0). Each benchmark is framed by a store to SYST_CVR
 * (ends the plugin's previous segment) and, after a NOP, a load of SYST_CVR (ends its own), so
 * each benchmark's segment is its body + NOP (1 cycle) + LDR (2 cycles). Ends with the
 * semihosting exit. */
    .syntax unified
    .thumb
    .text

    .global vector_table
    .type vector_table, %object
vector_table:
    .word 0x00020000          /* initial stack pointer */
    .word reset + 1
    .size vector_table, . - vector_table

    .macro begin
    str r7, [r6]
    .endm
    .macro end
    nop
    ldr r7, [r6]
    .endm

    .global reset
    .type reset, %function
    .align 2
reset:
    ldr r6, =0xE000E018       /* SYST_CVR */
    ldr r1, =0x00010000       /* scratch RAM */
    movs r7, #0
    movs r2, #3
    movs r5, #0

    /* 1: four independent loads: 2 + 1 + 1 + 1 (3.3.2: N loads in N+1) */
    begin
    ldr r0, [r1]
    ldr r2, [r1, #4]
    ldr r3, [r1, #8]
    ldr r4, [r1, #12]
    end

    /* 2: a load whose address is the previous load's result: 2 + 2 (no pipelining) */
    str r1, [r1]
    begin
    ldr r0, [r1]
    ldr r2, [r0]
    end

    /* 3: SMLAD loop, 4 iterations: MOVS 1, then 4 x (SUBS 1 + SMLAD 1 + SMLAD 1) and BNE
     * taken 3 x (1 + P = 2; its target SUBS is 16-bit: P = 1), not taken once (1):
     * 1 + 12 + 6 + 1 = 20 */
    begin
    movs r3, #4
1:  subs r3, #1
    smlad r0, r1, r2, r0
    smlad r0, r1, r2, r0
    bne 1b
    end

    /* 4: taken branch to a 16-bit instruction: B 1+P (2), target NOP 1 */
    begin
    b 2f
    nop
2:  nop
    end

    /* 5: branch not taken: CMP 1, BNE 1, NOP 1 */
    begin
    cmp r0, r0
    bne 3f
    nop
3:  nop
    end

    /* 6: STM and LDM of four registers: 1+4 each */
    begin
    stmia r1, {r0, r2, r3, r4}
    ldmia r1, {r0, r2, r3, r4}
    end

    /* 7: division: SDIV/UDIV 2-12 by the operands; the estimate takes the bound, 12 */
    movs r2, #3
    begin
    udiv r0, r1, r2
    end

    /* 8: IT folded onto the 16-bit ADDS before it: ADDS 1, IT 0, MOVEQ 1 */
    begin
    adds r0, #1
    it eq
    moveq r0, r1
    end

    /* 9: word load at an odd address: LDR 2 + 2 (3.3.2: byte-aligned word, two extra) */
    adds r5, r1, #1
    begin
    ldr r0, [r5]
    end

    /* 10: call and return: BL 1+P, BX LR 1+P (target of BX is the 16-bit NOP after BL) */
    begin
    bl leaf
    end

    /* 11: eight words from eight different 32-byte lines of flash data, twice: 16 independent
     * loads, 2 + 15 x 1; the data cache (8 lines, nucleo-l476rg setting) misses on the first
     * eight and hits on the second eight */
    ldr r4, =table
    begin
    ldr r0, [r4, #0]
    ldr r0, [r4, #32]
    ldr r0, [r4, #64]
    ldr r0, [r4, #96]
    ldr r0, [r4, #128]
    ldr r0, [r4, #160]
    ldr r0, [r4, #192]
    ldr r0, [r4, #224]
    ldr r0, [r4, #0]
    ldr r0, [r4, #32]
    ldr r0, [r4, #64]
    ldr r0, [r4, #96]
    ldr r0, [r4, #128]
    ldr r0, [r4, #160]
    ldr r0, [r4, #192]
    ldr r0, [r4, #224]
    end

    /* 12: nine lines, twice: one more line than the cache holds, so least-recently-used
     * replacement evicts each line just before it is read again: 18 misses */
    begin
    ldr r0, [r4, #256]
    ldr r0, [r4, #0]
    ldr r0, [r4, #32]
    ldr r0, [r4, #64]
    ldr r0, [r4, #96]
    ldr r0, [r4, #128]
    ldr r0, [r4, #160]
    ldr r0, [r4, #192]
    ldr r0, [r4, #224]
    ldr r0, [r4, #256]
    ldr r0, [r4, #0]
    ldr r0, [r4, #32]
    ldr r0, [r4, #64]
    ldr r0, [r4, #96]
    ldr r0, [r4, #128]
    ldr r0, [r4, #160]
    ldr r0, [r4, #192]
    ldr r0, [r4, #224]
    end

    /* semihosting SYS_EXIT (ADP_Stopped_ApplicationExit) */
    movs r0, #0x18
    ldr r1, =0x20026
    bkpt 0xab
4:  b 4b

    .type leaf, %function
    .align 2
leaf:
    bx lr
    .size leaf, . - leaf
    .pool

    .align 5
table:
    .space 288
