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
//!
//! [`vmalloc_ranges`] gives the RAM behind the vmalloc and vmap areas as roots (Linux
//! scans them too), by physical range, so the caller reads them through the linear map
//! in batches, without holding the vmalloc lock through the scan.

use crate::pgtable::{MemType, PageTable, PhysMemory, TlbMaint};
use crate::vmalloc::{VmKind, Vmalloc};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Where [`ObjectTable::scan_with`]'s roots go: `sink(start, end)` for each range.
pub type RootSink<'s> = &'s mut dyn FnMut(u64, u64);

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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanResult {
    /// Objects tracked at the snapshot (the first `objects` of the caller's buffer,
    /// sorted by address).
    pub objects: usize,
    /// Of them, referenced from nowhere and not ignored: `marked[i]` is false.
    pub leaks: usize,
    /// Objects not scanned because the caller's buffer was full (counted, and taken as
    /// referenced).
    pub not_scanned: usize,
    /// Words read (roots and objects).
    pub words: u64,
}

/// The caller's memory for a scan (no allocation here): one entry per tracked object.
pub struct ScanBuffers<'b> {
    /// The snapshot, sorted by address.
    pub objects: &'b mut [Object],
    /// Whether each object was reached (or is ignored).
    pub marked: &'b mut [bool],
    /// The gray stack of objects reached and not yet scanned.
    pub gray: &'b mut [u32],
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
        self.ignore_addrs(&mut objs.iter().map(|o| o.addr))
    }

    /// [`Self::ignore`] by address.
    pub fn ignore_addrs(&self, addrs: &mut dyn Iterator<Item = u64>) -> usize {
        let mut n = 0;
        for a in addrs {
            let k = slot_of(a.max(2), self.slots.len().max(1));
            for i in 0..self.slots.len().min(MAX_PROBE) {
                let s = &self.slots[(k + i) % self.slots.len()];
                if s.addr.load(Relaxed) == a {
                    s.meta.fetch_or(IGNORED, Relaxed);
                    n += 1;
                    break;
                }
            }
        }
        n
    }

    /// The mark-and-scan: roots are `[start, end)` ranges, `read(addr)` gives the
    /// aligned word at `addr` (or `None`: skipped). The snapshot goes into `buf`; the
    /// suspects are the objects left unmarked ([`leaks_of`]).
    pub fn scan(
        &self,
        roots: &[(u64, u64)],
        read: &dyn Fn(u64) -> Option<u64>,
        buf: &mut ScanBuffers<'_>,
    ) -> ScanResult {
        self.scan_with(
            &mut |sink| {
                for &(s, e) in roots {
                    sink(s, e);
                }
            },
            read,
            buf,
        )
    }

    /// [`Self::scan`] with the roots given one range at a time: `roots(sink)` calls
    /// `sink(start, end)` for each (and may take and drop locks between batches).
    pub fn scan_with(
        &self,
        roots: &mut dyn FnMut(RootSink<'_>),
        read: &dyn Fn(u64) -> Option<u64>,
        buf: &mut ScanBuffers<'_>,
    ) -> ScanResult {
        let cap = buf.objects.len().min(buf.marked.len()).min(buf.gray.len());
        let mut n = 0;
        let mut not_scanned = 0;
        for s in self.slots {
            if let Some((o, _)) = Self::object(s) {
                if n == cap {
                    not_scanned += 1;
                    continue;
                }
                buf.objects[n] = o;
                n += 1;
            }
        }
        // Sorted by address (no allocation); an ignored object starts marked.
        buf.objects[..n].sort_unstable_by_key(|o| o.addr);
        for k in 0..n {
            buf.marked[k] = self.is_ignored(buf.objects[k].addr);
        }
        let objs = &buf.objects[..n];
        let marked = &mut buf.marked[..n];
        let gray = &mut buf.gray[..n];
        let mut top = 0usize;
        let mut words = 0u64;
        let mut scan_range = |start: u64, end: u64, marked: &mut [bool], gray: &mut [u32], top: &mut usize| {
            let mut a = (start + 7) & !7;
            while a + 8 <= end {
                words += 1;
                if let Some(v) = read(a) {
                    // The last object starting at or below v, if v falls inside it.
                    let i = objs.partition_point(|o| o.addr <= v);
                    if i > 0 {
                        let o = &objs[i - 1];
                        if v < o.addr + (o.size as u64).max(1) && !marked[i - 1] {
                            marked[i - 1] = true;
                            // Each object is pushed at most once: the stack cannot overflow.
                            gray[*top] = (i - 1) as u32;
                            *top += 1;
                        }
                    }
                }
                a += 8;
            }
        };
        roots(&mut |s, e| scan_range(s, e, marked, gray, &mut top));
        while top > 0 {
            top -= 1;
            let o = objs[gray[top] as usize];
            scan_range(o.addr, o.addr + o.size as u64, marked, gray, &mut top);
        }
        let leaks = marked.iter().filter(|&&m| !m).count();
        ScanResult { objects: n, leaks, not_scanned, words }
    }

    fn is_ignored(&self, addr: u64) -> bool {
        let n = self.slots.len();
        let start = slot_of(addr, n);
        (0..n.min(MAX_PROBE))
            .map(|i| &self.slots[(start + i) % n])
            .any(|s| s.addr.load(Relaxed) == addr && s.meta.load(Relaxed) & IGNORED != 0)
    }
}

