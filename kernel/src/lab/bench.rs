//! `bench`: the kernel's allocators against a `linked_list_allocator` heap (the usual
//! Rust kernel heap) over the same amount of memory, on the same workloads, timed with
//! the generic timer and, where the CPU has a PMU (`boot::pmu`), counted in cycles
//! (PMCCNTR_EL0; real cycles on a Pi, an emulated count under QEMU) and in retired
//! instructions (event INST_RETIRED on event counter 0; QEMU implements it only with
//! `-icount`, where a guest nanosecond and a cycle are one instruction).
//!
//! Every workload runs [`RUNS`] times, the kernel and the heap taking turns, so that a
//! change in the machine's speed (another guest, the host's load under QEMU) hits both;
//! each row prints the median times and the median speedup with its min and max, then the
//! median instructions and cycles per operation ([`Row`]). The counts include the loop's
//! own few instructions per iteration (both sides) and any interrupt taken meanwhile: the
//! kernel is tickless, so one is rare, and a run that took one moves no median. The PMU is
//! this core's: the bench runs on the console's CPU throughout. The boot's clock check
//! follows the rows (`platform::recheck_clock`): the ARM clock the firmware reports, the
//! core's count, and any throttling since the boot.

use super::bench_row::{Measure, Row, RUNS};
use crate::cprintln;
use crate::mm::allocation::Allocation;
use crate::mm::page_alloc;
use crate::mm::slab;
use crate::prng::xorshift64;
use boot::pmu::{self, InstCounter, NoInstCounter};
use core::alloc::Layout;
use core::ptr::NonNull;
use linked_list_allocator::LockedHeap;
use mm::addr::PAGE_SIZE;
use mm::gfp::GFP_KERNEL;

/// Memory given to the comparison heap (order 12 = 16 MiB).
const HEAP_ORDER: u32 = 12;

/// Failures injected so far by fail_page_alloc and failslab.
fn injected() -> u64 {
    page_alloc::PAGES.fail.attr.injected() + slab::SLAB.fail.attr.injected()
}

/// What the timed loops share: this core's instruction counter (if it has one), polled
/// where the loops look for Ctrl-C, so that its 32 bits never wrap unseen between two
/// reads; both sides poll equally often.
struct Meter {
    /// Cycles counted (a PMU).
    pmu: bool,
    /// Instructions counted, or why not.
    inst: Result<InstCounter, NoInstCounter>,
}

impl Meter {
    /// Ctrl-C, checked every 1024 iterations (never inside one, so nothing is left held).
    #[inline]
    fn stop(&mut self, i: u64) -> bool {
        i.is_multiple_of(1024) && self.check()
    }

    /// Ctrl-C, checked now (the batch workload, once per round of 1000 objects).
    fn check(&mut self) -> bool {
        self.poll();
        crate::tty::signal_pending()
    }

    /// Instructions counted so far.
    #[inline]
    fn poll(&mut self) -> Option<u64> {
        self.inst.as_mut().ok().map(InstCounter::poll)
    }

    /// Runs `f` once and returns its time, cycles and instructions per operation. The
    /// instruction count is read innermost, next to the work; the cycle count and the
    /// time take in the two reads of it (a few dozen instructions over `ops` operations).
    fn measure(&mut self, ops: u64, f: &mut dyn FnMut(&mut Meter)) -> Measure {
        let c0 = if self.pmu { pmu::cycles() } else { 0 };
        let t0 = board::timer::ticks();
        let i0 = self.poll();
        f(self);
        let i1 = self.poll();
        let t1 = board::timer::ticks();
        let c1 = if self.pmu { pmu::cycles() } else { 0 };
        Measure {
            ns: (board::timer::ticks_to_ns(t1 - t0) / ops).max(1),
            cycles: self.pmu.then(|| (c1 - c0) / ops),
            inst: i0.zip(i1).map(|(a, b)| (b - a) / ops),
        }
    }
}

/// Who runs a workload's timed loop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Kernel,
    Heap,
}

