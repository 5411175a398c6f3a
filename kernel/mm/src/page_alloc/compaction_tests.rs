//! Compaction's evacuation step and CMA pageblocks, against the model owners of
//! `migrate_tests` over the real allocator.
//!
//! The layout mirrors the QEMU fragmentation lab at a 64th of its size: 3840 pages
//! (3.75 blocks of order 10, as 960 MiB is 3.75 blocks of order 16), the first 64
//! reserved (the kernel image), and a checkerboard of movable pages holding half of the
//! rest. The scanners pack the held pages at the top, across the only order-10 block
//! that could be free; the evacuation frees it.

use super::migrate_tests::{checkerboard, cpu, max_free_order, Model, KIND_B, STRANGER};
use super::*;
use crate::addr::{PhysAddr, PAGE_SIZE};
use crate::gfp::{GFP_ATOMIC, GFP_KERNEL};
use crate::owner::{movable_owner, set_movable_owner};

/// Pages in the lab-like zone.
const N: u64 = 3840;
/// Pages reserved at its start.
const RESERVED: u64 = 64;

/// An allocator over `N` pages from pfn 0 whose first `RESERVED` are never free.
fn make_lab() -> &'static PageAllocator {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..N).map(|_| Page::new()).collect());
    let pa = |p: u64| PhysAddr::new(p << crate::addr::PAGE_SHIFT);
    let all = [(pa(0), N * PAGE_SIZE as u64)];
    a.init(map, Pfn(0), pa(0), all, [(pa(RESERVED), (N - RESERVED) * PAGE_SIZE as u64)]).unwrap();
    a.set_min_free_kbytes(0);
    a
}

/// The lab's layout: the fresh zone's largest free order (10), then the checkerboard;
/// returns that order and the pages kept.
fn lab_layout(a: &PageAllocator, m: &Model) -> (Option<u32>, Vec<MovableOwner>) {
    let fresh = max_free_order(a);
    assert_eq!(fresh, Some(10), "two free order-10 blocks: 1024..2048 and 2048..3072");
    let kept = checkerboard(a, m);
    assert!(kept.len() as u64 > (N - RESERVED) / 2 - 8, "{} kept", kept.len());
    assert!(max_free_order(a) <= Some(2));
    (fresh, kept)
}

#[test]
fn compact_memory_reaches_the_fresh_top_order_by_emptying_the_block_the_scanners_overlap() {
    let a = make_lab();
    let m = Model::new();
    m.register(a);
    let (fresh, kept) = lab_layout(a, m);
    a.drain_all();
    let census = check_invariants(a).unwrap();
    let free = a.snapshot().nr_free_pages();
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
    let ev = r.evacuation.expect("the evacuation step ran");
    // The scanners alone stopped one order below the top: the held pages reach below
    // 2048, into the one order-10 block that could be free.
    assert_eq!(ev.scanners_order, Some(9), "{r:?}");
    assert_eq!((ev.order, ev.block, ev.tried, ev.failed), (10, Some(Pfn(1024)), 1, 0), "{r:?}");
    let overlap: Vec<_> = kept.iter().map(|&o| m.at(o).0).filter(|p| (1024..2048).contains(p)).collect();
    assert_eq!(overlap, [], "nothing of the model left in the block {r:?}");
    assert!(ev.migrated > 0 && ev.migrated < 256, "only the overlapping pages moved: {ev:?}");
    assert_eq!(ev.pages, ev.migrated, "single pages");
    // (The migrate scanner's last try, when the scanners meet, finds no target.)
    assert!(r.failed <= 1, "{r:?}");
    assert_eq!(max_free_order(a), fresh, "the fresh boot's largest order again");
    // Every page's contents and owner reference intact, nothing leaked.
    m.check(a);
    a.drain_all();
    assert_eq!(check_invariants(a).unwrap().allocated, census.allocated, "no leak");
    assert_eq!(a.snapshot().nr_free_pages(), free);
    // Counted as compaction: every migration in pgmigrate_success and compact_isolated.
    let e = a.snapshot().migrate;
    assert_eq!((e.pgmigrate_success, e.pgmigrate_fail), (r.migrated, r.failed));
    assert_eq!(e.compact_isolated, 2 * r.migrated);
    assert_eq!((e.compact_migrate_scanned, e.compact_free_scanned), (r.migrate_scanned, r.free_scanned));
    // An unmovable page now (the pcp refill steals a pageblock of free movable memory)
    // takes the smallest free block of a pageblock or more, not the one just emptied.
    let k = a.alloc_pages(GFP_ATOMIC, 0, cpu()).unwrap();
    assert!(!(1024..2048).contains(&k.0), "{k:?}");
    assert_eq!(max_free_order(a), fresh);
    a.free_pages(k, 0, cpu()).unwrap();
    let big = a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 10, cpu()).unwrap();
    assert_eq!(big, Pfn(1024));
    a.free_pages(big, 10, cpu()).unwrap();
    // A second compaction keeps the block: the free scanner does not break the zone's
    // largest free blocks, so the evacuated pages are not brought back into it.
    let r2 = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
    assert_eq!(r2.evacuation, None, "{r2:?}");
    assert_eq!(max_free_order(a), fresh);
    m.check(a);
    m.free_all(a, kept, N - RESERVED);
}

