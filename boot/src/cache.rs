//! Data-cache maintenance by virtual address, to the point of coherency.
//!
//! Needed wherever something other than the CPUs' coherent caches reads or writes
//! memory: the VideoCore (mailbox buffers), page-table walks set up with the MMU off,
//! and a secondary core started with its caches off (spin-table release). CTR_EL0 and
//! DCZID_EL0 have no `aarch64-cpu` accessor, so they are read here with `mrs`.

use core::arch::asm;

/// The smallest data-cache line size in bytes (CTR_EL0.DminLine).
fn dcache_line() -> usize {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

macro_rules! by_line {
    ($name:ident, $op:literal, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(va: usize, len: usize) {
            let line = dcache_line();
            let mut p = va & !(line - 1);
            let end = va + len;
            while p < end {
                // SAFETY: cache maintenance by VA on an address the caller owns; it
                // does not change memory contents visible to this program.
                unsafe { asm!(concat!("dc ", $op, ", {}"), in(reg) p, options(nostack, preserves_flags)) };
                p += line;
            }
            aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
        }
    };
}

by_line!(clean_dcache_range, "cvac", "Writes dirty lines of [va, va+len) back to memory.");
by_line!(clean_inval_dcache_range, "civac", "Writes back and drops the lines of [va, va+len).");
by_line!(
    inval_dcache_range,
    "civac",
    "Drops the lines of [va, va+len) so the next read comes from memory. Uses clean+invalidate: a plain invalidate could discard unrelated dirty data sharing a line."
);

/// Zeroes `len` bytes at `va` (cacheable Normal memory, MMU on), a cache line at a time
/// with `dc zva` where the CPU allows it (DCZID_EL0.DZP clear), else with stores.
/// `va` and `len` must be multiples of 64 bytes for the fast path; other ranges use stores.
pub fn zero_range(va: usize, len: usize) {
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    let block = 4usize << (dczid & 0xf);
    if dczid & (1 << 4) == 0 && va.is_multiple_of(block) && len.is_multiple_of(block) {
        let mut p = va;
        while p < va + len {
            // SAFETY: the caller owns [va, va+len); dc zva writes zeroes to one block.
            unsafe { asm!("dc zva, {}", in(reg) p, options(nostack, preserves_flags)) };
            p += block;
        }
    } else {
        // SAFETY: the caller owns [va, va+len).
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, len) };
    }
}