/// Measures `work` for both sides [`RUNS`] times (kernel, heap, kernel, heap, ...) and
/// prints one row ([`Row`]): the median ns/op of each side, the median speedup (heap time
/// / kernel time of the same run) with its min and max, and the median instructions and
/// cycles per operation where counted. Nothing is printed once Ctrl-C has been seen.
///
/// The counts are this core's, interrupt handlers included: the kernel is tickless, so
/// few interrupts arrive during a run (a UART character, an armed timer), and the median
/// of the runs leaves out a run that took one.
fn compare(name: core::fmt::Arguments<'_>, ops: u64, meter: &mut Meter, work: &mut dyn FnMut(Side, &mut Meter)) {
    let mut ours = [Measure::default(); RUNS];
    let mut heap = [Measure::default(); RUNS];
    let inj = injected();
    for r in 0..RUNS {
        ours[r] = meter.measure(ops, &mut |m| work(Side::Kernel, m));
        heap[r] = meter.measure(ops, &mut |m| work(Side::Heap, m));
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
    let inst = meter.inst.as_ref().map(|_| ()).map_err(|e| e.reason());
    cprintln!("bench: {}: {}", name, Row::new(&ours, &heap, meter.pmu, inst));
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
    let pmu = pmu::present();
    if pmu {
        pmu::cycle_counter_enable();
    }
    let mut meter = Meter { pmu, inst: InstCounter::start() };
    cprintln!(
        "bench: {} iterations per workload, {} runs each; linked_list_allocator heap of {} MiB; cycle counter {}; instruction counter {}; slab debug {}",
        n,
        RUNS,
        area.len() >> 20,
        if pmu { "PMCCNTR_EL0" } else { "absent" },
        match &meter.inst {
            Ok(_) => "PMEVCNTR0_EL0 (INST_RETIRED)",
            Err(e) => e.detail(),
        },
        if slab::slab_debug() { "ON (kmalloc pays for poisoning)" } else { "off" }
    );
    {
        // Locked, as a kernel uses it: the kernel's allocators take their (per-CPU) locks
        // too, with interrupts masked (they serve interrupt handlers); so does the heap.
        let heap = LockedHeap::empty();
        // SAFETY: the block is owned by `area`, which outlives the heap (this scope).
        unsafe { heap.lock().init(area.addr().as_mut_ptr(), area.len()) };
        workloads(&heap, n, &mut meter);
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

/// Runs `pair` `n` times, looking for Ctrl-C every 1024 times. Generic, so each side's
/// loop is compiled on its own: one side's code does not take the registers of the
/// other's loop (when both sat in one loop behind a branch on the side, the heap's page
/// pair paid 9 instructions of register moves for the kernel's inlined fast path).
#[inline(always)]
fn repeat(n: u64, m: &mut Meter, mut pair: impl FnMut()) {
    for i in 0..n {
        if m.stop(i) {
            break;
        }
        pair();
    }
}

/// Objects per round of the batch workload.
const BATCH: usize = 1000;

/// The batch workload, `rounds` times: [`BATCH`] objects of random sizes (8..2048)
/// allocated, then freed in a random order; Ctrl-C is checked once per round. Generic,
/// as [`repeat`], so that each side's loops are compiled on their own (with both sides
/// in one loop, every object paid a branch on the side, and the side whose code was
/// inlined took the registers).
#[inline(always)]
fn batch(
    ptrs: &mut [(*mut u8, usize); BATCH],
    rounds: u64,
    rng: &mut u64,
    m: &mut Meter,
    mut alloc: impl FnMut(usize) -> *mut u8,
    mut free: impl FnMut(*mut u8, usize),
) {
    for _ in 0..rounds {
        if m.check() {
            break;
        }
        for p in ptrs.iter_mut() {
            let size = 8 + (xorshift64(rng) % 2041) as usize;
            *p = (alloc(size), size);
        }
        for i in (1..ptrs.len()).rev() {
            ptrs.swap(i, (xorshift64(rng) % (i as u64 + 1)) as usize);
        }
        for &(p, size) in ptrs.iter() {
            free(p, size);
        }
    }
}

fn workloads(heap: &LockedHeap, n: u64, meter: &mut Meter) {
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
        compare(format_args!("kmalloc-{size} alloc+free"), n, meter, &mut |side, m| match side {
            Side::Kernel => repeat(n, m, || {
                if let Some(p) = slab::kmalloc(size, GFP_KERNEL) {
                    // SAFETY: just allocated, freed once.
                    unsafe { slab::kfree(core::hint::black_box(p.as_ptr())) };
                }
            }),
            Side::Heap => repeat(n, m, || {
                if let Some(p) = lla_alloc(l) {
                    lla_free(core::hint::black_box(p), l);
                }
            }),
        });
    }

    // 1000 objects of random sizes (8..2048), freed in random order.
    // On the stack (16 KiB), shared by both sides: nothing of the benchmark's own comes
    // from the heap.
    let mut ptrs = [(core::ptr::null_mut::<u8>(), 0usize); BATCH];
    let rounds = (n / BATCH as u64).max(1);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    compare(format_args!("kmalloc random 8-2048 x1000, random free"), rounds * BATCH as u64, meter, &mut |side, m| {
        match side {
            Side::Kernel => batch(
                &mut ptrs,
                rounds,
                &mut rng,
                m,
                |size| slab::kmalloc(size, GFP_KERNEL).map_or(core::ptr::null_mut(), |p| p.as_ptr()),
                // SAFETY: each pointer came from kmalloc above and is freed once.
                |p, _| unsafe { slab::kfree(p) },
            ),
            Side::Heap => batch(
                &mut ptrs,
                rounds,
                &mut rng,
                m,
                |size| {
                    lla_alloc(Layout::from_size_align(size, 8).unwrap_or(Layout::new::<u64>()))
                        .map_or(core::ptr::null_mut(), |p| p.as_ptr())
                },
                |p, size| {
                    if let (Some(p), Ok(l)) = (NonNull::new(p), Layout::from_size_align(size, 8)) {
                        lla_free(p, l);
                    }
                },
            ),
        }
    });

    for order in [0u32, 3] {
        let l = Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE << order).unwrap_or(Layout::new::<u64>());
        compare(format_args!("pages order {order} alloc+free"), n, meter, &mut |side, m| match side {
            // The order (the layout) read once per pair, as a caller holding it in a
            // variable would: reading it again after `black_box` (which may write
            // memory) cost both sides a second load. Still read every pair, so nothing
            // derived from it is hoisted out of the loop.
            Side::Kernel => repeat(n, m, || {
                let o = order;
                if let Some(va) = page_alloc::__get_free_pages(GFP_KERNEL, o) {
                    let _ = page_alloc::free_pages(core::hint::black_box(va), o);
                }
            }),
            Side::Heap => repeat(n, m, || {
                let layout = l;
                if let Some(p) = lla_alloc(layout) {
                    lla_free(core::hint::black_box(p), layout);
                }
            }),
        });
    }
}
