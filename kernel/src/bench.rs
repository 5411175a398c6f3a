//! `bench`: the kernel's allocators against a `linked_list_allocator` heap (the usual
//! Rust kernel heap) over the same amount of memory, on the same workloads, timed with
//! the generic timer and, where the CPU has a PMU, the cycle counter (PMCCNTR_EL0; real
//! cycles on a Pi, an emulated count under QEMU).

use crate::cprintln;
use crate::mm::page_alloc;
use crate::mm::slab;
use crate::prng::xorshift64;
use core::alloc::Layout;
use core::ptr::NonNull;
use linked_list_allocator::LockedHeap;
use mm::addr::PAGE_SIZE;
use mm::gfp::GFP_KERNEL;

/// Memory given to the comparison heap (order 12 = 16 MiB).
const HEAP_ORDER: u32 = 12;

/// Ctrl-C, checked every 1024 iterations (never inside one, so nothing is left held).
fn stop(i: u64) -> bool {
    i.is_multiple_of(1024) && crate::tty::signal_pending()
}

struct Measure {
    ns: u64,
    cycles: Option<u64>,
}

fn measure(ops: u64, pmu: bool, f: &mut dyn FnMut()) -> Measure {
    let c0 = if pmu { boot::cpu::cycles() } else { 0 };
    let t0 = board::timer::ticks();
    f();
    let t1 = board::timer::ticks();
    let c1 = if pmu { boot::cpu::cycles() } else { 0 };
    Measure { ns: board::timer::ticks_to_ns(t1 - t0) / ops, cycles: pmu.then(|| (c1 - c0) / ops) }
}

/// ` (230 vs 291 cycles/op)` when both counts are known, else nothing.
struct Cycles(Option<u64>, Option<u64>);

impl core::fmt::Display for Cycles {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.0, self.1) {
            (Some(a), Some(b)) => write!(f, " ({a} vs {b} cycles/op)"),
            _ => Ok(()),
        }
    }
}

fn row(name: core::fmt::Arguments<'_>, ours: &Measure, lla: &Measure) {
    if crate::tty::signal_pending() {
        return;
    }
    let speedup_x100 = lla.ns * 100 / ours.ns.max(1);
    let cyc = Cycles(ours.cycles, lla.cycles);
    cprintln!(
        "bench: {}: kernel {} ns/op, linked_list_allocator {} ns/op, speedup {}.{:02}x{}",
        name,
        ours.ns.max(1),
        lla.ns.max(1),
        speedup_x100 / 100,
        speedup_x100 % 100,
        cyc
    );
}