/// The lab layout with the highest held page below each of `tops` handed to an owner
/// that refuses to move it; compacts and checks that whatever happened left a consistent
/// state: contents and references intact, the pinned pages still their owner's, no leak.
fn compact_with_pinned_pages(tops: &[u64]) -> (&'static PageAllocator, CompactResult) {
    let a = make_lab();
    let m = Model::new();
    m.register(a);
    let (_, mut kept) = lab_layout(a, m);
    let stranger = MovableOwner::new(STRANGER, 0);
    let mut pinned = Vec::new();
    for &top in tops {
        let victim = *kept.iter().filter(|&&o| m.at(o).0 < top).max_by_key(|&&o| m.at(o).0).unwrap();
        let pfn = Pfn(m.at(victim).0);
        assert!(pfn.0 > top - 64, "{pfn:?}");
        let (t, i) = m.table(victim).unwrap();
        t.lock().unwrap()[i] = None;
        m.mem.lock().unwrap().remove(&pfn.0);
        assert!(set_movable_owner(&a.mem_map().unwrap(), pfn, stranger));
        pinned.push(pfn);
        kept.retain(|&o| o != victim);
    }
    a.drain_all();
    let census = check_invariants(a).unwrap();
    let free = a.snapshot().nr_free_pages();
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
    m.check(a);
    for &p in &pinned {
        assert_eq!(movable_owner(&a.mem_map().unwrap(), p), Some((stranger, 0)));
    }
    a.drain_all();
    assert_eq!(check_invariants(a).unwrap().allocated, census.allocated, "no leak");
    assert_eq!(a.snapshot().nr_free_pages(), free);
    assert_eq!(a.snapshot().migrate.pgmigrate_success, r.migrated);
    (a, r)
}

#[test]
fn an_evacuation_whose_block_does_not_move_tries_the_next_candidate() {
    // A pinned page in the block the scanners overlap: that candidate is given up (what
    // moved stays moved), and the next, 2048..3072, wholly used but with room for its
    // pages below once the first try freed most of 1024..2048, is emptied.
    let (a, r) = compact_with_pinned_pages(&[2048]);
    let ev = r.evacuation.expect("the evacuation step ran");
    assert_eq!((ev.scanners_order, ev.order, ev.block, ev.tried, ev.failed), (Some(9), 10, Some(Pfn(2048)), 2, 1));
    assert!(ev.migrated > 1024, "{ev:?}");
    assert_eq!(max_free_order(a), Some(10));
}

#[test]
fn an_evacuation_whose_blocks_do_not_move_gives_up_cleanly() {
    // Both candidates pinned: the evacuation stops after trying each, the scanners'
    // order stays, and the state is consistent (checked in the helper).
    let (a, r) = compact_with_pinned_pages(&[2048, 3072]);
    let ev = r.evacuation.expect("the evacuation step ran");
    assert_eq!((ev.scanners_order, ev.order, ev.block, ev.tried, ev.failed), (Some(9), 10, None, 2, 2), "{r:?}");
    assert_eq!(max_free_order(a), Some(9));
}

#[test]
fn direct_compaction_empties_a_block_for_a_pageblock_order_request() {
    let a = make_lab();
    let m = Model::new();
    m.register(a);
    let (fresh, kept) = lab_layout(a, m);
    // Order 9: the scanners suffice; order 10: only with the evacuation step.
    let p9 = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 9, cpu()).unwrap();
    let e = a.snapshot().migrate;
    assert_eq!((e.compact_stall, e.compact_success), (1, 1));
    a.free_pages(p9, 9, cpu()).unwrap();
    let p10 = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 10, cpu()).unwrap();
    let e = a.snapshot().migrate;
    assert_eq!((e.compact_stall, e.compact_success, e.compact_fail), (2, 2, 0));
    assert_eq!(p10, Pfn(1024));
    m.check(a);
    a.free_pages(p10, 10, cpu()).unwrap();
    a.drain_all();
    assert_eq!(max_free_order(a), fresh);
    m.free_all(a, kept, N - RESERVED);
}

