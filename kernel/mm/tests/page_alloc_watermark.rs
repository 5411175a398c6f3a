//! The per-CPU fast path obeys the zone's low watermark exactly, by the same rule as
//! `WatermarkCheck::ok`: a block on this CPU's list is handed out only while the
//! free pages the request may use (free CMA pages only for a movable request) stay above
//! `low`. At the boundary the outcome is observable: a fast-path hit leaves the zone's
//! free count alone and takes one page off the list; a refusal goes to the slow path,
//! which drains this CPU's list back to the zone (the free count grows) and retries.
//!
//! Catches: the fast path's check counting free CMA pages for an unmovable request, or
//! `<=` turned into `<` (either takes the last page at `low` from the list), or not
//! counting them for a movable one.

use mm::addr::{Pfn, PhysAddr, PAGE_SIZE};
use mm::cpu::CpuId;
use mm::gfp::{Gfp, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};
use mm::page_alloc::{check_invariants, Page, PageAllocator, ZoneType};

const PAGES: u64 = 2048;
const FAST: CpuId = CpuId::of(0);
const OTHER: CpuId = CpuId::of(1);

struct Zone {
    a: &'static PageAllocator,
    low: u64,
    /// Pages held by OTHER, to move the free count up and down.
    held: Vec<u64>,
}

impl Zone {
    fn new() -> Zone {
        let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
        let map: &'static [Page] = Box::leak((0..PAGES).map(|_| Page::new()).collect());
        let all = [(PhysAddr::new(0), PAGES * PAGE_SIZE as u64)];
        a.init(map, Pfn(0), PhysAddr::new(0), all, all).expect("init");
        // min_free_kbytes 512: min 128 pages, low 160.
        a.set_min_free_kbytes(512);
        let low = a.snapshot().zone(ZoneType::Normal).wmarks.low;
        assert_eq!(low, 160);
        let cma = mm::page_alloc::Cma::new(a).declare(4 << 20).expect("cma area");
        assert_eq!(cma.pages, 1024);
        a.set_pcp_high_batch(64, 4);
        Zone { a, low, held: Vec::new() }
    }

    /// (zone free pages on the buddy lists, free CMA pages among them, FAST's list).
    fn counts(&self) -> (u64, u64, u64) {
        let a = self.a;
        (
            a.snapshot().zone(ZoneType::Normal).free_pages,
            mm::page_alloc::Cma::new(a).stats().unwrap().free,
            a.snapshot().pageset(FAST, ZoneType::Normal).count,
        )
    }

    /// Puts pages on FAST's list: `n` of `gfp` allocated and freed on FAST.
    fn fill_fast_list(&self, gfp: Gfp, n: usize) {
        let got: Vec<_> = (0..n).map(|_| self.a.alloc_pages(gfp, 0, FAST).unwrap()).collect();
        for p in got {
            self.a.free_pages(p, 0, FAST).unwrap();
        }
    }

    /// Brings the free pages outside the CMA area to exactly `target` with OTHER's
    /// unmovable pages (OTHER's list drained after each step; FAST's is not touched).
    fn set_outside_free(&mut self, target: u64) {
        for _ in 0..10_000 {
            let (f, c, _) = self.counts();
            let outside = f - c;
            if outside == target {
                return;
            }
            if outside > target {
                let p = self.a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, OTHER).expect("above low");
                self.held.push(p.0);
            } else {
                let p = self.held.pop().expect("a held page to give back");
                self.a.free_pages(Pfn(p), 0, OTHER).unwrap();
            }
            self.a.drain_cpu(OTHER);
        }
        panic!("could not reach {target} free pages outside the area");
    }
}

#[test]
fn unmovable_fast_path_stops_exactly_at_low_without_the_cma_pages() {
    let mut z = Zone::new();
    z.fill_fast_list(GFP_KERNEL, 16);
    let low = z.low;

    // One above low (CMA pages not counted): the fast path hands out a page from the list.
    z.set_outside_free(low + 1);
    let (f, c, p) = z.counts();
    assert!(p >= 8, "FAST's list holds {p} pages");
    let got = z.a.alloc_pages(GFP_KERNEL, 0, FAST).expect("above low");
    assert!(got.0 < 1024, "an unmovable page from the area: {got:?}");
    assert_eq!(z.counts(), (f, c, p - 1), "at low + 1 the fast path did not take the list's page");
    z.held.push(got.0);

    // At low exactly: the fast path must refuse although the list has pages and the
    // zone has 1,024 free CMA pages; the slow path drains FAST's list and then succeeds.
    z.set_outside_free(low);
    let (f, c, p) = z.counts();
    assert_eq!(f - c, low);
    assert!(p >= 8, "FAST's list holds {p} pages");
    let got = z.a.alloc_pages(GFP_KERNEL, 0, FAST).expect("after the drain");
    z.held.push(got.0);
    let (f2, _, p2) = z.counts();
    assert!(f2 > f && p2 != p - 1, "at low the fast path took a page off the list: free {f} -> {f2}, list {p} -> {p2}");
    for p in std::mem::take(&mut z.held) {
        z.a.free_pages(Pfn(p), 0, OTHER).unwrap();
    }
    z.a.drain_all();
    assert_eq!(z.a.snapshot().nr_free_pages(), PAGES);
    check_invariants(z.a).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn movable_fast_path_counts_the_cma_pages() {
    let mut z = Zone::new();
    z.fill_fast_list(GFP_HIGHUSER_MOVABLE, 16);
    // Outside the area at low: an unmovable request could not pass, a movable one may
    // use the 1,024 free CMA pages, so the fast path hands out its list's page.
    z.set_outside_free(z.low);
    let (f, c, p) = z.counts();
    assert!(c > 1000 && p >= 8, "free CMA {c}, FAST's list {p}");
    let got = z.a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, FAST).expect("movable");
    assert_eq!(z.counts(), (f, c, p - 1), "a movable request at low was refused the fast path");
    z.a.free_pages(got, 0, FAST).unwrap();
    for p in std::mem::take(&mut z.held) {
        z.a.free_pages(Pfn(p), 0, OTHER).unwrap();
    }
    z.a.drain_all();
    assert_eq!(z.a.snapshot().nr_free_pages(), PAGES);
}

