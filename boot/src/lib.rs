//! AArch64 entry and early CPU setup for the Raspberry Pi 3 kernel.
//!
//! `entry.S` takes the core from the loader (EL3, EL2 or EL1, MMU off) to EL1h in the
//! higher half with the MMU and caches on, then calls the kernel's `kernel_main(dtb,
//! entry_el)`. `vectors.S` is the EL1 exception vector table; it saves a [`TrapFrame`]
//! and calls the kernel's `handle_exception(frame, kind)`. The Rust modules here are the
//! few CPU primitives the rest of the kernel shares: cache and TLB maintenance,
//! barriers, interrupt masking.
//!
//! This crate is the kernel's AArch64 home: the only place with `asm!` or assembly
//! source. The assembly takes its constants (descriptors, MAIR/TCR/SCTLR, image address,
//! stack sizes, CPU count) from Rust through `global_asm!` const operands, so each is
//! defined once; `linker/kernel.ld` asserts its own copies against symbols exported here.
#![cfg_attr(not(test), no_std)]

pub mod trap_frame;

pub use trap_frame::{ExceptionKind, TrapFrame};

pub mod sysreg;

#[cfg(all(target_os = "none", feature = "entry"))]
core::arch::global_asm!(
    include_str!("entry.S"),
    KIMAGE_VADDR = const KIMAGE_VADDR,
    PMD_NORMAL = const sysreg::PMD_NORMAL,
    PMD_DEVICE = const sysreg::PMD_DEVICE,
    TABLE_DESC = const sysreg::TABLE_DESC,
    MAIR_VALUE = const sysreg::MAIR,
    TCR_VALUE = const sysreg::TCR,
    SCTLR_EL1_RES1 = const sysreg::SCTLR_EL1_RES1,
    SCTLR_EL1_MMU_ON = const sysreg::SCTLR_EL1_MMU_ON,
    STACK_SLOT_SIZE = const STACK_SLOT_SIZE,
    STACK_GUARD_SIZE = const STACK_GUARD_SIZE,
    NR_CPUS = const NR_CPUS,
);
#[cfg(all(target_os = "none", feature = "entry"))]
core::arch::global_asm!(
    include_str!("vectors.S"),
    STACK_SLOT_SIZE = const STACK_SLOT_SIZE,
    STACK_SLOT_SHIFT = const STACK_SLOT_SIZE.trailing_zeros(),
    STACK_GUARD_SIZE = const STACK_GUARD_SIZE,
    CPU_MASK = const NR_CPUS - 1,
);
#[cfg(all(target_os = "none", feature = "entry"))]
core::arch::global_asm!(include_str!("mmu.S"));

#[cfg(target_os = "none")]
pub mod cache;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod tlb;

/// Virtual address at which physical address 0 of the kernel image is linked
/// (`linker/kernel.ld`, which asserts its copy against this one): image VA =
/// KIMAGE_VADDR + PA. Defined by the layout in `mm::pgtable::layout`.
pub const KIMAGE_VADDR: usize = mm::pgtable::layout::KIMAGE_VADDR as usize;

/// Physical address of a kernel-image virtual address (text, data, bss, stacks).
pub const fn kimage_virt_to_phys(va: usize) -> usize {
    va - KIMAGE_VADDR
}

/// Size of a stack slot: a 4 KiB guard page below a 60 KiB stack (`entry.S`; the
/// layout in `mm::pgtable::layout`).
pub const STACK_SLOT_SIZE: usize = mm::pgtable::layout::STACK_SLOT_SIZE as usize;
/// The unmapped guard at the bottom of each stack slot.
pub const STACK_GUARD_SIZE: usize = mm::pgtable::layout::STACK_GUARD_SIZE as usize;

/// Number of CPUs the kernel supports (the BCM2837's four Cortex-A53 cores): the size of
/// every per-CPU array, in `mm` and here.
pub const NR_CPUS: usize = mm::page_alloc::pcp::NR_CPUS;

const _: () = {
    assert!(NR_CPUS == mm::slab::NR_CPUS, "mm's page allocator and slab disagree on NR_CPUS");
    assert!(NR_CPUS.is_power_of_two(), "vectors.S finds a CPU's emergency stack with a mask");
    assert!(STACK_SLOT_SIZE.is_power_of_two() && STACK_GUARD_SIZE < STACK_SLOT_SIZE);
    assert!(STACK_GUARD_SIZE == 4096, "the guard is one page");
};
