//! Linux's `struct fault_attr` (lib/fault-inject.c): the knobs every fault-injection
//! point shares, here for `fail_page_alloc` and `fail_slab`.
//!
//! - `nth`: the Nth call from now fails, once (Linux's per-task `fail-nth`); while it is
//!   armed the other knobs are not consulted, as in Linux;
//! - `probability` (percent), `interval` (only every interval-th eligible call may fail)
//!   and `times` (failures left, -1 for no limit), Linux's debugfs files of those names.
//!
//! The random numbers come from a small deterministic generator (xorshift64), so a
//! failing run can be replayed from its seed. Everything is atomics: checks run on every
//! CPU without a lock.

use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

/// The knobs and counters of one injection point.
#[derive(Debug)]
pub struct FaultAttr {
    nth: AtomicU64,
    probability: AtomicU32,
    interval: AtomicU64,
    times: AtomicI64,
    count: AtomicU64,
    rng: AtomicU64,
    attempts: AtomicU64,
    injected: AtomicU64,
}

/// A snapshot of the knobs, for printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultKnobs {
    /// Calls left until the armed failure (0: not armed).
    pub nth: u64,
    /// Percent.
    pub probability: u32,
    /// Every interval-th eligible call may fail.
    pub interval: u64,
    /// Failures left (-1: no limit).
    pub times: i64,
    /// Calls seen while a knob was armed.
    pub attempts: u64,
    /// Failures injected.
    pub injected: u64,
}

impl Default for FaultAttr {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultAttr {
    /// Injection off (interval 1, no limit on times).
    pub const fn new() -> FaultAttr {
        FaultAttr {
            nth: AtomicU64::new(0),
            probability: AtomicU32::new(0),
            interval: AtomicU64::new(1),
            times: AtomicI64::new(-1),
            count: AtomicU64::new(0),
            rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
            attempts: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// Makes the `n`th call from now fail (1 = the next one); 0 disarms.
    pub fn fail_nth(&self, n: u64) {
        self.nth.store(n, Relaxed)
    }

    /// Fails calls with `percent` probability (0 = off, 100 = always), at most `times`
    /// times (-1 = no limit), seeding the generator with `seed`.
    pub fn set_probability(&self, percent: u32, times: i64, seed: u64) {
        self.rng.store(seed | 1, Relaxed);
        self.times.store(times, Relaxed);
        self.probability.store(percent.min(100), Relaxed);
    }

    /// Only every `interval`-th eligible call may fail (0 and 1: every call).
    pub fn set_interval(&self, interval: u64) {
        self.interval.store(interval.max(1), Relaxed);
        self.count.store(0, Relaxed);
    }

    /// Failures left (-1: no limit).
    pub fn set_times(&self, times: i64) {
        self.times.store(times.max(-1), Relaxed)
    }

    /// Everything off (the counters are kept).
    pub fn disarm(&self) {
        self.nth.store(0, Relaxed);
        self.probability.store(0, Relaxed);
        self.interval.store(1, Relaxed);
        self.times.store(-1, Relaxed);
    }

    /// The knobs and counters.
    pub fn knobs(&self) -> FaultKnobs {
        FaultKnobs {
            nth: self.nth.load(Relaxed),
            probability: self.probability.load(Relaxed),
            interval: self.interval.load(Relaxed),
            times: self.times.load(Relaxed),
            attempts: self.attempts.load(Relaxed),
            injected: self.injected.load(Relaxed),
        }
    }

    /// Calls seen while a knob was armed.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Relaxed)
    }

    /// Failures injected.
    pub fn injected(&self) -> u64 {
        self.injected.load(Relaxed)
    }

    /// Whether the `nth` knob is armed (a failure is still due).
    pub fn nth_armed(&self) -> bool {
        self.nth.load(Relaxed) != 0
    }

    /// Whether any knob is armed (cheap test for the fast path).
    #[inline]
    pub fn armed(&self) -> bool {
        // Both loads and one test (no second branch on the fast path).
        (self.nth.load(Relaxed) | self.probability.load(Relaxed) as u64) != 0
    }

    fn next_rand(&self) -> u64 {
        let mut x = self.rng.load(Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Relaxed);
        x
    }

    /// Linux's `should_fail`: the `nth` knob, then times, interval and probability.
    /// `eligible` is false for calls the point's own filters spare (they still count
    /// towards `nth`, like Linux's fail-nth, which counts every call).
    pub fn should_fail(&self, eligible: bool) -> bool {
        if !self.armed() {
            return false;
        }
        self.attempts.fetch_add(1, Relaxed);
        if self.nth.load(Relaxed) != 0 {
            let prev = self.nth.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).unwrap_or(0);
            if prev == 1 {
                self.injected.fetch_add(1, Relaxed);
                return true;
            }
            return false;
        }
        if !eligible || self.times.load(Relaxed) == 0 {
            return false;
        }
        let interval = self.interval.load(Relaxed);
        if interval > 1 && !(self.count.fetch_add(1, Relaxed) + 1).is_multiple_of(interval) {
            return false;
        }
        if self.next_rand() % 100 >= self.probability.load(Relaxed) as u64 {
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

    #[test]
    fn nth_fails_once_and_ignores_the_other_knobs() {
        let f = FaultAttr::new();
        assert!(!f.should_fail(true));
        assert_eq!(f.attempts(), 0, "nothing counted while off");
        f.set_probability(100, -1, 1);
        f.fail_nth(3);
        let r: Vec<bool> = (0..3).map(|_| f.should_fail(true)).collect();
        assert_eq!(r, [false, false, true], "probability not consulted while nth is armed");
        assert!(!f.nth_armed());
        assert!(f.should_fail(true), "then probability 100 fails every call");
        f.fail_nth(1);
        assert!(f.should_fail(false), "nth counts calls the filters spare");
    }

    #[test]
    fn interval_probability_times() {
        let f = FaultAttr::new();
        f.set_probability(100, 3, 7);
        f.set_interval(4);
        let r: Vec<bool> = (0..16).map(|_| f.should_fail(true)).collect();
        let failed: Vec<usize> = r.iter().enumerate().filter(|(_, &b)| b).map(|(i, _)| i).collect();
        assert_eq!(failed, [3, 7, 11], "every 4th call, 3 times");
        assert_eq!(f.knobs().times, 0);
        assert!(!f.should_fail(false));
        f.set_interval(1);
        f.set_probability(50, -1, 42);
        let n = (0..1000).filter(|_| f.should_fail(true)).count();
        assert!((400..600).contains(&n), "{n}");
        assert!((0..100).all(|_| !f.should_fail(false)), "ineligible calls never fail by probability");
        f.disarm();
        assert!(!f.armed());
        assert_eq!(f.injected(), 3 + n as u64);
    }
}