#[test]
fn compaction_scans_cma_pageblocks_and_moves_only_movable_data_into_them() {
    let a = super::migrate_tests::make(4096);
    let m = Model::new();
    m.register(a);
    let cma = 3072..4096;
    assert_eq!(Cma::new(a).declare(4 << 20).unwrap().base, Pfn(cma.start));
    // A few unmovable pages, then the checkerboard: the area is borrowed, and half of it
    // is free again, in single pages.
    let unmovable: Vec<_> = (0..16).map(|_| a.alloc_pages(GFP_KERNEL, 0, cpu()).unwrap()).collect();
    let kept = checkerboard(a, m);
    let in_cma = |m: &Model| kept.iter().filter(|&&o| cma.contains(&m.at(o).0)).count() as u64;
    let borrowed = in_cma(m);
    let cma_free = Cma::new(a).stats().unwrap().free;
    assert!(borrowed > 500 && cma_free > 500, "{borrowed} borrowed, {cma_free} free");
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
    m.check(a);
    // The free scanner started in the area (the top of the zone) and filled its holes
    // with movable pages from below; nothing else was moved into it.
    assert!(Cma::new(a).stats().unwrap().free < 16, "{:?} {r:?}", Cma::new(a).stats());
    assert!(in_cma(m) > borrowed + 400, "{} in the area", in_cma(m));
    assert!(unmovable.iter().all(|p| !cma.contains(&p.0)));
    let mut live_in_cma = 0;
    for p in cma.clone() {
        if let Some((o, _)) = movable_owner(&a.mem_map().unwrap(), Pfn(p)) {
            assert!(o.kind == KIND_B, "{o:?}");
            live_in_cma += 1;
        } else {
            assert!(!matches!(a.pfn_to_page(Pfn(p)).unwrap().state(), page::PageState::Head { .. }), "pfn {p}");
        }
    }
    assert_eq!(live_in_cma, in_cma(m));
    // And a cma_alloc still gets the area back.
    let mut st = CmaAllocStats::default();
    a.drain_all();
    assert_eq!(Cma::new(a).alloc(1024, 10, cpu(), &mut st), Ok(Pfn(cma.start)));
    m.check(a);
    Cma::new(a).release(Pfn(cma.start), 1024).unwrap();
    for o in kept {
        m.free(a, o);
    }
    for p in unmovable {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    a.drain_all();
    assert_eq!(a.snapshot().nr_free_pages(), 4096);
}

#[test]
fn compaction_moves_movable_pages_out_of_low_cma_pageblocks() {
    // 6 MiB of 8: the area is the zone's first 1536 pages.
    let a = super::migrate_tests::make(2048);
    let m = Model::new();
    m.register(a);
    assert_eq!(Cma::new(a).declare(6 << 20).unwrap().base, Pfn(0));
    let mut kept = checkerboard(a, m);
    // The Movable pageblock above the area is emptied: the only ordinary free block,
    // which the free scanner leaves alone (the zone's largest), and nothing to evacuate.
    kept.retain(|&o| {
        let high = m.at(o).0 >= 1536;
        if high {
            m.free(a, o);
        }
        !high
    });
    a.drain_all();
    let low = |m: &Model| kept.iter().filter(|&&o| m.at(o).0 < 512).count();
    assert!(low(m) > 200, "{}", low(m));
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
    m.check(a);
    // The migrate scanner walked the area's pageblocks from the bottom and moved their
    // pages up, into the area's holes: the first pageblock is free, a whole block on the
    // Cma list.
    assert_eq!(low(m), 0, "{r:?}");
    assert!(r.migrated as usize >= 256 && r.failed <= 1 && r.evacuation.is_none(), "{r:?}");
    assert!(kept.iter().all(|&o| m.at(o).0 < 1536), "only within the area");
    let mut blocks = Vec::new();
    memmap::for_each_free_block(a, |_, p, o, mt| blocks.push((p, o, mt)));
    assert!(blocks.iter().any(|&(p, o, mt)| p == 0 && o >= 9 && mt == MigrateType::Cma), "{blocks:?}");
    m.free_all(a, kept, 2048);
}

/// The free scanner starts at the zone's last page: with every page held but two, the
/// one at the top and pfn 1, compaction for an order-1 block moves the page at pfn 0
/// into the top page (the rest of its batch finds no target).
#[test]
fn the_free_scanner_starts_at_the_last_page_of_the_zone() {
    let a = super::migrate_tests::make(4096);
    let m = Model::new();
    m.register(a);
    let mut held = Vec::new();
    m.fill(a, 0, &mut held);
    // The last pages, below the low watermark, as atomic (unmovable) pages; pfn 4095
    // among them is given back.
    let mut pinned = Vec::new();
    while let Ok(p) = a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 0, cpu()) {
        pinned.push(p);
    }
    assert_eq!(a.snapshot().nr_free_pages(), 0, "every page held");
    assert!(pinned.contains(&Pfn(4095)), "{pinned:?}");
    pinned.retain(|&p| p != Pfn(4095));
    a.free_pages(Pfn(4095), 0, cpu()).unwrap();
    let first = *held.iter().find(|&&o| m.at(o).0 == 0).unwrap();
    let one = *held.iter().find(|&&o| m.at(o).0 == 1).unwrap();
    m.free(a, one);
    a.drain_all();
    let zi = ZoneType::Normal.index();
    assert_eq!(a.snapshot().zones[zi].free_pages, 2);
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(zi, Some(1));
    assert!(r.success, "{r:?}");
    assert_eq!(m.at(first).0, 4095, "pfn 0's page went to the top page");
    // The first of the batch's other blocks fails for want of a target (counted once);
    // the rest are not tried. The free scanner read the top pageblock, then each one
    // below it down to the migrate scanner's, every page once: 7 x 512.
    assert_eq!((r.migrated, r.failed, r.free_scanned), (1, 1, 7 * 512), "{r:?}");
    m.check(a);
    for p in pinned {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    let rest: Vec<_> = held.into_iter().filter(|&o| o != one).collect();
    m.free_all(a, rest, 4096);
}

/// An allocator over `n` pages from pfn `base` (no DMA zone), no watermark.
fn make_at(base: u64, n: u64) -> &'static PageAllocator {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..n).map(|_| Page::new()).collect());
    let all = [(PhysAddr::new(base << crate::addr::PAGE_SHIFT), n * PAGE_SIZE as u64)];
    a.init(map, Pfn(base), PhysAddr::new(0), all, all).unwrap();
    a.set_min_free_kbytes(0);
    a
}

