//! vmalloc's cost per page against the floor: one order-0 allocation and one descriptor
//! write. The tables are walked once per L3 table, so the ratio stays under 2.

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use mm::addr::PhysAddr;
use mm::gfp::GFP_KERNEL;
use mm::page_source::PageSource;
use mm::pgtable::desc::Desc;
use mm::pgtable::{PhysMemory, Prot};
use mm::vmalloc::Vmalloc;

const PAGES: usize = 8192;

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

#[test]
fn vmalloc_per_page_is_within_2x_of_alloc_plus_one_write() {
    let sim = Sim::new(PAGES + 64);
    sim.dirty.set(false);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let table = PhysAddr::new(sim.alloc_frame().unwrap());
    let mut got = Vec::with_capacity(PAGES);
    let floor = best_of(7, || {
        got.clear();
        let t0 = Instant::now();
        for i in 0..PAGES {
            let pa = sim.alloc_pages(GFP_KERNEL, 0).unwrap();
            sim.write_entry(table, i % 512, Desc::leaf(pa.as_u64(), Prot::KERNEL_RW, 3).0);
            got.push(pa);
        }
        let d = t0.elapsed();
        for pa in got.drain(..) {
            sim.free_pages(pa, 0);
        }
        d
    });
    let vmalloc = best_of(7, || {
        let t0 = Instant::now();
        let va = vm.vmalloc(PAGES * 4096, GFP_KERNEL, "perf", &sim, &mut pt).unwrap();
        let d = t0.elapsed();
        vm.vfree(va, &sim, &mut pt).unwrap();
        d
    });
    let ratio = vmalloc.as_secs_f64() / floor.as_secs_f64();
    eprintln!("floor {floor:?}, vmalloc {vmalloc:?} for {PAGES} pages: ratio {ratio:.2}");
    assert!(ratio < 2.0, "vmalloc costs {ratio:.2}x alloc + write");
}