/// A block handed out by the fast path counts all its pages in `pgalloc` (and leaves the
/// list by all of them), for each per-CPU order above 0.
#[test]
fn fast_path_counts_every_page_of_a_block() {
    let z = Zone::new();
    let zi = ZoneType::Normal.index();
    for order in 1..=3u32 {
        let got: Vec<_> = (0..4).map(|_| z.a.alloc_pages(GFP_KERNEL, order, FAST).unwrap()).collect();
        for p in got {
            z.a.free_pages(p, order, FAST).unwrap();
        }
        let (f, _, p) = z.counts();
        let before = z.a.snapshot().events.pgalloc[zi];
        let b = z.a.alloc_pages(GFP_KERNEL, order, FAST).unwrap();
        let (f2, _, p2) = z.counts();
        assert_eq!((f2, p2), (f, p - (1 << order)), "order {order}: not a fast-path hit");
        assert_eq!(z.a.snapshot().events.pgalloc[zi], before + (1 << order), "order {order}: pgalloc");
        z.a.free_pages(b, order, FAST).unwrap();
    }
}

/// A refill of an empty per-CPU list takes `batch >> order` blocks (at least 2), as
/// Linux's `rmqueue_bulk` call: one is handed out, the rest stay on the list.
#[test]
fn refill_takes_batch_shifted_by_order() {
    let z = Zone::new();
    z.a.set_pcp_high_batch(256, 16);
    for (order, blocks) in [(0u32, 16u64), (1, 8), (2, 4), (3, 2)] {
        z.a.drain_cpu(FAST);
        let p = z.a.alloc_pages(GFP_KERNEL, order, FAST).unwrap();
        assert_eq!(z.counts().2, (blocks - 1) << order, "order {order}");
        z.a.free_pages(p, order, FAST).unwrap();
    }
}

/// A bulk allocation takes pages from the zone as far as the same rule allows: an
/// unmovable batch stops at `low` without counting the free CMA pages (it would
/// otherwise take the zone below `low` on pages it cannot even use), a movable one
/// counts them.
#[test]
fn bulk_allocation_stops_at_low_by_the_same_rule() {
    let mut z = Zone::new();
    z.set_outside_free(z.low + 5);
    assert_eq!(z.counts().2, 0, "FAST's list is empty: every page comes from the zone");
    let mut out = [Pfn(0); 100];
    assert_eq!(z.a.alloc_pages_bulk(GFP_KERNEL, FAST, &mut out), Ok(5));
    let (f, c, _) = z.counts();
    assert_eq!(f - c, z.low, "at low, outside the area");
    for p in &out[..5] {
        z.held.push(p.0);
    }
    // A movable batch may use the area's 1,024 free pages down to low.
    let got = z.a.alloc_pages_bulk(GFP_HIGHUSER_MOVABLE, FAST, &mut out).unwrap();
    assert_eq!(got, 100);
    for p in &out[..got] {
        z.a.free_pages(*p, 0, FAST).unwrap();
    }
    for p in std::mem::take(&mut z.held) {
        z.a.free_pages(Pfn(p), 0, OTHER).unwrap();
    }
    z.a.drain_all();
    assert_eq!(z.a.snapshot().nr_free_pages(), PAGES);
    check_invariants(z.a).unwrap_or_else(|e| panic!("{e}"));
}

/// `__GFP_MEMALLOC` lifts the watermarks (`ALLOC_NO_WATERMARKS`) for a request that may
/// sleep as for an atomic one (Linux's `__gfp_pfmemalloc_flags`): with the free pages
/// outside the CMA area at `low`, `GFP_KERNEL` is refused and `GFP_KERNEL |
/// __GFP_MEMALLOC` is served down to the last of them, never from the area;
/// `__GFP_NOMEMALLOC` takes the lift back.
#[test]
fn memalloc_lifts_the_watermarks_for_a_sleeping_request() {
    let mut z = Zone::new();
    let low = z.low;
    z.set_outside_free(low);
    let quiet = GFP_KERNEL | Gfp::GFP_NOWARN;
    assert!(z.a.alloc_pages(quiet, 0, OTHER).is_err(), "at low");
    assert!(z.a.alloc_pages(quiet | Gfp::GFP_MEMALLOC | Gfp::GFP_NOMEMALLOC, 0, OTHER).is_err());
    let mut got = Vec::new();
    while let Ok(p) = z.a.alloc_pages(quiet | Gfp::GFP_MEMALLOC, 0, OTHER) {
        assert!(p.0 < 1024, "a page from the CMA area: {p:?}");
        got.push(p.0);
        assert!(got.len() as u64 <= low, "more pages than were free outside the area");
    }
    assert_eq!(got.len() as u64, low, "every free page outside the area");
    z.a.drain_cpu(OTHER);
    let (f, c, _) = z.counts();
    assert_eq!((f - c, c), (0, 1024));
    for p in got.into_iter().chain(std::mem::take(&mut z.held)) {
        z.a.free_pages(Pfn(p), 0, OTHER).unwrap();
    }
    z.a.drain_all();
    assert_eq!(z.a.snapshot().nr_free_pages(), PAGES);
    check_invariants(z.a).unwrap_or_else(|e| panic!("{e}"));
}
