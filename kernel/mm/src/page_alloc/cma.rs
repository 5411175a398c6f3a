//! The contiguous memory allocator (Linux's `mm/cma.c`, one area): `cma=SIZE` turns a
//! pageblock-aligned run of the Normal zone into Cma pageblocks at boot. Movable
//! allocations borrow its pages (see `Zone::rmqueue`); nothing else may. `cma_alloc`
//! migrates the borrowers of an aligned range out (`migrate_range_out`, shared with
//! compaction, see [`super::contig`]) and hands the range over; `cma_release` gives it
//! back to the Cma lists.

use super::contig::RangeMigration;
use super::page::{MemMap, PageState};
use super::{MigrateCtx, PageAllocator, ZoneType, MAX_PAGE_ORDER, PAGEBLOCK_NR_PAGES};
use crate::addr::Pfn;
use crate::cpu::CpuId;
use crate::gfp::{Gfp, GFP_HIGHUSER_MOVABLE};

/// Tag in the owner word of every page a [`Cma::alloc`](super::Cma::alloc) range holds (so
/// that `cma_release` refuses pages that are not such a range's).
const CMA_OWNER: u64 = 0xc3a0_0000_0000_0000;

/// Why `cma_alloc` or `cma_release` refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CmaError {
    /// No area was declared.
    NoArea,
    /// `count` is 0, larger than the area, or the alignment is above `MAX_PAGE_ORDER`.
    BadRequest,
    /// Another `cma_alloc` is running.
    Busy,
    /// No aligned range of the area could be emptied: some page in each is pinned (not
    /// movable, or its owner refused, or no target outside the area was free).
    NoRange,
    /// `cma_release` of pages that are not a `cma_alloc` range's.
    NotAllocated,
}

impl core::fmt::Display for CmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoArea => "no CMA area (cma= on the command line)",
            Self::BadRequest => "bad size or alignment",
            Self::Busy => "another cma_alloc is running",
            Self::NoRange => "no range of the area could be emptied (a page did not move)",
            Self::NotAllocated => "not a cma_alloc range",
        })
    }
}

/// What one `cma_alloc` did (for the console and the lab).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CmaAllocStats {
    /// Borrowed blocks migrated out of the area.
    pub migrated: u64,
    /// Migrations that failed (their range was given up).
    pub failed: u64,
    /// Aligned ranges tried.
    pub ranges_tried: u64,
}

/// The CMA area's numbers (`/proc/meminfo`'s `CmaTotal`/`CmaFree`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CmaStats {
    /// First page frame of the area.
    pub base: Pfn,
    /// Pages in the area.
    pub pages: u64,
    /// Pages of it on the buddy free lists (not borrowed, not on per-CPU lists).
    pub free: u64,
}

/// The CMA area (Linux's `mm/cma.c`): borrows the page allocator, whose Normal zone
/// holds the area's range and lends its free pages to movable requests.
#[derive(Debug)]
pub struct Cma<'a>(&'a PageAllocator);

impl<'a> Cma<'a> {
    /// The CMA area of `pages`.
    pub const fn new(pages: &'a PageAllocator) -> Self {
        Self(pages)
    }
}

