//! Switching the kernel's translation tables after boot.

use crate::{cpu, tlb, KIMAGE_VADDR};
use core::arch::asm;

extern "C" {
    fn __replace_ttbr1(root: u64);
}

/// Replaces the TTBR1 tables (the kernel's) with those rooted at physical `root`.
///
/// # Safety
/// The new tables must map the kernel image, its stacks and everything the caller
/// will touch afterwards at the same virtual addresses as the current ones, and
/// TTBR0 must still identity map the kernel image (boot/'s early tables), because the
/// switch runs from that alias.
pub unsafe fn replace_ttbr1(root: u64) {
    let va = __replace_ttbr1 as *const () as usize;
    let identity: extern "C" fn(u64) =
        // SAFETY: the identity alias of the routine is mapped executable by the early
        // TTBR0 tables (the caller guarantees they are still installed), and the routine
        // is position independent.
        unsafe { core::mem::transmute::<usize, extern "C" fn(u64)>(va - KIMAGE_VADDR) };
    identity(root);
}

/// Stops all TTBR0 walks: from now on low addresses (NULL included) fault.
pub fn disable_ttbr0() {
    // SAFETY: only the kernel's TTBR1 mappings stay in use; nothing runs from TTBR0
    // once boot is over (callers ensure the MMIO bases have moved to ioremap).
    unsafe {
        asm!(
            "mrs {t}, tcr_el1",
            "orr {t}, {t}, #(1 << 7)",   // TCR_EL1.EPD0
            "msr tcr_el1, {t}",
            "isb",
            "msr ttbr0_el1, xzr",
            "isb",
            t = out(reg) _,
            options(nostack)
        );
    }
    tlb::flush_all();
    cpu::isb();
}

/// The root of the current TTBR1 tables (physical).
pub fn ttbr1() -> u64 {
    let v: u64;
    // SAFETY: reading TTBR1_EL1 has no side effects.
    unsafe { asm!("mrs {}, ttbr1_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v & 0x0000_ffff_ffff_fffe
}
