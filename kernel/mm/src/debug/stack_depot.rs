//! Linux's stack depot: call traces stored once, in a fixed table reserved at boot, and
//! named by a small handle that records keep instead of the trace.
//!
//! Saving never allocates and never waits: the table is open-addressed by the trace's
//! hash, probing wraps around its end, and a slot is claimed with one compare-and-swap.
//! When no slot is left the trace is not stored: the save returns [`NO_HANDLE`] and the
//! miss is counted ([`StackDepot::dropped`]); the caller's record keeps "no trace".

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Return addresses kept per trace (the innermost first).
pub const DEPOT_DEPTH: usize = 12;

/// A call trace: return addresses, unused entries zero.
pub type Trace = [u64; DEPOT_DEPTH];

/// The handle of "no trace" (never stored, or the depot was full).
pub const NO_HANDLE: u32 = 0;

/// Slots probed before a save gives up (bounded work on the allocation path).
const MAX_PROBE: usize = 64;

/// A claimed slot whose frames are being written: readers skip it.
const WRITING: u64 = u64::MAX;

/// One slot of the depot: the trace's hash (0 empty) and its frames.
pub struct DepotSlot {
    hash: AtomicU64,
    frames: [AtomicU64; DEPOT_DEPTH],
}

impl DepotSlot {
    /// An empty slot (for building the table).
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: DepotSlot =
        DepotSlot { hash: AtomicU64::new(0), frames: [const { AtomicU64::new(0) }; DEPOT_DEPTH] };
}

/// The depot over a slot table the caller reserved.
pub struct StackDepot<'a> {
    slots: &'a [DepotSlot],
    dropped: AtomicU64,
    used: AtomicU32,
}

/// FNV-1a over the frames, mixed, never 0 or [`WRITING`].
fn hash(t: &Trace) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &f in t {
        h ^= f;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Return addresses are 4-byte aligned: mix the high bits down (murmur3's finaliser)
    // so that the low bits, which pick the slot, vary.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    match h {
        0 | WRITING => 1,
        h => h,
    }
}

impl<'a> StackDepot<'a> {
    /// A depot over `slots` (all empty).
    pub const fn new(slots: &'a [DepotSlot]) -> Self {
        StackDepot { slots, dropped: AtomicU64::new(0), used: AtomicU32::new(0) }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Traces stored.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed) as usize
    }

    /// Saves that found no slot (the table full, or its probe window).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn frames_equal(slot: &DepotSlot, t: &Trace) -> bool {
        slot.frames.iter().zip(t).all(|(a, &b)| a.load(Ordering::Relaxed) == b)
    }

    /// Stores `t` (or finds it stored) and returns its handle; [`NO_HANDLE`] when the
    /// table has no room, counted.
    pub fn save(&self, t: &Trace) -> u32 {
        let n = self.slots.len();
        if n == 0 {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return NO_HANDLE;
        }
        let h = hash(t);
        let start = (h % n as u64) as usize;
        for i in 0..n.min(MAX_PROBE) {
            let idx = (start + i) % n;
            let slot = &self.slots[idx];
            let cur = slot.hash.load(Ordering::Acquire);
            if cur == h && Self::frames_equal(slot, t) {
                return idx as u32 + 1;
            }
            if cur == 0 && slot.hash.compare_exchange(0, WRITING, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                for (f, &v) in slot.frames.iter().zip(t) {
                    f.store(v, Ordering::Relaxed);
                }
                slot.hash.store(h, Ordering::Release);
                self.used.fetch_add(1, Ordering::Relaxed);
                return idx as u32 + 1;
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        NO_HANDLE
    }

    /// The trace of `handle`, if it names a stored one.
    pub fn fetch(&self, handle: u32) -> Option<Trace> {
        let slot = self.slots.get((handle as usize).checked_sub(1)?)?;
        let h = slot.hash.load(Ordering::Acquire);
        if h == 0 || h == WRITING {
            return None;
        }
        let mut t = [0; DEPOT_DEPTH];
        for (o, f) in t.iter_mut().zip(&slot.frames) {
            *o = f.load(Ordering::Relaxed);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(seed: u64) -> Trace {
        let mut t = [0; DEPOT_DEPTH];
        for (i, f) in t.iter_mut().enumerate().take(5) {
            *f = 0xffff_ffc0_0008_0000 + seed * 0x100 + i as u64 * 4;
        }
        t
    }

    #[test]
    fn same_trace_same_handle_and_round_trip() {
        let slots: Vec<DepotSlot> = (0..16).map(|_| DepotSlot::EMPTY).collect();
        let d = StackDepot::new(&slots);
        let a = d.save(&trace(1));
        let b = d.save(&trace(2));
        assert_ne!(a, NO_HANDLE);
        assert_ne!(a, b);
        assert_eq!(d.save(&trace(1)), a);
        assert_eq!(d.fetch(a), Some(trace(1)));
        assert_eq!(d.fetch(b), Some(trace(2)));
        assert_eq!(d.used(), 2);
        assert_eq!(d.fetch(NO_HANDLE), None);
        assert_eq!(d.fetch(17), None);
    }

    #[test]
    fn probing_wraps_past_the_end_and_a_full_table_is_counted() {
        let slots: Vec<DepotSlot> = (0..8).map(|_| DepotSlot::EMPTY).collect();
        let d = StackDepot::new(&slots);
        // Find traces whose hash lands on the last slot: the second must wrap to slot 0.
        let last: Vec<Trace> = (0..10_000).map(trace).filter(|t| hash(t) % 8 == 7).take(2).collect();
        assert_eq!(d.save(&last[0]), 8);
        assert_eq!(d.save(&last[1]), 1, "the probe wraps to the first slot");
        let mut handles = std::collections::HashSet::new();
        let mut seed = 20_000;
        while d.used() < 8 {
            handles.insert(d.save(&trace(seed)));
            seed += 1;
        }
        assert_eq!(d.dropped(), 0);
        assert_eq!(d.save(&trace(99_999)), NO_HANDLE, "full: not stored");
        assert_eq!(d.save(&trace(99_998)), NO_HANDLE);
        assert_eq!(d.dropped(), 2, "each miss counted");
        // What is stored is still found.
        assert_eq!(d.save(&last[1]), 1);
        assert_eq!(d.fetch(8), Some(last[0]));
    }
}