impl Cma<'_> {
    /// Declares the CMA area: `bytes` rounded up to whole pageblocks, placed as high as a
    /// free, aligned run allows (Linux's `cma_declare_contiguous`). Call once, early, when
    /// most memory is still free. `None` if there is no such run or an area exists.
    pub fn declare(&self, bytes: u64) -> Option<CmaStats> {
        let pages = bytes.div_ceil(4096).div_ceil(PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES;
        let mut z = self.0.lock_zone(ZoneType::Normal.index());
        let base = z.declare_cma(pages)?;
        Some(CmaStats { base: Pfn(base), pages, free: z.free_cma_pages })
    }

    /// The CMA area, if one was declared.
    pub fn stats(&self) -> Option<CmaStats> {
        let z = self.0.lock_zone(ZoneType::Normal.index());
        (z.cma.1 != 0).then(|| CmaStats { base: Pfn(z.cma.0), pages: z.cma.1, free: z.free_cma_pages })
    }

    /// Whether `cma_alloc` is emptying the area now (its pageblocks isolated).
    pub fn isolating(&self) -> bool {
        self.0.lock_zone(ZoneType::Normal.index()).cma_isolated
    }

    /// Linux's `cma_alloc`: `count` contiguous pages of the area, the first aligned to
    /// `2^align_order` pages. For each aligned range from the area's start: every
    /// borrowed block in it is migrated out (the owners repoint their references; targets
    /// come from outside the area, which lends nothing meanwhile), then the range's free
    /// pages are taken off the Cma lists. A range with a block that does not move is given
    /// up (its moved blocks stay moved) for the next one. Call with every other CPU's
    /// per-CPU lists drained (CMA pages on them are free but not on the buddy lists); this
    /// CPU's are drained here. The pages come back as order-0 allocated pages.
    pub fn alloc(&self, count: u64, align_order: u32, cpu: CpuId, stats: &mut CmaAllocStats) -> Result<Pfn, CmaError> {
        let mm = &self.0.mem_map.get().ok_or(CmaError::NoArea)?;
        let zi = ZoneType::Normal.index();
        let (base, pages) = {
            let mut z = self.0.lock_zone(zi);
            let (base, pages) = z.cma;
            if pages == 0 {
                return Err(CmaError::NoArea);
            }
            if count == 0 || count > pages || align_order > MAX_PAGE_ORDER {
                return Err(CmaError::BadRequest);
            }
            if z.cma_isolated {
                return Err(CmaError::Busy);
            }
            z.cma_isolated = true;
            (base, pages)
        };
        let r = self.alloc_isolated(mm, (base, base + pages), (count, align_order), cpu, stats);
        self.0.lock_zone(zi).cma_isolated = false;
        r
    }

    /// [`Self::cma_alloc`] of `count` pages aligned to `2^align_order` in `area`, isolated.
    fn alloc_isolated(
        &self,
        mm: &MemMap,
        area: (u64, u64),
        (count, align_order): (u64, u32),
        cpu: CpuId,
        stats: &mut CmaAllocStats,
    ) -> Result<Pfn, CmaError> {
        let align = 1u64 << align_order;
        let in_area = |p: u64| p >= area.0 && p < area.1;
        // A target outside the area: this CPU's lists drained first, since they may hold
        // area pages (a migrated block's old pages among them); the refill that follows
        // takes none, the area being isolated.
        let mut target = |order: u32| {
            self.0.drain_cpu(cpu);
            let gfp = GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY;
            let pfn = self.0.alloc_pages(gfp, order, cpu).ok()?;
            if in_area(pfn.0) {
                let _ = self.0.free_pages(pfn, order, cpu);
                return None;
            }
            Some(pfn)
        };
        let mut start = area.0.next_multiple_of(align);
        while start + count <= area.1 {
            stats.ranges_tried += 1;
            let mut st = RangeMigration::default();
            let emptied = super::Migrator::new(self.0, MigrateCtx::sync(cpu)).migrate_range_out(
                mm,
                (start, start + count),
                &mut target,
                &mut st,
            );
            stats.migrated += st.migrated;
            stats.failed += st.failed;
            if emptied {
                self.0.drain_cpu(cpu);
                let mut z = self.0.lock_zone(ZoneType::Normal.index());
                if z.take_free_range(start, start + count, None) {
                    for p in start..start + count {
                        let page = mm.at(mm.idx(p));
                        page.set_owner(CMA_OWNER);
                        page.set_state(PageState::Head { order: 0, compound: false, tail_owner: false });
                    }
                    return Ok(Pfn(start));
                }
            }
            start += align;
        }
        Err(CmaError::NoRange)
    }

    /// Linux's `cma_release`: gives back `count` pages at `pfn` that a `cma_alloc`
    /// returned (a part of such a range too) to the Cma lists. Refused, with nothing
    /// changed, if any of them is not a `cma_alloc` page.
    pub fn release(&self, pfn: Pfn, count: u64) -> Result<(), CmaError> {
        let mm = &self.0.mem_map.get().ok_or(CmaError::NoArea)?;
        let mut z = self.0.lock_zone(ZoneType::Normal.index());
        let (base, pages) = z.cma;
        let (start, end) = (pfn.0, pfn.0.checked_add(count).ok_or(CmaError::NotAllocated)?);
        if pages == 0 {
            return Err(CmaError::NoArea);
        }
        if count == 0 || start < base || end > base + pages {
            return Err(CmaError::NotAllocated);
        }
        let ours = |p: u64| {
            let page = mm.at(mm.idx(p));
            page.owner() == CMA_OWNER
                && page.state() == (PageState::Head { order: 0, compound: false, tail_owner: false })
        };
        if !(start..end).all(ours) {
            return Err(CmaError::NotAllocated);
        }
        for p in start..end {
            let page = mm.at(mm.idx(p));
            page.set_owner(0);
            page.set_state(PageState::Unmarked);
        }
        let mut p = start;
        while p < end {
            let order = MAX_PAGE_ORDER.min(p.trailing_zeros()).min(63 - (end - p).leading_zeros());
            z.free_one(p, order, super::MigrateType::Cma);
            p += 1 << order;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{PhysAddr, PAGE_SHIFT, PAGE_SIZE};
    use crate::cpu::CpuId;
    use crate::gfp::{Gfp, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};
    use crate::page_alloc::{check_invariants, MigrateType, Page, ZoneType};

    /// An allocator over `n` free pages from pfn 0, no watermarks.
    fn make(n: u64) -> &'static PageAllocator {
        let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
        let map: &'static [Page] = Box::leak((0..n).map(|_| Page::new()).collect());
        let all = [(PhysAddr::new(0), n * PAGE_SIZE as u64)];
        a.init(map, Pfn(0), PhysAddr::new(0), all, all).unwrap();
        a.set_min_free_kbytes(0);
        a
    }

    /// Every page `gfp` can get (the per-CPU lists drained once, for their last pages).
    fn take_all(a: &PageAllocator, gfp: Gfp) -> Vec<u64> {
        let mut v = Vec::new();
        for _ in 0..2 {
            while let Ok(p) = a.alloc_pages(gfp | Gfp::GFP_NOWARN, 0, CpuId::of(0)) {
                v.push(p.0);
            }
            a.drain_all();
        }
        v
    }

    #[test]
    fn declare_places_an_aligned_area_at_the_top() {
        let a = make(4096);
        assert_eq!(Cma::new(a).stats(), None);
        assert_eq!(Cma::new(a).declare(0), None);
        assert_eq!(Cma::new(a).declare(8192 << PAGE_SHIFT), None, "larger than the zone");
        // 4 MiB: 1024 pages, aligned to 1024, as high as possible.
        let c = Cma::new(a).declare(4 << 20).unwrap();
        assert_eq!(c, CmaStats { base: Pfn(3072), pages: 1024, free: 1024 });
        assert_eq!(Cma::new(a).stats(), Some(c));
        assert_eq!(Cma::new(a).declare(4 << 20), None, "one area only");
        check_invariants(a).unwrap();
        // A size is rounded up to whole pageblocks.
        let b = make(4096);
        assert_eq!(Cma::new(b).declare(5000).unwrap().pages, 512);
        assert_eq!(Cma::new(b).stats().unwrap().base, Pfn(3584));
        check_invariants(b).unwrap();
        // pagetypeinfo grows a CMA column only with an area.
        let mut pt = String::new();
        super::super::report::pagetypeinfo(a, &mut pt).unwrap();
        assert!(
            pt.contains(
                "type          CMA      0      0      0      0      0      0      0      0      0      0      1 "
            ),
            "{pt}"
        );
        assert!(pt.contains("HighAtomic          CMA \n"), "{pt}");
        assert!(pt.ends_with("            6            0            0            2 \n"), "{pt}");
    }

    #[test]
    fn declare_skips_busy_memory_and_needs_it_free() {
        let a = make(4096);
        // An unmovable page in the top 4 MiB: the area goes one aligned step lower.
        let mut held = take_all(a, GFP_KERNEL);
        held.sort_unstable();
        let top = held.pop().unwrap();
        assert!(top >= 3072);
        for p in held {
            a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
        }
        a.drain_all();
        assert_eq!(Cma::new(a).declare(4 << 20).unwrap().base, Pfn(2048));
        check_invariants(a).unwrap();
        let full = make(1024);
        // (The low watermark keeps a few pages back.)
        assert!(take_all(full, GFP_KERNEL).len() > 1000);
        assert_eq!(Cma::new(full).declare(2 << 20), None);
    }

    #[test]
    fn only_movable_requests_borrow_and_the_blocks_come_back() {
        let a = make(4096);
        Cma::new(a).declare(4 << 20).unwrap();
        let cma = 3072..4096;
        // Free CMA (1024) is not more than half of free memory (4096): a movable request
        // takes the ordinary lists first, then borrows the area to the last page.
        let first = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, CpuId::of(0)).unwrap();
        assert!(!cma.contains(&first.0));
        let mut got = take_all(a, GFP_HIGHUSER_MOVABLE);
        got.push(first.0);
        // The low watermark keeps a few pages back.
        assert!(got.len() > 4096 - 16, "{}", got.len());
        let borrowed = got.iter().filter(|p| cma.contains(p)).count() as u64;
        assert_eq!(borrowed + Cma::new(a).stats().unwrap().free, 1024);
        assert!(borrowed > 1024 - 16, "{borrowed}");
        check_invariants(a).unwrap();
        for p in got {
            a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
        }
        a.drain_all();
        check_invariants(a).unwrap();
        // Everything merged back, but never across the area's edge.
        let mut blocks = Vec::new();
        crate::page_alloc::memmap::for_each_free_block(a, |_, p, o, m| blocks.push((p, o, m)));
        blocks.sort_unstable();
        assert_eq!(
            blocks,
            [(0, 11, MigrateType::Movable), (2048, 10, MigrateType::Movable), (3072, 10, MigrateType::Cma)]
        );
        assert_eq!(Cma::new(a).stats().unwrap().free, 1024);
        // Unmovable and reclaimable requests never get an area page.
        for gfp in [GFP_KERNEL, GFP_KERNEL | Gfp::GFP_RECLAIMABLE] {
            let got = take_all(a, gfp);
            assert!(got.len() > 3072 - 16, "{gfp}: {}", got.len());
            assert!(got.iter().all(|p| !cma.contains(p)), "{gfp}");
            for p in got {
                a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
            }
            a.drain_all();
            assert_eq!(Cma::new(a).stats().unwrap().free, 1024);
            check_invariants(a).unwrap();
        }
    }

    #[test]
    fn free_cma_pages_count_towards_the_watermark_of_movable_requests_only() {
        let a = make(2048);
        // min_free_kbytes 512: min 128 pages, low 160.
        a.set_min_free_kbytes(512);
        let low = a.snapshot().zone(ZoneType::Normal).wmarks.low;
        assert_eq!(low, 160);
        let cma = Cma::new(a).declare(4 << 20).unwrap();
        assert_eq!((cma.base, cma.pages), (Pfn(1024), 1024));
        // Unmovable requests stop at the low watermark of the pages they may use (the
        // 1024 outside the area), not of all free pages: the area does not hide that
        // their own pages are at the watermark.
        let kernel = take_all(a, GFP_KERNEL);
        let outside = a.snapshot().nr_free_pages() - Cma::new(a).stats().unwrap().free;
        assert!(outside >= low - 8 && outside <= low + 64, "{outside} pages outside the area left");
        assert!(kernel.iter().all(|&p| p < 1024));
        // Order 0 (the per-CPU path) and order 4 (the zone path) alike: an unmovable
        // request fails the check, a movable one passes and borrows the area.
        for order in [0, 4] {
            assert!(a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, order, CpuId::of(0)).is_err(), "order {order}");
            let p = a.alloc_pages(GFP_HIGHUSER_MOVABLE, order, CpuId::of(0)).unwrap();
            assert!(p.0 >= 1024, "order {order}: {p:?}");
            a.free_pages(p, order, CpuId::of(0)).unwrap();
        }
        // The reserve below the watermark is still there for an atomic request.
        let atomic = a.alloc_pages(crate::gfp::GFP_ATOMIC, 0, CpuId::of(0)).unwrap();
        assert!(atomic.0 < 1024);
        a.free_pages(atomic, 0, CpuId::of(0)).unwrap();
        for p in kernel {
            a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
        }
        a.drain_all();
        assert_eq!(a.snapshot().nr_free_pages(), 2048);
        check_invariants(a).unwrap();
    }

    #[test]
    fn movable_requests_prefer_the_area_when_it_holds_most_free_memory() {
        let a = make(2048);
        let c = Cma::new(a).declare(6 << 20).unwrap();
        assert_eq!((c.base, c.pages), (Pfn(0), 1536));
        let p = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, CpuId::of(0)).unwrap();
        assert!(p.0 < 1536, "{p:?}");
        let k = a.alloc_pages(GFP_KERNEL, 0, CpuId::of(0)).unwrap();
        assert!(k.0 >= 1536, "{k:?}");
        check_invariants(a).unwrap();
    }

    /// The area is found by its free blocks wherever the zone's first page is: here it
    /// is allocated. A HighAtomic reserve inside the new area stops being counted.
    #[test]
    fn declare_finds_free_blocks_with_the_first_page_taken_and_drops_a_reserve_inside() {
        let a = make(2048);
        a.set_pcp_high_batch(0, 1);
        let first = a.alloc_pages(GFP_KERNEL, 0, CpuId::of(0)).unwrap();
        assert_eq!(first, Pfn(0));
        a.lock_zone(ZoneType::Normal.index()).reserve_highatomic(1536);
        assert_eq!(a.snapshot().zone(ZoneType::Normal).reserved_highatomic, 512);
        // (1536..2048 is the upper half of the free order-10 block at 1024.)
        let c = Cma::new(a).declare(2 << 20).unwrap();
        assert_eq!((c.base, c.pages), (Pfn(1536), 512));
        assert_eq!(a.snapshot().zone(ZoneType::Normal).reserved_highatomic, 0);
        assert_eq!(a.pfn_to_page(Pfn(1536)).unwrap().pageblock_migratetype(), MigrateType::Cma);
        a.free_pages(first, 0, CpuId::of(0)).unwrap();
        check_invariants(a).unwrap();
    }

    /// "Most" is more than half: with the area exactly half of the free pages a movable
    /// request takes an ordinary page; one page later the area is more than half.
    #[test]
    fn the_area_is_preferred_only_above_half_of_the_free_pages() {
        let a = make(2048);
        a.set_pcp_high_batch(0, 1);
        let c = Cma::new(a).declare(4 << 20).unwrap();
        assert_eq!((c.base, c.pages), (Pfn(1024), 1024));
        let p = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, CpuId::of(0)).unwrap();
        assert!(p.0 < 1024, "1024 of 2048 free pages in the area: {p:?}");
        let q = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, CpuId::of(0)).unwrap();
        assert!(q.0 >= 1024, "1024 of 2047: {q:?}");
        check_invariants(a).unwrap();
    }
}
