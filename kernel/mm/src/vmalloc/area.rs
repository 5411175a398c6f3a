//! The vmap area allocator: free virtual space over [start, end) in O(log n).
//!
//! Free space is kept twice: by start (to coalesce neighbours on release) and by
//! (size, start) (best fit, lowest address among equals). Every area is followed by one
//! unmapped guard page that belongs to its reservation but not to its size, so running off
//! the end of an area faults instead of reaching the next one.
//!
//! The trees are intrusive (like Linux's rbtrees of `struct vmap_area`): each free range
//! and each busy area is one `VmapNode` holding its own tree links, so the trees never
//! allocate. Nodes live in an arena of the kernel heap (Linux's `vmap_area_cachep`),
//! named by `u32` index, grown fallibly and before anything is changed: a reservation
//! needs at most one new node (when it splits a free range; two when an aligned one leaves
//! a head and a tail), a release needs none (the busy node becomes the free range, or
//! merges into a neighbour and its slot goes on the arena's free list). So a free never
//! allocates and never fails for want of memory, and an allocation that cannot get its
//! node fails cleanly.
//!
//! The balanced trees are treaps (random priorities, expected depth O(log n)), in
//! [`super::treap`].

use super::treap::{Arena, Idx, Tree, NIL};
pub use super::vm_area::{AreaError, VmArea, VmKind, GUARD_SIZE};

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// How many recently freed areas are remembered for use-after-free reports.
pub const FREED_RING: usize = 8;

/// Free and busy areas of one virtual range.
pub struct VmapAreas {
    start: u64,
    end: u64,
    inited: bool,
    nodes: Arena,
    /// Busy areas by start.
    busy: Idx,
    /// Free ranges by start.
    free_addr: Idx,
    /// Free ranges by (length, start).
    free_size: Idx,
    nr_busy: usize,
    nr_free: usize,
    free_total: u64,
    rng: u64,
    freed: [Option<VmArea>; FREED_RING],
    freed_next: usize,
}

