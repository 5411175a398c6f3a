//! The object table and mark-and-scan of a kmemleak-style leak detector (Linux's
//! `mm/kmemleak.c`), free of hardware: memory is read through a function, so the host
//! tests scan a simulated heap.
//!
//! Every tracked allocation is a slot of a fixed, open-addressed table keyed by the
//! object's address, claimed with one compare-and-swap (no allocation, no lock on the
//! allocation or free path; a full probe window is counted, and that object is simply
//! not tracked). A scan snapshots the live objects, sorted by address, marks every
//! object a word of the roots points into (anywhere inside it, as Linux does), then
//! scans each newly marked object's own words the same way; what stays unmarked is
//! referenced from nowhere: a suspected leak.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
const MAX_PROBE: usize = 64;
/// The object was reported and `clear`ed: never reported again (Linux's `clear`).
const IGNORED: u64 = 1 << 63;

/// One tracked object.
pub struct LeakSlot {
    addr: AtomicU64,
    /// Size (low 32 bits), trace handle (high 31), ignored flag (bit 63).
    meta: AtomicU64,
    /// Allocation time in the caller's unit (low 32), CPU (high 32).
    when: AtomicU64,
}

impl LeakSlot {
    /// An empty slot (for building the table).
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: LeakSlot = LeakSlot { addr: AtomicU64::new(0), meta: AtomicU64::new(0), when: AtomicU64::new(0) };
}

/// A tracked object as a scan sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object {
    /// Address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u32,
    /// Allocation trace handle.
    pub handle: u32,
    /// CPU that allocated it.
    pub cpu: u32,
    /// Allocation time since boot, in the caller's unit.
    pub ts_ms: u32,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Objects referenced from nowhere, by address.
    pub leaks: Vec<Object>,
    /// Objects tracked at the snapshot.
    pub objects: usize,
    /// Words read (roots and objects).
    pub words: u64,
}

/// The table over slots the caller reserved.
pub struct ObjectTable<'a> {
    slots: &'a [LeakSlot],
    not_tracked: AtomicU64,
}

fn slot_of(addr: u64, n: usize) -> usize {
    let mut h = addr ^ (addr >> 29);
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    (h % n as u64) as usize
}

impl<'a> ObjectTable<'a> {
    /// A table over `slots` (all empty).
    pub const fn new(slots: &'a [LeakSlot]) -> Self {
        ObjectTable { slots, not_tracked: AtomicU64::new(0) }
    }

    /// Allocations not tracked because their probe window was full.
    pub fn not_tracked(&self) -> u64 {
        self.not_tracked.load(Relaxed)
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Tracks a new object (Linux's `kmemleak_alloc`).
    pub fn insert(&self, addr: u64, size: usize, handle: u32, cpu: u32, ts_ms: u32) {
        let n = self.slots.len();
        if n == 0 || addr <= TOMBSTONE {
            return;
        }
        let start = slot_of(addr, n);
        for i in 0..n.min(MAX_PROBE) {
            let s = &self.slots[(start + i) % n];
            let cur = s.addr.load(Relaxed);
            if (cur == EMPTY || cur == TOMBSTONE) && s.addr.compare_exchange(cur, addr, Relaxed, Relaxed).is_ok() {
                s.meta.store((size as u64 & 0xffff_ffff) | ((handle as u64) & 0x7fff_ffff) << 32, Relaxed);
                s.when.store(ts_ms as u64 | (cpu as u64) << 32, Relaxed);
                return;
            }
        }
        self.not_tracked.fetch_add(1, Relaxed);
    }

    /// Stops tracking `addr` (Linux's `kmemleak_free`); false if it was not tracked.
    pub fn remove(&self, addr: u64) -> bool {
        let n = self.slots.len();
        if n == 0 || addr <= TOMBSTONE {
            return false;
        }
        let start = slot_of(addr, n);
        for i in 0..n.min(MAX_PROBE) {
            let s = &self.slots[(start + i) % n];
            let cur = s.addr.load(Relaxed);
            if cur == EMPTY {
                return false;
            }
            if cur == addr {
                return s.addr.compare_exchange(addr, TOMBSTONE, Relaxed, Relaxed).is_ok();
            }
        }
        false
    }

    fn object(s: &LeakSlot) -> Option<(Object, bool)> {
        let addr = s.addr.load(Relaxed);
        if addr <= TOMBSTONE {
            return None;
        }
        let meta = s.meta.load(Relaxed);
        let when = s.when.load(Relaxed);
        let o = Object {
            addr,
            size: meta as u32,
            handle: ((meta >> 32) & 0x7fff_ffff) as u32,
            cpu: (when >> 32) as u32,
            ts_ms: when as u32,
        };
        Some((o, meta & IGNORED != 0))
    }

    /// Objects tracked now.
    pub fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.addr.load(Relaxed) > TOMBSTONE).count()
    }