/// A fresh 4096-page zone from pfn 0, with the model's owners registered.
fn fresh_zone() -> (&'static PageAllocator, &'static Model) {
    let a = make_at(0, 4096);
    let m = Model::new();
    m.register(a);
    (a, m)
}

/// The evacuation step alone, for `orders`, in the Normal zone: its result.
fn evacuate(a: &PageAllocator, orders: (u32, u32)) -> CompactResult {
    let mut res = CompactResult::default();
    Compactor::new(a, MigrateCtx::sync(cpu())).evacuate_block(ZoneType::Normal.index(), orders, &mut res);
    res
}

/// The scanners start in the first and the last pageblock and stop where they meet: the
/// migrate scanner never takes its sources from the free scanner's first pageblock. With
/// pages of movable owners only in the last pageblock (everything below held by
/// allocations of no movable owner, in Movable pageblocks that the scanner reads),
/// compaction moves nothing and fails nothing; for a zone that starts at a pageblock
/// boundary and for one that starts inside a pageblock (whose blocks the migrate scanner
/// must still take at their boundaries).
#[test]
fn the_migrate_scanner_stops_below_the_last_pageblock() {
    for base in [0, 100] {
        let a = make_at(base, 4096);
        let last_block = (base + 4095) & !(PAGEBLOCK_NR_PAGES - 1);
        let m = Model::new();
        m.register(a);
        let mut held = Vec::new();
        m.fill(a, 0, &mut held);
        let (low, top): (Vec<_>, Vec<_>) = held.into_iter().partition(|&o| m.at(o).0 < last_block);
        for o in low {
            m.free(a, o);
        }
        a.drain_all();
        let mut pinned = Vec::new();
        while let Ok(p) = a.alloc_pages(crate::gfp::GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, 0, cpu()) {
            pinned.push(p);
        }
        a.drain_all();
        assert!(pinned.iter().filter(|p| p.0 < last_block).count() as u64 > last_block - base - 90, "{}", pinned.len());
        // Targets in the last pageblock: some of its movable pages given back.
        let (freed, top): (Vec<_>, Vec<_>) = top.into_iter().partition(|&o| m.at(o).0.is_multiple_of(8));
        for o in freed {
            m.free(a, o);
        }
        a.drain_all();
        let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
        assert_eq!((r.migrated, r.failed), (0, 0), "zone from pfn {base}: {r:?}");
        m.check(a);
        for p in pinned {
            a.free_pages(p, 0, cpu()).unwrap();
        }
        m.free_all(a, top, 4096);
    }
}

/// What the migrate scanner reads (`compact_migrate_scanned`), as Linux's
/// `isolate_migratepages_block` steps: a free block's head or an allocated block's head
/// is one step over the whole block, any other page (a tail, from a pageblock that
/// starts inside a block) one step each. Over a fresh 4096-page zone (one free order-12
/// block), the scanner reads pageblocks 0-6: one step for block 0, 512 for each of the
/// six others.
#[test]
fn the_migrate_scanner_steps_over_whole_blocks() {
    let a = make_at(0, 4096);
    let zi = ZoneType::Normal.index();
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(zi, None);
    assert_eq!((r.migrate_scanned, r.migrated), (1 + 6 * 512, 0), "{r:?}");
    // An allocated order-10 block at the start (movable, so that its pageblocks stay
    // scannable; of no registered owner): one step for it, then its tail pageblock
    // (512..1024) page by page, the free order-10 block at 1024 and its tails, the free
    // order-11 block at 2048 and the tails of its pageblocks 2560 and 3072.
    let b = a.alloc_pages(crate::gfp::GFP_HIGHUSER_MOVABLE, 10, cpu()).unwrap();
    assert_eq!(b, Pfn(0));
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(zi, None);
    assert_eq!((r.migrate_scanned, r.migrated), (1 + 512 + 1 + 512 + 1 + 2 * 512, 0), "{r:?}");
    a.free_pages(b, 10, cpu()).unwrap();
    // An unmovable allocation from the whole free block claims all its pageblocks: the
    // scanner skips each, counted whole.
    let k = a.alloc_pages(GFP_KERNEL, 0, cpu()).unwrap();
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(zi, None);
    assert_eq!((r.migrate_scanned, r.migrated), (7 * 512, 0), "{r:?}");
    a.free_pages(k, 0, cpu()).unwrap();
}

