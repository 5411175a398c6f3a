//! The memory map: physical memory as a row of cells (one per pageblock, or finer), each
//! with the state of most of its pages, read from the page descriptors and pageblock
//! types. The `memmap` console command, the fragmentation lab and the framebuffer's map
//! panel all draw from [`memmap_cells`]; [`for_each_free_block`] lists the blocks on the
//! buddy lists themselves. (Linux has no such picture; the nearest are
//! `tools/mm/page-types` over `/proc/kpageflags` and `/proc/pagetypeinfo`.)
//!
//! A cell's pages are counted as free (inside a block on a buddy or per-CPU list),
//! allocated (counted under their pageblock's migratetype, or as isolated while
//! `cma_alloc` empties the CMA area), reserved (never handed to the allocator: kernel
//! image, `mem_map`, firmware) or absent (no descriptor: no RAM). The largest count
//! names the cell; allocated beats free on a tie, so a checkerboard of used and free
//! pages shows as used, and a free cell carries the order of the largest free block
//! that overlaps it.
//!
//! The walk takes no lock: it reads each block's head descriptor once (atomics), so the
//! picture is a snapshot that may be a little off while other CPUs allocate, never a
//! reason to stop them. Torn reads are clamped: every step moves forward by at least one
//! page and at most to the range's end.

use super::migratetype::{MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_TYPES};
use super::page::{MemMap, PageState};
use super::{PageAllocator, MAX_PAGE_ORDER};
use crate::addr::Pfn;

/// What most of a cell's pages are.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CellState {
    /// No RAM there (no page descriptor).
    Absent,
    /// Never handed to the allocator (kernel image, `mem_map`, firmware).
    Reserved,
    /// Free; `order`: the largest free block overlapping the cell.
    Free {
        /// Order of that block.
        order: u32,
    },
    /// Allocated, in pageblocks of this migratetype.
    Used(MigrateType),
    /// Allocated, in a pageblock being emptied by `cma_alloc` (Linux's `MIGRATE_ISOLATE`).
    Isolated,
}

impl CellState {
    /// The plain one-character form: `0`-`9`, `a`-`g` free (the order, 10 = `a`), the
    /// migratetype's letter (`show_free_areas`'s: U M E H C) for used cells, `I`
    /// isolated, `R` reserved, `-` absent.
    pub const fn letter(self) -> char {
        match self {
            Self::Absent => '-',
            Self::Reserved => 'R',
            Self::Isolated => 'I',
            Self::Used(mt) => mt.letter(),
            Self::Free { order } => {
                let o = if order > MAX_PAGE_ORDER { MAX_PAGE_ORDER } else { order } as u8;
                (if o < 10 { b'0' + o } else { b'a' + o - 10 }) as char
            }
        }
    }
    /// The state of a [`Self::letter`] (for parsers and tests); `None` for any other.
    pub const fn from_letter(c: char) -> Option<CellState> {
        Some(match c {
            '-' => Self::Absent,
            'R' => Self::Reserved,
            'I' => Self::Isolated,
            '0'..='9' => Self::Free { order: c as u32 - '0' as u32 },
            'a'..='g' => Self::Free { order: c as u32 - 'a' as u32 + 10 },
            _ => {
                let mut i = 0;
                while i < MIGRATE_TYPES {
                    if MigrateType::ALL[i].letter() == c {
                        return Some(Self::Used(MigrateType::ALL[i]));
                    }
                    i += 1;
                }
                return None;
            }
        })
    }
    /// Whether the cell is mostly free.
    pub const fn is_free(self) -> bool {
        matches!(self, Self::Free { .. })
    }
}

/// Pages of one cell by state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CellCount {
    /// In free blocks.
    pub free: u64,
    /// Allocated, per pageblock migratetype.
    pub used: [u64; MIGRATE_TYPES],
    /// Allocated, in an isolated pageblock.
    pub isolated: u64,
    /// Reserved.
    pub reserved: u64,
    /// Without a descriptor.
    pub absent: u64,
    /// Order of the largest free block overlapping the cell.
    pub max_free_order: Option<u32>,
}

