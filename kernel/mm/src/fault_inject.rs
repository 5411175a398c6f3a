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
//!
//! The two knobs that arm the point, `nth` and `probability`, share one word (the
//! *gate*: probability in the low 7 bits, nth above), so the allocators' fast paths ask
//! "is anything armed?" with one relaxed load and one test ([`FaultAttr::armed`]); the
//! rest of the check is out of line. Every change of either knob (the setters, the
//! countdown of `nth`) is one atomic read-modify-write of that word, so "armed" is never
//! a copy that could disagree with the knobs. The races that remain:
//! - a call that loads the gate as 0 while another CPU arms it goes through unfailed and
//!   uncounted, as if it ran just before the setter (it did, in the word's order);
//! - a call that loads the gate as non-zero while another CPU disarms it (or counts `nth`
//!   down to 0) counts one attempt and, re-reading the gate in the slow path, fails
//!   nothing: one needless check;
//! - two CPUs counting `nth` down both compare-exchange the word, so exactly one of them
//!   takes it from 1 to 0 and fails; a `fail_nth` or `set_probability` meanwhile makes the
//!   exchange retry on the new word, never losing the other knob;
//! - `times` is claimed by a compare-exchange that never goes below 0, so two CPUs racing
//!   for the last failure cannot both inject (and cannot leave -1, "no limit", behind).
//!
//! `times`, `interval` and the generator stay separate words: they are read only when
//! the gate is armed, and none of them arms it.

use core::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The gate's low bits: the probability in percent (0..=100).
const PROB_BITS: u32 = 7;
const PROB_MASK: u64 = (1 << PROB_BITS) - 1;
/// One step of `nth` in the gate.
const NTH_ONE: u64 = 1 << PROB_BITS;

/// The largest `nth` the gate holds (2^57 - 1 calls, years of allocations at any rate);
/// [`FaultAttr::fail_nth`] clamps to it.
pub const NTH_MAX: u64 = u64::MAX >> PROB_BITS;

const fn gate_nth(g: u64) -> u64 {
    g >> PROB_BITS
}
const fn gate_prob(g: u64) -> u32 {
    (g & PROB_MASK) as u32
}

/// The knobs and counters of one injection point.
#[derive(Debug)]
pub struct FaultAttr {
    /// `nth << PROB_BITS | probability`: non-zero exactly when a knob is armed.
    gate: AtomicU64,
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
            gate: AtomicU64::new(0),
            interval: AtomicU64::new(1),
            times: AtomicI64::new(-1),
            count: AtomicU64::new(0),
            rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
            attempts: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// Makes the `n`th call from now fail (1 = the next one, at most [`NTH_MAX`]); 0
    /// disarms `nth`.
    pub fn fail_nth(&self, n: u64) {
        let nth = n.min(NTH_MAX) << PROB_BITS;
        // The probability bits are kept whatever happens to the word meanwhile.
        let _ = self.gate.fetch_update(Relaxed, Relaxed, |g| Some(nth | (g & PROB_MASK)));
    }

    /// Fails calls with `percent` probability (0 = off, 100 = always), at most `times`
    /// times (-1 = no limit), seeding the generator with `seed`.
    pub fn set_probability(&self, percent: u32, times: i64, seed: u64) {
        self.rng.store(seed | 1, Relaxed);
        self.times.store(times, Relaxed);
        let p = u64::from(percent.min(100));
        let _ = self.gate.fetch_update(Relaxed, Relaxed, |g| Some((g & !PROB_MASK) | p));
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
        self.gate.store(0, Relaxed);
        self.interval.store(1, Relaxed);
        self.times.store(-1, Relaxed);
    }

