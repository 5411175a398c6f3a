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
