//! The vmap area trees and the heap: a vfree never allocates, a vmalloc whose
//! bookkeeping node cannot be had fails cleanly (nothing leaked, nothing changed), and a
//! heap failure at any point of a sequence leaves the allocator consistent.
//!
//! This test binary installs a global allocator that counts the calls of this thread and
//! can be told to fail them, so the area allocator's heap use is observed exactly.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::Sim;
use mm::gfp::GFP_KERNEL;
use mm::pgtable::layout::{IOREMAP_END, IOREMAP_START, VMALLOC_END, VMALLOC_START};
use mm::vmalloc::{AreaError, VmKind, Vmalloc, VmallocFail, VmapAreas};

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FAIL: Cell<bool> = const { Cell::new(false) };
}

struct Counting;

// SAFETY: forwards to the system allocator; a failure is a null return, as allowed.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        if FAIL.with(|f| f.get()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

fn failing<R>(f: impl FnOnce() -> R) -> R {
    FAIL.with(|x| x.set(true));
    let r = f();
    FAIL.with(|x| x.set(false));
    r
}

const K: u64 = 4096;
const S: u64 = 0x1000_0000;

#[test]
fn release_never_allocates_and_alloc_needs_at_most_one_chunk() {
    let mut a = VmapAreas::new(S, S + 4096 * K);
    // The first use also creates the node of the whole free range.
    let first = a.alloc(K, VmKind::Vmalloc, "t", None).unwrap();
    a.free(first.start).unwrap();
    let mut live = Vec::with_capacity(1000);
    let mut rng = 0x1234_5678u64;
    for step in 0..5000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if !rng.is_multiple_of(3) || live.is_empty() {
            let before = allocs();
            if let Ok(x) = a.alloc((1 + rng % 8) * K, VmKind::Vmalloc, "t", None) {
                live.push(x.start);
            }
            assert!(
                allocs() - before <= 2,
                "step {step}: a reservation took more than one chunk (and room for it in the directory)"
            );
        } else {
            let i = (rng >> 20) as usize % live.len();
            let va = live.swap_remove(i);
            let before = allocs();
            a.free(va).unwrap();
            assert_eq!(allocs(), before, "step {step}: a release allocated");
        }
    }
    for va in live.drain(..) {
        let before = allocs();
        a.release(va).unwrap();
        assert_eq!(allocs(), before);
    }
    assert_eq!((a.nr_areas(), a.nr_free_ranges(), a.free_bytes()), (0, 1, 4096 * K));
}

#[test]
fn heap_failure_refuses_cleanly() {
    let mut a = VmapAreas::new(S, S + 256 * K);
    assert_eq!(failing(|| a.alloc(K, VmKind::Vmalloc, "t", None)), Err(AreaError::NoMemory), "first use");
    assert_eq!(a.free_bytes(), 256 * K);
    let x = a.alloc(K, VmKind::Vmalloc, "t", None).unwrap();
    // The node arena may have room left (it grows by chunks): with the heap failing,
    // reservations succeed until its chunks are full, then one is refused with nothing
    // changed.
    let mut extra = Vec::new();
    let refused = loop {
        let (free, ranges, largest, areas) = (a.free_bytes(), a.nr_free_ranges(), a.largest_free(), a.nr_areas());
        match failing(|| a.alloc(K, VmKind::Vmalloc, "t", None)) {
            Ok(v) => extra.push(v.start),
            Err(e) => {
                assert_eq!(e, AreaError::NoMemory);
                assert_eq!(
                    (a.free_bytes(), a.nr_free_ranges(), a.largest_free(), a.nr_areas()),
                    (free, ranges, largest, areas)
                );
                break true;
            }
        }
        if extra.len() > 64 {
            break false;
        }
    };
    assert!(refused, "the node arena grew without the heap");
    for va in extra {
        a.free(va).unwrap();
    }
    // The slots given back are used again without the heap.
    let y = failing(|| a.alloc(K, VmKind::Vmalloc, "t", None)).expect("a freed slot reused");
    a.free(y.start).unwrap();
    // An exact fit needs no node: it succeeds with the heap failing.
    let exact = a.largest_free() - K;
    let z = failing(|| a.alloc(exact, VmKind::Vmalloc, "t", None)).expect("exact fit without a node");
    assert_eq!(a.nr_free_ranges(), 0);
    failing(|| {
        a.free(z.start).unwrap();
        a.free(x.start).unwrap();
    });
    assert_eq!((a.nr_areas(), a.nr_free_ranges(), a.free_bytes()), (0, 1, 256 * K));
}

#[test]
fn vmalloc_with_the_heap_failing_unwinds_and_vfree_needs_no_heap() {
    let sim = Sim::new(256);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::with_ranges(VMALLOC_START, VMALLOC_END, IOREMAP_START, IOREMAP_END);
    let mut live = vec![vm.vmalloc(8 * K as usize, GFP_KERNEL, "t", &sim, &mut pt).unwrap()];
    live.reserve(80);
    // With the heap failing, vmallocs succeed while the node arena has room, then one
    // fails for want of a node, having taken nothing.
    let e = loop {
        let (free0, areas) = (sim.nr_free(), vm.vmalloc_areas().nr_areas());
        match failing(|| vm.vmalloc(8 * K as usize, GFP_KERNEL, "t", &sim, &mut pt)) {
            Ok(va) => live.push(va),
            Err(e) => {
                assert_eq!(sim.nr_free(), free0, "nothing taken");
                assert_eq!(vm.vmalloc_areas().nr_areas(), areas);
                break e;
            }
        }
        assert!(live.len() <= 64, "the node arena grew without the heap");
    };
    assert_eq!(e.reason, VmallocFail::NoVirtualSpace(AreaError::NoMemory));
    let before = allocs();
    for va in live {
        failing(|| vm.vfree(va, &sim, &mut pt)).unwrap();
    }
    assert_eq!(allocs(), before, "vfree allocated");
    assert_eq!(vm.vmalloc_areas().nr_areas(), 0);
    assert_eq!(vm.vmalloc_areas().nr_free_ranges(), 1);
}