impl CellCount {
    /// All pages counted.
    pub fn total(&self) -> u64 {
        self.free + self.used.iter().sum::<u64>() + self.isolated + self.reserved + self.absent
    }
    /// The cell's state: the largest count; on a tie allocated (by migratetype order, then
    /// isolated) beats reserved, which beats free, which beats absent.
    pub fn state(&self) -> CellState {
        // Candidates in tie-break order: the first of the largest wins.
        let mut best = (CellState::Absent, 0u64);
        let mut consider = |s: CellState, n: u64| {
            if n > best.1 {
                best = (s, n);
            }
        };
        for m in MigrateType::ALL {
            consider(CellState::Used(m), self.used[m.index()]);
        }
        consider(CellState::Isolated, self.isolated);
        consider(CellState::Reserved, self.reserved);
        consider(CellState::Free { order: self.max_free_order.unwrap_or(0) }, self.free);
        best.0
    }
}

/// The span of memory the map covers by default: from the first to one past the last
/// page with a descriptor, as page frame numbers; `None` before the allocator is set up.
pub fn memmap_span(pa: &PageAllocator) -> Option<(Pfn, Pfn)> {
    let mm = pa.mem_map()?;
    Some((Pfn(mm.base_pfn), Pfn(mm.base_pfn + mm.pages.len() as u64)))
}

/// Calls `f(zone, pfn, order, migratetype)` for every block on a buddy list, one zone
/// lock round per zone.
pub fn for_each_free_block(pa: &PageAllocator, mut f: impl FnMut(ZoneType, u64, u32, MigrateType)) {
    for zi in 0..MAX_NR_ZONES {
        let z = pa.lock_zone(zi);
        let ty = z.ty;
        z.for_each_free_block(&mut |p, o, m| f(ty, p, o, m));
    }
}

/// The block (`first pfn`, `pages`, state of its head) holding `pfn`: a block head at
/// `pfn`, else the nearest aligned head below whose order reaches over `pfn`; a page
/// that is neither (a torn read, a head in the middle of a change) is a block of one
/// page in its own state.
fn block_at(mm: &MemMap, pfn: u64) -> (u64, u64, PageState) {
    let Some(p) = mm.pfn_to_page(pfn) else { return (pfn, 1, PageState::Reserved) };
    let s = p.state();
    if let Some(o) = s.block_order() {
        return (pfn, 1 << o.min(MAX_PAGE_ORDER), s);
    }
    if matches!(s, PageState::Unmarked | PageState::Tail) {
        for o in 1..=MAX_PAGE_ORDER {
            let c = pfn & !((1u64 << o) - 1);
            if c == pfn {
                continue;
            }
            let Some(h) = mm.pfn_to_page(c) else { break };
            let hs = h.state();
            if let Some(bo) = hs.block_order() {
                let bo = bo.min(MAX_PAGE_ORDER);
                if c + (1 << bo) > pfn {
                    return (c, 1 << bo, hs);
                }
            }
        }
    }
    (pfn, 1, s)
}

