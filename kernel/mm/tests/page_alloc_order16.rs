//! The buddy allocator at full size: more than 2^18 pages, so that blocks of every order
//! up to MAX_PAGE_ORDER (16) are split and merged (the property tests' harness has 2,048
//! pages and never reaches orders 12-16). The free blocks are checked against an
//! independent model, a set of free pages merged pairwise with their buddies order by
//! order, never against what `init` itself produced.

use std::collections::{BTreeMap, BTreeSet};

use mm::addr::{Pfn, PhysAddr, PAGE_SHIFT};
use mm::cpu::CpuId;
use mm::gfp::{Gfp, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_NOWAIT};
use mm::page_alloc::{check_invariants, Page, PageAllocator, ZoneType, MAX_PAGE_ORDER, NR_CPUS};

/// First pfn: not aligned to anything large.
const BASE: u64 = 0xfffb;
/// Pages in the mem_map: 2^18 and a few.
const PAGES: u64 = (1 << 18) + 777;
const END: u64 = BASE + PAGES;
/// The DMA zone ends here: blocks never merge across it.
const DMA_END: u64 = 0x14000;
/// The free ranges (the rest is reserved): a hole in the middle, reserved pages at both ends.
const FREE: [(u64, u64); 2] = [(BASE + 3, 0x30011), (0x30050, END - 9)];

fn pa(pfn: u64) -> PhysAddr {
    PhysAddr::new(pfn << PAGE_SHIFT)
}

fn zone_of(pfn: u64) -> ZoneType {
    if pfn < DMA_END {
        ZoneType::Dma
    } else {
        ZoneType::Normal
    }
}

fn allocator() -> &'static PageAllocator {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..PAGES).map(|_| Page::new()).collect());
    let free = FREE.map(|(s, e)| (pa(s), (e - s) << PAGE_SHIFT));
    a.init(map, Pfn(BASE), pa(DMA_END), [(pa(BASE), PAGES << PAGE_SHIFT)], free).expect("init");
    a
}

/// The model: every free page as an order-0 block, then, order by order, each pair of
/// buddies (both free, in one zone) becomes one block of the next order, up to 16.
fn merged(free_pages: impl IntoIterator<Item = u64>) -> BTreeSet<(u64, u32)> {
    let mut level: BTreeSet<u64> = free_pages.into_iter().collect();
    let mut out = BTreeSet::new();
    for order in 0..=MAX_PAGE_ORDER {
        let mut next = BTreeSet::new();
        for &p in &level {
            let buddy = p ^ (1 << order);
            let pair = order < MAX_PAGE_ORDER && level.contains(&buddy) && zone_of(p) == zone_of(buddy);
            if !pair {
                out.insert((p, order));
            } else if p < buddy {
                next.insert(p);
            }
        }
        level = next;
    }
    out
}

fn initial_model() -> BTreeSet<(u64, u32)> {
    merged(FREE.iter().flat_map(|&(s, e)| s..e))
}

fn free_blocks(a: &PageAllocator) -> BTreeSet<(u64, u32)> {
    let mut v = BTreeSet::new();
    mm::page_alloc::memmap::for_each_free_block(a, |z, p, o, _| {
        assert_eq!(z, zone_of(p), "block {p:#x} on the wrong zone's list");
        assert!(v.insert((p, o)), "block {p:#x} order {o} listed twice");
    });
    v
}

/// A fixed shuffle (xorshift), so that frees come back in no particular order.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[test]
fn the_initial_blocks_are_the_merged_free_ranges() {
    let a = allocator();
    let model = initial_model();
    // The layout does reach the top: two order-16 blocks, both in Normal.
    let top: Vec<_> = model.iter().filter(|b| b.1 == MAX_PAGE_ORDER).collect();
    assert_eq!(top, [&(0x20000, 16), &(0x40000, 16)]);
    assert_eq!(free_blocks(a), model);
    let free: u64 = FREE.iter().map(|&(s, e)| e - s).sum();
    assert_eq!(a.snapshot().nr_free_pages(), free);
}

