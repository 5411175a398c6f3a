//! Smoke test of every workload on every allocator with tiny sizes (the benches run the same
//! code with real sizes): allocations are non-null, live sets never overlap, everything is
//! given back.

use mm_bench::pages::{self, Mixed, OurPages, PageAlloc};
use mm_bench::peers::{BsaBytes, BsaFrames, BsaHeapPages, HostMalloc, LlaBytes, TalcAlloc};
use mm_bench::small::{self, disjoint, Batch, ByteAlloc, Mix, OurKmalloc, BATCH_SIZE};
use mm_bench::vmalloc::VmBench;

const NR_PAGES: usize = 1024;
const HEAP: usize = 4 << 20;

fn check_pages<A: PageAlloc>(mut a: A) -> A {
    for order in [0, 3] {
        let f = pages::pair(&mut a, order);
        assert_eq!(f % (1 << order), 0, "{}: unaligned block", a.name());
    }
    let mut m = Mixed::fill(&mut a, 32, 1);
    for _ in 0..200 {
        m.step(&mut a);
    }
    assert!(m.is_sane(), "{}: overlapping or unaligned blocks", a.name());
    m.drain(&mut a);
    a
}

#[test]
fn page_workloads_on_every_allocator() {
    for pcp in [true, false] {
        let a = OurPages::new(NR_PAGES, pcp);
        let all = a.allocator().snapshot().nr_managed_pages();
        let a = check_pages(a).allocator();
        a.drain_all();
        assert_eq!(a.snapshot().nr_free_pages(), all, "ours leaked pages");
        mm::page_alloc::check_invariants(a).expect("buddy invariants");
    }
    // Everything came back: the whole range is one block again.
    let mut f = check_pages(BsaFrames::new(NR_PAGES));
    assert!(f.alloc(10).is_some(), "bsa-frame: range not coalesced");
    let mut h = check_pages(BsaHeapPages::new(NR_PAGES));
    assert!(h.alloc(9).is_some(), "bsa-heap: range not coalesced");
}

fn check_small<A: ByteAlloc>(mut a: A) {
    let inside = |a: &A, p: *mut u8, s: usize| a.arena().is_none_or(|ar| ar.contains(p, s));
    for size in [8usize, 64, 256, 1024, 4096] {
        let p = small::pair(&mut a, size);
        assert!(inside(&a, p as *mut u8, size), "{}: outside its arena", a.name());
    }
    let mut batch = Batch::new(100, 2);
    batch.run_with(&mut a, |ptrs| {
        let objs: Vec<_> = ptrs.iter().map(|&p| (p, BATCH_SIZE)).collect();
        assert!(disjoint(&objs), "batch objects overlap");
    });
    let mut m = Mix::fill(&mut a, 200, 3);
    for _ in 0..1000 {
        m.step(&mut a);
    }
    assert!(disjoint(&m.live), "{}: mix objects overlap", a.name());
    assert!(m.live.iter().all(|&(p, s)| inside(&a, p, s)));
    // Write every live byte: a wrong size or overlap would corrupt the allocator.
    for &(p, s) in &m.live {
        // SAFETY: a live allocation of `s` bytes.
        unsafe { p.write_bytes(0x5a, s) };
    }
    m.drain(&mut a);
    if let Some(used) = a.in_use() {
        assert_eq!(used, 0, "{}: bytes still in use", a.name());
    }
}

#[test]
fn small_workloads_on_every_allocator() {
    let ours = OurKmalloc::new(HEAP);
    let slab = ours.slab();
    check_small(ours);
    assert_eq!(slab.validate_all(), 0, "slab validation errors");
    check_small(TalcAlloc::new(HEAP));
    check_small(BsaBytes::new(HEAP));
    check_small(LlaBytes::new(HEAP));
    check_small(HostMalloc);
}

#[test]
fn vmalloc_and_floor() {
    let mut vb = VmBench::new(2048);
    let src = vb.source();
    let free0 = src.alloc.snapshot().nr_free_pages();
    for bytes in [4096usize, 1 << 20] {
        vb.vmalloc_with(bytes, |va, pt| {
            for off in (0..bytes).step_by(4096) {
                let t = pt.translate(va.add(off as u64)).expect("vmalloc page not mapped");
                let host = src.phys_to_virt(t.pa);
                assert!(vb_contains(src, host.as_u64() as *const u8));
            }
        });
        assert_ne!(vb.floor(bytes), 0);
        src.alloc.drain_all();
        assert_eq!(src.alloc.snapshot().nr_free_pages(), free0, "pages leaked");
    }
    assert!(vb.arena().size() >= 2048 * 4096);
}

fn vb_contains(src: &mm::page_alloc::BuddyPageSource<'_>, p: *const u8) -> bool {
    src.virt_to_phys(mm::addr::VirtAddr::new(p as u64)).is_some()
}

use mm::page_source::PageSource;

#[test]
fn interleaved_rounds_time_every_contender() {
    use mm_bench::interleaved::{self, Contender, Plan};
    use std::time::Duration;
    let mut ours = OurKmalloc::new(HEAP);
    let mut peer = LlaBytes::new(HEAP);
    let mut c = [
        Contender::new("ours-kmalloc", |n| (0..n).fold(0, |s, _| s ^ small::pair(&mut ours, 64) as u64)),
        Contender::new("linked-list", |n| (0..n).fold(0, |s, _| s ^ small::pair(&mut peer, 64) as u64)).with_ops(2),
    ];
    let t = interleaved::run(&mut c, Plan { rounds: 3, burst: Duration::from_micros(200) });
    assert_eq!(t.iter().map(|t| (t.name, t.ns.len())).collect::<Vec<_>>(), [("ours-kmalloc", 3), ("linked-list", 3)]);
    assert!(t.iter().all(|t| t.ns.iter().all(|&ns| ns > 0.0 && ns.is_finite())));
    let r = interleaved::ratios(&t[0], &t[1]);
    assert_eq!(r.len(), 3);
    let (lo, mid, hi) = interleaved::stats(r);
    assert!(lo <= mid && mid <= hi && lo > 0.0);
}
