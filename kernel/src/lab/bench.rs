//! `bench`: the kernel's allocators against a `linked_list_allocator` heap (the usual
//! Rust kernel heap) over the same amount of memory, on the same workloads, timed with
//! the generic timer and, where the CPU has a PMU, the cycle counter (PMCCNTR_EL0; real
//! cycles on a Pi, an emulated count under QEMU).
//!
//! Every workload runs [`RUNS`] times, the kernel and the heap taking turns, so that a
//! change in the machine's speed (another guest, the host's load under QEMU) hits both;
//! each row prints the median times and the median speedup with its min and max. The
//! boot's clock check follows the rows (`platform::recheck_clock`): the ARM clock the
//! firmware reports, the core's count, and any throttling since the boot.

use crate::cprintln;
use crate::mm::allocation::Allocation;
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
/// Timed runs of every workload (each of the kernel and of the heap).
const RUNS: usize = 5;

/// Failures injected so far by fail_page_alloc and failslab.
fn injected() -> u64 {
    page_alloc::PAGES.fail.attr.injected() + slab::SLAB.fail.attr.injected()
}

/// Ctrl-C, checked every 1024 iterations (never inside one, so nothing is left held).
fn stop(i: u64) -> bool {
    i.is_multiple_of(1024) && crate::tty::signal_pending()
}

#[derive(Clone, Copy, Default)]
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
    Measure { ns: (board::timer::ticks_to_ns(t1 - t0) / ops).max(1), cycles: pmu.then(|| (c1 - c0) / ops) }
}

/// Who runs a workload's timed loop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Kernel,
    Heap,
}

/// The median of a sorted slice.
fn median(sorted: &[u64]) -> u64 {
    sorted[sorted.len() / 2]
}

/// A speedup in hundredths, printed as `1.50x`.
struct X100(u64);

impl core::fmt::Display for X100 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:02}x", self.0 / 100, self.0 % 100)
    }
}

