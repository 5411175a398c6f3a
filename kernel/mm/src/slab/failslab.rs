//! Fault injection like Linux's `failslab` (mm/failslab.c): the common [`FaultAttr`]
//! knobs for every allocation from a slab cache (kmalloc up to 8 KiB and
//! `kmem_cache_alloc`; larger kmalloc blocks come from the page allocator and are
//! `fail_page_alloc`'s), plus `ignore-gfp-wait`. `__GFP_NOFAIL` requests never fail.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::fault_inject::FaultAttr;
use crate::gfp::Gfp;

/// The knobs and counters (Linux's debugfs `failslab/` files).
#[derive(Debug)]
pub struct FailSlab {
    /// The shared knobs: nth, probability, interval, times, counters.
    pub attr: FaultAttr,
    ignore_gfp_reclaim: AtomicBool,
}

impl Default for FailSlab {
    fn default() -> Self {
        Self::new()
    }
}

impl FailSlab {
    /// Injection off.
    pub const fn new() -> FailSlab {
        FailSlab { attr: FaultAttr::new(), ignore_gfp_reclaim: AtomicBool::new(false) }
    }
    /// Linux's `ignore-gfp-wait`: spare requests that may sleep from the probability knob.
    pub fn set_ignore_gfp_reclaim(&self, ignore: bool) {
        self.ignore_gfp_reclaim.store(ignore, Relaxed)
    }
    /// Whether requests that may sleep are spared.
    pub fn ignore_gfp_reclaim(&self) -> bool {
        self.ignore_gfp_reclaim.load(Relaxed)
    }

    /// Linux's `should_failslab`.
    #[inline]
    pub fn should_fail(&self, gfp: Gfp) -> bool {
        if !self.attr.armed() || gfp.contains(Gfp::GFP_NOFAIL) {
            return false;
        }
        self.attr.should_fail_armed(!(self.ignore_gfp_reclaim.load(Relaxed) && gfp.may_sleep()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::{GFP_ATOMIC, GFP_KERNEL};

    /// `ignore-gfp-wait` spares the requests that may sleep from the probability knob,
    /// and only those; `__GFP_NOFAIL` is never failed.
    #[test]
    fn ignore_gfp_reclaim_spares_sleeping_requests_only() {
        let fs = FailSlab::new();
        fs.attr.set_probability(100, -1, 1);
        assert!(!fs.ignore_gfp_reclaim());
        assert!(fs.should_fail(GFP_KERNEL) && fs.should_fail(GFP_ATOMIC));
        fs.set_ignore_gfp_reclaim(true);
        assert!(fs.ignore_gfp_reclaim());
        assert!(!fs.should_fail(GFP_KERNEL), "a request that may sleep is spared");
        assert!(fs.should_fail(GFP_ATOMIC), "an atomic one is not");
        assert!(!fs.should_fail(GFP_ATOMIC.union(Gfp::GFP_NOFAIL)));
        fs.set_ignore_gfp_reclaim(false);
        assert!(!fs.ignore_gfp_reclaim());
        assert!(fs.should_fail(GFP_KERNEL));
    }
}