impl VmapAreas {
    /// An allocator over [start, end) (page aligned); usable in a `static`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self {
            start,
            end,
            inited: false,
            nodes: Arena::new(),
            busy: NIL,
            free_addr: NIL,
            free_size: NIL,
            nr_busy: 0,
            nr_free: 0,
            free_total: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ start,
            freed: [None; FREED_RING],
            freed_next: 0,
        }
    }

    /// The managed range.
    pub const fn range(&self) -> (VirtAddr, VirtAddr) {
        (VirtAddr::new(self.start), VirtAddr::new(self.end))
    }

    /// A new node for `area` from room made by [`Arena::reserve`].
    fn new_node(&mut self, area: VmArea) -> Idx {
        // xorshift64 for the treap priorities.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.nodes.take(area, (self.rng >> 32) as u32)
    }

    /// The whole pages of the managed range: its start rounded up, its end down (an
    /// unaligned range never hands out an address outside it). Empty when `s >= e`.
    fn span(&self) -> (u64, u64) {
        let e = self.end & !(GUARD_SIZE - 1);
        (self.start.checked_next_multiple_of(GUARD_SIZE).unwrap_or(e), e)
    }

    // `new` is const (no allocation), so the initial free range is inserted on first use.
    fn init(&mut self) -> Result<(), AreaError> {
        if !self.inited {
            let (s, e) = self.span();
            if e > s {
                if !self.nodes.reserve(1) {
                    return Err(AreaError::NoMemory);
                }
                let n = self.new_node(VmArea::free_range(s, e - s));
                self.insert_free(n);
            }
            self.inited = true;
        }
        Ok(())
    }

    fn insert_free(&mut self, n: Idx) {
        self.free_total += self.nodes.get(n).area.size;
        self.free_addr = self.nodes.insert(self.free_addr, n, Tree::Addr);
        self.free_size = self.nodes.insert(self.free_size, n, Tree::Size);
        self.nr_free += 1;
    }

    fn remove_free(&mut self, n: Idx) {
        self.free_total -= self.nodes.get(n).area.size;
        self.free_addr = self.nodes.remove(self.free_addr, n, Tree::Addr);
        self.free_size = self.nodes.remove(self.free_size, n, Tree::Size);
        self.nr_free -= 1;
    }

    fn busy_node(&self, start: u64) -> Option<Idx> {
        let n = self.nodes.floor(self.busy, (start, 0), Tree::Addr);
        (n != NIL && self.nodes.get(n).area.start.as_u64() == start).then_some(n)
    }

    /// The area of node `n` (not [`NIL`]), borrowed as long as `self`.
    fn area_of(&self, n: Idx) -> Option<&VmArea> {
        (n != NIL).then(|| &self.nodes.get(n).area)
    }

    /// Reserves `size` bytes (rounded up to pages) plus a guard page, best fit.
    pub fn alloc(
        &mut self,
        size: u64,
        kind: VmKind,
        caller: &'static str,
        phys_addr: Option<PhysAddr>,
    ) -> Result<VmArea, AreaError> {
        self.alloc_aligned(size, GUARD_SIZE, kind, caller, phys_addr)
    }

    /// [`Self::alloc`] with the area's start a multiple of `align` (a power of two, at
    /// least a page): a huge vmalloc asks for 2 MiB. The free range chosen is the
    /// smallest that holds the area at its first aligned address; what lies before that
    /// address stays free.
    pub fn alloc_aligned(
        &mut self,
        size: u64,
        align: u64,
        kind: VmKind,
        caller: &'static str,
        phys_addr: Option<PhysAddr>,
    ) -> Result<VmArea, AreaError> {
        if size == 0 {
            return Err(AreaError::ZeroSize);
        }
        let align = align.max(GUARD_SIZE);
        if !align.is_power_of_two() {
            return Err(AreaError::Overflow);
        }
        let size = size.checked_add(GUARD_SIZE - 1).ok_or(AreaError::Overflow)? & !(GUARD_SIZE - 1);
        let need = size.checked_add(GUARD_SIZE).ok_or(AreaError::Overflow)?;
        self.init()?;
        let (fit, pad) = self.find_fit(need, align).ok_or(AreaError::Exhausted(need))?;
        let (s, len) = {
            let a = &self.nodes.get(fit).area;
            (a.start.as_u64(), a.size)
        };
        let nr_pages = match kind {
            VmKind::Ioremap => 0,
            _ => (size / PAGE_SIZE as u64) as usize,
        };
        let start = s + pad;
        let area = VmArea { start: VirtAddr::new(start), size, caller, nr_pages, kind, phys_addr, huge: 0 };
        let tail = len - pad - need;
        // The only allocation, before anything changes: room for the node of the new busy
        // area when it does not take the free range whole, and for one for the head when
        // the alignment leaves a head and a tail. The range keeps its node for the tail
        // (the rest of the range, as without alignment), so long-lived ranges keep theirs;
        // an exact fit reuses it.
        let split = pad > 0 || tail > 0;
        let head = pad > 0 && tail > 0;
        if !self.nodes.reserve(usize::from(split) + usize::from(head)) {
            return Err(AreaError::NoMemory);
        }
        let busy = if split { self.new_node(area) } else { fit };
        let head_node = head.then(|| self.new_node(VmArea::free_range(s, pad)));
        self.remove_free(fit);
        if busy != fit {
            // `fit` is in no tree now: it becomes the tail, else the head.
            self.nodes.get_mut(fit).area =
                if tail > 0 { VmArea::free_range(start + need, tail) } else { VmArea::free_range(s, pad) };
            self.insert_free(fit);
        }
        if let Some(h) = head_node {
            self.insert_free(h);
        }
        self.nodes.get_mut(busy).area = area;
        self.busy = self.nodes.insert(self.busy, busy, Tree::Addr);
        self.nr_busy += 1;
        Ok(area)
    }

    /// The free range for `need` bytes at an `align`ed start, and the padding before that
    /// start: the smallest range of at least `need` that fits (best fit), else the
    /// smallest of at least `need + align - page`, which always fits.
    fn find_fit(&self, need: u64, align: u64) -> Option<(Idx, u64)> {
        let pad_of = |n: Idx| {
            let a = &self.nodes.get(n).area;
            let (s, len) = (a.start.as_u64(), a.size);
            let pad = s.next_multiple_of(align) - s;
            (len >= pad && len - pad >= need).then_some(pad)
        };
        let best = self.nodes.ceil(self.free_size, (need, 0), Tree::Size);
        if best == NIL {
            return None;
        }
        if let Some(pad) = pad_of(best) {
            return Some((best, pad));
        }
        let worst = need.checked_add(align - GUARD_SIZE)?;
        let n = self.nodes.ceil(self.free_size, (worst, 0), Tree::Size);
        if n == NIL {
            return None;
        }
        pad_of(n).map(|pad| (n, pad))
    }

    /// Records how many 2 MiB blocks map the live area at `start`.
    pub fn set_huge(&mut self, start: VirtAddr, blocks: usize) {
        if let Some(n) = self.busy_node(start.as_u64()) {
            self.nodes.get_mut(n).area.huge = blocks;
        }
    }

    /// Releases the area starting at `start` and remembers it for use-after-free reports.
    pub fn free(&mut self, start: VirtAddr) -> Result<VmArea, AreaError> {
        let area = self.release(start)?;
        self.freed[self.freed_next] = Some(area);
        self.freed_next = (self.freed_next + 1) % FREED_RING;
        Ok(area)
    }

    /// Releases without remembering (unwinding a failed allocation). Never allocates.
    pub fn release(&mut self, start: VirtAddr) -> Result<VmArea, AreaError> {
        let n = self.busy_node(start.as_u64()).ok_or(AreaError::NotFound(start))?;
        self.busy = self.nodes.remove(self.busy, n, Tree::Addr);
        let area = self.nodes.get(n).area;
        self.nr_busy -= 1;
        let (mut s, mut len) = (area.start.as_u64(), area.reserved());
        // Merge with the free neighbours. The range that follows keeps its node, else
        // the one before, else the area's node becomes the free range: nodes of lasting
        // ranges (the tail of the range, from the first use) stay where they are. Merged
        // nodes are taken out of both trees before they are reused or given back.
        let mut keep = n;
        let next = self.nodes.floor(self.free_addr, (s + len, 0), Tree::Addr);
        let next = if next != NIL && self.nodes.get(next).area.start.as_u64() == s + len { next } else { NIL };
        let prev = if s > 0 { self.nodes.floor(self.free_addr, (s - 1, 0), Tree::Addr) } else { NIL };
        let prev = if prev != NIL && self.nodes.get(prev).area.end().as_u64() == s { prev } else { NIL };
        if next != NIL {
            self.remove_free(next);
            len += self.nodes.get(next).area.size;
            self.nodes.give(keep);
            keep = next;
        }
        if prev != NIL {
            self.remove_free(prev);
            s = self.nodes.get(prev).area.start.as_u64();
            len += self.nodes.get(prev).area.size;
            if keep == n {
                self.nodes.give(keep);
                keep = prev;
            } else {
                self.nodes.give(prev);
            }
        }
        self.nodes.get_mut(keep).area = VmArea::free_range(s, len);
        self.insert_free(keep);
        Ok(area)
    }

    /// The live area starting exactly at `start`.
    pub fn get(&self, start: VirtAddr) -> Option<&VmArea> {
        self.busy_node(start.as_u64()).and_then(|n| self.area_of(n))
    }

    /// The live area with the largest start `<= va`.
    fn busy_floor(&self, va: VirtAddr) -> Option<&VmArea> {
        self.area_of(self.nodes.floor(self.busy, (va.as_u64(), 0), Tree::Addr))
    }

    /// The live area whose usable part contains `va`.
    pub fn find(&self, va: VirtAddr) -> Option<&VmArea> {
        self.busy_floor(va).filter(|a| a.contains(va))
    }

    /// The live area whose guard page contains `va`.
    pub fn find_guard(&self, va: VirtAddr) -> Option<&VmArea> {
        self.busy_floor(va).filter(|a| a.guard_contains(va))
    }

    /// The most recently freed remembered area that contained `va`.
    pub fn find_freed(&self, va: VirtAddr) -> Option<&VmArea> {
        (1..=FREED_RING)
            .map(|k| (self.freed_next + FREED_RING - k) % FREED_RING)
            .filter_map(|i| self.freed[i].as_ref())
            .find(|a| a.contains(va))
    }

    /// Live areas in address order.
    pub fn iter(&self) -> impl Iterator<Item = &VmArea> {
        let mut from = 0u64;
        let mut done = false;
        core::iter::from_fn(move || {
            if done {
                return None;
            }
            let Some(a) = self.area_of(self.nodes.ceil(self.busy, (from, 0), Tree::Addr)) else {
                done = true;
                return None;
            };
            match a.start.as_u64().checked_add(1) {
                Some(f) => from = f,
                None => done = true,
            }
            Some(a)
        })
    }

    /// Number of live areas.
    pub fn nr_areas(&self) -> usize {
        self.nr_busy
    }

    /// Free bytes (all ranges).
    pub fn free_bytes(&self) -> u64 {
        if !self.inited {
            let (s, e) = self.span();
            return e.saturating_sub(s);
        }
        self.free_total
    }

    /// Largest free range, guard room included.
    pub fn largest_free(&self) -> u64 {
        if !self.inited {
            return self.free_bytes();
        }
        self.area_of(self.nodes.floor(self.free_size, (u64::MAX, u64::MAX), Tree::Size)).map_or(0, |a| a.size)
    }

    /// Number of free ranges (fragmentation).
    pub fn nr_free_ranges(&self) -> usize {
        if !self.inited {
            let (s, e) = self.span();
            return usize::from(e > s);
        }
        self.nr_free
    }

    /// Gives back the node chunks the areas no longer need, the youngest first (a burst
    /// of areas can leave its few lasting nodes spread over chunks of its own); returns
    /// the chunks given back. Never allocates.
    pub fn shrink_nodes(&mut self) -> usize {
        let mut roots =
            [(&mut self.busy, Tree::Addr), (&mut self.free_addr, Tree::Addr), (&mut self.free_size, Tree::Size)];
        self.nodes.shrink(&mut roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 4096;
    const S: u64 = 0x1000_0000;
    /// Areas that fill the rest of the first node chunk after four nodes.
    const CHUNK_FILL: usize = super::super::treap::CHUNK - 4;

    /// Areas taken in address order (what a vmalloc sweep does) would make an
    /// unbalanced search tree a list: the treaps' random priorities keep all three trees
    /// logarithmically deep (a fixed seed, so the depths are the same on every run).
    #[test]
    fn trees_stay_shallow_under_address_ordered_areas() {
        const N: usize = 2048;
        let bound = 3 * N.ilog2() as usize;
        let mut a = VmapAreas::new(S, S + 2 * N as u64 * K);
        let got: Vec<_> = (0..N).map(|_| a.alloc(K, VmKind::Vmalloc, "x", None).unwrap().start).collect();
        let busy = a.nodes.depth(a.busy, Tree::Addr);
        assert!(busy <= bound, "busy tree {busy} deep for {N} areas");
        // Every other area freed: N / 2 free ranges (no two adjacent), in both free trees.
        for &v in got.iter().step_by(2) {
            a.free(v).unwrap();
        }
        assert_eq!(a.nr_free_ranges(), N / 2);
        let (by_start, by_size) = (a.nodes.depth(a.free_addr, Tree::Addr), a.nodes.depth(a.free_size, Tree::Size));
        assert!(by_start <= bound && by_size <= bound, "free trees {by_start} and {by_size} deep for {} ranges", N / 2);
    }

    #[test]
    fn guard_page_and_lookups() {
        let mut a = VmapAreas::new(S, S + 64 * K);
        let x = a.alloc(3 * K, VmKind::Vmalloc, "x", None).unwrap();
        let y = a.alloc(1, VmKind::Vmap, "y", None).unwrap();
        // An ioremap area maps device memory: no pages of its own (Linux's nr_pages 0).
        let z = a.alloc(2 * K, VmKind::Ioremap, "z", Some(PhysAddr::new(0x3f20_0000))).unwrap();
        assert_eq!((y.nr_pages, z.nr_pages), (1, 0));
        assert_eq!(x.start.as_u64(), S);
        assert_eq!((x.size, x.reserved(), x.nr_pages), (3 * K, 4 * K, 3));
        assert_eq!(y.start.as_u64(), S + 4 * K, "guard page skipped");
        assert_eq!(y.size, K);
        assert_eq!(a.find(VirtAddr::new(S + 2 * K + 7)).unwrap().caller, "x");
        assert!(a.find(VirtAddr::new(S + 3 * K)).is_none());
        assert_eq!(a.find_guard(VirtAddr::new(S + 3 * K)).unwrap().caller, "x");
        assert_eq!(a.find_guard(VirtAddr::new(S + 6 * K - 1)).unwrap().caller, "y");
        assert_eq!(a.free(VirtAddr::new(S + K)), Err(AreaError::NotFound(VirtAddr::new(S + K))));
        a.free(x.start).unwrap();
        assert_eq!(a.find_freed(VirtAddr::new(S + K)).unwrap().caller, "x");
        assert!(a.find(VirtAddr::new(S + K)).is_none());
        assert_eq!(a.nr_free_ranges(), 2);
        a.free(y.start).unwrap();
        a.free(z.start).unwrap();
        assert_eq!((a.nr_free_ranges(), a.free_bytes()), (1, 64 * K));
    }

    #[test]
    fn errors_and_exhaustion() {
        let mut a = VmapAreas::new(S, S + 8 * K);
        assert_eq!(a.alloc(0, VmKind::Vmalloc, "z", None), Err(AreaError::ZeroSize));
        assert_eq!(a.alloc(u64::MAX - 10, VmKind::Vmalloc, "z", None), Err(AreaError::Overflow));
        assert_eq!(a.alloc(8 * K, VmKind::Vmalloc, "z", None), Err(AreaError::Exhausted(9 * K)));
        let v = a.alloc(7 * K, VmKind::Vmalloc, "z", None).unwrap();
        assert_eq!(a.alloc(K, VmKind::Vmalloc, "z", None), Err(AreaError::Exhausted(2 * K)));
        a.free(v.start).unwrap();
        assert_eq!(a.largest_free(), 8 * K);
    }

    #[test]
    fn many_areas_stay_ordered_and_merge_back() {
        // Enough areas for deep trees; released in an interleaved order.
        let n = 2000u64;
        let mut a = VmapAreas::new(S, S + 2 * n * K + 64 * K);
        let v: Vec<_> = (0..n).map(|_| a.alloc(K, VmKind::Vmalloc, "m", None).unwrap()).collect();
        assert_eq!(a.nr_areas(), n as usize);
        let starts: Vec<u64> = a.iter().map(|x| x.start.as_u64()).collect();
        assert_eq!(starts, (0..n).map(|i| S + 2 * i * K).collect::<Vec<_>>(), "address order");
        for i in (0..n as usize).step_by(2) {
            a.free(v[i].start).unwrap();
        }
        assert_eq!(a.nr_free_ranges(), n as usize / 2 + 1);
        assert_eq!(a.find(VirtAddr::new(v[1].start.as_u64() + 5)).unwrap().start, v[1].start);
        for i in (1..n as usize).step_by(2) {
            a.free(v[i].start).unwrap();
        }
        assert_eq!((a.nr_areas(), a.nr_free_ranges()), (0, 1), "everything merged back");
        assert_eq!(a.largest_free(), a.free_bytes());
        assert_eq!(a.free_bytes(), 2 * n * K + 64 * K);
    }

    #[test]
    fn aligned_areas_leave_their_head_free() {
        const M2: u64 = 2 << 20;
        let mut a = VmapAreas::new(S + K, S + 8 * M2);
        a.init().unwrap();
        let tail_node = a.free_addr;
        let x = a.alloc_aligned(M2, M2, VmKind::Vmalloc, "x", None).unwrap();
        // The range after `x` kept its node.
        assert_eq!(a.nodes.get(tail_node).area.start.as_u64(), S + 2 * M2 + K);
        assert_eq!(x.start.as_u64(), S + M2);
        // The head [S + K, S + M2) is a free range of its own, best fit for small areas.
        assert_eq!(a.nr_free_ranges(), 2);
        assert_eq!(a.alloc(K, VmKind::Vmalloc, "y", None).unwrap().start.as_u64(), S + K);
        // A hole of exactly 2 MiB + guard that is not aligned is skipped for a bigger range.
        let y = a.alloc_aligned(M2, M2, VmKind::Vmalloc, "z", None).unwrap();
        assert!(y.start.as_u64().is_multiple_of(M2) && y.start > x.start);
        assert_eq!(a.alloc_aligned(K, 3 * K, VmKind::Vmalloc, "bad", None), Err(AreaError::Overflow));
        a.free(x.start).unwrap();
        a.free(y.start).unwrap();
        a.free(VirtAddr::new(S + K)).unwrap();
        // The lasting free range kept its node through the aligned reservations.
        let tail = a.nodes.floor(a.free_addr, (u64::MAX, 0), Tree::Addr);
        assert_eq!(tail, tail_node, "the range's node was replaced");
        assert_eq!((a.nr_free_ranges(), a.free_bytes()), (1, 8 * M2 - K));
    }

    /// Bursts of areas over a few lasting ones, freed in a random order: after them
    /// `shrink_nodes` keeps the chunks held before the burst (the same heap blocks: a leak check that
    /// compares free memory before and after sees no difference), and the areas stay
    /// whole: every lasting area found, every range merged back, allocation as before.
    #[test]
    fn shrink_nodes_gives_back_a_bursts_chunks() {
        let mut rng = 12345u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..200 {
            let mut a = VmapAreas::new(S, S + (1 << 30));
            let n = 5 + next() % 60;
            let lasting: Vec<VmArea> =
                (0..n).map(|i| a.alloc((1 + i % 5) * K, VmKind::Vmalloc, "h", None).unwrap()).collect();
            for v in lasting.iter().step_by(3) {
                a.free(v.start).unwrap();
            }
            let lasting: Vec<VmArea> =
                lasting.into_iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, v)| v).collect();
            a.shrink_nodes();
            let (usage, borns, free) = (a.nodes.usage(), a.nodes.borns(), a.free_bytes());
            let ranges = a.nr_free_ranges();
            let mut burst = Vec::new();
            for _ in 0..300 {
                if next() % 3 == 0 && !burst.is_empty() {
                    let i = (next() % burst.len() as u64) as usize;
                    a.free(burst.swap_remove(i)).unwrap();
                } else {
                    burst.push(a.alloc((1 + next() % 64) * K, VmKind::Vmalloc, "b", None).unwrap().start);
                }
            }
            while let Some(v) = burst.pop() {
                a.free(v).unwrap();
            }
            a.shrink_nodes();
            assert_eq!((a.nodes.usage(), a.nodes.borns()), (usage, borns), "the chunks held before the burst");
            assert_eq!((a.free_bytes(), a.nr_free_ranges(), a.nr_areas()), (free, ranges, lasting.len()));
            let live: Vec<VmArea> = a.iter().copied().collect();
            assert_eq!(live, lasting);
            for v in &lasting {
                assert_eq!(a.find(VirtAddr::new(v.start.as_u64() + K / 2)), Some(v));
            }
            let x = a.alloc(K, VmKind::Vmalloc, "x", None).unwrap();
            a.free(x.start).unwrap();
            for v in &lasting {
                a.free(v.start).unwrap();
            }
            assert_eq!((a.nr_free_ranges(), a.largest_free()), (1, a.free_bytes()), "everything merged back");
        }
    }

    /// The way a burst spreads the lasting nodes: a hole between two lasting areas is
    /// taken by two areas, the first one's node from a chunk the burst added; freed first,
    /// that node becomes the free range and the second one merges into it, so the hole's
    /// node is now in the burst's chunk. `shrink_nodes` moves it back and gives the
    /// chunk back.
    #[test]
    fn shrink_nodes_moves_a_holes_node_back() {
        let mut a = VmapAreas::new(S, S + (1 << 30));
        let p = a.alloc(K, VmKind::Vmalloc, "p", None).unwrap();
        let hole = a.alloc(3 * K, VmKind::Vmalloc, "hole", None).unwrap();
        let q = a.alloc(K, VmKind::Vmalloc, "q", None).unwrap();
        a.free(hole.start).unwrap();
        let before = (a.nodes.usage(), a.nodes.borns());
        assert_eq!(before, ((4, 1, 0), vec![0]), "p, q, the hole and the tail in one chunk");
        // Areas larger than the hole, at the tail, until the first chunk is full.
        let fill: Vec<VmArea> = (0..CHUNK_FILL).map(|_| a.alloc(4 * K, VmKind::Vmalloc, "f", None).unwrap()).collect();
        let x1 = a.alloc(K, VmKind::Vmalloc, "x1", None).unwrap();
        let x2 = a.alloc(K, VmKind::Vmalloc, "x2", None).unwrap();
        assert_eq!((x1.start, x2.start), (hole.start, VirtAddr::new(hole.start.as_u64() + 2 * K)), "best fit");
        a.free(x1.start).unwrap();
        a.free(x2.start).unwrap();
        for f in fill {
            a.free(f.start).unwrap();
        }
        assert_eq!(a.nodes.usage(), (4, 2, 0), "the hole's node is in the second chunk");
        assert_eq!(a.shrink_nodes(), 1);
        assert_eq!((a.nodes.usage(), a.nodes.borns()), before);
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), [p, q]);
        assert_eq!(a.alloc(3 * K, VmKind::Vmalloc, "again", None).unwrap().start, hole.start, "the hole");
    }

    /// An aligned area that takes the end of its free range: the padding before it stays
    /// one free range, and no empty range is left after it.
    #[test]
    fn aligned_area_at_the_end_of_its_range_keeps_the_padding_free() {
        let mut a = VmapAreas::new(S, S + 20 * K);
        let x = a.alloc(K, VmKind::Vmalloc, "x", None).unwrap();
        // The free range is pages 2..20; 16 is the first 16-page boundary, and the area
        // with its guard (pages 16..20) ends exactly at the range's end.
        let y = a.alloc_aligned(3 * K, 16 * K, VmKind::Vmalloc, "y", None).unwrap();
        assert_eq!(y.start.as_u64(), S + 16 * K);
        assert_eq!((a.nr_free_ranges(), a.free_bytes(), a.largest_free()), (1, 14 * K, 14 * K));
        assert_eq!(a.alloc(14 * K, VmKind::Vmalloc, "z", None), Err(AreaError::Exhausted(15 * K)));
        assert_eq!(a.alloc(13 * K, VmKind::Vmalloc, "z", None).unwrap().start.as_u64(), S + 2 * K, "the padding");
        a.free(VirtAddr::new(S + 2 * K)).unwrap();
        a.free(y.start).unwrap();
        a.free(x.start).unwrap();
        assert_eq!((a.nr_free_ranges(), a.free_bytes()), (1, 20 * K));
    }

    /// When the smallest range that holds the size does not hold it at the alignment,
    /// the smallest range of `size + align - page` does, and is taken.
    #[test]
    fn aligned_area_falls_back_to_a_range_that_fits_at_any_start() {
        let mut a = VmapAreas::new(S, S + 64 * K);
        let v: Vec<VmArea> = (0..32).map(|_| a.alloc(K, VmKind::Vmalloc, "v", None).unwrap()).collect();
        // Free ranges: pages 6..10 (4 pages) and 20..26 (6 pages).
        for i in [3, 4, 10, 11, 12] {
            a.free(v[i].start).unwrap();
        }
        // 2 pages and a guard at a 4-page boundary: pages 6..10 hold 3 pages, but from
        // page 8 only 2 remain; 6 pages hold it at any start (3 + 4 - 1).
        let w = a.alloc_aligned(2 * K, 4 * K, VmKind::Vmalloc, "w", None).unwrap();
        assert_eq!(w.start.as_u64(), S + 20 * K);
        assert!(a.iter().all(|b| b.start == w.start
            || b.start.as_u64() >= w.start.as_u64() + 3 * K
            || b.start.as_u64() + b.reserved() <= w.start.as_u64()));
        // Nothing else holds 3 pages at a 4-page boundary now.
        assert_eq!(a.alloc_aligned(2 * K, 4 * K, VmKind::Vmalloc, "w2", None), Err(AreaError::Exhausted(3 * K)));
    }

    /// An aligned area with a head and a tail takes two new nodes; both are reserved up
    /// front, also when the node chunk is exactly full.
    #[test]
    fn an_aligned_split_reserves_both_nodes() {
        let chunk = super::super::treap::CHUNK;
        let mut a = VmapAreas::new(S, S + 512 * K);
        for _ in 0..chunk - 1 {
            a.alloc(K, VmKind::Vmalloc, "v", None).unwrap();
        }
        assert_eq!(a.nodes.usage(), (chunk, 1, 0), "the first chunk full");
        let y = a.alloc_aligned(K, 64 * K, VmKind::Vmalloc, "y", None).unwrap();
        assert_eq!(y.start.as_u64(), S + 64 * K);
        assert_eq!(a.nodes.usage().0, chunk + 2);
        assert_eq!((a.nr_free_ranges(), a.free_bytes()), (2, (512 - 62 - 2) * K));
    }

    /// The ring of freed areas remembers the last [`FREED_RING`] of them.
    #[test]
    fn freed_areas_are_remembered_eight_deep() {
        let mut a = VmapAreas::new(S, S + 64 * K);
        let v: Vec<VmArea> = (0..FREED_RING + 1).map(|_| a.alloc(K, VmKind::Vmalloc, "v", None).unwrap()).collect();
        for x in &v {
            a.free(x.start).unwrap();
        }
        assert!(a.find_freed(v[0].start).is_none(), "the oldest forgotten");
        for x in &v[1..] {
            assert_eq!(a.find_freed(x.start).map(|f| f.start), Some(x.start));
        }
    }

    /// A range that starts at address 0 (a lower-half space): its first area is freed
    /// and merged like any other.
    #[test]
    fn a_range_at_address_0() {
        let mut a = VmapAreas::new(0, 16 * K);
        let x = a.alloc(K, VmKind::Vmalloc, "x", None).unwrap();
        assert_eq!(x.start.as_u64(), 0);
        a.free(x.start).unwrap();
        assert_eq!((a.nr_free_ranges(), a.free_bytes()), (1, 16 * K));
    }

    #[test]
    fn best_fit_fills_holes() {
        let mut a = VmapAreas::new(S, S + 100 * K);
        let v: Vec<_> = (0..10).map(|i| a.alloc((i % 3 + 1) * K, VmKind::Vmalloc, "f", None).unwrap()).collect();
        // Holes of 2, 3 and 4 pages reserved (sizes 1, 2, 3 plus guard).
        a.free(v[0].start).unwrap(); // 2 pages
        a.free(v[4].start).unwrap(); // 3 pages
        a.free(v[2].start).unwrap(); // 4 pages
        let b = a.alloc(2 * K, VmKind::Vmalloc, "g", None).unwrap();
        assert_eq!(b.start, v[4].start, "best fit is the 3-page hole");
        let c = a.alloc(K, VmKind::Vmalloc, "g", None).unwrap();
        assert_eq!(c.start, v[0].start);
    }
}
