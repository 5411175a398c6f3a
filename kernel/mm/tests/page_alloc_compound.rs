//! `__GFP_COMP`: a block of order above 0 becomes a compound page (head marked compound,
//! every other page a tail); an order-0 request with `__GFP_COMP` is a plain page, as in
//! Linux (`prep_compound_page` only for `order > 0`).

use mm::addr::{Pfn, PhysAddr, PAGE_SIZE};
use mm::cpu::CpuId;
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_alloc::page::PageState;
use mm::page_alloc::{Page, PageAllocator};

#[test]
fn comp_marks_tails_only_above_order_0() {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..1024).map(|_| Page::new()).collect());
    let all = [(PhysAddr::new(0), 1024 * PAGE_SIZE as u64)];
    a.init(map, Pfn(0), PhysAddr::new(0), all, all).expect("init");
    let cpu = CpuId::BOOT;
    let state = |p: u64| a.pfn_to_page(Pfn(p)).unwrap().state();
    let p = a.alloc_pages(GFP_KERNEL | Gfp::GFP_COMP, 0, cpu).unwrap();
    assert_eq!(state(p.0), PageState::Head { order: 0, compound: false, tail_owner: false });
    a.free_pages(p, 0, cpu).unwrap();
    for order in [1, 2, 5] {
        let p = a.alloc_pages(GFP_KERNEL | Gfp::GFP_COMP, order, cpu).unwrap();
        assert_eq!(state(p.0), PageState::Head { order, compound: true, tail_owner: false });
        for t in 1..1u64 << order {
            assert_eq!(state(p.0 + t), PageState::Tail, "order {order}: page {t}");
        }
        a.free_pages(p, order, cpu).unwrap();
    }
    a.drain_all();
    assert_eq!(a.snapshot().nr_free_pages(), 1024);
}