/// A zone of one pageblock: the scanners meet before they start, and a goal already
/// met is a success all the same (the check after the scan).
#[test]
fn a_goal_met_before_the_scan_is_a_success() {
    let a = make_at(0, PAGEBLOCK_NR_PAGES);
    let zi = ZoneType::Normal.index();
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(zi, Some(3));
    assert!(r.success && r.migrate_scanned == 0, "{r:?}");
    // Unless no such block is free: every page held.
    let held: Vec<_> = std::iter::from_fn(|| a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 0, cpu()).ok()).collect();
    a.drain_all();
    assert_eq!(a.snapshot().nr_free_pages(), 0);
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(zi, Some(3));
    assert!(!r.success, "{r:?}");
    for p in held {
        a.free_pages(p, 0, cpu()).unwrap();
    }
}

/// A movable block of pageblock order or more is not the scanner's to move (Linux skips
/// such huge pages in `isolate_migratepages_block`): it stays where it is.
#[test]
fn the_migrate_scanner_leaves_pageblock_sized_blocks_alone() {
    let (a, m) = fresh_zone();
    let big = m.alloc(a, PAGEBLOCK_ORDER, false).unwrap();
    let small = m.alloc(a, PAGEBLOCK_ORDER - 1, false).unwrap();
    let (at_big, at_small) = (m.at(big), m.at(small));
    assert!(at_big.0 < 3584 && at_small.0 < 3584, "{at_big:?} {at_small:?}");
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(ZoneType::Normal.index(), None);
    assert_eq!(m.at(big), at_big, "{r:?}");
    assert_ne!(m.at(small), at_small, "the order-8 block moved up: {r:?}");
    assert_eq!(r.migrated, 1, "{r:?}");
    m.check(a);
    m.free_all(a, [big, small], 4096);
}

/// The free scanner steps over allocated blocks whole (one step per block head) and
/// resumes after the target it took: two order-3 blocks at pfns 0 and 8 move into the
/// two free order-3 blocks of the top pageblock, at 3648 and 3712, the scanner reading
/// the eight heads below the first, the first, and the seven heads between them.
#[test]
fn the_free_scanner_steps_over_blocks_and_resumes_after_its_target() {
    let (a, m) = fresh_zone();
    let mut movers = [m.alloc(a, 3, false).unwrap(), m.alloc(a, 3, true).unwrap()];
    movers.sort_by_key(|&o| m.at(o).0);
    assert_eq!(movers.map(|o| m.at(o).0), [0, 8]);
    // Everything else held in order-3 blocks of no movable owner (the last pages, below
    // the low watermark, as atomic single pages).
    let mut pinned: Vec<(Pfn, u32)> = Vec::new();
    for (gfp, order) in [(crate::gfp::GFP_HIGHUSER_MOVABLE, 3), (GFP_ATOMIC, 0)] {
        while let Ok(p) = a.alloc_pages(gfp | Gfp::GFP_NOWARN, order, cpu()) {
            pinned.push((p, order));
        }
        a.drain_all();
    }
    assert_eq!(a.snapshot().nr_free_pages(), 0);
    for x in [3648, 3712] {
        let i = pinned.iter().position(|&b| b == (Pfn(x), 3)).unwrap();
        let (p, order) = pinned.swap_remove(i);
        a.free_pages(p, order, cpu()).unwrap();
    }
    a.drain_all();
    let before = a.snapshot().events;
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(ZoneType::Normal.index(), Some(4));
    assert!(r.success, "{r:?}");
    assert_eq!(movers.map(|o| m.at(o).0), [3648, 3712], "{r:?}");
    // The targets count as allocated pages, the sources as freed ones: 2 x 8 each.
    let after = a.snapshot().events;
    let zi = ZoneType::Normal.index();
    assert_eq!((after.pgalloc[zi] - before.pgalloc[zi], after.pgfree - before.pgfree), (16, 16));
    assert_eq!((r.migrated, r.failed, r.free_scanned), (2, 0, 9 + 8), "{r:?}");
    m.check(a);
    for (p, order) in pinned {
        a.free_pages(p, order, cpu()).unwrap();
    }
    m.free_all(a, movers, 4096);
}

/// Free pages of an Unmovable pageblock never receive migrated data (Linux's
/// `suitable_migration_target`): with the only free pages in one, compaction moves
/// nothing.
#[test]
fn an_unmovable_pageblock_is_no_target() {
    let (a, m) = fresh_zone();
    let mut held = Vec::new();
    m.fill(a, 0, &mut held);
    let (top, mut held): (Vec<_>, Vec<_>) = held.into_iter().partition(|&o| m.at(o).0 >= 3584);
    for o in top {
        m.free(a, o);
    }
    a.drain_all();
    // An unmovable page claims the free pageblock.
    let k = a.alloc_pages(GFP_KERNEL, 0, cpu()).unwrap();
    assert!(k.0 >= 3584, "{k:?}");
    assert_eq!(a.pfn_to_page(Pfn(3584)).unwrap().pageblock_migratetype(), MigrateType::Unmovable);
    let i = held.iter().position(|&o| m.at(o).0 == 1).unwrap();
    m.free(a, held.swap_remove(i));
    a.drain_all();
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(ZoneType::Normal.index(), Some(1));
    assert_eq!(r.migrated, 0, "{r:?}");
    assert!(held.iter().all(|&o| m.at(o).0 < 3584));
    m.check(a);
    a.free_pages(k, 0, cpu()).unwrap();
    m.free_all(a, held, 4096);
}

