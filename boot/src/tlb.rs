//! TLB maintenance, broadcast to every core of the inner-shareable domain.

use core::arch::asm;

/// Makes page-table writes visible to the table walkers of all cores.
pub fn pte_sync() {
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
}

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

/// Invalidates the last-level translation of one kernel page on all cores
/// (`tlbi vaale1is`), without the final barriers: batch several, then [`sync`].
pub fn flush_kernel_page_last_level_nosync(va: usize) {
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe { asm!("tlbi vaale1is, {}", in(reg) (va >> 12) & ((1 << 44) - 1), options(nostack, preserves_flags)) };
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
