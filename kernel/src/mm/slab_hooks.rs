//! The gate of `kmalloc`'s and `kfree`'s debugging hooks: one byte that says whether
//! any of them wants to see the next call, so that the fast paths pay one load and one
//! branch for all of them together (Linux puts each behind a static key, patched into
//! the code; a byte in memory is the portable form of the same promise).
//!
//! [`KFENCE_DUE`] is set by KFENCE's sampling timer and taken (cleared) by the one
//! `kmalloc` that is then served from the pool; [`KMEMLEAK`] is set once when kmemleak
//! tracks objects. While the byte is zero, `kmalloc` and `kfree` go straight to the slab;
//! otherwise they take the hooked paths out of line, which check each bit again.

use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// KFENCE's sample interval has passed: the next `kmalloc` goes to the pool.
pub const KFENCE_DUE: u8 = 1 << 0;
/// kmemleak tracks every `kmalloc` object, untracked at `kfree`.
pub const KMEMLEAK: u8 = 1 << 1;

static HOOKS: AtomicU8 = AtomicU8::new(0);

/// The hooks that want to see the next call (0: none; a relaxed load).
#[inline(always)]
pub fn pending() -> u8 {
    HOOKS.load(Relaxed)
}

/// Turns `bits` on.
pub fn set(bits: u8) {
    HOOKS.fetch_or(bits, Relaxed);
}

/// Turns `bit` off and says whether it was on (exactly one caller sees it on per
/// [`set`]: KFENCE's one sample per interval).
pub fn take(bit: u8) -> bool {
    HOOKS.fetch_and(!bit, Relaxed) & bit != 0
}