/// The RAM behind the live vmalloc and vmap areas at or after the address `from`, as
/// roots: the physical ranges `[start, end)` of their mapped pages in address order
/// (physically contiguous pages merged), written to `out`. Returns how many, and the
/// address to go on from when `out` filled up (`None`: all given). Left out: guard pages
/// and pages not mapped (no leaf), ioremap areas (their own range, never walked) and every
/// mapping that is not Normal memory (device registers must never be read), and areas `skip(start)` names.
pub fn vmalloc_ranges<M: PhysMemory, T: TlbMaint>(
    vm: &Vmalloc,
    pt: &PageTable<M, T>,
    from: u64,
    skip: &dyn Fn(u64) -> bool,
    out: &mut [(u64, u64)],
) -> (usize, Option<u64>) {
    let mut n = 0;
    let mut resume = None;
    for a in vm.vmalloc_areas().iter() {
        let (start, end) = (a.start.as_u64().max(from), a.end().as_u64());
        if end <= start || a.kind == VmKind::Ioremap || skip(a.start.as_u64()) {
            continue;
        }
        pt.for_each_leaf(crate::addr::VirtAddr::new(start), end - start, &mut |leaf| {
            if resume.is_some() || leaf.prot.mem_type() != MemType::Normal {
                return;
            }
            let va = leaf.va.as_u64().max(start);
            let pa = leaf.pa.as_u64() + (va - leaf.va.as_u64());
            let pa_end = pa + ((leaf.va.as_u64() + leaf.size).min(end) - va);
            if n > 0 && out[n - 1].1 == pa {
                out[n - 1].1 = pa_end;
            } else if n < out.len() {
                out[n] = (pa, pa_end);
                n += 1;
            } else {
                resume = Some(va);
            }
        });
        if resume.is_some() {
            break;
        }
    }
    (n, resume)
}

/// The suspects of a scan: the snapshot's objects left unmarked.
pub fn leaks_of<'b>(buf: &'b ScanBuffers<'_>, r: &ScanResult) -> impl Iterator<Item = &'b Object> + 'b {
    let n = r.objects;
    buf.objects[..n].iter().zip(&buf.marked[..n]).filter(|(_, &m)| !m).map(|(o, _)| o)
}

impl Object {
    /// An empty entry (for the caller's buffer).
    pub const EMPTY: Object = Object { addr: 0, size: 0, handle: 0, cpu: 0, ts_ms: 0 };
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

    /// Scans with buffers of `cap` entries; the suspects' addresses.
    fn scan(t: &ObjectTable<'_>, roots: &[(u64, u64)], heap: &Heap, cap: usize) -> (ScanResult, Vec<u64>) {
        let (mut o, mut m, mut g) = (vec![Object::EMPTY; cap], vec![false; cap], vec![0u32; cap]);
        let mut buf = ScanBuffers { objects: &mut o, marked: &mut m, gray: &mut g };
        let r = t.scan(roots, &|a| heap.read(a), &mut buf);
        let leaks = leaks_of(&buf, &r).map(|o| o.addr).collect();
        (r, leaks)
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
        let (r, leaked) = scan(&t, &[root], &heap, 16);
        assert_eq!(leaked, vec![0x40_000, 0x50_000]);
        assert_eq!((r.objects, r.leaks, r.not_scanned), (5, 2, 0));
        // Freed objects are not reported; `clear` silences the rest.
        assert!(t.remove(0x50_000));
        assert!(!t.remove(0x50_000), "not tracked twice");
        let (_, leaked) = scan(&t, &[root], &heap, 16);
        assert_eq!(leaked, vec![0x40_000]);
        assert_eq!(t.ignore_addrs(&mut leaked.into_iter()), 1);
        assert!(scan(&t, &[root], &heap, 16).1.is_empty());
        // With the root gone, everything is unreferenced.
        heap.words.insert(0x1010, 0);
        assert_eq!(scan(&t, &[root], &heap, 16).1.len(), 3);
        // A buffer too small: the objects left out are counted, not reported.
        let (r, _) = scan(&t, &[root], &heap, 2);
        assert_eq!((r.objects, r.not_scanned), (2, 2));
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
            let (_, leaks) = scan(&t, &[(0x1000, 0x1000 + roots_n * 8)], &heap, 128);
            let got: HashSet<u64> = leaks.into_iter().collect();
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
