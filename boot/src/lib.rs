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
//! defined once (in the `consts` crate and `sysreg`); `linker/kernel.ld` asserts its own
//! copies against symbols exported here.
#![cfg_attr(not(test), no_std)]

pub mod trap_frame;

pub use trap_frame::{ExceptionKind, TrapFrame};

pub mod sysreg;

#[cfg(all(target_os = "none", feature = "entry"))]
core::arch::global_asm!(
    include_str!("entry.S"),
    KIMAGE_VADDR = const consts::memory::KIMAGE_VADDR,
    KIMAGE_L1_INDEX = const consts::memory::ttbr1_l1_index(consts::memory::KIMAGE_VADDR),
    PAGE_SIZE = const consts::page_def::PAGE_SIZE,
    TEXT_OFFSET = const consts::memory::TEXT_OFFSET,
    PMD_NORMAL = const sysreg::PMD_NORMAL,
    PMD_DEVICE = const sysreg::PMD_DEVICE,
    TABLE_DESC = const sysreg::TABLE_DESC,
    MAIR_VALUE = const sysreg::MAIR,
    TCR_VALUE = const sysreg::TCR,
    SCTLR_EL1_RES1 = const sysreg::SCTLR_EL1_RES1,
    SCTLR_EL1_MMU_ON = const sysreg::SCTLR_EL1_MMU_ON,
    STACK_SLOT_SIZE = const consts::memory::STACK_SLOT_SIZE,
    STACK_GUARD_SIZE = const consts::memory::STACK_GUARD_SIZE,
    NR_CPUS = const consts::NR_CPUS,
    PERCPU_SHIFT = const consts::PERCPU_SHIFT,
);
#[cfg(all(target_os = "none", feature = "entry"))]
core::arch::global_asm!(
    include_str!("vectors.S"),
    STACK_SLOT_SIZE = const consts::memory::STACK_SLOT_SIZE,
    STACK_SLOT_SHIFT = const consts::memory::STACK_SLOT_SIZE.trailing_zeros(),
    STACK_GUARD_SIZE = const consts::memory::STACK_GUARD_SIZE,
    CPU_MASK = const consts::NR_CPUS - 1,
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
pub mod pmu;
#[cfg(target_os = "none")]
pub mod tlb;

/// Physical address of a kernel-image virtual address (text, data, bss, stacks).
pub const fn kimage_virt_to_phys(va: usize) -> usize {
    va - consts::memory::KIMAGE_VADDR as usize
}
