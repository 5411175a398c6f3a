// __replace_ttbr1(x0 = physical address of the new TTBR1 root)
//
// Swaps the kernel's translation tables while the kernel runs from them. Changing
// TTBR1 in place could leave old and new entries for the same address in the TLB at
// once (a TLB conflict abort on a real Cortex-A53), so, like Linux's
// cpu_replace_ttbr1, this runs from its identity-mapped alias (TTBR0), turns TTBR1
// walks off, invalidates the TLB, installs the new root and turns walks back on.
// Position independent; touches no memory, so no stack is needed.
.section .text, "ax"
.global __replace_ttbr1
.balign 16
__replace_ttbr1:
    mrs     x1, tcr_el1
    orr     x2, x1, #(1 << 23)          // TCR_EL1.EPD1: no TTBR1 walks
    msr     tcr_el1, x2
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     ttbr1_el1, x0
    isb
    msr     tcr_el1, x1                 // walks back on, through the new tables
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ret
.global __replace_ttbr1_end
__replace_ttbr1_end:
