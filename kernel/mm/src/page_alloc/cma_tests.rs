//! The CMA area keeps its type: no fallback steal, HighAtomic reserve, per-CPU refill or
//! drain, compaction or `cma_alloc` turns one of its pageblocks into another type.

use proptest::prelude::*;

use super::migrate_tests::{make, Model};
use super::*;
use crate::gfp::{GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};

/// The area's pageblocks that are not Cma any more (by pageblock head pfn).
fn lost_cma_pageblocks(a: &PageAllocator) -> Vec<(u64, MigrateType)> {
    let c = super::Cma::new(a).stats().unwrap();
    (c.base.0..c.base.0 + c.pages)
        .step_by(PAGEBLOCK_NR_PAGES as usize)
        .map(|p| (p, a.pfn_to_page(Pfn(p)).unwrap().pageblock_migratetype()))
        .filter(|&(_, mt)| mt != MigrateType::Cma)
        .collect()
}

/// Every page `gfp` can get on `cpu`, order 0.
fn take_all(a: &PageAllocator, gfp: Gfp, cpu: CpuId) -> Vec<u64> {
    let mut v = Vec::new();
    while let Ok(p) = a.alloc_pages(gfp | Gfp::GFP_NOWARN, 0, cpu) {
        v.push(p.0);
    }
    v
}

/// A movable request's per-CPU refill borrows a batch of area pages; the CPU's lists
/// are drained with them unused; unmovable requests then steal whole free pageblocks.
/// The borrowed pages must go back to the Cma lists, and no area pageblock may change
/// type.
#[test]
fn area_pages_drained_from_a_per_cpu_list_go_back_to_the_area() {
    let a = make(2048);
    // 6 MiB of 8: the area holds most free memory, so movable requests borrow it first.
    let c = super::Cma::new(a).declare(6 << 20).unwrap();
    assert_eq!((c.base, c.pages), (Pfn(0), 1536));
    a.set_pcp_high_batch(64, 16);
    let p = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, CpuId::of(1)).unwrap();
    assert!(p.0 < 1536, "borrowed: {p:?}");
    assert!(
        a.snapshot().pageset(CpuId::of(1), ZoneType::Normal).count > 0,
        "the refill left area pages on cpu1's list"
    );
    a.drain_all();
    // Unmovable requests of every order down to 0 take what is outside the area, then fail.
    let mut held = Vec::new();
    for order in (0..=9).rev() {
        while let Ok(q) = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, order, CpuId::of(2)) {
            held.push((q, order));
        }
    }
    assert_eq!(lost_cma_pageblocks(a), [], "an unmovable steal claimed an area pageblock");
    assert!(held.iter().all(|&(q, _)| q.0 >= 1536), "an unmovable request got an area page");
    assert_eq!(super::Cma::new(a).stats().unwrap().free, 1535, "the borrowed batch is back on the Cma lists");
    check_invariants(a).unwrap();
    a.free_pages(p, 0, CpuId::of(1)).unwrap();
    for (q, order) in held {
        a.free_pages(q, order, CpuId::of(2)).unwrap();
    }
    a.drain_all();
    check_invariants(a).unwrap();
    assert_eq!(super::Cma::new(a).stats().unwrap().free, 1536);
}

/// `cma_alloc`'s request bounds: the whole area and the top alignment are allowed, one
/// page more or one order more is a bad request, and each error says what it is.
#[test]
fn cma_alloc_takes_the_whole_area_and_the_top_alignment_and_no_more() {
    let a = make(2048);
    let c = super::Cma::new(a).declare(6 << 20).unwrap();
    assert_eq!((c.base, c.pages), (Pfn(0), 1536));
    let cma = super::Cma::new(a);
    let mut st = CmaAllocStats::default();
    assert_eq!(cma.alloc(1537, 0, CpuId::of(0), &mut st), Err(CmaError::BadRequest));
    assert_eq!(cma.alloc(1, MAX_PAGE_ORDER + 1, CpuId::of(0), &mut st), Err(CmaError::BadRequest));
    assert_eq!(cma.alloc(1536, 0, CpuId::of(0), &mut st), Ok(Pfn(0)), "the whole area");
    assert_eq!(cma.stats().unwrap().free, 0);
    cma.release(Pfn(0), 1536).unwrap();
    // Pfn 0 is aligned to every order, so the top alignment finds its range there.
    assert_eq!(cma.alloc(1, MAX_PAGE_ORDER, CpuId::of(0), &mut st), Ok(Pfn(0)));
    cma.release(Pfn(0), 1).unwrap();
    a.drain_all();
    check_invariants(a).unwrap();
    assert_eq!(cma.stats().unwrap().free, 1536);

    let texts = [
        (CmaError::NoArea, "no CMA area (cma= on the command line)"),
        (CmaError::BadRequest, "bad size or alignment"),
        (CmaError::Busy, "another cma_alloc is running"),
        (CmaError::NoRange, "no range of the area could be emptied (a page did not move)"),
        (CmaError::NotAllocated, "not a cma_alloc range"),
    ];
    for (e, text) in texts {
        assert_eq!(e.to_string(), text);
    }
}