    /// The knobs and counters.
    pub fn knobs(&self) -> FaultKnobs {
        let g = self.gate.load(Relaxed);
        FaultKnobs {
            nth: gate_nth(g),
            probability: gate_prob(g),
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
        gate_nth(self.gate.load(Relaxed)) != 0
    }

    /// Whether any knob is armed: one load and one test, for the fast paths.
    #[inline(always)]
    pub fn armed(&self) -> bool {
        self.gate.load(Relaxed) != 0
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
    #[inline]
    pub fn should_fail(&self, eligible: bool) -> bool {
        self.armed() && self.should_fail_armed(eligible)
    }

    /// [`Self::should_fail`] once the gate was seen armed (the injection points call it
    /// after their own [`Self::armed`] test).
    #[cold]
    #[inline(never)]
    pub(crate) fn should_fail_armed(&self, eligible: bool) -> bool {
        self.attempts.fetch_add(1, Relaxed);
        let mut g = self.gate.load(Relaxed);
        while gate_nth(g) != 0 {
            match self.gate.compare_exchange_weak(g, g - NTH_ONE, Relaxed, Relaxed) {
                Ok(_) if gate_nth(g) == 1 => {
                    self.injected.fetch_add(1, Relaxed);
                    return true;
                }
                Ok(_) => return false,
                Err(now) => g = now,
            }
        }
        let probability = u64::from(gate_prob(g));
        if probability == 0 || !eligible || self.times.load(Relaxed) == 0 {
            return false;
        }
        let interval = self.interval.load(Relaxed);
        if interval > 1 && !(self.count.fetch_add(1, Relaxed) + 1).is_multiple_of(interval) {
            return false;
        }
        if self.next_rand() % 100 >= probability {
            return false;
        }
        // Claim one of the failures left (none below 0; -1, no limit, stays).
        if self.times.fetch_update(Relaxed, Relaxed, |t| (t != 0).then_some(if t > 0 { t - 1 } else { t })).is_err() {
            return false;
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

    #[test]
    fn nth_is_clamped_and_keeps_the_probability() {
        let f = FaultAttr::new();
        f.set_probability(30, -1, 5);
        f.fail_nth(u64::MAX);
        assert_eq!((f.knobs().nth, f.knobs().probability), (NTH_MAX, 30));
        f.fail_nth(0);
        assert_eq!((f.knobs().nth, f.knobs().probability), (0, 30));
        assert!(f.armed(), "the probability still arms it");
        f.set_probability(0, -1, 5);
        assert!(!f.armed() && !f.should_fail(true));
        f.fail_nth(2);
        f.set_probability(250, -1, 5);
        assert_eq!((f.knobs().nth, f.knobs().probability), (2, 100), "percent clamped, nth kept");
    }

    /// The gate before it was one word: two knobs, `armed` their OR, the same order of
    /// checks (a straightforward single-CPU reimplementation, the model).
    #[derive(Debug)]
    struct Model {
        nth: u64,
        probability: u32,
        interval: u64,
        times: i64,
        count: u64,
        rng: u64,
        attempts: u64,
        injected: u64,
    }

    impl Model {
        fn new() -> Self {
            Model {
                nth: 0,
                probability: 0,
                interval: 1,
                times: -1,
                count: 0,
                rng: 0x2545_f491_4f6c_dd1d,
                attempts: 0,
                injected: 0,
            }
        }
        fn armed(&self) -> bool {
            self.nth != 0 || self.probability != 0
        }
        fn should_fail(&mut self, eligible: bool) -> bool {
            if !self.armed() {
                return false;
            }
            self.attempts += 1;
            if self.nth != 0 {
                self.nth -= 1;
                if self.nth == 0 {
                    self.injected += 1;
                    return true;
                }
                return false;
            }
            if !eligible || self.times == 0 {
                return false;
            }
            if self.interval > 1 {
                self.count += 1;
                if !self.count.is_multiple_of(self.interval) {
                    return false;
                }
            }
            let mut x = self.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng = x;
            if x % 100 >= self.probability as u64 {
                return false;
            }
            if self.times > 0 {
                self.times -= 1;
            }
            self.injected += 1;
            true
        }
        fn knobs(&self) -> FaultKnobs {
            FaultKnobs {
                nth: self.nth,
                probability: self.probability,
                interval: self.interval,
                times: self.times,
                attempts: self.attempts,
                injected: self.injected,
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Nth(u64),
        Probability(u32, i64, u64),
        Interval(u64),
        Times(i64),
        Disarm,
        Calls(bool, usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..6).prop_map(Op::Nth),
            (prop_oneof![Just(0u32), Just(100), 0u32..130], -2i64..4, any::<u64>())
                .prop_map(|(p, t, s)| Op::Probability(p, t, s)),
            (0u64..5).prop_map(Op::Interval),
            (-3i64..4).prop_map(Op::Times),
            Just(Op::Disarm),
            (any::<bool>(), 1usize..12).prop_map(|(e, n)| Op::Calls(e, n)),
        ]
    }

    proptest::proptest! {
        /// Every setter/call sequence: the same answers, knobs and counters as the model.
        #[test]
        fn the_one_word_gate_behaves_like_the_two_knobs(ops in proptest::collection::vec(op(), 1..40)) {
            let f = FaultAttr::new();
            let mut m = Model::new();
            for op in ops {
                match op {
                    Op::Nth(n) => {
                        f.fail_nth(n);
                        m.nth = n;
                    }
                    Op::Probability(p, t, seed) => {
                        f.set_probability(p, t, seed);
                        m.rng = seed | 1;
                        m.times = t;
                        m.probability = p.min(100);
                    }
                    Op::Interval(i) => {
                        f.set_interval(i);
                        m.interval = i.max(1);
                        m.count = 0;
                    }
                    Op::Times(t) => {
                        f.set_times(t);
                        m.times = t.max(-1);
                    }
                    Op::Disarm => {
                        f.disarm();
                        m.nth = 0;
                        m.probability = 0;
                        m.interval = 1;
                        m.times = -1;
                    }
                    Op::Calls(eligible, n) => {
                        for _ in 0..n {
                            proptest::prop_assert_eq!(f.should_fail(eligible), m.should_fail(eligible));
                        }
                    }
                }
                proptest::prop_assert_eq!(f.knobs(), m.knobs());
                proptest::prop_assert_eq!(f.armed(), m.armed());
                proptest::prop_assert_eq!(f.nth_armed(), m.nth != 0);
            }
        }
    }

    /// Calls on several CPUs while the knobs count down: exactly one failure per `nth`,
    /// exactly `times` failures, and the gate disarmed (or not) as the knobs say.
    #[test]
    fn concurrent_countdowns_fail_exactly_as_often_as_armed() {
        use std::sync::Arc;
        const THREADS: usize = 4;
        const CALLS: usize = 2_000;
        let run = |f: &Arc<FaultAttr>| -> usize {
            let hs: Vec<_> = (0..THREADS)
                .map(|_| {
                    let f = Arc::clone(f);
                    std::thread::spawn(move || (0..CALLS).filter(|_| f.should_fail(true)).count())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        };
        for round in 0..20u64 {
            let f = Arc::new(FaultAttr::new());
            let nth_calls = 1 + round * 97;
            f.fail_nth(nth_calls);
            assert_eq!(run(&f), 1, "one failure per nth");
            assert!(!f.armed(), "counted down to 0: disarmed");
            // Every countdown step is an attempt; so is, at most once per other thread, a
            // call that saw the gate armed just before the last step disarmed it (the
            // module's "one needless check" race).
            let after_nth = f.attempts();
            assert!(
                (nth_calls..nth_calls + THREADS as u64).contains(&after_nth),
                "calls counted while nth was armed: {after_nth} for nth {nth_calls}"
            );
            f.set_probability(100, 3 + round as i64, round);
            assert_eq!(run(&f), 3 + round as usize, "exactly times failures");
            assert_eq!(f.knobs().times, 0, "never below 0 (-1 would mean no limit)");
            assert!(f.armed(), "the probability still arms it");
            assert_eq!(f.attempts(), after_nth + (THREADS * CALLS) as u64, "every call counted while armed");
        }
    }

    /// A setter on one CPU while others count `nth` down: neither knob is lost.
    #[test]
    fn setters_and_countdowns_lose_no_knob() {
        use std::sync::Arc;
        let f = Arc::new(FaultAttr::new());
        f.fail_nth(50_000);
        let counters: Vec<_> = (0..3)
            .map(|_| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || (0..10_000).filter(|_| f.should_fail(false)).count())
            })
            .collect();
        for p in (1..=100u32).cycle().take(5_000) {
            f.set_probability(p, -1, 1);
        }
        let failed: usize = counters.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(failed, 0, "ineligible calls only count nth down");
        assert_eq!(f.knobs().nth, 50_000 - 30_000, "every call counted nth down once");
        assert_eq!(f.knobs().probability, 100, "the last probability set");
    }
}