/// Times `work` for both sides [`RUNS`] times (kernel, heap, kernel, heap, ...) and prints
/// one row: the median ns/op of each side, the median speedup (heap time / kernel time of
/// the same run) with its min and max, and the median cycles where known. Nothing is
/// printed once Ctrl-C has been seen.
fn compare(name: core::fmt::Arguments<'_>, ops: u64, pmu: bool, work: &mut dyn FnMut(Side)) {
    let mut ours = [Measure::default(); RUNS];
    let mut heap = [Measure::default(); RUNS];
    let inj = injected();
    for r in 0..RUNS {
        ours[r] = measure(ops, pmu, &mut || work(Side::Kernel));
        heap[r] = measure(ops, pmu, &mut || work(Side::Heap));
        if crate::tty::signal_pending() {
            return;
        }
    }
    // Injected failures make the kernel's loop skip work: its times would flatter it.
    let n = injected() - inj;
    if n > 0 {
        cprintln!("bench: {}: {} injected failures (fail_page_alloc/failslab) during the runs: no result", name, n);
        return;
    }
    let mut speedup = [0u64; RUNS];
    for r in 0..RUNS {
        speedup[r] = heap[r].ns * 100 / ours[r].ns;
    }
    speedup.sort_unstable();
    let sorted = |m: &[Measure; RUNS], f: fn(&Measure) -> u64| {
        let mut v = [0u64; RUNS];
        for (d, s) in v.iter_mut().zip(m) {
            *d = f(s);
        }
        v.sort_unstable();
        median(&v)
    };
    let (ours_ns, heap_ns) = (sorted(&ours, |m| m.ns), sorted(&heap, |m| m.ns));
    if crate::record::enabled() {
        // One record per run: the report shows the median and the spread.
        let mut label = crate::printk::StackString::<64>::new();
        let _ = core::fmt::Write::write_fmt(&mut label, name);
        for (o, h) in ours.iter().zip(&heap) {
            crate::record::emit(records::Bench {
                name: label.as_str(),
                ours_ns: o.ns,
                peer: "linked_list_allocator",
                peer_ns: h.ns,
            });
        }
    }
    cprintln!(
        "bench: {}: kernel {} ns/op, linked_list_allocator {} ns/op, speedup {} (min {}, max {} over {} runs){}",
        name,
        ours_ns,
        heap_ns,
        X100(median(&speedup)),
        X100(speedup[0]),
        X100(speedup[RUNS - 1]),
        RUNS,
        Cycles(
            pmu.then(|| sorted(&ours, |m| m.cycles.unwrap_or(0))),
            pmu.then(|| sorted(&heap, |m| m.cycles.unwrap_or(0)))
        )
    );
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

/// Runs every workload `n` times per run; false if memory for the comparison heap is missing.
///
/// Memory held across the benchmark (the heap's block) is an owning [`Allocation`], freed
/// when it goes out of scope, also after Ctrl-C. The timed loops call the raw
/// `kmalloc`/`kfree` and `__get_free_pages`/`free_pages` instead: a handle would add its
/// enum tag, its `Drop` dispatch and (for pages) an order check to every timed operation,
/// so the loops would no longer measure the allocators alone; each loop frees what it
/// allocated before it returns, and Ctrl-C is checked only between whole iterations.
pub fn run(n: u64) -> bool {
    let inj = injected();
    let Some(area) = Allocation::pages(GFP_KERNEL, HEAP_ORDER) else {
        let why = if injected() != inj { " (an injected failure)" } else { "" };
        cprintln!("bench: no {} MiB block for the comparison heap{}", (PAGE_SIZE << HEAP_ORDER) >> 20, why);
        return false;
    };
    let pmu = boot::cpu::has_pmu();
    if pmu {
        boot::cpu::cycle_counter_enable();
    }
    cprintln!(
        "bench: {} iterations per workload, {} runs each; linked_list_allocator heap of {} MiB; cycle counter {}; slab debug {}",
        n,
        RUNS,
        area.len() >> 20,
        if pmu { "PMCCNTR_EL0" } else { "absent" },
        if slab::slab_debug() { "ON (kmalloc pays for poisoning)" } else { "off" }
    );
    {
        // Locked, as a kernel uses it: the kernel's allocators take their (per-CPU) locks
        // too, with interrupts masked (they serve interrupt handlers); so does the heap.
        let heap = LockedHeap::empty();
        // SAFETY: the block is owned by `area`, which outlives the heap (this scope).
        unsafe { heap.lock().init(area.addr().as_mut_ptr(), area.len()) };
        workloads(&heap, n, pmu);
    }
    drop(area);
    crate::mm::drain_all_cpu_caches();
    if crate::tty::signal_pending() {
        cprintln!("bench: interrupted (^C); the heap and every object were freed");
    } else {
        // The clock the figures were taken at: the boot's check again, whose throttling
        // flags also tell whether the firmware capped the clock since then (a hot or
        // under-powered board slows down during a long run).
        crate::platform::recheck_clock();
    }
    true
}

fn workloads(heap: &LockedHeap, n: u64, pmu: bool) {
    let lla_alloc = |l: Layout| {
        let _irq = mm::sync::IrqGuard::new();
        heap.lock().allocate_first_fit(l).ok()
    };
    let lla_free = |p: NonNull<u8>, l: Layout| {
        let _irq = mm::sync::IrqGuard::new();
        // SAFETY: pointers come from the same heap with the same layout, freed once.
        unsafe { heap.lock().deallocate(p, l) }
    };

    for size in [8usize, 64, 256, 1024, 4096] {
        let l = Layout::from_size_align(size, 8).unwrap_or(Layout::new::<u64>());
        compare(format_args!("kmalloc-{size} alloc+free"), n, pmu, &mut |side| {
            for i in 0..n {
                if stop(i) {
                    break;
                }
                match side {
                    Side::Kernel => {
                        if let Some(p) = slab::kmalloc(size, GFP_KERNEL) {
                            // SAFETY: just allocated, freed once.
                            unsafe { slab::kfree(core::hint::black_box(p.as_ptr())) };
                        }
                    }
                    Side::Heap => {
                        if let Some(p) = lla_alloc(l) {
                            lla_free(core::hint::black_box(p), l);
                        }
                    }
                }
            }
        });
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
    compare(format_args!("kmalloc random 8-2048 x1000, random free"), rounds * BATCH as u64, pmu, &mut |side| {
        for r in 0..rounds {
            if stop(r) {
                break;
            }
            for p in ptrs.iter_mut() {
                let size = 8 + (xorshift64(&mut rng) % 2041) as usize;
                let got = match side {
                    Side::Kernel => slab::kmalloc(size, GFP_KERNEL),
                    Side::Heap => lla_alloc(Layout::from_size_align(size, 8).unwrap_or(Layout::new::<u64>())),
                };
                *p = (got.map_or(core::ptr::null_mut(), |p| p.as_ptr()), size);
            }
            shuffle(&mut ptrs, &mut rng);
            for &(p, size) in ptrs.iter() {
                match side {
                    // SAFETY: each pointer came from kmalloc above and is freed once.
                    Side::Kernel => unsafe { slab::kfree(p) },
                    Side::Heap => {
                        if let (Some(p), Ok(l)) = (NonNull::new(p), Layout::from_size_align(size, 8)) {
                            lla_free(p, l);
                        }
                    }
                }
            }
        }
    });

    for order in [0u32, 3] {
        let l = Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE << order).unwrap_or(Layout::new::<u64>());
        compare(format_args!("pages order {order} alloc+free"), n, pmu, &mut |side| {
            for i in 0..n {
                if stop(i) {
                    break;
                }
                match side {
                    Side::Kernel => {
                        if let Some(va) = page_alloc::__get_free_pages(GFP_KERNEL, order) {
                            let _ = page_alloc::free_pages(core::hint::black_box(va), order);
                        }
                    }
                    Side::Heap => {
                        if let Some(p) = lla_alloc(l) {
                            lla_free(core::hint::black_box(p), l);
                        }
                    }
                }
            }
        });
    }
}
