//! Unit tests of the allocator on small synthetic zones.

use super::*;
use crate::addr::{PhysAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::{GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_NOWAIT};
use crate::owner::{page_owner, set_page_owner};

/// CPU `n` (tests name CPUs by number).
fn cpu(n: usize) -> CpuId {
    CpuId::of(n)
}

const PS: u64 = PAGE_SIZE as u64;

fn pa(pfn: u64) -> PhysAddr {
    PhysAddr::new(pfn << PAGE_SHIFT)
}

/// An allocator over `n` pages from `base`, free ranges given in pfns, DMA below `dma`.
fn make(n: u64, base: u64, dma: u64, free: &[(u64, u64)]) -> &'static PageAllocator {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..n).map(|_| Page::new()).collect());
    a.init(map, Pfn(base), pa(dma), [(pa(base), n * PS)], free.iter().map(|&(s, e)| (pa(s), (e - s) * PS))).unwrap();
    a
}

fn blocks(a: &PageAllocator) -> Vec<(u64, u32)> {
    let mut v = Vec::new();
    memmap::for_each_free_block(a, |_, p, o, _| v.push((p, o)));
    v.sort_unstable();
    v
}

/// Single pages of `gfp` on CPU 0 until the allocator refuses (as far as the request's
/// watermark lets it go).
fn hold_all(a: &PageAllocator, gfp: Gfp) -> Vec<Pfn> {
    std::iter::from_fn(|| a.alloc_pages(gfp | Gfp::GFP_NOWARN, 0, cpu(0)).ok()).collect()
}

/// Frees single pages on CPU 0.
fn give_back(a: &PageAllocator, pages: impl IntoIterator<Item = Pfn>) {
    for p in pages {
        a.free_pages(p, 0, cpu(0)).unwrap();
    }
}

fn s(f: impl Fn(&mut String) -> core::fmt::Result) -> String {
    let mut out = String::new();
    f(&mut out).unwrap();
    out
}

#[test]
fn init_frees_maximal_aligned_blocks() {
    let a = make(1024, 0, 0, &[(0x10, 0x400)]);
    assert_eq!(blocks(a), [(0x10, 4), (0x20, 5), (0x40, 6), (0x80, 7), (0x100, 8), (0x200, 9)]);
    let st = a.snapshot().zone(ZoneType::Normal);
    assert_eq!((st.managed_pages, st.present_pages, st.spanned_pages), (1008, 1024, 1024));
    assert_eq!(a.snapshot().zone(ZoneType::Dma).managed_pages, 0);
    assert_eq!(a.snapshot().meminfo(), MemInfo { total_pages: 1008, free_pages: 1008 });
    assert_eq!(a.snapshot().meminfo().total_kb(), 4032);
    let c = check_invariants(a).unwrap();
    assert_eq!(c, PageCensus { buddy_free: 1008, pcp_free: 0, allocated: 0, reserved: 16 });
    assert_eq!(a.init(Box::leak(Box::new([Page::new()])), Pfn(0), pa(0), [], []), Err(InitError::AlreadyInitialized));
    // A whole 256 MiB block when aligned memory allows.
    let big = make(1 << 17, 1 << 16, 0, &[(1 << 16, 3 << 16)]);
    assert_eq!(blocks(big), [(1 << 16, 16), (2 << 16, 16)]);
    let p = big.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 16, cpu(0)).unwrap();
    assert_eq!(p.0 & 0xffff, 0);
}

#[test]
fn alloc_splits_and_free_coalesces() {
    let a = make(1024, 0, 0, &[(0, 1024)]);
    a.set_min_free_kbytes(0);
    let before = blocks(a);
    let p = a.alloc_pages(GFP_KERNEL, 3, cpu(0)).unwrap();
    assert_eq!(p.0 % 8, 0);
    assert_eq!(a.snapshot().nr_free_pages(), 1016);
    let q = a.alloc_pages(GFP_KERNEL, 3, cpu(1)).unwrap();
    assert_ne!(p, q);
    a.free_pages(p, 3, cpu(0)).unwrap();
    a.free_pages(q, 3, cpu(1)).unwrap();
    a.drain_all();
    assert_eq!(blocks(a), before);
    // Order 0 through the per-CPU lists, then drained back.
    let pages: Vec<_> = (0..100).map(|i| a.alloc_pages(GFP_KERNEL, 0, cpu(i % 4)).unwrap()).collect();
    for (i, p) in pages.iter().enumerate() {
        a.free_pages(*p, 0, cpu((i + 1) % 4)).unwrap();
    }
    assert_eq!(a.snapshot().nr_free_pages(), 1024);
    a.drain_all();
    assert_eq!(a.snapshot().nr_pcp_pages(), 0);
    assert_eq!(blocks(a), before);
    check_invariants(a).unwrap();
}

#[test]
fn exhaustion_and_order_limits() {
    let a = make(64, 0, 0, &[(0, 64)]);
    a.set_min_free_kbytes(0);
    let all = a.alloc_pages(GFP_KERNEL, 6, cpu(0)).unwrap();
    let e = a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap_err();
    assert_eq!(e, AllocFailure::NoMemory { order: 0, gfp: GFP_KERNEL });
    assert_eq!(e.to_string(), "page allocation failure: order:0, mode:0xcc0(GFP_KERNEL)");
    assert!(e.should_warn());
    assert!(!AllocFailure::NoMemory { order: 0, gfp: GFP_KERNEL | Gfp::GFP_NOWARN }.should_warn());
    assert_eq!(a.alloc_pages(GFP_KERNEL, 17, cpu(0)), Err(AllocFailure::OrderTooLarge { order: 17, gfp: GFP_KERNEL }));
    assert_eq!(CpuId::new(4), Err(crate::cpu::BadCpu(4)), "CPU 4 cannot even be named");
    a.free_pages(all, 6, cpu(0)).unwrap();
    assert_eq!(a.snapshot().failures, 1);
    let un = PageAllocator::new();
    assert_eq!(un.alloc_pages(GFP_KERNEL, 0, cpu(0)), Err(AllocFailure::NotInitialized));
    assert_eq!(un.free_pages(Pfn(0), 0, cpu(0)), Err(FreeError::NotInitialized));
}