/// Counts `cells` cells of `cell_pages` pages each from `start` and calls
/// `f(index, &count)` for each, in order. `cell_pages` must be a power of two (else
/// nothing is called). Pages without a descriptor count as absent.
pub fn memmap_walk(
    pa: &PageAllocator,
    start: Pfn,
    cell_pages: u64,
    cells: usize,
    mut f: impl FnMut(usize, &CellCount),
) {
    if !cell_pages.is_power_of_two() || cells == 0 {
        return;
    }
    let area = super::Cma::new(pa);
    let isolating = area.isolating();
    let cma = area.stats().map(|c| (c.base.0, c.base.0 + c.pages));
    let in_cma = |pfn: u64| cma.is_some_and(|(lo, hi)| (lo..hi).contains(&pfn));
    let mm = pa.mem_map();
    let end = start.0.saturating_add(cell_pages.saturating_mul(cells as u64));
    let mut cur = CellCount::default();
    let mut cell = 0usize;
    let mut cell_end = start.0 + cell_pages;
    let mut pos = start.0;
    while pos < end {
        // One block (or one absent/odd page), clipped to the range.
        let (first, len, state) = match mm {
            Some(ref m) if m.contains(pos) => block_at(m, pos),
            _ => {
                // No descriptor: up to the array's start or the range's end.
                let next = mm.map_or(end, |m| if pos < m.base_pfn { m.base_pfn.min(end) } else { end });
                (pos, next.max(pos + 1) - pos, PageState::Unmarked)
            }
        };
        let present = mm.as_ref().is_some_and(|m| m.contains(pos));
        let block_end = (first + len).clamp(pos + 1, end);
        // Pageblock type of the block (every descriptor carries its pageblock's type).
        let mt = mm.as_ref().and_then(|m| m.pfn_to_page(pos)).map(|p| p.pageblock_migratetype());
        while pos < block_end {
            let upto = block_end.min(cell_end);
            let n = upto - pos;
            match state {
                _ if !present => cur.absent += n,
                PageState::Reserved => cur.reserved += n,
                PageState::Buddy { order, .. } | PageState::Pcp { order, .. } => {
                    cur.free += n;
                    let o = order.min(MAX_PAGE_ORDER);
                    cur.max_free_order = Some(cur.max_free_order.map_or(o, |m| m.max(o)));
                }
                _ => {
                    let mt = mt.unwrap_or(MigrateType::Unmovable);
                    if isolating && mt == MigrateType::Cma && in_cma(pos) {
                        cur.isolated += n;
                    } else {
                        cur.used[mt.index()] += n;
                    }
                }
            }
            pos = upto;
            if pos == cell_end {
                f(cell, &cur);
                cur = CellCount::default();
                cell += 1;
                cell_end += cell_pages;
            }
        }
    }
}

