// The chainloader's entry, at 0x80000 with the MMU off, on core 0 (the firmware parks
// cores 1-3 in its own stub; if all cores arrive, as from QEMU's ELF loader, the others
// wait here for ever). Keeps the loader's x0-x3 (x0: the device tree or ATAGS), copies
// the image to where it is linked (LOADER_ADDR), clears the BSS, sets the stack and
// calls loader_main(x0, x1, x2, x3).
.section .text.boot, "ax"
.global _start
_start:
    mrs     x4, mpidr_el1
    and     x4, x4, #0xff
    cbnz    x4, 9f
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    adr     x4, _start               // where the firmware put us
    ldr     x5, =__loader_start      // where we are linked
    ldr     x6, =__loader_end
    cmp     x4, x5
    b.eq    2f                       // already there
1:  ldr     x7, [x4], #8
    str     x7, [x5], #8
    cmp     x5, x6
    b.lo    1b
    // Real hardware: with the MMU off data accesses are uncached, but the instruction
    // cache may be on; drop what it holds of the destination before running it.
    dsb     sy
    ic      iallu
    dsb     sy
    isb
2:  ldr     x4, =3f
    br      x4
3:  ldr     x4, =__bss_start
    ldr     x5, =__bss_end
4:  cmp     x4, x5
    b.hs    5f
    stp     xzr, xzr, [x4], #16
    b       4b
5:  ldr     x4, =__stack_top
    mov     sp, x4
    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x3, x22
    bl      loader_main
9:  wfe
    b       9b
.ltorg