/// A 4096-page zone whose pageblock k (k < 7) holds `used[k]` movable pages at its start
/// (at its end for a negative count), the rest of it free; the last pageblock is held
/// whole (its top pages by atomic allocations of no movable owner, so it is no
/// candidate). Returns the model pages by pageblock.
fn evacuation_layout(a: &PageAllocator, m: &'static Model, used: [i64; 7]) -> Vec<Vec<MovableOwner>> {
    evacuation_layout_of(a, m, used, 0)
}

/// [`evacuation_layout`] with the movable pages in blocks of `order` (a block kept
/// when its first page is).
fn evacuation_layout_of(a: &PageAllocator, m: &'static Model, used: [i64; 7], order: u32) -> Vec<Vec<MovableOwner>> {
    let mut held = Vec::new();
    for o in [order, 0] {
        m.fill(a, o, &mut held);
    }
    while a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 0, cpu()).is_ok() {}
    a.drain_all();
    let mut by_block = vec![Vec::new(); 7];
    for o in held {
        let p = m.at(o).0;
        let k = (p / PAGEBLOCK_NR_PAGES) as usize;
        if k >= 7 {
            continue;
        }
        let off = (p % PAGEBLOCK_NR_PAGES) as i64;
        let keep = if used[k] >= 0 { off < used[k] } else { off >= PAGEBLOCK_NR_PAGES as i64 + used[k] };
        if keep {
            by_block[k].push(o);
        } else {
            m.free(a, o);
        }
    }
    a.drain_all();
    by_block
}

/// The evacuation step empties the candidate with the fewest used pages (Linux's
/// `alloc_contig_pages` takes the first that works; emptying the cheapest moves least),
/// not the first: pageblock 3 with 20 pages of 40, 30, 50, 20, 60, 70, 80; of equals,
/// the lowest.
#[test]
fn the_evacuation_empties_the_block_with_the_fewest_used_pages() {
    let (a, m) = fresh_zone();
    let by_block = evacuation_layout(a, m, [40, 30, 50, 20, 60, 70, 80]);
    let res = evacuate(a, (9, 9));
    let ev = res.evacuation.expect("a candidate");
    assert_eq!((ev.order, ev.block, ev.tried, ev.migrated, ev.failed), (9, Some(Pfn(1536)), 1, 20, 0), "{ev:?}");
    assert_eq!((res.migrated, res.failed), (20, 0));
    assert!(res.migrate_scanned > 0 && res.free_scanned > 0, "the evacuation's walks are counted: {res:?}");
    assert!(by_block[3].iter().all(|&o| !(1536..2048).contains(&m.at(o).0)), "block 3's pages moved out");
    m.check(a);
    // Of two with the fewest, the lower; the candidate's census stops at its end (block 2
    // starts with free pages, which are not block 1's); the lowest block takes its
    // targets from above itself, and so does one above a full block.
    let cases = [
        ([40, 20, -100, 20, 60, 70, 80], 512),
        ([20, 40, 50, 20, 60, 70, 80], 0),
        ([512, 20, 50, 30, 60, 70, 80], 512),
    ];
    for (used, want) in cases {
        let (a, m) = fresh_zone();
        evacuation_layout(a, m, used);
        let res = evacuate(a, (9, 9));
        let ev = res.evacuation.unwrap();
        assert_eq!((ev.block, ev.tried), (Some(Pfn(want)), 1), "{used:?}: {ev:?}");
        m.check(a);
    }
}

/// Used pages are counted in pages, not blocks: of pageblocks holding 40, 32, 48, 16,
/// 64, 72 and 80 pages in order-3 blocks, the evacuation empties the one with 16.
#[test]
fn the_evacuation_counts_used_pages_of_larger_blocks() {
    let (a, m) = fresh_zone();
    let by_block = evacuation_layout_of(a, m, [40, 32, 48, 16, 64, 72, 80], 3);
    assert_eq!(by_block[3].len(), 2, "two order-3 blocks");
    let res = evacuate(a, (9, 9));
    let ev = res.evacuation.unwrap();
    assert_eq!((ev.block, ev.tried, ev.migrated, ev.pages), (Some(Pfn(1536)), 1, 2, 16), "{ev:?}");
    // The walk steps over each moved block whole (one step per head). The two moved
    // blocks, freed, merge with the free pages above them into one order-9 block whose
    // head is behind the walk, so it reads the other 496 pages one by one, as Linux's
    // `isolate_migratepages_block` reads the pages of a free block past its head.
    assert_eq!(res.migrate_scanned, 2 + 496, "{res:?}");
    m.check(a);
}

