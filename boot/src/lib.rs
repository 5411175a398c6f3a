//! AArch64 entry and early CPU setup for the Raspberry Pi 3 kernel.
//!
//! `entry.S` takes the core from the loader (EL3, EL2 or EL1, MMU off) to EL1h in the
//! higher half with the MMU and caches on, then calls the kernel's `kernel_main(dtb,
//! entry_el)`. `vectors.S` is the EL1 exception vector table; it saves a [`TrapFrame`]
//! and calls the kernel's `handle_exception(frame, kind)`. The Rust modules here are the
//! few CPU primitives the rest of the kernel shares: cache and TLB maintenance,
//! barriers, interrupt masking.
#![cfg_attr(not(test), no_std)]

pub mod trap_frame;

pub use trap_frame::{ExceptionKind, TrapFrame};

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("entry.S"));
#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("vectors.S"));
#[cfg(target_os = "none")]
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
/// (`linker/kernel.ld`): image VA = KIMAGE_VADDR + PA.
pub const KIMAGE_VADDR: usize = 0xFFFF_FFC0_0000_0000;

/// Physical address of a kernel-image virtual address (text, data, bss, stacks).
pub const fn kimage_virt_to_phys(va: usize) -> usize {
    va - KIMAGE_VADDR
}

/// Size of a stack slot: a 4 KiB guard page below a 60 KiB stack (`entry.S`).
pub const STACK_SLOT_SIZE: usize = 64 * 1024;
/// The unmapped guard at the bottom of each stack slot.
pub const STACK_GUARD_SIZE: usize = 4096;