/// The state of `out.len()` cells of `cell_pages` pages from `start` (see
/// [`memmap_walk`]).
pub fn memmap_cells(pa: &PageAllocator, start: Pfn, cell_pages: u64, out: &mut [CellState]) {
    memmap_walk(pa, start, cell_pages, out.len(), |i, c| out[i] = c.state());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{PhysAddr, PAGE_SHIFT, PAGE_SIZE};
    use crate::cpu::CpuId;
    use crate::gfp::{Gfp, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};
    use crate::page_alloc::Page;

    fn pa(pfn: u64) -> PhysAddr {
        PhysAddr::new(pfn << PAGE_SHIFT)
    }

    /// An allocator over `n` pages from `base`, the given pfn ranges free, the rest reserved.
    fn make(n: u64, base: u64, free: &[(u64, u64)]) -> &'static PageAllocator {
        let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
        let map: &'static [Page] = Box::leak((0..n).map(|_| Page::new()).collect());
        let ps = PAGE_SIZE as u64;
        a.init(map, Pfn(base), pa(0), [(pa(base), n * ps)], free.iter().map(|&(s, e)| (pa(s), (e - s) * ps))).unwrap();
        a.set_min_free_kbytes(0);
        a
    }

    /// What the model knows of one page.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum P {
        Absent,
        Reserved,
        Free(u32),
        Used(MigrateType),
    }

    /// The model: page by page, from what the test did (allocations it holds) and the
    /// buddy lists (every per-CPU list drained), never from the walk's block logic.
    fn model(a: &PageAllocator, base: u64, n: u64, free: &[(u64, u64)], held: &[(u64, u32)], pfn: u64) -> P {
        if pfn < base || pfn >= base + n {
            return P::Absent;
        }
        if !free.iter().any(|&(s, e)| (s..e).contains(&pfn)) {
            return P::Reserved;
        }
        if held.iter().any(|&(p, o)| (p..p + (1 << o)).contains(&pfn)) {
            return P::Used(a.pfn_to_page(Pfn(pfn)).unwrap().pageblock_migratetype());
        }
        let mut order = None;
        for_each_free_block(a, |_, p, o, _| {
            if (p..p + (1 << o)).contains(&pfn) {
                order = Some(o);
            }
        });
        P::Free(order.expect("a page neither held nor reserved is on a free list"))
    }

    fn model_counts(
        a: &PageAllocator,
        geom: (u64, u64, &[(u64, u64)]),
        held: &[(u64, u32)],
        start: u64,
        cell: u64,
        cells: usize,
    ) -> Vec<CellCount> {
        let (base, n, free) = geom;
        (0..cells as u64)
            .map(|i| {
                let mut c = CellCount::default();
                for pfn in start + i * cell..start + (i + 1) * cell {
                    match model(a, base, n, free, held, pfn) {
                        P::Absent => c.absent += 1,
                        P::Reserved => c.reserved += 1,
                        P::Used(m) => c.used[m.index()] += 1,
                        P::Free(o) => {
                            c.free += 1;
                            c.max_free_order = Some(c.max_free_order.map_or(o, |m| m.max(o)));
                        }
                    }
                }
                c
            })
            .collect()
    }

    fn walk(a: &PageAllocator, start: u64, cell: u64, cells: usize) -> Vec<CellCount> {
        let mut v = Vec::new();
        memmap_walk(a, Pfn(start), cell, cells, |i, c| {
            assert_eq!(i, v.len(), "cells come in order");
            v.push(*c);
        });
        v
    }

    #[test]
    fn walk_matches_a_page_by_page_model() {
        let (base, n) = (0x80u64, 4096u64);
        let free: &[(u64, u64)] = &[(0x100, 0x700), (0x7a0, 0x1080)];
        let a = make(n, base, free);
        let cpu = CpuId::of(0);
        let mut held = Vec::new();
        let gfps = [GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_KERNEL | Gfp::GFP_RECLAIMABLE, GFP_KERNEL | Gfp::GFP_COMP];
        for i in 0..160u32 {
            let order = [0, 0, 1, 3, 5, 0, 2, 9][i as usize % 8];
            if let Ok(p) = a.alloc_pages(gfps[i as usize % 4] | Gfp::GFP_NOWARN, order, cpu) {
                held.push((p.0, order));
            }
        }
        // Free every third one: holes of every order.
        let mut i = 0;
        held.retain(|&(p, o)| {
            i += 1;
            i % 3 != 0 || a.free_pages(Pfn(p), o, cpu).is_err()
        });
        a.drain_all();
        assert!(held.len() > 50);
        let geom = (base, n, free);
        // Starts inside blocks: past the head of a held order-5 and an order-9 block (the
        // walk must find their heads below), and of a free block of order 3 or more.
        let inside_held = |order: u32| held.iter().find(|h| h.1 == order).map(|h| h.0 + 7).unwrap();
        let mut big_free = None;
        for_each_free_block(a, |_, p, o, _| {
            if o >= 3 && big_free.is_none() {
                // (An offset whose bits no wrong alignment mask clears back to the head.)
                big_free = Some(p + 6);
            }
        });
        let mid = [inside_held(5), inside_held(9), big_free.unwrap()];
        // Whole pageblocks, finer cells, unaligned starts in the middle of blocks and
        // ranges reaching past the descriptors on both sides.
        for (start, cell, cells) in [
            (0, 512, 10),
            (base, 16, 256),
            (0x7b3, 1, 300),
            (0x100, 64, 70),
            (0x40, 8, 30),
            (0x1000, 32, 10),
            (mid[0], 1, 40),
            (mid[1], 4, 200),
            (mid[2], 1, 16),
        ] {
            let got = walk(a, start, cell, cells);
            let want = model_counts(a, geom, &held, start, cell, cells);
            assert_eq!(got.len(), cells);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "cell {k} of {cells} x {cell} from {start:#x}");
                assert_eq!(g.total(), cell);
            }
        }
        // Nothing but a power-of-two cell size.
        assert!(walk(a, base, 3, 4).is_empty());
    }

    /// A block that starts at pfn 0, walked from inside it: its head is found too.
    #[test]
    fn walk_from_inside_a_block_at_pfn_0() {
        let free: &[(u64, u64)] = &[(0, 64)];
        let a = make(64, 0, free);
        // A held block at 0 (whose tails count as used whatever the walk finds), then
        // the free block at 0 once it comes back.
        let p = a.alloc_pages(GFP_KERNEL, 4, CpuId::of(0)).unwrap();
        assert_eq!(p, Pfn(0));
        a.drain_all();
        let held = [(0, 4)];
        for start in [1, 5, 17, 33] {
            assert_eq!(walk(a, start, 1, 20), model_counts(a, (0, 64, free), &held, start, 1, 20), "from {start}");
        }
        a.free_pages(p, 4, CpuId::of(0)).unwrap();
        a.drain_all();
        let held = [];
        for start in [1, 5, 17, 33] {
            assert_eq!(walk(a, start, 1, 20), model_counts(a, (0, 64, free), &held, start, 1, 20), "from {start}");
        }
    }

    #[test]
    fn states_of_counts() {
        let mut c = CellCount { free: 256, max_free_order: Some(0), ..Default::default() };
        c.used[MigrateType::Movable.index()] = 256;
        assert_eq!(c.state(), CellState::Used(MigrateType::Movable), "a checkerboard is used");
        c.free = 257;
        assert_eq!(c.state(), CellState::Free { order: 0 });
        c.reserved = 300;
        assert_eq!(c.state(), CellState::Reserved);
        c.isolated = 300;
        assert_eq!(c.state(), CellState::Isolated, "isolated beats reserved on a tie");
        assert_eq!(CellCount { absent: 4, ..Default::default() }.state(), CellState::Absent);
        assert_eq!(CellCount::default().state(), CellState::Absent);
    }

    #[test]
    fn letters_round_trip() {
        let mut all = vec![CellState::Absent, CellState::Reserved, CellState::Isolated];
        all.extend(MigrateType::ALL.map(CellState::Used));
        all.extend((0..=MAX_PAGE_ORDER).map(|order| CellState::Free { order }));
        let mut seen = std::collections::HashSet::new();
        for s in all {
            assert!(seen.insert(s.letter()), "{s:?}: letter {} taken twice", s.letter());
            assert_eq!(CellState::from_letter(s.letter()), Some(s));
        }
        assert_eq!(CellState::Free { order: 16 }.letter(), 'g');
        assert_eq!(CellState::from_letter('x'), None);
    }

    #[test]
    fn a_256m_block_fills_its_cells_and_its_allocation_turns_them_movable() {
        let n = 1u64 << 17;
        let free: &[(u64, u64)] = &[(0x200, n)];
        let a = make(n, 0, free);
        let cells = |a: &PageAllocator| {
            let mut out = [CellState::Absent; 256];
            memmap_cells(a, Pfn(0), 512, &mut out);
            out
        };
        let before = cells(a);
        assert_eq!(before[0], CellState::Reserved);
        assert!(before[128..].iter().all(|&c| c == CellState::Free { order: 16 }));
        let p = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 16, CpuId::of(0)).unwrap();
        let after = cells(a);
        let first = (p.0 / 512) as usize;
        for (i, (&b, &c)) in before.iter().zip(&after).enumerate() {
            if (first..first + 128).contains(&i) {
                assert_eq!(c, CellState::Used(MigrateType::Movable), "cell {i}");
            } else {
                assert_eq!(c, b, "cell {i} outside the block did not change");
            }
        }
        a.free_pages(p, 16, CpuId::of(0)).unwrap();
        assert_eq!(cells(a), before);
    }
}
