// EL1 exception vectors.
//
// Each entry saves a TrapFrame (x0-x30, the interrupted sp, ELR, SPSR, ESR, FAR;
// 288 bytes, layout mirrored by boot::TrapFrame) and calls the kernel's
// `handle_exception(frame, kind)`, kind = source * 4 + type (source: 0 current EL
// SP0, 1 current EL SPx, 2 lower EL AArch64, 3 lower EL AArch32; type: 0 sync,
// 1 IRQ, 2 FIQ, 3 SError), or kind 16 for a kernel stack overflow. If the handler
// returns, the frame is restored and execution resumes at ELR.
//
// Stack overflow: a synchronous exception taken with sp inside the guard page of a
// 64 KiB stack slot (sp % 64 KiB < 4 KiB after making room for the frame) cannot save
// anything on that stack, so it switches to the CPU's emergency stack first. TPIDRRO_EL0
// and TPIDR_EL0 serve as scratch registers: the kernel runs nothing at EL0.
//
// Interrupts: an IRQ taken at EL1h (the only place the kernel unmasks them) saves the
// same frame and calls the kernel's `handle_irq(frame)`, which dispatches to the
// registered handlers and returns; the frame is restored and `eret` resumes the
// interrupted code with its PSTATE (the I bit clear again). Handlers run with IRQs
// masked (the exception entry set PSTATE.I), on the interrupted stack. IRQs from any
// other vector are unexpected and go to `handle_exception` like a fault.

.equ FRAME_SIZE,        288
.equ KIND_OVERFLOW,     16

.macro SAVE_REGS
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    str     x30, [sp, #16 * 15]
.endm

// Saves the frame (the interrupted sp already in x0... see callers), calls the
// handler, restores and returns from the exception.
.macro CALL_HANDLER kind
    mrs     x1, elr_el1
    stp     x0, x1, [sp, #248]
    mrs     x0, spsr_el1
    mrs     x1, esr_el1
    stp     x0, x1, [sp, #264]
    mrs     x0, far_el1
    str     x0, [sp, #280]
    mov     x0, sp
    mov     x1, #\kind
    bl      handle_exception
    b       exception_return
.endm

// An IRQ at EL1h: save the frame (ESR and FAR mean nothing for an interrupt and are
// stored as 0), call handle_irq(frame), restore and return.
.macro IRQ_ENTRY
    sub     sp, sp, #FRAME_SIZE
    SAVE_REGS
    add     x0, sp, #FRAME_SIZE
    mrs     x1, elr_el1
    stp     x0, x1, [sp, #248]
    mrs     x0, spsr_el1
    stp     x0, xzr, [sp, #264]
    str     xzr, [sp, #280]
    mov     x0, sp
    bl      handle_irq
    b       exception_return
.endm

.macro ENTRY kind
    sub     sp, sp, #FRAME_SIZE
    SAVE_REGS
    add     x0, sp, #FRAME_SIZE
    CALL_HANDLER \kind
.endm

.macro VECTOR target
.balign 0x80
    b       \target
.endm

.section .text.vectors, "ax"
.balign 0x800
.global __exception_vectors
__exception_vectors:
    VECTOR  el1t_sync
    VECTOR  el1t_irq
    VECTOR  el1t_fiq
    VECTOR  el1t_serror
    VECTOR  el1h_sync
    VECTOR  el1h_irq
    VECTOR  el1h_fiq
    VECTOR  el1h_serror
    VECTOR  el0_64_sync
    VECTOR  el0_64_irq
    VECTOR  el0_64_fiq
    VECTOR  el0_64_serror
    VECTOR  el0_32_sync
    VECTOR  el0_32_irq
    VECTOR  el0_32_fiq
    VECTOR  el0_32_serror

el1t_sync:      ENTRY 0
el1t_irq:       ENTRY 1
el1t_fiq:       ENTRY 2
el1t_serror:    ENTRY 3
el1h_irq:       IRQ_ENTRY
el1h_fiq:       ENTRY 6
el1h_serror:    ENTRY 7
el0_64_sync:    ENTRY 8
el0_64_irq:     ENTRY 9
el0_64_fiq:     ENTRY 10
el0_64_serror:  ENTRY 11
el0_32_sync:    ENTRY 12
el0_32_irq:     ENTRY 13
el0_32_fiq:     ENTRY 14
el0_32_serror:  ENTRY 15

el1h_sync:
    msr     tpidrro_el0, x0
    mov     x0, sp
    sub     x0, x0, #FRAME_SIZE
    and     x0, x0, #({STACK_SLOT_SIZE} - 1)
    cmp     x0, #{STACK_GUARD_SIZE}
    b.lo    1f
    mrs     x0, tpidrro_el0
    ENTRY   4
1:  // Kernel stack overflow: continue on this CPU's emergency stack.
    mov     x0, sp
    msr     tpidr_el0, x0
    mrs     x0, mpidr_el1
    and     x0, x0, #{CPU_MASK}
    add     x0, x0, #1
    lsl     x0, x0, #{STACK_SLOT_SHIFT}
    mov     sp, x0
    ldr     x0, =emergency_stacks
    add     sp, sp, x0
    mrs     x0, tpidrro_el0
    sub     sp, sp, #FRAME_SIZE
    SAVE_REGS
    mrs     x0, tpidr_el0
    CALL_HANDLER KIND_OVERFLOW

exception_return:
    ldp     x0, x1, [sp, #256]          // ELR, SPSR
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    ldr     x30, [sp, #16 * 15]
    add     sp, sp, #FRAME_SIZE
    eret
.ltorg