/// The evacuation's targets come up from the zone's start, each search resuming right
/// after the last target: pageblock 0 full of order-3 blocks (64 steps over it), the
/// candidate (pageblock 1) skipped, then two order-3 targets at 1024 and 1032, one step
/// each.
#[test]
fn the_evacuations_targets_resume_after_the_last_one() {
    let (a, m) = fresh_zone();
    let by_block = evacuation_layout_of(a, m, [512, 16, -48, 64, 72, 80, 96], 3);
    assert_eq!(by_block[1].len(), 2);
    let res = evacuate(a, (9, 9));
    let ev = res.evacuation.unwrap();
    assert_eq!((ev.block, ev.tried, ev.migrated), (Some(Pfn(512)), 1, 2), "{ev:?}");
    let mut at: Vec<u64> = by_block[1].iter().map(|&o| m.at(o).0).collect();
    at.sort_unstable();
    assert_eq!(at, [1024, 1032]);
    assert_eq!(res.free_scanned, 64 + 1 + 1, "{res:?}");
    m.check(a);
}

/// A block with an allocation of no movable owner in it cannot be emptied and is no
/// candidate (Linux's `has_unmovable_pages`): the evacuation passes over pageblock 3
/// (the fewest used pages, and one such page) to pageblock 1, in one try.
#[test]
fn a_block_with_an_unmovable_page_is_no_candidate() {
    let (a, m) = fresh_zone();
    evacuation_layout(a, m, [40, 30, 50, 20, 60, 70, 80]);
    let mut taken = Vec::new();
    let pinned = loop {
        let p = a.alloc_pages(crate::gfp::GFP_HIGHUSER_MOVABLE, 0, cpu()).unwrap();
        if (1536 + 20..2048).contains(&p.0) {
            break p;
        }
        taken.push(p);
    };
    for p in taken {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    a.drain_all();
    let res = evacuate(a, (9, 9));
    let ev = res.evacuation.unwrap();
    assert_eq!((ev.block, ev.tried, ev.failed), (Some(Pfn(512)), 1, 0), "{ev:?}");
    m.check(a);
    a.free_pages(pinned, 0, cpu()).unwrap();
}

/// A candidate with one of its free pages on another CPU's per-CPU list is emptied, but
/// its block is not free (this CPU cannot drain that list): the evacuation tries the next
/// candidate rather than report it.
#[test]
fn an_evacuated_block_held_on_another_cpus_list_is_not_the_result() {
    let (a, m) = fresh_zone();
    evacuation_layout(a, m, [40, 30, 50, 20, 60, 70, 80]);
    a.set_pcp_high_batch(64, 16);
    let mut taken = Vec::new();
    let in_block3 = loop {
        let p = a.alloc_pages(crate::gfp::GFP_HIGHUSER_MOVABLE, 0, cpu()).unwrap();
        if (1536 + 20..2048).contains(&p.0) {
            break p;
        }
        taken.push(p);
    };
    a.free_pages(in_block3, 0, CpuId::of(1)).unwrap();
    assert_eq!(a.snapshot().pageset(CpuId::of(1), ZoneType::Normal).count, 1, "on cpu1's list");
    for p in taken {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    a.drain_cpu(cpu());
    let res = evacuate(a, (9, 9));
    let ev = res.evacuation.unwrap();
    assert_eq!((ev.block, ev.tried), (Some(Pfn(512)), 2), "{ev:?}");
    m.check(a);
}

/// Every candidate pinned (one page of a stranger that does not move in each of seven):
/// the evacuation gives up after `MAX_EVACUATE_TRIES` (4) tries, each failure counted in
/// the result.
#[test]
fn the_evacuation_stops_after_four_tries() {
    let (a, m) = fresh_zone();
    let by_block = evacuation_layout(a, m, [40, 30, 50, 20, 60, 70, 80]);
    for b in &by_block {
        let victim = b[0];
        let pfn = Pfn(m.at(victim).0);
        let (t, i) = m.table(victim).unwrap();
        t.lock().unwrap()[i] = None;
        m.mem.lock().unwrap().remove(&pfn.0);
        assert!(set_movable_owner(&a.mem_map().unwrap(), pfn, MovableOwner::new(STRANGER, 0)));
    }
    let res = evacuate(a, (9, 9));
    let ev = res.evacuation.expect("candidates were tried");
    assert_eq!((ev.block, ev.tried), (None, 4), "{ev:?}");
    assert!(ev.failed >= 4, "{ev:?}");
    assert_eq!(res.failed, ev.failed, "the evacuation's failures are the result's");
    m.check(a);
}

/// A candidate of two pageblocks whose second one is the CMA area's is no candidate:
/// every pageblock of it is checked, not only the first (an emptied Cma pageblock does
/// not make an ordinary free block).
#[test]
fn a_candidate_reaching_into_the_cma_area_is_passed_over() {
    let (a, m) = fresh_zone();
    assert_eq!(Cma::new(a).declare(2 << 20).unwrap().base, Pfn(3584));
    let mut held = Vec::new();
    for _ in 0..2 {
        m.fill(a, 0, &mut held);
    }
    // 100 pages kept at the start of pageblocks 0-5, 5 in pageblock 6, none in the area.
    let keep = |p: u64| p < 3584 && p % PAGEBLOCK_NR_PAGES < if p < 3072 { 100 } else { 5 };
    let (kept, freed): (Vec<_>, Vec<_>) = held.into_iter().partition(|&o| keep(m.at(o).0));
    for o in freed {
        m.free(a, o);
    }
    a.drain_all();
    let res = evacuate(a, (10, 10));
    let ev = res.evacuation.unwrap();
    assert_eq!((ev.order, ev.block, ev.tried), (10, Some(Pfn(0)), 1), "{ev:?}");
    m.check(a);
    m.free_all(a, kept, 4096);
}

/// The free blocks of `order` or more on the ordinary lists (not Cma, not HighAtomic).
fn ordinary_blocks(a: &PageAllocator, order: u32) -> Vec<(u64, u32)> {
    let mut v = Vec::new();
    memmap::for_each_free_block(a, |_, p, o, mt| {
        if o >= order && !matches!(mt, MigrateType::Cma | MigrateType::HighAtomic) {
            v.push((p, o));
        }
    });
    v
}

/// Compaction towards an order succeeds on a free block an ordinary request could take:
/// a wholly free CMA area (an order-10 block on the Cma list) is not one, so compaction
/// goes on until an order-10 block is free outside it.
#[test]
fn a_free_cma_area_is_not_compactions_success() {
    let a = super::migrate_tests::make(4096);
    let m = Model::new();
    m.register(a);
    let mut kept = checkerboard(a, m);
    kept.retain(|&o| {
        let high = m.at(o).0 >= 3072;
        if high {
            m.free(a, o);
        }
        !high
    });
    a.drain_all();
    assert_eq!(Cma::new(a).declare(4 << 20).unwrap().base, Pfn(3072));
    assert_eq!(ordinary_blocks(a, 10), []);
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(ZoneType::Normal.index(), Some(10));
    assert!(r.success, "{r:?}");
    assert!(!ordinary_blocks(a, 10).is_empty(), "success without an ordinary order-10 block: {r:?}");
    m.check(a);
    m.free_all(a, kept, 4096);
}

/// Nor is a free block in a HighAtomic reserve: compaction towards order 9 with the only
/// free pageblock reserved for high-order atomic requests goes on until an ordinary
/// order-9 block is free (in the lab's zone, whose first pageblock, with the reserved
/// pages, never comes free: one pageblock's migration is not enough).
#[test]
fn a_free_highatomic_pageblock_is_not_compactions_success() {
    let a = make_lab();
    let m = Model::new();
    m.register(a);
    // The checkerboard, then pageblock 3072..3584 reserved (as a high-order atomic
    // allocation there would have it) and emptied: its pages come back to the HighAtomic
    // list, where no movable page can go. (Reserved before the checkerboard, it would
    // be given back when the checkerboard's last allocation fails, as Linux does.)
    let mut kept = checkerboard(a, m);
    a.lock_zone(ZoneType::Normal.index()).reserve_highatomic(3072);
    assert_eq!(a.pfn_to_page(Pfn(3072)).unwrap().pageblock_migratetype(), MigrateType::HighAtomic);
    kept.retain(|&o| {
        let there = (3072..3584).contains(&m.at(o).0) || (1104..1120).contains(&m.at(o).0);
        if there {
            m.free(a, o);
        }
        !there
    });
    a.drain_all();
    let mut ha = Vec::new();
    memmap::for_each_free_block(a, |_, p, o, mt| {
        if mt == MigrateType::HighAtomic {
            ha.push((p, o));
        }
    });
    assert_eq!(ha, [(3072, 9)]);
    // Beside it, one ordinary free block of order 4 (1104..1120, emptied above) and none
    // larger. A high-order request beyond the per-CPU lists takes the ordinary block; so
    // does an atomic one while the zone is above its low mark, as in Linux, whose fast
    // path has no `ALLOC_HARDER`. Below it, the atomic request's slow path tries the
    // reserve first (Linux's `rmqueue_buddy`).
    assert_eq!(ordinary_blocks(a, 4), [(1104, 4)]);
    for gfp in [GFP_KERNEL, GFP_ATOMIC] {
        let k = a.alloc_pages(gfp | Gfp::GFP_NOWARN, 4, cpu()).unwrap();
        assert_eq!(k, Pfn(1104), "{gfp}");
        a.free_pages(k, 4, cpu()).unwrap();
    }
    let free = a.snapshot().nr_free_pages();
    a.set_min_free_kbytes(free * 4 * 9 / 10);
    let at = a.alloc_pages(GFP_ATOMIC, 4, cpu()).unwrap();
    assert_eq!(at, Pfn(3072));
    a.free_pages(at, 4, cpu()).unwrap();
    a.set_min_free_kbytes(0);
    a.drain_all();
    a.drain_all();
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_zone(ZoneType::Normal.index(), Some(9));
    assert!(r.success, "{r:?}");
    assert!(!ordinary_blocks(a, 9).is_empty(), "success without an ordinary order-9 block: {r:?}");
    m.check(a);
    m.free_all(a, kept, N - RESERVED);
}
