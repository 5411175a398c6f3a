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

/// Invalidates the translations of the kernel pages at `vas` on all cores, one
/// `tlbi vaae1is` each, and waits once for all of them to complete.
pub fn flush_kernel_pages(vas: &[usize]) {
    // SAFETY: barriers have no memory-safety effect.
    unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
    for &va in vas {
        // SAFETY: TLB invalidation only drops cached translations.
        unsafe { asm!("tlbi vaae1is, {}", in(reg) (va >> 12) & ((1 << 44) - 1), options(nostack, preserves_flags)) };
    }
    // SAFETY: as above.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
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
