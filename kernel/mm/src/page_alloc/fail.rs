//! Fault injection like Linux's `fail_page_alloc`: make the Nth allocation from now fail,
//! or fail allocations with a probability (a small deterministic PRNG, so that a failing
//! run can be replayed), a limited number of times, above a minimum order.

use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::gfp::Gfp;

/// The knobs and counters (Linux's debugfs `fail_page_alloc/` files).
#[derive(Debug)]
pub struct FailPageAlloc {
    nth: AtomicU64,
    probability: AtomicU32,
    times: AtomicI64,
    min_order: AtomicU32,
    ignore_gfp_reclaim: AtomicBool,
    rng: AtomicU64,
    attempts: AtomicU64,
    injected: AtomicU64,
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
            nth: AtomicU64::new(0),
            probability: AtomicU32::new(0),
            times: AtomicI64::new(-1),
            min_order: AtomicU32::new(0),
            ignore_gfp_reclaim: AtomicBool::new(false),
            rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
            attempts: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }
    /// Makes the `n`th allocation from now fail (1 = the next one); 0 disarms.
    pub fn fail_nth(&self, n: u64) {
        self.nth.store(n, Relaxed)
    }
    /// Fails allocations with `percent` probability (0 = off, 100 = always), at most
    /// `times` times (-1 = no limit), seeding the PRNG with `seed`.
    pub fn set_probability(&self, percent: u32, times: i64, seed: u64) {
        self.rng.store(seed | 1, Relaxed);
        self.times.store(times, Relaxed);
        self.probability.store(percent.min(100), Relaxed);
    }
    /// Only requests of at least this order are failed by the probability knob.
    pub fn set_min_order(&self, order: u32) {
        self.min_order.store(order, Relaxed)
    }
    /// Linux's `ignore-gfp-wait`: spare requests that may sleep from the probability knob.
    pub fn set_ignore_gfp_reclaim(&self, ignore: bool) {
        self.ignore_gfp_reclaim.store(ignore, Relaxed)
    }
    /// Allocations seen while a knob was armed.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Relaxed)
    }
    /// Failures injected.
    pub fn injected(&self) -> u64 {
        self.injected.load(Relaxed)
    }

    fn next_rand(&self) -> u64 {
        // xorshift64: deterministic, one word of state.
        let mut x = self.rng.load(Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Relaxed);
        x
    }

    /// Linux's `should_fail_alloc_page`: whether to fail this request.
    pub fn should_fail(&self, gfp: Gfp, order: u32) -> bool {
        if gfp.contains(Gfp::GFP_NOFAIL) {
            return false;
        }
        let nth_armed = self.nth.load(Relaxed) != 0;
        let prob = self.probability.load(Relaxed);
        if !nth_armed && prob == 0 {
            return false;
        }
        self.attempts.fetch_add(1, Relaxed);
        if nth_armed {
            let prev = self.nth.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).unwrap_or(0);
            if prev == 1 {
                self.injected.fetch_add(1, Relaxed);
                return true;
            }
        }
        if prob == 0
            || order < self.min_order.load(Relaxed)
            || (self.ignore_gfp_reclaim.load(Relaxed) && gfp.may_sleep())
            || self.times.load(Relaxed) == 0
            || self.next_rand() % 100 >= prob as u64
        {
            return false;
        }
        if self.times.load(Relaxed) > 0 {
            self.times.fetch_sub(1, Relaxed);
        }
        self.injected.fetch_add(1, Relaxed);
        true
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
        assert_eq!(f.injected(), 2 + 2 + n as u64);
    }
}