    /// Marks `objs` (a scan's suspects) as never to be reported again (`kmemleak
    /// clear`); returns how many are still tracked.
    pub fn ignore(&self, objs: &[Object]) -> usize {
        let mut n = 0;
        for s in self.slots {
            let a = s.addr.load(Relaxed);
            if objs.iter().any(|o| o.addr == a) {
                s.meta.fetch_or(IGNORED, Relaxed);
                n += 1;
            }
        }
        n
    }

    /// The mark-and-scan: roots are `[start, end)` ranges, `read(addr)` gives the
    /// aligned word at `addr` (or `None`: skipped). Allocates (fallibly) for the
    /// snapshot: the console's path, never the allocator's.
    pub fn scan(&self, roots: &[(u64, u64)], read: &dyn Fn(u64) -> Option<u64>) -> Result<ScanResult, TryReserveError> {
        let mut objs: Vec<(Object, bool)> = Vec::new();
        for s in self.slots {
            if let Some(o) = Self::object(s) {
                objs.try_reserve(1)?;
                objs.push(o);
            }
        }
        objs.sort_unstable_by_key(|(o, _)| o.addr);
        let mut marked: Vec<bool> = Vec::new();
        marked.try_reserve_exact(objs.len())?;
        marked.resize(objs.len(), false);
        let mut gray: Vec<usize> = Vec::new();
        let mut words = 0u64;
        let mut scan_range =
            |start: u64, end: u64, marked: &mut Vec<bool>, gray: &mut Vec<usize>| -> Result<(), TryReserveError> {
                let mut a = (start + 7) & !7;
                while a + 8 <= end {
                    words += 1;
                    if let Some(v) = read(a) {
                        // The last object starting at or below v, if v falls inside it.
                        let i = objs.partition_point(|(o, _)| o.addr <= v);
                        if i > 0 {
                            let (o, _) = &objs[i - 1];
                            if v < o.addr + (o.size as u64).max(1) && !marked[i - 1] {
                                marked[i - 1] = true;
                                gray.try_reserve(1)?;
                                gray.push(i - 1);
                            }
                        }
                    }
                    a += 8;
                }
                Ok(())
            };
        for &(s, e) in roots {
            scan_range(s, e, &mut marked, &mut gray)?;
        }
        while let Some(i) = gray.pop() {
            let o = objs[i].0;
            scan_range(o.addr, o.addr + o.size as u64, &mut marked, &mut gray)?;
        }
        let mut leaks = Vec::new();
        for (k, (o, ignored)) in objs.iter().enumerate() {
            if !marked[k] && !ignored {
                leaks.try_reserve(1)?;
                leaks.push(*o);
            }
        }
        Ok(ScanResult { leaks, objects: objs.len(), words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// A simulated heap: 8-byte words by address.
    struct Heap {
        words: HashMap<u64, u64>,
    }

    impl Heap {
        fn read(&self, a: u64) -> Option<u64> {
            self.words.get(&a).copied()
        }
    }

    fn table(n: usize) -> ObjectTable<'static> {
        ObjectTable::new(Box::leak((0..n).map(|_| LeakSlot::EMPTY).collect()))
    }

    #[test]
    fn unreferenced_objects_are_leaks_referenced_chains_are_not() {
        let t = table(64);
        let mut heap = Heap { words: HashMap::new() };
        // Roots: a "bss" of 4 words at 0x1000.
        let root = (0x1000u64, 0x1020u64);
        // a (0x10_000) <- root; b (0x20_000) <- a's second word (interior of nothing: b's
        // address); c (0x30_000) <- b via an interior pointer; d (0x40_000) unreferenced;
        // e (0x50_000) referenced only by d (a leaked chain is all leaked).
        for (addr, size) in [(0x10_000u64, 32usize), (0x20_000, 64), (0x30_000, 16), (0x40_000, 24), (0x50_000, 8)] {
            t.insert(addr, size, 7, 0, 1);
            for w in 0..size as u64 / 8 {
                heap.words.insert(addr + w * 8, 0);
            }
        }
        for w in 0..4 {
            heap.words.insert(0x1000 + w * 8, 0xdead);
        }
        heap.words.insert(0x1010, 0x10_000);
        heap.words.insert(0x10_008, 0x20_000);
        heap.words.insert(0x20_038, 0x30_008);
        heap.words.insert(0x40_000, 0x50_000);
        // A pointer just past c's end refers to nothing.
        heap.words.insert(0x1018, 0x30_010);
        let r = t.scan(&[root], &|a| heap.read(a)).unwrap();
        let leaked: Vec<u64> = r.leaks.iter().map(|o| o.addr).collect();
        assert_eq!(leaked, vec![0x40_000, 0x50_000]);
        assert_eq!(r.objects, 5);
        // Freed objects are not reported; `clear` silences the rest.
        assert!(t.remove(0x50_000));
        assert!(!t.remove(0x50_000), "not tracked twice");
        let r = t.scan(&[root], &|a| heap.read(a)).unwrap();
        assert_eq!(r.leaks.iter().map(|o| o.addr).collect::<Vec<_>>(), vec![0x40_000]);
        assert_eq!(t.ignore(&r.leaks), 1);
        assert!(t.scan(&[root], &|a| heap.read(a)).unwrap().leaks.is_empty());
        // With the root gone, everything is unreferenced.
        heap.words.insert(0x1010, 0);
        assert_eq!(t.scan(&[root], &|a| heap.read(a)).unwrap().leaks.len(), 3);
    }

    #[test]
    fn random_graphs_match_a_reachability_model_and_a_full_table_is_counted() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..20 {
            let t = table(128);
            let mut heap = Heap { words: HashMap::new() };
            let n = 40 + (next() % 40) as usize;
            let objs: Vec<(u64, u64)> = (0..n).map(|i| (0x100_000 + i as u64 * 0x100, 8 * (1 + next() % 8))).collect();
            for &(a, s) in &objs {
                t.insert(a, s as usize, 1, 0, 0);
                for w in 0..s / 8 {
                    heap.words.insert(a + w * 8, next() & 0xffff);
                }
            }
            let mut edges: Vec<Vec<usize>> = vec![vec![]; n];
            for (i, &(a, s)) in objs.iter().enumerate() {
                for w in 0..s / 8 {
                    if next() % 3 == 0 {
                        let j = (next() % n as u64) as usize;
                        heap.words.insert(a + w * 8, objs[j].0 + next() % objs[j].1);
                        edges[i].push(j);
                    }
                }
            }
            let roots_n = 1 + next() % 3;
            let mut reach = HashSet::new();
            let mut stack = vec![];
            for r in 0..roots_n {
                let j = (next() % n as u64) as usize;
                heap.words.insert(0x1000 + r * 8, objs[j].0);
                stack.push(j);
            }
            while let Some(j) = stack.pop() {
                if reach.insert(j) {
                    stack.extend(edges[j].iter().copied());
                }
            }
            let r = t.scan(&[(0x1000, 0x1000 + roots_n * 8)], &|a| heap.read(a)).unwrap();
            let got: HashSet<u64> = r.leaks.iter().map(|o| o.addr).collect();
            let want: HashSet<u64> = (0..n).filter(|j| !reach.contains(j)).map(|j| objs[j].0).collect();
            assert_eq!(got, want, "round {round}");
        }
        let t = table(4);
        for i in 0..6 {
            t.insert(0x1000 + i * 64, 8, 0, 0, 0);
        }
        assert_eq!((t.live(), t.not_tracked()), (4, 2));
    }
}