/// Runs every workload `n` times; false if memory for the comparison heap is missing.
pub fn run(n: u64) -> bool {
    let Some(area) = page_alloc::__get_free_pages(GFP_KERNEL, HEAP_ORDER) else {
        cprintln!("bench: no {} MiB block for the comparison heap", (PAGE_SIZE << HEAP_ORDER) >> 20);
        return false;
    };
    // Locked, as a kernel uses it: the kernel's allocators take their (per-CPU) locks too,
    // with interrupts masked (they serve interrupt handlers); so does the heap here.
    let heap = LockedHeap::empty();
    // SAFETY: the block was just allocated for this heap and is freed after it is gone.
    unsafe { heap.lock().init(area.as_mut_ptr(), PAGE_SIZE << HEAP_ORDER) };
    let mut heap = &heap;
    let pmu = boot::cpu::has_pmu();
    if pmu {
        boot::cpu::cycle_counter_enable();
    }
    cprintln!(
        "bench: {} iterations per workload; linked_list_allocator heap of {} MiB; cycle counter {}; slab debug {}",
        n,
        (PAGE_SIZE << HEAP_ORDER) >> 20,
        if pmu { "PMCCNTR_EL0" } else { "absent" },
        if slab::slab_debug() { "ON (kmalloc pays for poisoning)" } else { "off" }
    );
    let lla_alloc = |heap: &mut &LockedHeap, l: Layout| {
        let _irq = mm::sync::IrqGuard::new();
        heap.lock().allocate_first_fit(l).ok()
    };
    let lla_free = |heap: &mut &LockedHeap, p: NonNull<u8>, l: Layout| {
        let _irq = mm::sync::IrqGuard::new();
        // SAFETY: pointers come from the same heap with the same layout, freed once.
        unsafe { heap.lock().deallocate(p, l) }
    };

    for size in [8usize, 64, 256, 1024, 4096] {
        let l = Layout::from_size_align(size, 8).unwrap_or(Layout::new::<u64>());
        let ours = measure(n, pmu, &mut || {
            for i in 0..n {
                if stop(i) {
                    break;
                }
                if let Some(p) = slab::kmalloc(size, GFP_KERNEL) {
                    // SAFETY: just allocated, freed once.
                    unsafe { slab::kfree(core::hint::black_box(p.as_ptr())) };
                }
            }
        });
        let lla = measure(n, pmu, &mut || {
            for i in 0..n {
                if stop(i) {
                    break;
                }
                if let Some(p) = lla_alloc(&mut heap, l) {
                    lla_free(&mut heap, core::hint::black_box(p), l);
                }
            }
        });
        row(format_args!("kmalloc-{size} alloc+free"), &ours, &lla);
    }

    // 1000 objects of random sizes (8..2048), freed in random order.
    const BATCH: usize = 1000;
    // On the stack (16 KiB): nothing of the benchmark's own comes from the heap.
    let mut ptrs = [(core::ptr::null_mut::<u8>(), 0usize); BATCH];
    let rounds = (n / BATCH as u64).max(1);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let shuffle = |ptrs: &mut [(*mut u8, usize)], rng: &mut u64| {
        for i in (1..ptrs.len()).rev() {
            ptrs.swap(i, (xorshift64(rng) % (i as u64 + 1)) as usize);
        }
    };
    let ours = measure(rounds * BATCH as u64, pmu, &mut || {
        for r in 0..rounds {
            if stop(r) {
                break;
            }
            for p in ptrs.iter_mut() {
                let size = 8 + (xorshift64(&mut rng) % 2041) as usize;
                *p = (slab::kmalloc(size, GFP_KERNEL).map_or(core::ptr::null_mut(), |p| p.as_ptr()), size);
            }
            shuffle(&mut ptrs, &mut rng);
            for &(p, _) in ptrs.iter() {
                // SAFETY: each pointer came from kmalloc above and is freed once.
                unsafe { slab::kfree(p) };
            }
        }
    });
    let lla = measure(rounds * BATCH as u64, pmu, &mut || {
        for r in 0..rounds {
            if stop(r) {
                break;
            }
            for p in ptrs.iter_mut() {
                let size = 8 + (xorshift64(&mut rng) % 2041) as usize;
                let l = Layout::from_size_align(size, 8).unwrap_or(Layout::new::<u64>());
                *p = (lla_alloc(&mut heap, l).map_or(core::ptr::null_mut(), |p| p.as_ptr()), size);
            }
            shuffle(&mut ptrs, &mut rng);
            for &(p, size) in ptrs.iter() {
                if let (Some(p), Ok(l)) = (NonNull::new(p), Layout::from_size_align(size, 8)) {
                    lla_free(&mut heap, p, l);
                }
            }
        }
    });
    row(format_args!("kmalloc random 8-2048 x1000, random free"), &ours, &lla);

    for order in [0u32, 3] {
        let l = Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE << order).unwrap_or(Layout::new::<u64>());
        let ours = measure(n, pmu, &mut || {
            for i in 0..n {
                if stop(i) {
                    break;
                }
                if let Some(va) = page_alloc::__get_free_pages(GFP_KERNEL, order) {
                    let _ = page_alloc::free_pages(core::hint::black_box(va), order);
                }
            }
        });
        let lla = measure(n, pmu, &mut || {
            for i in 0..n {
                if stop(i) {
                    break;
                }
                if let Some(p) = lla_alloc(&mut heap, l) {
                    lla_free(&mut heap, core::hint::black_box(p), l);
                }
            }
        });
        row(format_args!("pages order {order} alloc+free"), &ours, &lla);
    }
    let _ = page_alloc::free_pages(area, HEAP_ORDER);
    crate::mm::drain_all_cpu_caches();
    if crate::tty::signal_pending() {
        cprintln!("bench: interrupted (^C); the heap and every object were freed");
    }
    true
}
