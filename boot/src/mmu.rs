//! Switching the kernel's translation tables after boot.

use crate::{cpu, tlb};
use aarch64_cpu::registers::*;

#[cfg(feature = "entry")]
extern "C" {
    fn __replace_ttbr1(root: u64);
}

/// Replaces the TTBR1 tables (the kernel's) with those rooted at physical `root` (through
/// `mmu.S`'s routine: part of the `entry` feature).
///
/// # Safety
/// The new tables must map the kernel image, its stacks and everything the caller
/// will touch afterwards at the same virtual addresses as the current ones, and
/// TTBR0 must still identity map the kernel image (boot/'s early tables), because the
/// switch runs from that alias.
#[cfg(feature = "entry")]
pub unsafe fn replace_ttbr1(root: u64) {
    let va = __replace_ttbr1 as *const () as usize;
    let identity: extern "C" fn(u64) =
        // SAFETY: the identity alias of the routine is mapped executable by the early
        // TTBR0 tables (the caller guarantees they are still installed), and the routine
        // is position independent.
        unsafe { core::mem::transmute::<usize, extern "C" fn(u64)>(crate::kimage_virt_to_phys(va)) };
    identity(root);
}

/// Stops all TTBR0 walks: from now on low addresses (NULL included) fault.
pub fn disable_ttbr0() {
    // Only the kernel's TTBR1 mappings stay in use; nothing runs from TTBR0 once boot
    // is over (callers ensure the MMIO bases have moved to ioremap).
    TCR_EL1.modify(TCR_EL1::EPD0::DisableTTBR0Walks);
    cpu::isb();
    TTBR0_EL1.set(0);
    cpu::isb();
    tlb::flush_all();
    cpu::isb();
}

/// The root of the current TTBR1 tables (physical).
pub fn ttbr1() -> u64 {
    TTBR1_EL1.get_baddr()
}

/// The CPU's translation features (ID_AA64MMFR0_EL1): whether the 4 KiB granule is
/// supported (TGran4 0 or 1) and the physical address size in bits (0 if unknown).
pub fn mmu_features() -> (bool, u32) {
    let tgran4 = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::TGran4);
    let parange = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange);
    let pa_bits = [32, 36, 40, 42, 44, 48, 52].get(parange as usize).copied().unwrap_or(0);
    (tgran4 == 0 || tgran4 == 1, pa_bits)
}