/// A high-order atomic request that can only be served from the area (everything
/// outside it held, free memory under the low watermark, so the slow path's
/// `ALLOC_HARDER` try reserves the block's pageblock as HighAtomic): the area's pageblock
/// must stay Cma and nothing is reserved, through the per-CPU path (order 2) and the
/// zone path (order 4) alike.
#[test]
fn high_order_atomic_requests_inside_the_area_reserve_no_cma_pageblock() {
    let a = make(2048);
    let c = super::Cma::new(a).declare(4 << 20).unwrap();
    assert_eq!((c.base, c.pages), (Pfn(1024), 1024));
    let held = take_all(a, GFP_ATOMIC, CpuId::of(0));
    assert!(held.iter().all(|&p| p < 1024));
    a.drain_all();
    // min 1024 pages, low 1280: the 1024 free (all in the area) are under the low mark
    // and above the atomic minimum.
    a.set_min_free_kbytes(4096);
    assert_eq!(a.snapshot().zone(ZoneType::Normal).wmarks.min, 1024);
    for order in [2, 4] {
        let p = a.alloc_pages(GFP_ATOMIC | Gfp::GFP_MOVABLE, order, CpuId::of(1)).unwrap();
        assert!(p.0 >= 1024, "order {order}: {p:?}");
        assert_eq!(lost_cma_pageblocks(a), [], "order {order}");
        assert_eq!(a.snapshot().zone(ZoneType::Normal).reserved_highatomic, 0, "order {order}");
        check_invariants(a).unwrap();
        a.free_pages(p, order, CpuId::of(1)).unwrap();
    }
    a.set_min_free_kbytes(0);
    for p in held {
        a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
    }
    a.drain_all();
    check_invariants(a).unwrap();
    assert_eq!(super::Cma::new(a).stats().unwrap().free, 1024);
    // The control: the same request without an area, same free memory and marks, does
    // reserve its pageblock (the path above ran and only the area kept it out).
    let b = make(2048);
    let held: Vec<u64> = (0..1024).map(|_| b.alloc_pages(GFP_ATOMIC, 0, CpuId::of(0)).unwrap().0).collect();
    b.drain_all();
    b.set_min_free_kbytes(4096);
    let p = b.alloc_pages(GFP_ATOMIC | Gfp::GFP_MOVABLE, 2, CpuId::of(1)).unwrap();
    assert_eq!(b.snapshot().zone(ZoneType::Normal).reserved_highatomic, PAGEBLOCK_NR_PAGES);
    assert_eq!(b.pfn_to_page(p).unwrap().pageblock_migratetype(), MigrateType::HighAtomic);
    b.free_pages(p, 2, CpuId::of(1)).unwrap();
    for p in held {
        b.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
    }
}

/// One step of [`random_load_keeps_every_area_pageblock_cma`].
#[derive(Clone, Copy, Debug)]
enum Step {
    /// `alloc_pages(GFPS[gfp], order)` on `cpu`; movable ones get an owner (so that
    /// compaction and `cma_alloc` can move them).
    Alloc { gfp: usize, order: u32, cpu: u8 },
    /// Frees live allocation `which % live` on `cpu`.
    Free { which: usize, cpu: u8 },
    /// Drains one CPU's lists.
    Drain { cpu: u8 },
    /// `compact_memory` (every CPU's lists drained first, as the console does).
    Compact { sync: bool },
    /// `cma_alloc` of `pages` (every CPU's lists drained first).
    CmaAlloc { pages: u64, align: u32 },
    /// Releases the oldest `cma_alloc` range.
    CmaRelease,
    /// `min_free_kbytes`: 0 (take everything), or a mark that sends requests to the slow
    /// path and its HighAtomic reserve.
    Watermark { kbytes: u64 },
}

