//! Fault injection like Linux's `fail_page_alloc`: the common [`FaultAttr`] knobs (the
//! Nth allocation from now, probability, interval, times) plus the page allocator's own
//! filters: a minimum order and `ignore-gfp-wait`. `__GFP_NOFAIL` requests never fail.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use crate::fault_inject::FaultAttr;
use crate::gfp::Gfp;

/// The knobs and counters (Linux's debugfs `fail_page_alloc/` files).
#[derive(Debug)]
pub struct FailPageAlloc {
    /// The shared knobs: nth, probability, interval, times, counters.
    pub attr: FaultAttr,
    min_order: AtomicU32,
    ignore_gfp_reclaim: AtomicBool,
}

impl Default for FailPageAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl FailPageAlloc {
    /// Injection off.
    pub const fn new() -> FailPageAlloc {
        FailPageAlloc {
            attr: FaultAttr::new(),
            min_order: AtomicU32::new(0),
            ignore_gfp_reclaim: AtomicBool::new(false),
        }
    }
    /// Makes the `n`th allocation from now fail (1 = the next one); 0 disarms.
    pub fn fail_nth(&self, n: u64) {
        self.attr.fail_nth(n)
    }
    /// Fails allocations with `percent` probability (0 = off, 100 = always), at most
    /// `times` times (-1 = no limit), seeding the PRNG with `seed`.
    pub fn set_probability(&self, percent: u32, times: i64, seed: u64) {
        self.attr.set_probability(percent, times, seed)
    }
    /// Only requests of at least this order are failed by the probability knob.
    pub fn set_min_order(&self, order: u32) {
        self.min_order.store(order, Relaxed)
    }
    /// The minimum order.
    pub fn min_order(&self) -> u32 {
        self.min_order.load(Relaxed)
    }
    /// Linux's `ignore-gfp-wait`: spare requests that may sleep from the probability knob.
    pub fn set_ignore_gfp_reclaim(&self, ignore: bool) {
        self.ignore_gfp_reclaim.store(ignore, Relaxed)
    }
    /// Whether requests that may sleep are spared.
    pub fn ignore_gfp_reclaim(&self) -> bool {
        self.ignore_gfp_reclaim.load(Relaxed)
    }
    /// Allocations seen while a knob was armed.
    pub fn attempts(&self) -> u64 {
        self.attr.attempts()
    }
    /// Failures injected.
    pub fn injected(&self) -> u64 {
        self.attr.injected()
    }

    /// Linux's `should_fail_alloc_page`: whether to fail this request.
    #[inline]
    pub fn should_fail(&self, gfp: Gfp, order: u32) -> bool {
        if !self.attr.armed() || gfp.contains(Gfp::GFP_NOFAIL) {
            return false;
        }
        let eligible =
            order >= self.min_order.load(Relaxed) && !(self.ignore_gfp_reclaim.load(Relaxed) && gfp.may_sleep());
        self.attr.should_fail_armed(eligible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::{GFP_ATOMIC, GFP_KERNEL};

    #[test]
    fn nth_and_probability() {
        let f = FailPageAlloc::new();
        assert!(!f.should_fail(GFP_KERNEL, 0));
        assert_eq!(f.attempts(), 0);
        f.fail_nth(3);
        let r: Vec<bool> = (0..5).map(|_| f.should_fail(GFP_KERNEL, 0)).collect();
        assert_eq!(r, [false, false, true, false, false]);
        f.fail_nth(1);
        assert!(!f.should_fail(GFP_KERNEL | Gfp::GFP_NOFAIL, 0));
        assert!(f.should_fail(GFP_KERNEL, 0));
        f.set_probability(100, 2, 7);
        assert!(f.should_fail(GFP_ATOMIC, 0));
        assert!(f.should_fail(GFP_ATOMIC, 0));
        assert!(!f.should_fail(GFP_ATOMIC, 0), "times exhausted");
        f.set_probability(50, -1, 42);
        let n = (0..1000).filter(|_| f.should_fail(GFP_ATOMIC, 0)).count();
        assert!((400..600).contains(&n), "{n}");
        f.set_ignore_gfp_reclaim(true);
        assert!((0..100).all(|_| !f.should_fail(GFP_KERNEL, 0)));
        f.set_ignore_gfp_reclaim(false);
        f.set_min_order(2);
        assert!((0..100).all(|_| !f.should_fail(GFP_ATOMIC, 1)));
        // With ignore-gfp-wait off, a request that may sleep is as eligible as any.
        f.set_probability(100, 1, 3);
        assert!(f.should_fail(GFP_KERNEL, 2));
        assert_eq!(f.injected(), 2 + 2 + n as u64 + 1);
    }
}