#[test]
fn bad_frees_are_refused_and_change_nothing() {
    let a = make(256, 0x100, 0, &[(0x104, 0x200)]);
    a.set_min_free_kbytes(0);
    let p = a.alloc_pages(GFP_KERNEL, 2, cpu(0)).unwrap();
    let c = a.alloc_pages(GFP_KERNEL | Gfp::GFP_COMP, 2, cpu(0)).unwrap();
    let z = a.alloc_pages(GFP_KERNEL, 0, cpu(1)).unwrap();
    let snap = (blocks(a), a.snapshot().nr_free_pages(), check_invariants(a).unwrap());
    let e = |r: Result<(), FreeError>| r.unwrap_err();
    assert_eq!(e(a.free_pages(p, 1, cpu(0))), FreeError::WrongOrder { pfn: p.0, order: 1, allocated: 2 });
    // Order 3 on an order-2 block: refused as unaligned or as the wrong order.
    assert!(matches!(
        e(a.free_pages(p, 3, cpu(0))),
        FreeError::Unaligned { .. } | FreeError::WrongOrder { allocated: 2, .. }
    ));
    assert_eq!(e(a.free_pages(Pfn(c.0 + 1), 0, cpu(0))), FreeError::TailPage { pfn: c.0 + 1 });
    assert_eq!(e(a.free_pages(Pfn(p.0 + 1), 0, cpu(0))), FreeError::NotAllocated { pfn: p.0 + 1, order: 0 });
    assert_eq!(e(a.free_pages(Pfn(0x100), 0, cpu(0))), FreeError::Reserved { pfn: 0x100 });
    assert_eq!(e(a.free_pages(Pfn(0x50), 0, cpu(0))), FreeError::OutsideMemMap { pfn: 0x50 });
    assert_eq!(e(a.free_pages(Pfn(0x200), 0, cpu(0))), FreeError::OutsideMemMap { pfn: 0x200 });
    assert_eq!(e(a.free_pages(Pfn(p.0 + 2), 2, cpu(0))), FreeError::Unaligned { pfn: p.0 + 2, order: 2 });
    assert_eq!(e(a.free_pages(p, 17, cpu(0))), FreeError::OrderTooLarge { pfn: p.0, order: 17 });
    assert!(CpuId::new(9).is_err());
    // A free block's head.
    let free_head = blocks(a).last().unwrap().0;
    assert!(matches!(e(a.free_pages(Pfn(free_head), 0, cpu(0))), FreeError::DoubleFree { .. }));
    assert_eq!((blocks(a), a.snapshot().nr_free_pages(), check_invariants(a).unwrap()), snap);
    // Double free on the per-CPU path and on the buddy path.
    a.free_pages(z, 0, cpu(1)).unwrap();
    assert_eq!(e(a.free_pages(z, 0, cpu(2))), FreeError::DoubleFree { pfn: z.0, order: 0 });
    assert_eq!(e(a.free_pages(z, 0, cpu(1))).to_string(), format!("double free of pfn {:#x} order 0", z.0));
    a.free_pages(c, 2, cpu(0)).unwrap();
    a.free_pages(p, 2, cpu(0)).unwrap();
    let again = e(a.free_pages(p, 2, cpu(0)));
    assert!(matches!(again, FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }));
    assert_eq!(FreeError::DoubleFree { pfn: 0x1234, order: 2 }.to_string(), "double free of pfn 0x1234 order 2");
    a.drain_all();
    let c = check_invariants(a).unwrap();
    assert_eq!(c.allocated, 0);
}

#[test]
fn compound_and_owner_words() {
    let a = make(64, 0, 0, &[(0, 64)]);
    let mm = a.mem_map().unwrap();
    a.set_min_free_kbytes(0);
    let c = a.alloc_pages(GFP_KERNEL | Gfp::GFP_COMP, 3, cpu(0)).unwrap();
    let head = a.pfn_to_page(c).unwrap();
    assert!(head.is_head());
    assert!(a.pfn_to_page(Pfn(c.0 + 7)).unwrap().is_tail());
    assert_eq!(a.page_to_pfn(head), Some(c));
    assert_eq!(page_owner(&mm, c), 0);
    assert!(set_page_owner(&mm, c, 0xfeed_f00d_dead_beef));
    assert!(set_page_owner(&mm, Pfn(c.0 + 1), 7));
    assert_eq!(page_owner(&mm, c), 0xfeed_f00d_dead_beef);
    a.free_pages(c, 3, cpu(0)).unwrap();
    assert!(!set_page_owner(&mm, c, 1), "free page: links, not an owner");
    assert_eq!(page_owner(&mm, Pfn(c.0 + 1)), 0, "owner words cleared on free");
    let again = a.alloc_pages(GFP_KERNEL, 3, cpu(0)).unwrap();
    assert_eq!(page_owner(&mm, again), 0);
    assert!(!a.pfn_to_page(Pfn(again.0 + 1)).unwrap().is_tail());
    assert!(want_init_on_alloc(GFP_KERNEL | Gfp::GFP_ZERO));
    assert!(!want_init_on_alloc(GFP_KERNEL));
}

#[test]
fn watermarks_low_for_kernel_min_for_atomic() {
    // 4096 pages = 16 MiB: min_free_kbytes = sqrt(16384 * 16) = 512 kB = 128 pages.
    let a = make(4096, 0, 0, &[(0, 4096)]);
    assert_eq!(a.min_free_kbytes(), 512);
    let w = a.snapshot().zone(ZoneType::Normal).wmarks;
    assert_eq!(w, Watermarks { min: 128, low: 160, high: 192 });
    a.set_pcp_high_batch(0, 1); // no per-CPU caching: exact counts
    let mut got = hold_all(a, GFP_KERNEL);
    // GFP_KERNEL stops when taking a page would leave free <= low.
    assert_eq!(a.snapshot().nr_free_pages(), 160);
    // GFP_NOWAIT goes down to min.
    while let Ok(p) = a.alloc_pages(GFP_NOWAIT, 0, cpu(0)) {
        got.push(p);
    }
    assert_eq!(a.snapshot().nr_free_pages(), 128);
    // GFP_ATOMIC: min - min/2 - (min/2)/4 = 128 - 64 - 16 = 48.
    while let Ok(p) = a.alloc_pages(GFP_ATOMIC, 0, cpu(0)) {
        got.push(p);
    }
    assert_eq!(a.snapshot().nr_free_pages(), 48);
    for p in got {
        a.free_pages(p, 0, cpu(0)).unwrap();
    }
    assert_eq!(a.snapshot().nr_free_pages(), 4096);
}

#[test]
fn pcp_batches_and_drains() {
    let a = make(16384, 0, 0, &[(0, 16384)]);
    a.set_min_free_kbytes(0);
    // Linux's zone_batchsize for 64 MiB: batch 3, high 18.
    let p = a.alloc_pages(GFP_KERNEL, 0, cpu(2)).unwrap();
    assert_eq!(a.snapshot().nr_pcp_pages(), 2, "a batch of 3 moved, one handed out");
    let more: Vec<_> = (0..30).map(|_| a.alloc_pages(GFP_KERNEL, 0, cpu(2)).unwrap()).collect();
    a.free_pages(p, 0, cpu(2)).unwrap();
    for q in more {
        a.free_pages(q, 0, cpu(2)).unwrap();
    }
    assert!(a.snapshot().nr_pcp_pages() < 18, "drained at high");
    assert_eq!(a.snapshot().nr_free_pages(), 16384);
    a.drain_cpu(cpu(2));
    assert_eq!(a.snapshot().nr_pcp_pages(), 0);
    assert_eq!(a.snapshot().zone(ZoneType::Normal).free_pages, 16384);
}