const GFPS: [Gfp; 6] = [
    GFP_KERNEL,
    GFP_HIGHUSER_MOVABLE,
    GFP_ATOMIC,
    GFP_ATOMIC.union(Gfp::GFP_MOVABLE),
    GFP_KERNEL.union(Gfp::GFP_RECLAIMABLE),
    crate::gfp::GFP_NOWAIT,
];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..GFPS.len(), prop_oneof![3 => 0u32..=3, 1 => 4u32..=10], 0u8..4)
            .prop_map(|(gfp, order, cpu)| Step::Alloc { gfp, order, cpu }),
        6 => (any::<usize>(), 0u8..4).prop_map(|(which, cpu)| Step::Free { which, cpu }),
        2 => (0u8..4).prop_map(|cpu| Step::Drain { cpu }),
        1 => any::<bool>().prop_map(|sync| Step::Compact { sync }),
        1 => (1u64..=600, 0u32..=9).prop_map(|(pages, align)| Step::CmaAlloc { pages, align }),
        1 => Just(Step::CmaRelease),
        1 => prop_oneof![Just(0u64), Just(512), Just(2048)].prop_map(|kbytes| Step::Watermark { kbytes }),
    ]
}

/// `PROPTEST_CASES`, 64 by default.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Fallback steals (unmovable and reclaimable requests of every order, whole
    /// pageblocks and more among them), HighAtomic reserves and their release,
    /// per-CPU refills and drains on four CPUs, compaction and `cma_alloc` in any mix:
    /// after every step every pageblock of the area is still Cma and the invariant
    /// checker passes; at the end, everything freed, the whole area is free on its lists.
    #[test]
    fn random_load_keeps_every_area_pageblock_cma(steps in prop::collection::vec(step(), 1..300)) {
        let a = make(4096);
        a.set_pcp_high_batch(64, 16);
        let m = Model::new();
        m.register(a);
        let c = super::Cma::new(a).declare(4 << 20).unwrap();
        let mut live: Vec<Result<MovableOwner, (Pfn, u32)>> = Vec::new();
        let mut ranges: Vec<(Pfn, u64)> = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            match *s {
                Step::Alloc { gfp, order, cpu } => {
                    let g = GFPS[gfp];
                    let on = CpuId::of(cpu as usize);
                    if g.contains(Gfp::GFP_MOVABLE) {
                        if let Some(o) = m.alloc_on(a, g, order, i % 2 == 0, on) {
                            live.push(Ok(o));
                        }
                    } else if let Ok(p) = a.alloc_pages(g | Gfp::GFP_NOWARN, order, on) {
                        live.push(Err((p, order)));
                    }
                }
                Step::Free { which, cpu } if !live.is_empty() => match live.swap_remove(which % live.len()) {
                    Ok(o) => m.free(a, o),
                    Err((p, order)) => a.free_pages(p, order, CpuId::of(cpu as usize)).unwrap(),
                },
                Step::Free { .. } => {}
                Step::Drain { cpu } => {
                    a.drain_cpu(CpuId::of(cpu as usize));
                }
                Step::Compact { sync } => {
                    a.drain_all();
                    let mode = if sync { MigrateMode::Sync } else { MigrateMode::Async };
                    super::Compactor::new(a, super::MigrateCtx { mode, cpu: CpuId::of(0) }).compact_memory();
                }
                Step::CmaAlloc { pages, align } => {
                    a.drain_all();
                    let mut st = CmaAllocStats::default();
                    if let Ok(p) = super::Cma::new(a).alloc(pages, align, CpuId::of(0), &mut st) {
                        ranges.push((p, pages));
                    }
                }
                Step::CmaRelease if !ranges.is_empty() => {
                    let (p, n) = ranges.remove(0);
                    super::Cma::new(a).release(p, n).unwrap();
                }
                Step::CmaRelease => {}
                Step::Watermark { kbytes } => a.set_min_free_kbytes(kbytes),
            }
            prop_assert_eq!(lost_cma_pageblocks(a), vec![], "after step {} {:?}", i, s);
            if let Err(e) = check_invariants(a) {
                prop_assert!(false, "after step {} {:?}: {}", i, s, e);
            }
            m.check(a);
        }
        for (p, n) in ranges {
            super::Cma::new(a).release(p, n).unwrap();
        }
        for l in live {
            match l {
                Ok(o) => m.free(a, o),
                Err((p, order)) => a.free_pages(p, order, CpuId::of(0)).unwrap(),
            }
        }
        a.drain_all();
        prop_assert_eq!(a.snapshot().nr_free_pages(), 4096);
        prop_assert_eq!(super::Cma::new(a).stats().unwrap().free, c.pages);
        prop_assert_eq!(lost_cma_pageblocks(a), vec![]);
        check_invariants(a).unwrap();
    }
}