/// Every page taken one at a time (each split checked against the model), then given back
/// in a shuffled order on every CPU: after a drain the blocks are the initial ones again,
/// order-16 blocks included.
#[test]
fn split_to_single_pages_and_merge_back_through_order_16() {
    let a = allocator();
    a.set_min_free_kbytes(0);
    // One page per refill: each allocation splits exactly one free block.
    a.set_pcp_high_batch(0, 0);
    let initial = initial_model();
    let mut model: BTreeMap<u64, u32> = initial.iter().copied().collect();
    let mut taken = Vec::new();
    let mut top_splits = 0;
    // GFP_NOWAIT goes below the low watermark, to min (0 here); GFP_DMA takes what the
    // DMA zone's lowmem_reserve kept from the Normal requests.
    let gfps = [GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_NOWAIT, GFP_NOWAIT | Gfp::GFP_DMA];
    for gfp in gfps {
        while let Ok(p) = a.alloc_pages(gfp | Gfp::GFP_NOWARN, 0, CpuId::of(taken.len() % NR_CPUS)) {
            let p = p.0;
            // The page came out of a free block of the model, which splits into the
            // buddies of the page at every order below the block's.
            let (&head, &order) = model.range(..=p).next_back().expect("a page below every free block");
            assert!(p < head + (1 << order), "page {p:#x} was not free (block {head:#x} order {order})");
            model.remove(&head);
            for o in 0..order {
                model.insert(((p >> o) ^ 1) << o, o);
            }
            top_splits += (order == MAX_PAGE_ORDER) as u32;
            taken.push(p);
            // Comparing every list after each of 260,000 steps is slow: after the first
            // thousand, and around every split of a large block.
            if taken.len() < 1000 || order >= 10 || taken.len() % 4096 == 0 {
                let now = free_blocks(a);
                let want: BTreeSet<_> = model.iter().map(|(&p, &o)| (p, o)).collect();
                assert_eq!(now, want, "after {} pages (page {p:#x} from order {order})", taken.len());
            }
        }
    }
    assert_eq!(top_splits, 2, "both order-16 blocks were split");
    let free: u64 = FREE.iter().map(|&(s, e)| e - s).sum();
    assert_eq!(taken.len() as u64, free, "every free page was handed out");
    assert_eq!(a.snapshot().nr_free_pages(), 0);
    shuffle(&mut taken, 0x9e37_79b9_7f4a_7c15);
    for (i, &p) in taken.iter().enumerate() {
        a.free_pages(Pfn(p), 0, CpuId::of(i % NR_CPUS)).expect("free");
    }
    a.drain_all();
    check_invariants(a).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(free_blocks(a), initial, "the free pages did not merge back into the initial blocks");
}

/// Order-16 requests take exactly the model's order-16 blocks; freed, they come back as
/// such.
#[test]
fn order_16_blocks_come_and_go_whole() {
    let a = allocator();
    a.set_min_free_kbytes(0);
    let model = initial_model();
    let tops: Vec<u64> = model.iter().filter(|b| b.1 == MAX_PAGE_ORDER).map(|b| b.0).collect();
    let mut got = Vec::new();
    // (Bounded: an allocator that never fails must fail the test, not hang it.)
    while let Ok(p) = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, MAX_PAGE_ORDER, CpuId::BOOT) {
        got.push(p.0);
        assert!(got.len() <= tops.len(), "more order-16 blocks than the zone has");
    }
    got.sort_unstable();
    assert_eq!(got, tops);
    assert!(a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, MAX_PAGE_ORDER + 1, CpuId::BOOT).is_err());
    let b = got[0];
    let free_before = a.snapshot().nr_free_pages();
    a.free_pages(Pfn(b), MAX_PAGE_ORDER, CpuId::BOOT).unwrap();
    assert_eq!(a.snapshot().nr_free_pages(), free_before + (1 << MAX_PAGE_ORDER));
    assert!(free_blocks(a).contains(&(b, MAX_PAGE_ORDER)));
    a.free_pages(Pfn(got[1]), MAX_PAGE_ORDER, CpuId::of(1)).unwrap();
    a.drain_all();
    assert_eq!(free_blocks(a), model);
    check_invariants(a).unwrap_or_else(|e| panic!("{e}"));
}

/// Two free buddies of the top order stay two blocks: merging stops at MAX_PAGE_ORDER
/// (Linux's `__free_one_page` loop, `while (order < MAX_ORDER)`), at `init` and when
/// both come back.
#[test]
fn top_order_buddies_do_not_merge_past_max_order() {
    let pages = 2u64 << MAX_PAGE_ORDER;
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..pages).map(|_| Page::new()).collect());
    let all = [(pa(0), pages << PAGE_SHIFT)];
    a.init(map, Pfn(0), pa(0), all, all).expect("init");
    a.set_min_free_kbytes(0);
    let top = |a: &PageAllocator| {
        let mut v = Vec::new();
        mm::page_alloc::memmap::for_each_free_block(a, |_, p, o, _| v.push((p, o)));
        v.sort_unstable();
        v
    };
    assert_eq!(top(a), [(0, MAX_PAGE_ORDER), (1 << MAX_PAGE_ORDER, MAX_PAGE_ORDER)]);
    let cpu = CpuId::of(0);
    let p = a.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER, cpu).unwrap();
    // (The last free block, below the low mark: taken without watermarks.)
    let q = a.alloc_pages(GFP_NOWAIT | Gfp::GFP_MEMALLOC, MAX_PAGE_ORDER, cpu).unwrap();
    assert_eq!(p.0 ^ q.0, 1 << MAX_PAGE_ORDER, "buddies");
    a.free_pages(p, MAX_PAGE_ORDER, cpu).unwrap();
    a.free_pages(q, MAX_PAGE_ORDER, cpu).unwrap();
    assert_eq!(top(a), [(0, MAX_PAGE_ORDER), (1 << MAX_PAGE_ORDER, MAX_PAGE_ORDER)]);
    check_invariants(a).unwrap_or_else(|e| panic!("{e}"));
}