#[test]
fn migratetype_fallback_steals_pageblocks() {
    let a = make(4096, 0, 0, &[(0, 4096)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(0, 1);
    let mut pt = String::new();
    report::pagetypeinfo(a, &mut pt).unwrap();
    assert!(pt.ends_with("Node 0, zone   Normal            0            8            0            0 \n"));
    // Everything starts Movable; an unmovable request steals a whole pageblock.
    let u = a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap();
    let r = a.alloc_pages(GFP_KERNEL | Gfp::GFP_RECLAIMABLE, 0, cpu(0)).unwrap();
    let m = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, cpu(0)).unwrap();
    // As in Linux, stealing a block of at least a pageblock claims all its pageblocks;
    // the smallest such block is stolen (see `Zone::rmqueue_fallback`): U took the only
    // one, the order-12 block (8 pageblocks), R then the smallest piece of a pageblock
    // or more (order 9: 1 pageblock), M the next one on its fallbacks (order 10: 2).
    let counts = a.lock_zone(1).pageblock_counts();
    assert_eq!(counts, [5, 2, 1, 0, 0]);
    assert_ne!(u.0 / 512, r.0 / 512);
    assert_ne!(m.0 / 512, u.0 / 512);
    let types: Vec<_> = {
        let mut v = Vec::new();
        memmap::for_each_free_block(a, |_, p, _, mt| v.push((p / 512, mt)));
        v
    };
    assert!(types.iter().any(|&(b, mt)| b == u.0 / 512 && mt == MigrateType::Unmovable));
    for p in [u, r, m] {
        a.free_pages(p, 0, cpu(0)).unwrap();
    }
    a.drain_all();
    assert_eq!(blocks(a), [(0, 12)]);
}

/// Claiming a pageblock moves every free block in it to the new type, the one on its
/// last page included, and nothing of the next pageblock (Linux's
/// `move_freepages_block`): pageblock 1 has 257 free pages (512..768 and 1023), more
/// than half, so an unmovable request's fallback claims it; 1024 stays Movable.
#[test]
fn claiming_a_pageblock_moves_its_free_blocks_and_no_others() {
    let a = make(2048, 0, 0, &[(512, 768), (1023, 1025)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(0, 1);
    let lists = || {
        let mut v = Vec::new();
        memmap::for_each_free_block(a, |_, p, o, mt| v.push((p, o, mt)));
        v.sort_unstable_by_key(|b| b.0);
        v
    };
    use MigrateType::{Movable, Unmovable};
    assert_eq!(lists(), [(512, 8, Movable), (1023, 0, Movable), (1024, 0, Movable)]);
    // The fallback claims pageblock 1 for its largest block (512, order 8); the request
    // then takes the smallest Unmovable block, the page on the pageblock's last page.
    let u = a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap();
    assert_eq!(u, Pfn(1023));
    assert_eq!(a.pfn_to_page(Pfn(512)).unwrap().pageblock_migratetype(), Unmovable);
    assert_eq!(a.pfn_to_page(Pfn(1024)).unwrap().pageblock_migratetype(), Movable);
    assert_eq!(lists(), [(512, 8, Unmovable), (1024, 0, Movable)]);
    a.free_pages(u, 0, cpu(0)).unwrap();
    assert_eq!(lists(), [(512, 8, Unmovable), (1023, 0, Unmovable), (1024, 0, Movable)]);
}

/// Which free blocks a fallback steal of a block smaller than a pageblock moves (Linux's
/// `can_steal_fallback`): an unmovable (or reclaimable) request, or a block of at least
/// half a pageblock's order, moves every free block of the pageblock to the request's
/// lists; a movable request stealing a smaller block moves that block only. What moved
/// shows in the page the request gets: the smallest block of its type.
#[test]
fn a_small_fallback_steal_moves_its_pageblock_only_for_unmovable_or_large_blocks() {
    use MigrateType::{Movable, Unmovable};
    let lists = |a: &PageAllocator| {
        let mut v = Vec::new();
        memmap::for_each_free_block(a, |_, p, o, mt| v.push((p, o, mt)));
        v.sort_unstable_by_key(|b| b.0);
        v
    };
    // Unmovable, small: pageblock 0 (Movable) has blocks 0 (order 1) and 4 (order 2);
    // the steal of 4 moves both, and the request splits the smaller one.
    let a = make(2048, 0, 0, &[(0, 2), (4, 8)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(0, 1);
    assert_eq!(a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap(), Pfn(0));
    assert_eq!(lists(a), [(1, 0, Unmovable), (4, 2, Unmovable)]);
    // Movable: pageblock 0 claimed Unmovable (its order-9 block), then used down to its
    // blocks of orders 0 to 3 (and 4, for the second case).
    for (keep4, want) in [(false, 8), (true, 1)] {
        let a = make(2048, 0, 0, &[(0, 512)]);
        a.set_min_free_kbytes(0);
        a.set_pcp_high_batch(0, 1);
        assert_eq!(a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap(), Pfn(0));
        for order in if keep4 { 5..=8 } else { 4..=8 } {
            assert_eq!(a.alloc_pages(GFP_KERNEL, order, cpu(0)).unwrap(), Pfn(1 << order));
        }
        let before = lists(a);
        assert!(before.iter().all(|b| b.2 == Unmovable), "{before:?}");
        // The largest block (order 3, or 4) is stolen: alone (order 3: the request
        // splits it, page 8), or with the pageblock's others (order 4: page 1).
        let m = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, cpu(0)).unwrap();
        assert_eq!(m, Pfn(want), "keep4 {keep4}: {before:?} -> {:?}", lists(a));
        let moved: Vec<_> = lists(a).into_iter().filter(|b| b.2 == Movable).map(|b| b.0).collect();
        if keep4 {
            assert_eq!(moved, [2, 4, 8, 16]);
        } else {
            assert_eq!(moved, [9, 10, 12]);
        }
        assert_eq!(a.pfn_to_page(Pfn(0)).unwrap().pageblock_migratetype(), Unmovable, "fewer than half free");
    }
}

#[test]
fn highatomic_reserve() {
    let a = make(8192, 0, 0, &[(0, 8192)]);
    a.set_pcp_high_batch(0, 1);
    // Fill down to the low watermark with GFP_KERNEL so atomic requests take the slow path.
    let held = hold_all(a, GFP_KERNEL);
    let at = a.alloc_pages(GFP_ATOMIC, 1, cpu(0)).unwrap();
    let st = a.snapshot().zone(ZoneType::Normal);
    assert_eq!(st.reserved_highatomic, 512);
    let mut pt = String::new();
    report::pagetypeinfo(a, &mut pt).unwrap();
    assert!(pt.contains(" 1 \n"), "{pt}");
    assert!(a.lock_zone(1).pageblock_counts()[MigrateType::HighAtomic.index()] == 1);
    // Ordinary requests do not count the reserve as free.
    a.free_pages(at, 1, cpu(0)).unwrap();
    give_back(a, held);
    check_invariants(a).unwrap();
}

/// The HighAtomic reserve's bound (Linux's `reserve_highatomic_pageblock`): about 1% of
/// the zone plus one pageblock. 51,200 pages: 512 + 512 = 1,024 pages, two pageblocks
/// exactly; a third is refused.
#[test]
fn the_highatomic_reserve_holds_at_most_a_hundredth_of_the_zone_plus_a_pageblock() {
    let a = make(51200, 0, 0, &[(0, 51200)]);
    for pb in 0..4 {
        a.lock_zone(1).reserve_highatomic(pb * 512);
    }
    assert_eq!(a.snapshot().zone(ZoneType::Normal).reserved_highatomic, 1024);
    let ha: Vec<_> = (0..4).map(|pb| a.pfn_to_page(Pfn(pb * 512)).unwrap().pageblock_migratetype()).collect();
    use MigrateType::{HighAtomic, Movable};
    assert_eq!(ha, [HighAtomic, HighAtomic, Movable, Movable]);
}

/// With memory short and the only free pages beyond the watermark in the HighAtomic
/// reserve, an ordinary request gets the reserve back (Linux's
/// `unreserve_highatomic_pageblock`, before OOM): the pageblock takes the request's type,
/// its pages count as free again, and the request is served.
#[test]
fn an_ordinary_request_gets_the_highatomic_reserve_back_when_memory_is_short() {
    let a = make(4096, 0, 0, &[(0, 4096)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(0, 1);
    let mut held = hold_all(a, GFP_KERNEL);
    // A pageblock of held pages reserved, then 64 of its pages freed: the reserve's.
    let pb = held[held.len() / 2].0 & !511;
    a.lock_zone(1).reserve_highatomic(pb);
    assert_eq!(a.snapshot().zone(ZoneType::Normal).reserved_highatomic, 512);
    let mut n = 0;
    held.retain(|&p| {
        let give = p.0 & !511 == pb && n < 64;
        if give {
            a.free_pages(p, 0, cpu(0)).unwrap();
            n += 1;
        }
        !give
    });
    assert_eq!(n, 64);
    let p = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, cpu(0)).expect("the reserve given back");
    assert_eq!(a.snapshot().zone(ZoneType::Normal).reserved_highatomic, 0);
    assert_eq!(a.pfn_to_page(Pfn(pb)).unwrap().pageblock_migratetype(), MigrateType::Unmovable);
    held.push(p);
    give_back(a, held);
    check_invariants(a).unwrap();
}

/// Lowering `high` drains each list above it down to it, no further (Linux's
/// `percpu_pagelist_high_fraction` update); `drain_cpu` says whether a block went back.
#[test]
fn lowering_high_drains_lists_to_it_and_drain_cpu_says_whether_it_returned_any() {
    let a = make(4096, 0, 0, &[(0, 4096)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(64, 8);
    let got: Vec<_> = (0..20).map(|_| a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap()).collect();
    for p in got {
        a.free_pages(p, 0, cpu(0)).unwrap();
    }
    let count = || a.snapshot().pageset(cpu(0), ZoneType::Normal).count;
    assert!(count() >= 20, "{}", count());
    a.set_pcp_high_batch(5, 1);
    assert_eq!(count(), 5);
    assert!(a.drain_cpu(cpu(0)));
    assert_eq!(count(), 0);
    assert!(!a.drain_cpu(cpu(0)), "nothing to return");
    assert_eq!(a.snapshot().nr_free_pages(), 4096);
}

/// A bulk free that takes a list to its `high` drains it once, down to `high - batch`, as
/// the same frees one at a time would leave it; a bulk allocation hands out exactly the
/// pages asked for, the list's first.
#[test]
fn bulk_free_drains_to_high_minus_batch_and_bulk_alloc_takes_what_is_asked() {
    let a = make(4096, 0, 0, &[(0, 4096)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(16, 4);
    let count = || a.snapshot().pageset(cpu(0), ZoneType::Normal).count;
    let got: Vec<_> = (0..20).map(|_| a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap()).collect();
    a.drain_all();
    a.free_pages_bulk(got.iter().copied(), cpu(0), |e| panic!("{e:?}"));
    assert_eq!(count(), 12);
    // One at a time: the same list length.
    let again: Vec<_> = (0..12).map(|_| a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap()).collect();
    assert_eq!(count(), 0);
    let more: Vec<_> = (0..8).map(|_| a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap()).collect();
    a.drain_all();
    for &p in again.iter().chain(&more) {
        a.free_pages(p, 0, cpu(0)).unwrap();
    }
    assert_eq!(count(), 12);
    let mut out = Vec::new();
    assert_eq!(a.alloc_pages_bulk_with(GFP_KERNEL, cpu(0), 3, |p| out.push(p)), Ok(3));
    assert_eq!((out.len(), count()), (3, 9));
    a.free_pages_bulk(out, cpu(0), |e| panic!("{e:?}"));
    a.drain_all();
    assert_eq!(a.snapshot().nr_free_pages(), 4096);
}

/// fail_page_alloc's knobs read back what was set (the console shows them).
#[test]
fn fail_page_alloc_knobs_read_back() {
    let a = make(64, 0, 0, &[(0, 64)]);
    assert_eq!((a.fail.min_order(), a.fail.ignore_gfp_reclaim()), (0, false));
    a.fail.set_min_order(3);
    a.fail.set_ignore_gfp_reclaim(true);
    assert_eq!((a.fail.min_order(), a.fail.ignore_gfp_reclaim()), (3, true));
    a.fail.set_min_order(2);
    a.fail.set_ignore_gfp_reclaim(false);
    assert_eq!((a.fail.min_order(), a.fail.ignore_gfp_reclaim()), (2, false));
}

/// The memory map's cells: the letters (free orders clamped to the top order's `g`),
/// `is_free`, a cell's total over every kind of page, and the span the map covers.
#[test]
fn memmap_cells_letters_totals_and_span() {
    use memmap::{CellCount, CellState};
    assert_eq!(CellState::Free { order: 16 }.letter(), 'g');
    assert_eq!(CellState::Free { order: 20 }.letter(), 'g');
    assert_eq!(CellState::Free { order: 10 }.letter(), 'a');
    assert!(CellState::Free { order: 0 }.is_free());
    for s in [CellState::Absent, CellState::Reserved, CellState::Isolated, CellState::Used(MigrateType::Movable)] {
        assert!(!s.is_free(), "{s:?}");
    }
    let c = CellCount { free: 1, used: [2, 3, 4, 5, 6], isolated: 7, reserved: 8, absent: 9, max_free_order: None };
    assert_eq!(c.total(), 45);
    let a = make(1024, 0x40, 0, &[(0x40, 0x440)]);
    assert_eq!(memmap::memmap_span(a), Some((Pfn(0x40), Pfn(0x440))));
    assert_eq!(memmap::memmap_span(&PageAllocator::new()), None);
}

/// `/proc/meminfo`'s two numbers in kB, and a zone's span from its first pfn.
#[test]
fn meminfo_kb_and_zone_span() {
    let a = make(1024, 0x40, 0, &[(0x40, 0x440)]);
    let z = a.snapshot().zone(ZoneType::Normal);
    assert_eq!((z.start_pfn, z.spanned_pages), (0x40, 1024));
    let mi = a.snapshot().meminfo();
    assert_eq!((mi.total_pages, mi.free_pages), (1024, 1024));
    let p = a.alloc_pages(GFP_KERNEL, 3, cpu(0)).unwrap();
    a.drain_all();
    let mi = a.snapshot().meminfo();
    assert_eq!((mi.total_kb(), mi.free_kb()), (4096, 4096 - 32));
    a.free_pages(p, 3, cpu(0)).unwrap();
}

/// check_invariants sees a pageblock whose pages disagree on its type (one descriptor
/// changed behind the allocator's back), and the state is fine again once it agrees.
#[test]
fn check_invariants_sees_a_pageblock_whose_pages_disagree() {
    let a = make(2048, 0, 0, &[(0, 2048)]);
    check_invariants(a).unwrap();
    let page = a.pfn_to_page(Pfn(1024 + 77)).unwrap();
    let mt = page.pageblock_migratetype();
    page.set_block_mt(MigrateType::Reclaimable);
    assert_eq!(check_invariants(a).err(), Some("pageblock whose pages disagree on its migratetype"));
    page.set_block_mt(mt);
    check_invariants(a).unwrap();
}

/// check_invariants sees a page inside a held block with flags of its own: a tail mark in
/// a block that is not compound, a head's flags in a compound one.
#[test]
fn check_invariants_sees_a_block_whose_inside_pages_are_marked() {
    let want = Some("page inside a block has flags of its own");
    let a = make(1024, 0, 0, &[(0, 1024)]);
    for (gfp, wrong) in [
        (GFP_KERNEL, page::PageState::Tail),
        (GFP_KERNEL | Gfp::GFP_COMP, page::PageState::Head { order: 0, compound: false, tail_owner: false }),
    ] {
        let p = a.alloc_pages(gfp, 2, cpu(0)).unwrap();
        check_invariants(a).unwrap();
        let inside = a.pfn_to_page(Pfn(p.0 + 2)).unwrap();
        let was = inside.state();
        inside.set_state(wrong);
        assert_eq!(check_invariants(a).err(), want, "{gfp:?}");
        inside.set_state(was);
        a.free_pages(p, 2, cpu(0)).unwrap();
    }
    check_invariants(a).unwrap();
}

/// check_invariants reports a per-CPU list of order-1 blocks that loops, and returns: in
/// a mem_map of an odd number of pages the pages it counts (two per block) never equal
/// the mem_map's length, so the guard must fire on passing it, not on meeting it.
#[test]
fn check_invariants_reports_a_looping_pcp_list_of_order_1_blocks() {
    let a = make(1001, 0, 0, &[(0, 1001)]);
    a.set_pcp_high_batch(64, 1);
    let x = a.alloc_pages(GFP_KERNEL, 1, cpu(0)).unwrap();
    let y = a.alloc_pages(GFP_KERNEL, 1, cpu(0)).unwrap();
    a.free_pages(x, 1, cpu(0)).unwrap();
    a.free_pages(y, 1, cpu(0)).unwrap();
    check_invariants(a).unwrap();
    let mm = a.mem_map().unwrap();
    assert_eq!(mm.pages.len() % 2, 1);
    let heads: Vec<u32> = (0..MAX_NR_ZONES)
        .flat_map(|z| (0..migratetype::MIGRATE_PCPTYPES).map(move |l| (z, l)))
        .map(|(z, l)| a.pcp[0][z].lists_head(1, l))
        .filter(|&h| h != page::NIL)
        .collect();
    let [head] = heads[..] else { panic!("the two blocks on one order-1 list: {heads:?}") };
    let tail = mm.at(head).next();
    assert_ne!(tail, page::NIL);
    assert_eq!(mm.at(tail).next(), page::NIL);
    mm.at(tail).set_next(head);
    // The checker runs on its own thread: a guard that misses the loop hangs it, and
    // the test fails after a bound instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(check_invariants(a).err()));
    let got = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("check_invariants hung on a looping pcp list");
    assert_eq!(got, Some("pcp list loops"));
    mm.at(tail).set_next(page::NIL);
    check_invariants(a).unwrap();
}

/// check_invariants sees a free block that is misaligned, below its zone, past its end
/// or a CMA page on an ordinary list (each put there behind the allocator's back, through
/// the zone's own free), and a published free count out of step with the zone's.
#[test]
fn check_invariants_sees_misplaced_free_blocks() {
    let want = Some("free block misaligned or outside its zone");
    // Misaligned: pages 1 and 2 of a held order-2 block given back as an order-1 block.
    let a = make(1024, 0, 0, &[(0, 1024)]);
    a.set_pcp_high_batch(0, 1);
    let p = a.alloc_pages(GFP_KERNEL, 2, cpu(0)).unwrap();
    a.lock_zone(1).free_one(p.0 + 1, 1, MigrateType::Movable);
    assert_eq!(check_invariants(a).err(), want);
    // Below the zone: a held DMA page put on Normal's list.
    let a = make(1024, 0, 256, &[(0, 1024)]);
    a.set_pcp_high_batch(0, 1);
    let p = a.alloc_pages(GFP_KERNEL | Gfp::GFP_DMA, 0, cpu(0)).unwrap();
    assert!(p.0 < 256);
    a.lock_zone(1).free_one(p.0, 0, MigrateType::Movable);
    assert_eq!(check_invariants(a).err(), want);
    // Past the end: an aligned order-4 block at 992 of a zone that ends at 1000.
    let a = make(1000, 0, 0, &[(0, 1000)]);
    a.set_pcp_high_batch(0, 1);
    let held = hold_all(a, GFP_KERNEL);
    assert!(held.contains(&Pfn(992)));
    a.lock_zone(1).free_one(992, 4, MigrateType::Movable);
    assert_eq!(check_invariants(a).err(), want);
    // A CMA area page on an ordinary list.
    let a = make(2048, 0, 0, &[(0, 2048)]);
    a.set_pcp_high_batch(0, 1);
    assert_eq!(Cma::new(a).declare(4 << 20).unwrap().base, Pfn(1024));
    // (The second movable page comes from the area, then more than half the free pages.)
    let _ = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, cpu(0)).unwrap();
    let p = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, cpu(0)).unwrap();
    assert!(p.0 >= 1024, "{p:?}");
    a.lock_zone(1).free_one(p.0, 0, MigrateType::Movable);
    assert_eq!(check_invariants(a).err(), Some("free block on the wrong side of the CMA area's lists"));
    // On the Cma lists but outside the area: below it (its pageblock type changed too),
    // and across its end (an order-10 block from 1024 over an area of 0..1536). Every
    // page is held first, so that nothing merges with the block put there.
    for (mib, pfn, order) in [(4u64, 100u64, 0u32), (6, 1024, 10)] {
        let a = make(2048, 0, 0, &[(0, 2048)]);
        a.set_pcp_high_batch(0, 1);
        let area = Cma::new(a).declare(mib << 20).unwrap();
        let all = GFP_HIGHUSER_MOVABLE | Gfp::GFP_MEMALLOC | Gfp::GFP_NOWARN;
        hold_all(a, all);
        assert_eq!(a.snapshot().nr_free_pages(), 0);
        let page = a.pfn_to_page(Pfn(pfn)).unwrap();
        if !(area.base.0..area.base.0 + area.pages).contains(&pfn) {
            page.set_block_mt(MigrateType::Cma);
        }
        a.lock_zone(1).free_one(pfn, order, MigrateType::Cma);
        assert_eq!(
            check_invariants(a).err(),
            Some("free block on the wrong side of the CMA area's lists"),
            "{mib} MiB area at {:?}, block {pfn} order {order}",
            area.base
        );
    }
    // The published free count out of step with the zone's.
    let a = make(1024, 0, 0, &[(0, 1024)]);
    a.meta[1].free.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    assert_eq!(check_invariants(a).err(), Some("zone free_pages does not match the lists"));
}

/// `init` refuses an empty `mem_map` and a second run, and says so.
#[test]
fn init_refuses_an_empty_mem_map_and_a_second_run() {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let none: [(PhysAddr, u64); 0] = [];
    assert_eq!(a.init(&[], Pfn(0), pa(0), none, none), Err(InitError::BadMemMap));
    assert_eq!(InitError::BadMemMap.to_string(), "mem_map empty or too large");
    let map: &'static [Page] = Box::leak((0..16).map(|_| Page::new()).collect());
    a.init(map, Pfn(0), pa(0), [(pa(0), 16 * PS)], [(pa(0), 16 * PS)]).unwrap();
    assert_eq!(a.init(map, Pfn(0), pa(0), none, none), Err(InitError::AlreadyInitialized));
    assert_eq!(InitError::AlreadyInitialized.to_string(), "page allocator already initialized");
    assert_eq!(a.snapshot().nr_free_pages(), 16);
}

#[test]
fn dma_zone_and_zonelist() {
    // Pfns 0..256 DMA, 256..1024 Normal.
    let a = make(1024, 0, 256, &[(0, 1024)]);
    a.set_min_free_kbytes(0);
    assert_eq!(a.snapshot().zone(ZoneType::Dma).managed_pages, 256);
    assert_eq!(a.snapshot().zone(ZoneType::Dma).lowmem_reserve, 3);
    // show_free_areas prints it as Linux does: per zone, what it keeps from requests
    // whose highest zone is each higher one (DMA from Normal's), 0 for itself and below.
    let sfa = s(|w| report::show_free_areas(a, w));
    let reserves: Vec<_> = sfa.lines().filter(|l| l.starts_with("lowmem_reserve[]:")).collect();
    assert_eq!(reserves, ["lowmem_reserve[]: 0 3", "lowmem_reserve[]: 0 0"], "{sfa}");
    let d = a.alloc_pages(GFP_KERNEL | Gfp::GFP_DMA, 4, cpu(0)).unwrap();
    assert!(d.0 < 256);
    // Normal requests fill Normal then fall back to DMA (minus its lowmem reserve).
    let mut n = Vec::new();
    while let Ok(p) = a.alloc_pages(GFP_KERNEL, 4, cpu(0)) {
        n.push(p);
    }
    assert_eq!(n.iter().filter(|p| p.0 < 256).count(), 14);
    // DMA requests never take Normal pages.
    for p in n.drain(..).filter(|p| p.0 >= 256) {
        a.free_pages(p, 4, cpu(0)).unwrap();
    }
    // The lowmem reserve kept the last 16 DMA pages for DMA requests.
    let last = a.alloc_pages(GFP_KERNEL | Gfp::GFP_DMA, 4, cpu(0)).unwrap();
    assert!(last.0 < 256);
    assert_eq!(
        a.alloc_pages(GFP_KERNEL | Gfp::GFP_DMA, 4, cpu(0)).unwrap_err(),
        AllocFailure::NoMemory { order: 4, gfp: GFP_KERNEL | Gfp::GFP_DMA }
    );
    // Without a DMA zone, __GFP_DMA means Normal.
    let b = make(64, 0, 0, &[(0, 64)]);
    b.set_min_free_kbytes(0);
    assert!(b.alloc_pages(GFP_KERNEL | Gfp::GFP_DMA, 0, cpu(0)).is_ok());
}

#[test]
fn fault_injection() {
    let a = make(64, 0, 0, &[(0, 64)]);
    a.set_min_free_kbytes(0);
    a.fail.fail_nth(2);
    assert!(a.alloc_pages(GFP_KERNEL, 0, cpu(0)).is_ok());
    let e = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, cpu(0)).unwrap_err();
    assert_eq!(e, AllocFailure::Injected { order: 0, gfp: GFP_KERNEL | Gfp::GFP_NOWARN });
    assert!(!e.should_warn());
    assert_eq!(s(|w| report::warn_alloc(w, "kworker", &e)), "");
    assert!(a.alloc_pages(GFP_KERNEL, 0, cpu(0)).is_ok());
    assert_eq!((a.fail.attempts(), a.fail.injected(), a.snapshot().failures), (2, 1, 1));
}

#[test]
fn reports_exact() {
    let a = make(1024, 0, 0, &[(0x10, 0x400)]);
    a.set_min_free_kbytes(0);
    let zeros = "     0 ".repeat(7);
    assert_eq!(
        s(|w| report::buddyinfo(a, w)),
        format!(
            "Node 0, zone   Normal      0      0      0      0      1      1      1      1      1      1 {zeros}\n"
        )
    );
    let hdr = "Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10     11     12     13     14     15     16 \n";
    let pt = s(|w| report::pagetypeinfo(a, w));
    let expect = format!(
        "Page block order: 9\nPages per block:  512\n\n{hdr}\
Node    0, zone   Normal, type    Unmovable {z17}\n\
Node    0, zone   Normal, type      Movable      0      0      0      0      1      1      1      1      1      1 {zeros}\n\
Node    0, zone   Normal, type  Reclaimable {z17}\n\
Node    0, zone   Normal, type   HighAtomic {z17}\n\
\nNumber of blocks type     Unmovable      Movable  Reclaimable   HighAtomic \n\
Node 0, zone   Normal            0            2            0            0 \n",
        z17 = "     0 ".repeat(17)
    );
    assert_eq!(pt, expect);
    // The unmovable request claims the order-9 Movable pageblock and splits it.
    let p = a.alloc_pages(GFP_KERNEL, 4, cpu(0)).unwrap();
    assert_eq!(p, Pfn(0x200));
    let sfa = s(|w| report::show_free_areas(a, w));
    assert_eq!(
        sfa,
        "Mem-Info:\n\
Normal free:3968kB min:0kB low:4kB high:8kB reserved_highatomic:0KB present:4096kB managed:4032kB free_pcp:0kB\n\
lowmem_reserve[]: 0 0\n\
Normal: 0*4kB 0*8kB 0*16kB 0*32kB 2*64kB (UM) 2*128kB (UM) 2*256kB (UM) 2*512kB (UM) 2*1024kB (UM) 0*2048kB 0*4096kB 0*8192kB 0*16384kB 0*32768kB 0*65536kB 0*131072kB 0*262144kB = 3968kB\n"
    );
    let f = AllocFailure::NoMemory { order: 3, gfp: GFP_ATOMIC };
    assert_eq!(
        s(|w| report::warn_alloc(w, "kernel", &f)),
        "kernel: page allocation failure: order:3, mode:0xa20(GFP_ATOMIC), nodemask=(null)\n"
    );
    a.free_pages(p, 4, cpu(0)).unwrap();
}

#[test]
fn shared_static_across_threads() {
    static A: PageAllocator = PageAllocator::new();
    let map: &'static [Page] = Box::leak((0..8192).map(|_| Page::new()).collect());
    A.init(map, Pfn(0), pa(0), [(pa(0), 8192 * PS)], [(pa(0), 8192 * PS)]).unwrap();
    std::thread::scope(|sc| {
        for cpu in CpuId::all() {
            sc.spawn(move || {
                let mut held = Vec::new();
                for i in 0..3000u32 {
                    let order = if i % 7 == 0 { i % 4 } else { 0 };
                    if let Ok(p) = A.alloc_pages(GFP_KERNEL, order, cpu) {
                        held.push((p, order));
                    }
                    if i % 3 == 0 {
                        if let Some((p, o)) = held.pop() {
                            A.free_pages(p, o, cpu).unwrap();
                        }
                    }
                }
                for (p, o) in held {
                    A.free_pages(p, o, cpu).unwrap();
                }
            });
        }
    });
    A.drain_all();
    assert_eq!(check_invariants(&A).unwrap().buddy_free, 8192);
    assert_eq!(blocks(&A), [(0, 13)]);
}

#[test]
fn fuzz_run_pseudo_random_inputs() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in [0usize, 1, 4, 300, 3001] {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fuzz::run(&data);
    }
}

#[test]
fn init_from_memblock_like_boot() {
    use crate::memblock::Memblock;
    // 4 MiB of RAM, firmware page 0, kernel image at 512 KiB..2 MiB, mem_map placed by
    // memblock (top-down) like the kernel does.
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0), 4 << 20).unwrap();
    mb.reserve(PhysAddr::new(0), 0x1000, "firmware").unwrap();
    mb.reserve(PhysAddr::new(0x8_0000), 0x18_0000, "kernel").unwrap();
    let pages = (4 << 20) / PS;
    let (per, total) = mem_map_overhead(pages as usize);
    assert_eq!((per, total), (16, 16384));
    let mm_pa = mb.alloc(total as u64, PS).unwrap();
    assert_eq!(mm_pa, PhysAddr::new((4 << 20) - 16384));
    let free_bytes = mb.free_total();
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..pages).map(|_| Page::new()).collect());
    a.init_from_memblock(map, Pfn(0), PhysAddr::new(0), &mb).unwrap();
    assert_eq!(a.snapshot().nr_managed_pages() * PS, free_bytes);
    let st = a.snapshot().zone(ZoneType::Normal);
    assert_eq!(st.present_pages, pages);
    let c = check_invariants(a).unwrap();
    assert_eq!(c.reserved, pages - a.snapshot().nr_managed_pages());
    // The reserved pages are refused.
    assert_eq!(a.free_pages(Pfn(0x80), 0, cpu(0)), Err(FreeError::Reserved { pfn: 0x80 }));
    assert_eq!(a.free_pages(mm_pa.pfn(), 0, cpu(0)), Err(FreeError::Reserved { pfn: mm_pa.pfn().0 }));
}

#[test]
fn tail_owner_words_cleared_on_free() {
    let a = make(64, 0, 0, &[(0, 64)]);
    let mm = a.mem_map().unwrap();
    a.set_min_free_kbytes(0);
    // Order 3 goes through the per-CPU lists, order 5 through the zone.
    for order in [3u32, 5] {
        let b = a.alloc_pages(GFP_KERNEL, order, cpu(0)).unwrap();
        let t = Pfn(b.0 + 3);
        assert!(set_page_owner(&mm, t, 0xabc));
        assert_eq!(page_owner(&mm, t), 0xabc);
        assert!(matches!(a.pfn_to_page(b).unwrap().state(), page::PageState::Head { tail_owner: true, .. }));
        a.free_pages(b, order, cpu(0)).unwrap();
        assert!(!set_page_owner(&mm, t, 1), "page inside a free block");
        assert_eq!(page_owner(&mm, t), 0);
        check_invariants(a).unwrap();
    }
    a.drain_all();
    for pfn in 0..64 {
        assert_eq!(page_owner(&mm, Pfn(pfn)), 0);
    }
    let b = a.alloc_pages(GFP_KERNEL, 6, cpu(0)).unwrap();
    for pfn in b.0..b.0 + 64 {
        assert_eq!(page_owner(&mm, Pfn(pfn)), 0);
    }
}

#[test]
fn interrupt_finding_the_lists_busy_takes_the_zone_path() {
    let a = make(64, 0, 0, &[(0, 64)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(16, 4);
    let c = cpu(1);
    let zi = ZoneType::Normal.index();
    // One allocation refills a batch of 4; its free leaves 4 pages on the list.
    let p = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
    a.free_pages(p, 0, c).unwrap();
    assert_eq!(a.snapshot().nr_pcp_pages(), 4);
    let buddy = a.snapshot().nr_free_buddy_pages();
    {
        // The code an interrupt came in on holds this CPU's lists.
        let held = a.try_local_pcp(c, zi).unwrap();
        assert!(a.try_local_pcp(c, zi).is_none(), "the lists are taken once");
        // The interrupt's allocation and free go to the zone, not to the held lists.
        let q = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
        assert_eq!((a.snapshot().nr_pcp_pages(), a.snapshot().nr_free_buddy_pages()), (4, buddy - 1));
        let r = a.alloc_pages(GFP_KERNEL, 2, c).unwrap();
        assert_eq!(a.snapshot().nr_free_buddy_pages(), buddy - 5);
        a.free_pages(q, 0, c).unwrap();
        a.free_pages(r, 2, c).unwrap();
        assert_eq!((a.snapshot().nr_pcp_pages(), a.snapshot().nr_free_buddy_pages()), (4, buddy));
        // A double free from the interrupt is refused as anywhere else.
        let e = a.free_pages(q, 0, c).unwrap_err();
        assert!(matches!(e, FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }), "{e}");
        // A drain IPI arriving now is left to the owner.
        a.drain_cpu(c);
        assert_eq!(a.snapshot().nr_pcp_pages(), 4);
        drop(held);
    }
    check_invariants(a).unwrap();
    // The owner's next free does the drain that was asked for.
    let s = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
    a.free_pages(s, 0, c).unwrap();
    assert_eq!(a.snapshot().nr_pcp_pages(), 0);
    check_invariants(a).unwrap();
    assert_eq!(blocks(a), [(0, 6)]);
}

#[test]
fn bulk_alloc_and_free() {
    let a = make(64, 0, 0, &[(0, 64)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(16, 4);
    let c = cpu(2);
    // Warm the list with a batch, then ask for 20: what the list of the request's
    // migratetype holds, the rest from the zone.
    let p = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
    a.free_pages(p, 0, c).unwrap();
    let (pcp, buddy) = (a.snapshot().nr_pcp_pages(), a.snapshot().nr_free_buddy_pages());
    assert!(pcp >= 3);
    let mut out = [Pfn(0); 20];
    assert_eq!(a.alloc_pages_bulk(GFP_KERNEL, c, &mut out), Ok(20));
    assert_eq!(a.snapshot().nr_free_pages(), 44);
    assert!(
        a.snapshot().nr_free_buddy_pages() < buddy && a.snapshot().nr_pcp_pages() < pcp,
        "both the list and the zone gave"
    );
    let mut seen: Vec<u64> = out.iter().map(|p| p.0).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 20, "distinct pages");
    for &p in &out {
        assert!(a.pfn_to_page(p).unwrap().is_head());
    }
    // Not more than there is: 44 left, all of them (no watermark here).
    a.drain_all();
    let mut big = [Pfn(0); 64];
    assert_eq!(a.alloc_pages_bulk(GFP_KERNEL, c, &mut big), Ok(44));
    // Empty: the single-page fallback reports the failure.
    let mut one = [Pfn(0); 3];
    assert_eq!(a.alloc_pages_bulk(GFP_KERNEL, c, &mut one), Err(AllocFailure::NoMemory { order: 0, gfp: GFP_KERNEL }));
    // Batched free: good pages freed, a bad one (double) refused and reported.
    let mut refused = Vec::new();
    let list: Vec<Pfn> = out.iter().chain(&big[..44]).copied().chain([out[0]]).collect();
    a.free_pages_bulk(list, c, |e| refused.push(e));
    assert_eq!(refused.len(), 1);
    assert!(matches!(refused[0], FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }));
    assert!(a.snapshot().nr_pcp_pages() < 16, "drained to the zone in the end");
    check_invariants(a).unwrap();
    a.drain_all();
    assert_eq!(blocks(a), [(0, 6)]);
    // Fault injection armed: one page through the full path, and the injected failure.
    a.fail.fail_nth(1);
    assert!(matches!(a.alloc_pages_bulk(GFP_KERNEL, c, &mut out), Err(AllocFailure::Injected { .. })));
    assert_eq!(a.alloc_pages_bulk(GFP_KERNEL, c, &mut out[..0]), Ok(0));
}

#[test]
fn vm_events_count_pages_on_every_path() {
    let a = make(64, 0, 0, &[(0, 64)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(16, 4);
    let n = ZoneType::Normal.index();
    assert_eq!(a.snapshot().events, VmEvents::default());
    let p = a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap(); // slow path (refill)
    let q = a.alloc_pages(GFP_KERNEL, 0, cpu(0)).unwrap(); // fast path
    let r = a.alloc_pages(GFP_KERNEL, 4, cpu(1)).unwrap(); // zone
    assert_eq!(a.snapshot().events.pgalloc[n], 18);
    a.free_pages(p, 0, cpu(2)).unwrap(); // another CPU's list
    a.free_pages(r, 4, cpu(1)).unwrap();
    assert_eq!(a.free_pages(p, 0, cpu(2)), Err(FreeError::DoubleFree { pfn: p.0, order: 0 }));
    assert_eq!(a.snapshot().events.pgfree, 17, "a refused free is not an event");
    {
        // Interrupts that find the lists busy count in the zone.
        let _held = a.try_local_pcp(cpu(0), n).unwrap();
        let s = a.alloc_pages(GFP_KERNEL, 1, cpu(0)).unwrap();
        a.free_pages(s, 1, cpu(0)).unwrap();
        a.free_pages(q, 0, cpu(0)).unwrap();
    }
    let e = a.snapshot().events;
    assert_eq!((e.pgalloc[n], e.pgfree), (20, 20));
    assert_eq!(e.pgalloc[ZoneType::Dma.index()], 0);
    // Blocks above order 0 through the per-CPU lists count every page: a plain block
    // on the fast path, a compound one on the slow path's per-CPU branch.
    let plain = a.alloc_pages(GFP_KERNEL, 2, cpu(0)).unwrap();
    let comp = a.alloc_pages(GFP_KERNEL.union(crate::gfp::Gfp::GFP_COMP), 3, cpu(0)).unwrap();
    assert_eq!(a.snapshot().events.pgalloc[n], 32);
    a.free_pages(plain, 2, cpu(0)).unwrap();
    assert_eq!(a.snapshot().events.pgfree, 24, "a plain order-2 free counts 4 pages");
    a.free_pages(comp, 3, cpu(0)).unwrap();
    assert_eq!(a.snapshot().events.pgfree, 32, "a compound order-3 free counts 8 pages");
    let ps = a.snapshot().pageset(cpu(0), ZoneType::Normal);
    assert_eq!((ps.high, ps.batch), (16, 4));
    let total: u64 = CpuId::all().map(|c| a.snapshot().pageset(c, ZoneType::Normal).count).sum();
    assert_eq!(total, a.snapshot().nr_pcp_pages());
}

/// Pages parked on one per-CPU list (frees of another migratetype) must not make every
/// drain empty the list in use: in the steady state a single-page alloc+free touches
/// only this CPU's lists, not the zone (before the round-robin drain, every operation
/// refilled and drained a batch: order-0 alloc+free 100 times slower in the kernel).
#[test]
fn parked_pcp_pages_do_not_make_every_free_drain_the_list_in_use() {
    let a = make(16384, 0, 0, &[(0, 16384)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(16, 4);
    let c = cpu(0);
    let movable: Vec<_> = (0..15).map(|_| a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, c).unwrap()).collect();
    for p in movable {
        a.free_pages(p, 0, c).unwrap();
    }
    assert!(a.snapshot().nr_pcp_pages() >= 12, "movable pages parked on the list");
    for _ in 0..100 {
        let p = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
        a.free_pages(p, 0, c).unwrap();
    }
    let buddy = a.snapshot().nr_free_buddy_pages();
    for i in 0..100 {
        let p = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
        assert_eq!(a.snapshot().nr_free_buddy_pages(), buddy, "alloc {i} refilled from the zone");
        a.free_pages(p, 0, c).unwrap();
        assert_eq!(a.snapshot().nr_free_buddy_pages(), buddy, "free {i} drained to the zone");
    }
    a.drain_cpu(c);
    assert_eq!(a.snapshot().nr_free_pages(), 16384);
}

/// A request that finds the zone empty while its own CPU's lists hold free blocks of
/// another migratetype (the rest of a refill for an unmovable page) drains them and gets
/// one, as Linux drains the per-CPU lists before it gives up: every free page can be
/// allocated (the fragmentation lab's vmalloc filler needs the last ones).
#[test]
fn a_failing_request_drains_its_own_lists_first() {
    let a = make(1024, 0, 0, &[(0, 1024)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(16, 4);
    let c = cpu(0);
    let table = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
    assert_eq!(a.snapshot().nr_pcp_pages(), 3, "the rest of the refill on the Unmovable list");
    // Movable, no watermark (as the lab's filler): every free page is within reach.
    let mut held = Vec::new();
    while let Ok(p) = a.alloc_pages(GFP_ATOMIC | Gfp::GFP_MOVABLE | Gfp::GFP_MEMALLOC | Gfp::GFP_NOWARN, 0, c) {
        held.push(p);
    }
    assert_eq!(held.len(), 1023, "free pages on this CPU's Unmovable list were out of reach");
    assert_eq!(a.snapshot().nr_free_pages(), 0);
    for p in held {
        a.free_pages(p, 0, c).unwrap();
    }
    a.free_pages(table, 0, c).unwrap();
    a.drain_all();
    assert_eq!(a.snapshot().nr_free_pages(), 1024);
    check_invariants(a).unwrap();
}

/// The fast path's cached watermark follows `min_free_kbytes` at once: with pages on
/// this CPU's list, raising the watermarks above the zone's free pages refuses the next
/// request (no zone operation in between republishes anything), and lowering them
/// again lets the list serve the next one.
#[test]
fn watermark_change_reaches_the_fast_path_at_once() {
    let a = make(4096, 0, 0, &[(0, 4096)]);
    a.set_pcp_high_batch(64, 16);
    let c = cpu(0);
    let p = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
    a.free_pages(p, 0, c).unwrap();
    let on_list = a.snapshot().nr_pcp_pages();
    assert_eq!(on_list, 16);
    // min = 4096 pages: low is above every free page.
    a.set_min_free_kbytes(16384);
    assert!(a.snapshot().zone(ZoneType::Normal).wmarks.low > 4096);
    assert_eq!(
        a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, c),
        Err(AllocFailure::NoMemory { order: 0, gfp: GFP_KERNEL | Gfp::GFP_NOWARN })
    );
    assert_eq!(a.snapshot().nr_pcp_pages(), 0, "the refusal drained the list before failing");
    // Lowered again (the list refilled first): the list serves the request.
    let p = a.alloc_pages(GFP_NOWAIT, 0, c).unwrap_err();
    assert!(matches!(p, AllocFailure::NoMemory { .. }));
    a.set_min_free_kbytes(0);
    let p = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
    a.free_pages(p, 0, c).unwrap();
    let before = (a.snapshot().zone(ZoneType::Normal).free_pages, a.snapshot().nr_pcp_pages());
    let p = a.alloc_pages(GFP_KERNEL, 0, c).unwrap();
    assert_eq!(
        (a.snapshot().zone(ZoneType::Normal).free_pages, a.snapshot().nr_pcp_pages()),
        (before.0, before.1 - 1),
        "served from the list"
    );
    a.free_pages(p, 0, c).unwrap();
    a.drain_all();
    assert_eq!(a.snapshot().nr_free_pages(), 4096);
    check_invariants(a).unwrap();
}

/// The refusal for each state a freed page can be in: only a live head of exactly the
/// freed order is no refusal (the slow path and the lost race of `transition_from` both
/// rely on it).
#[test]
fn classify_names_the_refusal_of_every_state() {
    use free::classify;
    use page::PageState;
    let mt = MigrateType::Movable;
    let head = |order, compound| PageState::Head { order, compound, tail_owner: false };
    assert_eq!(classify(8, 3, head(3, false)), Ok(()));
    assert_eq!(classify(8, 3, head(3, true)), Ok(()));
    assert_eq!(classify(8, 3, head(2, false)), Err(FreeError::WrongOrder { pfn: 8, order: 3, allocated: 2 }));
    assert_eq!(classify(8, 0, PageState::Buddy { order: 0, mt }), Err(FreeError::DoubleFree { pfn: 8, order: 0 }));
    assert_eq!(classify(8, 1, PageState::Pcp { order: 1, mt }), Err(FreeError::DoubleFree { pfn: 8, order: 1 }));
    assert_eq!(classify(8, 0, PageState::Reserved), Err(FreeError::Reserved { pfn: 8 }));
    assert_eq!(classify(9, 0, PageState::Tail), Err(FreeError::TailPage { pfn: 9 }));
    assert_eq!(classify(8, 2, PageState::Unmarked), Err(FreeError::NotAllocated { pfn: 8, order: 2 }));
}

/// A list at `high` gives back a batch of pages, counted in pages, not blocks: four
/// order-2 frees reach high 16, and the drain takes two blocks (8 pages), not all.
#[test]
fn a_drain_at_high_gives_back_a_batch_of_pages() {
    let a = make(1024, 0, 0, &[(0, 1024)]);
    a.set_min_free_kbytes(0);
    a.set_pcp_high_batch(16, 8);
    let c = cpu(1);
    let blocks: Vec<_> = (0..4).map(|_| a.alloc_pages(GFP_KERNEL, 2, c).unwrap()).collect();
    a.drain_all();
    assert_eq!(a.snapshot().nr_pcp_pages(), 0);
    for (k, b) in blocks.into_iter().enumerate() {
        a.free_pages(b, 2, c).unwrap();
        let expect = if k < 3 { 4 * (k as u64 + 1) } else { 8 };
        assert_eq!(a.snapshot().pageset(c, ZoneType::Normal).count, expect, "after free {k}");
    }
    assert_eq!(a.snapshot().nr_free_pages(), 1024);
    check_invariants(a).unwrap();
}
