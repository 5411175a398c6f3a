// Kernel entry for the Raspberry Pi 3 (BCM2837, Cortex-A53).
//
// Runs at the physical load address 0x80000 with the MMU off. Everything here is
// position independent (adr/adrp only) until the MMU is on and we jump to the
// higher-half link address. Order matters for real hardware:
//   0. at EL3 (no firmware stub ran: QEMU's ELF boot, or a custom armstub that stays in
//      EL3), do what the firmware's armstub8 does for every core, then go on in EL2
//   1. send any core but core 0 to the spin table (QEMU's ELF boot starts all four
//      here; the firmware keeps cores 1-3 in its own spin-table loop and never sends
//      them here): each waits for the kernel to write its entry into its slot, exactly
//      as the firmware's stub does, so smp.rs releases them the same way
//   2. drop from EL2 to EL1h with interrupts masked
//   3. install the exception vectors before anything can fault
//   4. zero BSS (objcopy -O binary drops it; real RAM is not zero)
//   5. build the early page tables and turn the MMU and caches on; no exclusive
//      loads/stores (locks, atomics) may run before this point on a Pi 3
//   6. switch to the higher half, set the 16-byte aligned boot stack, point TPIDR_EL1 at
//      the core's per-CPU block (the kernel's `__per_cpu_blocks`; its reset value is
//      UNKNOWN, and Rust reads it from its first line on), call Rust.

// Every value below in braces comes from Rust (the consts crate, boot/src/sysreg.rs):
// one definition, shared with the Rust page-table code.
.equ KIMAGE_VADDR,      {KIMAGE_VADDR}
// Exported so that linker/kernel.ld can assert its own copies (a linker script cannot
// take them from Rust): image address, load address, page size and stack slot.
.globl __boot_kimage_vaddr
.set __boot_kimage_vaddr, {KIMAGE_VADDR}
.globl __boot_text_offset
.set __boot_text_offset, {TEXT_OFFSET}
.globl __boot_page_size
.set __boot_page_size, {PAGE_SIZE}
.globl __boot_stack_slot_size
.set __boot_stack_slot_size, {STACK_SLOT_SIZE}
.equ PERIPH_BASE,       0x3F000000

// Block descriptors for the early map (AArch64 stage 1, 4 KiB granule).
// Normal WB memory: valid block, AttrIndx 0, inner shareable, AF.
.equ PMD_NORMAL,        {PMD_NORMAL}
// Device-nGnRE: valid block, AttrIndx 1, AF, PXN, UXN.
.equ PMD_DEVICE,        {PMD_DEVICE}
.equ TABLE_DESC,        {TABLE_DESC}

// MAIR: idx0 Normal WB RA/WA (0xff), idx1 Device-nGnRE (0x04), idx2 Normal NC (0x44).
.equ MAIR_VALUE,        {MAIR_VALUE}
// TCR: T0SZ=T1SZ=25 (39-bit VA), WBWA inner/outer, inner shareable, 4 KiB granules.
// IPS is filled in from ID_AA64MMFR0_EL1.PARange.
.equ TCR_VALUE,         {TCR_VALUE}
// SCTLR_EL1 RES1 bits, little endian, MMU/caches off.
.equ SCTLR_EL1_RES1,    {SCTLR_EL1_RES1}
// SCTLR_EL1 with M (MMU), C (data cache), SA, SA0, I (instruction cache).
.equ SCTLR_EL1_MMU_ON,  {SCTLR_EL1_MMU_ON}

