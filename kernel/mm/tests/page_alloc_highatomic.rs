//! The HighAtomic reserve (Linux's `reserve_highatomic_pageblock`): a high-order atomic
//! request served below the low watermark reserves its pageblock, from the per-CPU
//! orders and from the zone alike; an order-0 one never does.

use mm::addr::{Pfn, PhysAddr, PAGE_SIZE};
use mm::cpu::CpuId;
use mm::gfp::{Gfp, GFP_ATOMIC, GFP_KERNEL};
use mm::page_alloc::{check_invariants, MigrateType, Page, PageAllocator, ZoneType, PAGEBLOCK_NR_PAGES};

#[test]
fn only_high_order_atomic_requests_reserve_a_pageblock() {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..8192).map(|_| Page::new()).collect());
    let all = [(PhysAddr::new(0), 8192 * PAGE_SIZE as u64)];
    a.init(map, Pfn(0), PhysAddr::new(0), all, all).expect("init");
    a.set_pcp_high_batch(0, 1);
    let cpu = CpuId::BOOT;
    let reserved = || a.snapshot().zone(ZoneType::Normal).reserved_highatomic;
    let mt = |p: Pfn| a.pfn_to_page(p).unwrap().pageblock_migratetype();
    // Down to the low watermark: atomic requests now pass only the slow path's check.
    let mut held = Vec::new();
    while let Ok(p) = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, cpu) {
        held.push((p, 0));
        assert!(held.len() <= 8192);
    }
    let p = a.alloc_pages(GFP_ATOMIC, 0, cpu).expect("atomic order 0");
    assert_eq!(reserved(), 0, "an order-0 atomic request reserved a pageblock");
    assert_ne!(mt(p), MigrateType::HighAtomic);
    held.push((p, 0));
    // Order 4 (above the per-CPU orders): served by the zone, reserves its pageblock.
    let p = a.alloc_pages(GFP_ATOMIC, 4, cpu).expect("atomic order 4");
    assert_eq!(reserved(), PAGEBLOCK_NR_PAGES, "an order-4 atomic request reserved nothing");
    assert_eq!(mt(p), MigrateType::HighAtomic);
    held.push((p, 4));
    for (p, o) in held {
        a.free_pages(p, o, cpu).unwrap();
    }
    a.drain_all();
    check_invariants(a).unwrap_or_else(|e| panic!("{e}"));
}
