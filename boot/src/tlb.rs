//! TLB maintenance, broadcast to every core of the inner-shareable domain.

use core::arch::asm;

/// Invalidates the translations of one kernel page on all cores (`tlbi vaae1is`:
/// any ASID, all levels) and waits for completion.
pub fn flush_kernel_page(va: usize) {
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vaae1is, {}",
            "dsb ish",
            "isb",
            in(reg) (va >> 12) & ((1 << 44) - 1),
            options(nostack, preserves_flags)
        )
    };
}

/// Waits for earlier TLB invalidations to complete everywhere.
pub fn sync() {
    // SAFETY: barriers have no memory-safety effect.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Invalidates every EL1 translation on all cores.
pub fn flush_all() {
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe { asm!("dsb ishst", "tlbi vmalle1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
}