// What armstub8 (the stub built into the Pi firmware) does before entering a kernel,
// for one core that starts at EL3. Uses x2, x3; continues at EL2h (DAIF masked) at \el2.
.equ LOCAL_CONTROL,     0x40000000      // ARM local peripherals: timer source and step
.equ LOCAL_PRESCALER,   0x40000008      // generic timer = source * prescaler / 2^31
.equ OSC_FREQ,          19200000        // the Pi 3's crystal
// SCR_EL3: RW (EL2 is AArch64), HCE (HVC enabled), SMD (SMC disabled), RES1 bits 5:4,
// NS (everything below runs non-secure).
.equ SCR_EL3_VALUE,     0x5b1
// ACTLR_EL3: EL2 may reach CPUACTLR, CPUECTLR, L2CTLR, L2ECTLR, L2ACTLR.
.equ ACTLR_EL3_VALUE,   0x73
.equ CPUECTLR_SMPEN,    (1 << 6)
// SCTLR_EL2: RES1 bits only: little endian, MMU, caches and alignment checks off.
.equ SCTLR_EL2_RES1,    0x30c50830
.macro EL3_SETUP el2
    // Generic timer, as armstub8 does on every boot: the local timer counts the crystal
    // (control = 0: crystal clock, increment by 1) with the prescaler at 1:1. Both are
    // always written: their reset values are not defined, and with a custom stub a
    // counter that runs at another rate, or not at all, would make every bounded wait
    // unbounded. Only CNTFRQ_EL0 is conditional: nobody has set it on a Pi (it reads 0
    // there, its reset value is UNKNOWN) and it then says 19.2 MHz; a frequency already
    // there is the platform's own (QEMU: 62.5 MHz, whose counter ignores the prescaler)
    // and is kept.
    ldr     x2, =LOCAL_CONTROL
    str     wzr, [x2]                   // crystal clock, increment by 1
    mov     w3, #0x80000000
    str     w3, [x2, #(LOCAL_PRESCALER - LOCAL_CONTROL)]
    dsb     sy                          // the writes reach the block before the counter is used
    mrs     x2, cntfrq_el0
    cbnz    x2, 71f
    ldr     x2, =OSC_FREQ
    msr     cntfrq_el0, x2
71: msr     cntvoff_el2, xzr
    // L2 data RAM latency: 3 cycles for reads and writes (L2CTLR_EL1 bits 5 and 1), the
    // BCM2837's setting from armstub8.
    mrs     x2, s3_1_c11_c0_2           // L2CTLR_EL1
    mov     x3, #0x22
    orr     x2, x2, x3
    msr     s3_1_c11_c0_2, x2
    // Coherency: the core joins the cluster's coherency domain. Must be set before the
    // caches and MMU are turned on; the firmware's stub does it on every core.
    mrs     x2, s3_1_c15_c2_1           // CPUECTLR_EL1
    orr     x2, x2, #CPUECTLR_SMPEN
    msr     s3_1_c15_c2_1, x2
    msr     cptr_el3, xzr               // no traps of FP/SIMD, trace or CPACR to EL3
    msr     mdcr_el3, xzr               // nor of the PMU and debug (the boot clock check)
    mov     x2, #ACTLR_EL3_VALUE
    msr     actlr_el3, x2
    mov     x2, #SCR_EL3_VALUE
    msr     scr_el3, x2
    ldr     x2, =SCTLR_EL2_RES1
    msr     sctlr_el2, x2
    mov     x2, #0x3c9                  // EL2h, DAIF masked
    msr     spsr_el3, x2
    adr     x2, \el2
    msr     elr_el3, x2
    isb
    eret
.endm

// Drops from EL2 to EL1h with DAIF masked (from EL1 it only masks DAIF). Uses x2.
.macro DROP_TO_EL1
    mrs     x2, CurrentEL
    lsr     x2, x2, #2
    cmp     x2, #2
    b.ne    82f
    // EL2 -> EL1: EL1 is AArch64, EL1 may use the physical counter and timer.
    mov     x2, #(1 << 31)
    msr     hcr_el2, x2
    mov     x2, #3
    msr     cnthctl_el2, x2
    msr     cntvoff_el2, xzr
    // Real hardware: MDCR_EL2 is whatever the firmware left; its TPM/TPMCR bits would trap
    // EL1's PMU accesses (the bench command's cycle counter) to EL2, where nothing handles
    // them. Give EL1 every counter (HPMN = PMCR_EL0.N) and no traps, as Linux does.
    mrs     x2, pmcr_el0
    ubfx    x2, x2, #11, #5
    msr     mdcr_el2, x2
    ldr     x2, =SCTLR_EL1_RES1
    msr     sctlr_el1, x2
    mov     x2, #0x3c5                  // EL1h, DAIF masked
    msr     spsr_el2, x2
    adr     x2, 82f
    msr     elr_el2, x2
    eret
82: msr     daifset, #0xf
.endm

// Programs MAIR, TCR (IPS from the CPU), TTBR0 = the early identity map and TTBR1 =
// \ttbr1, invalidates the TLB and instruction cache, and turns the MMU and caches on.
// Real hardware: isb after the system-register writes, TLB and I-cache invalidated
// before the MMU goes on. Uses x1, x2.
.macro MMU_ON ttbr1
    ldr     x1, =MAIR_VALUE
    msr     mair_el1, x1
    ldr     x1, =TCR_VALUE
    mrs     x2, id_aa64mmfr0_el1
    and     x2, x2, #0x7                // PARange -> TCR.IPS
    orr     x1, x1, x2, lsl #32
    msr     tcr_el1, x1
    adrp    x1, early_l1_ttbr0
    msr     ttbr0_el1, x1
    msr     ttbr1_el1, \ttbr1
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x1, =SCTLR_EL1_MMU_ON
    msr     sctlr_el1, x1
    isb
.endm

// Spin-table slot of core 0: core n waits on SPIN_TABLE_BASE + 8 * n (kernel/src/smp.rs).
.equ SPIN_TABLE_BASE,   0xd8

.section .text.boot, "ax"
.global _start
_start:
    mov     x19, x0                     // DTB pointer (or 0x100 ATAGS) from the loader
    mrs     x20, CurrentEL
    lsr     x20, x20, #2                // x20: entry exception level, for the banner
    cmp     x20, #3
    b.ne    0f
    EL3_SETUP 0f
0:  mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cbz     x1, 1f
    // Not core 0: only an entry without the firmware's stub gets here. Wait on this
    // core's spin-table slot, as the stub does, and jump to what the kernel writes
    // there (_secondary_entry). Real hardware: the caches are off, so the loads see
    // what the kernel cleaned to memory; it wakes us with sev.
    and     x1, x1, #3
    mov     x2, #SPIN_TABLE_BASE
    add     x2, x2, x1, lsl #3
2:  wfe
    ldr     x3, [x2]
    cbz     x3, 2b
    br      x3

1:  DROP_TO_EL1

    // Vectors at their physical address until the MMU is on.
    adr     x1, __exception_vectors
    msr     vbar_el1, x1
    isb                                 // real hardware: system register writes need isb

    // Zero BSS (16-byte aligned by the linker script), through physical addresses.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
4:  cmp     x1, x2
    b.hs    5f
    stp     xzr, xzr, [x1], #16
    b       4b

5:  // Early page tables. One L2 table maps the first GiB with 2 MiB blocks: RAM as
    // Normal memory, the peripherals from 0x3F000000 as Device. It is shared by the
    // identity map (TTBR0 L1[0]), the linear map at PAGE_OFFSET (TTBR1 L1[0]) and the
    // kernel image at KIMAGE_VADDR (TTBR1 L1[256]). TTBR0 L1[1] maps the local
    // peripherals at 0x40000000 as Device. The kernel replaces all this with its real
    // tables early in boot and then stops TTBR0 walks; the secondaries use the identity
    // part once more to turn their MMU on.
    adrp    x1, early_l2
    mov     x2, #0                      // physical address of the block
    mov     x3, #0                      // index
    ldr     x4, =PMD_NORMAL
    ldr     x5, =PMD_DEVICE
    ldr     x6, =PERIPH_BASE
6:  cmp     x2, x6
    csel    x7, x4, x5, lo
    orr     x7, x7, x2
    str     x7, [x1, x3, lsl #3]
    add     x2, x2, #0x200000
    add     x3, x3, #1
    cmp     x3, #512
    b.lo    6b

    orr     x7, x1, #TABLE_DESC         // table descriptor -> early_l2
    adrp    x2, early_l1_ttbr0
    str     x7, [x2]
    mov     x3, #0x40000000
    orr     x3, x3, x5                  // 1 GiB Device block for the local peripherals
    str     x3, [x2, #8]
    adrp    x3, early_l1_ttbr1
    str     x7, [x3]                    // PAGE_OFFSET
    str     x7, [x3, #({KIMAGE_L1_INDEX} * 8)]  // KIMAGE_VADDR

    // Real hardware: the tables were written with the MMU and caches off, straight to
    // memory. Invalidate any stale cache lines over them so the walker, which will use
    // cacheable accesses, sees what is in RAM.
    adrp    x1, early_l1_ttbr0
    add     x2, x1, #(3 * 4096)
7:  dc      ivac, x1
    add     x1, x1, #64
    cmp     x1, x2
    b.lo    7b
    dsb     sy

    adrp    x3, early_l1_ttbr1
    MMU_ON  x3

    // Into the higher half: an absolute address from the literal pool.
    ldr     x1, =boot_high
    br      x1

boot_high:
    // For debuggers: the outermost frame (no return address), so gdb's bt ends here.
    .cfi_sections .debug_frame
    .cfi_startproc
    .cfi_undefined x30
    ldr     x1, =__exception_vectors
    msr     vbar_el1, x1
    isb
    ldr     x1, =boot_stack_top
    mov     sp, x1
    // The stack's last frame record (fp 0, lr 0), with x29 on it: call traces (oops,
    // gdb's bt) end there cleanly (Linux's arm64 final frame record).
    stp     xzr, xzr, [sp, #-16]!
    mov     x29, sp
    mov     x30, #0
    ldr     x1, =__per_cpu_blocks       // core 0's block (the boot CPU is CPU 0)
    msr     tpidr_el1, x1
    mov     x0, x19
    mov     x1, x20
    bl      kernel_main
8:  wfe
    b       8b
    .cfi_endproc
.ltorg

// Secondary cores (1-3), released by the kernel through the spin table with this
// entry's physical address. Same path as core 0, but the kernel's own tables already
// exist: TTBR1 comes from secondary_boot, and so does the core's stack (a guarded slot
// in the STACKS region). The kernel cleaned secondary_boot to the point of coherency,
// since this core reads it with the MMU and caches still off.
.global _secondary_entry
_secondary_entry:
    mrs     x19, mpidr_el1
    and     x19, x19, #3
    DROP_TO_EL1
    adr     x1, __exception_vectors
    msr     vbar_el1, x1
    isb
    adrp    x4, secondary_boot
    add     x4, x4, :lo12:secondary_boot
    ldr     x3, [x4]                    // kernel TTBR1 root (physical)
    MMU_ON  x3
    ldr     x1, =secondary_high
    br      x1
secondary_high:
    .cfi_startproc
    .cfi_undefined x30
    ldr     x1, =__exception_vectors
    msr     vbar_el1, x1
    isb
    ldr     x4, =secondary_boot
    add     x4, x4, #8
    ldr     x1, [x4, x19, lsl #3]       // this core's stack top
    mov     sp, x1
    stp     xzr, xzr, [sp, #-16]!       // the final frame record, as on core 0
    mov     x29, sp
    mov     x30, #0
    ldr     x1, =__per_cpu_blocks
    add     x1, x1, x19, lsl #{PERCPU_SHIFT} // this core's per-CPU block
    msr     tpidr_el1, x1
    mov     x0, x19
    bl      secondary_main
9:  wfe
    b       9b
    .cfi_endproc
.ltorg

// Hand-over from the boot core: the kernel's TTBR1 root (u64), then one stack top per
// core (4 x u64).
.section .data.secondary_boot, "aw"
.balign 64
.global secondary_boot
secondary_boot: .space 64

// Early translation tables: L1 for TTBR0, L1 for TTBR1, one shared L2 (zeroed with BSS).
.section .bss.pgtables, "aw", %nobits
.balign 4096
.global early_l1_ttbr0
early_l1_ttbr0: .space 4096
.global early_l1_ttbr1
early_l1_ttbr1: .space 4096
.global early_l2
early_l2:       .space 4096

// Stacks: each a 64 KiB slot ({STACK_SLOT_SIZE}) whose lowest 4 KiB ({STACK_GUARD_SIZE})
// are a guard page that the kernel leaves unmapped, so an overflow faults; the vectors
// recognise a stack pointer inside a guard (sp % 64 KiB < 4 KiB) and switch to the
// emergency stack of the CPU.
.section .stacks, "aw", %nobits
.balign {STACK_SLOT_SIZE}
.global boot_stack_guard
boot_stack_guard:   .space {STACK_GUARD_SIZE}
.global boot_stack_bottom
boot_stack_bottom:  .space {STACK_SLOT_SIZE} - {STACK_GUARD_SIZE}
.global boot_stack_top
boot_stack_top:
.global emergency_stacks
emergency_stacks:   .space {STACK_SLOT_SIZE} * {NR_CPUS}
.global emergency_stacks_end
emergency_stacks_end:
