//! `irqtest`: the allocators called from interrupt context. On every online CPU a
//! timer interrupt fires every 250 us and its handler allocates with GFP_ATOMIC (a
//! kmalloc-64 object and a page), writes them, checks and frees them, while the code it
//! interrupts loops on allocations from the same caches and holds a batch of them
//! across the interrupts. The allocators' locks mask interrupts (`mm::sync::SpinLock`),
//! so a handler can never find a lock held by the code it interrupted on its CPU;
//! without that this test deadlocks at once. Afterwards: every pattern intact, the
//! buddy and slab invariants, and the free-page count exactly as before.

use crate::cprintln;
use crate::mm::page_alloc::{self, PAGES};
use crate::mm::slab::{self, SLAB};
use crate::percpu::{smp_processor_id, CpuId, NR_CPUS};
use crate::smp;
use crate::timer::{self, TimerId};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use mm::addr::{VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_ATOMIC, GFP_KERNEL};
use mm::sync::SpinLock;

const PERIOD_US: u64 = 250;
const OBJ_SIZE: usize = 64;
const BATCH_OBJS: usize = 16;
const BATCH_PAGES: usize = 4;

#[derive(Default)]
struct Stats {
    interrupts: AtomicU64,
    irq_allocs: AtomicU64,
    irq_failures: AtomicU64,
    while_holding: AtomicU64,
    fg_allocs: AtomicU64,
    corrupt: AtomicU64,
}

static STATS: [Stats; NR_CPUS] = [const {
    Stats {
        interrupts: AtomicU64::new(0),
        irq_allocs: AtomicU64::new(0),
        irq_failures: AtomicU64::new(0),
        while_holding: AtomicU64::new(0),
        fg_allocs: AtomicU64::new(0),
        corrupt: AtomicU64::new(0),
    }
}; NR_CPUS];

/// The foreground holds a batch from the same caches right now.
static HOLDING: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];
/// Each CPU's armed timer, and whether it may re-arm (taken with interrupts masked, so
/// the handler on this CPU and the foreground never race for it).
static TIMERS: [SpinLock<(Option<TimerId>, bool)>; NR_CPUS] = [const { SpinLock::new((None, false)) }; NR_CPUS];

fn fill_and_check(va: *mut u8, len: usize, pattern: u8, st: &Stats) {
    // SAFETY: `va` was just allocated with at least `len` bytes and is ours alone.
    let bytes = unsafe { core::slice::from_raw_parts_mut(va, len) };
    bytes.fill(pattern);
    if bytes.iter().any(|&b| b != pattern) {
        st.corrupt.fetch_add(1, Relaxed);
    }
}

/// The timer handler (interrupt context): allocate, use and free with GFP_ATOMIC, then
/// re-arm.
fn tick(cpu: usize) {
    let st = &STATS[cpu];
    st.interrupts.fetch_add(1, Relaxed);
    if HOLDING[cpu].load(Relaxed) {
        st.while_holding.fetch_add(1, Relaxed);
    }
    let gfp = GFP_ATOMIC | Gfp::GFP_NOWARN;
    match slab::kmalloc(OBJ_SIZE, gfp) {
        Some(p) => {
            fill_and_check(p.as_ptr(), OBJ_SIZE, 0xc3, st);
            // SAFETY: just allocated, freed once.
            unsafe { slab::kfree(p.as_ptr()) };
            st.irq_allocs.fetch_add(1, Relaxed);
        }
        None => {
            st.irq_failures.fetch_add(1, Relaxed);
        }
    }
    match page_alloc::__get_free_pages(gfp, 0) {
        Some(va) => {
            fill_and_check(va.as_mut_ptr(), PAGE_SIZE, 0x3c, st);
            let _ = page_alloc::free_pages(va, 0);
            st.irq_allocs.fetch_add(1, Relaxed);
        }
        None => {
            st.irq_failures.fetch_add(1, Relaxed);
        }
    }
    let mut t = TIMERS[cpu].lock();
    t.0 = None;
    if t.1 {
        t.0 = timer::add_timer(timer::now() + timer::us_to_ticks(PERIOD_US), tick, cpu).ok();
    }
}

/// One CPU's share (task context, interrupts enabled): the foreground loop for `ms`.
fn worker(ms: usize) {
    let cpu = smp_processor_id().index();
    let st = &STATS[cpu];
    {
        let mut t = TIMERS[cpu].lock();
        t.1 = true;
        t.0 = timer::add_timer(timer::now() + timer::us_to_ticks(PERIOD_US), tick, cpu).ok();
    }
    let end = timer::now() + timer::us_to_ticks(ms as u64 * 1000);
    let quiet = GFP_KERNEL | Gfp::GFP_NOWARN;
    while timer::now() < end && !crate::tty::signal_pending() {
        let mut objs = [None; BATCH_OBJS];
        let mut pages: [Option<VirtAddr>; BATCH_PAGES] = [None; BATCH_PAGES];
        HOLDING[cpu].store(true, Relaxed);
        for o in objs.iter_mut() {
            *o = slab::kmalloc(OBJ_SIZE, quiet);
            if let Some(p) = o {
                fill_and_check(p.as_ptr(), OBJ_SIZE, cpu as u8, st);
                st.fg_allocs.fetch_add(1, Relaxed);
            }
        }
        for p in pages.iter_mut() {
            *p = page_alloc::__get_free_pages(quiet, 0);
            if let Some(va) = p {
                fill_and_check(va.as_mut_ptr(), PAGE_SIZE, 0x80 | cpu as u8, st);
                st.fg_allocs.fetch_add(1, Relaxed);
            }
        }
        // Interrupts land here too, while the batch is held: check it survived them.
        for p in objs.iter().flatten() {
            // SAFETY: our live kmalloc object of OBJ_SIZE bytes.
            let b = unsafe { core::slice::from_raw_parts(p.as_ptr(), OBJ_SIZE) };
            if b.iter().any(|&x| x != cpu as u8) {
                st.corrupt.fetch_add(1, Relaxed);
            }
        }
        for p in objs.iter().flatten() {
            // SAFETY: allocated above, freed once.
            unsafe { slab::kfree(p.as_ptr()) };
        }
        for va in pages.iter().flatten() {
            let _ = page_alloc::free_pages(*va, 0);
        }
        HOLDING[cpu].store(false, Relaxed);
    }
    let mut t = TIMERS[cpu].lock();
    t.1 = false;
    if let Some(id) = t.0.take() {
        timer::del_timer(id);
    }
}

/// Runs the test for `ms` milliseconds on every online CPU; true if everything held.
pub fn run(ms: u64) -> bool {
    for s in &STATS {
        for c in [&s.interrupts, &s.irq_allocs, &s.irq_failures, &s.while_holding, &s.fg_allocs, &s.corrupt] {
            c.store(0, Relaxed);
        }
    }
    let before = crate::mm::settled_free_pages();
    let mut tickets = [None; NR_CPUS];
    for (c, t) in CpuId::all().zip(tickets.iter_mut()).skip(1) {
        *t = smp::run_on(c, worker, ms as usize).ok();
    }
    worker(ms as usize);
    for (c, t) in CpuId::all().zip(tickets.iter()) {
        if let Some(t) = t {
            smp::wait(c, *t);
        }
    }
    let cpus: usize = 1 + tickets.iter().flatten().count();
    let mut ok = true;
    for (cpu, s) in STATS.iter().enumerate().filter(|(c, _)| *c == 0 || tickets[*c].is_some()) {
        let (i, a, f, h, g, x) = (
            s.interrupts.load(Relaxed),
            s.irq_allocs.load(Relaxed),
            s.irq_failures.load(Relaxed),
            s.while_holding.load(Relaxed),
            s.fg_allocs.load(Relaxed),
            s.corrupt.load(Relaxed),
        );
        cprintln!(
            "irqtest: cpu{} timer callbacks={} irq allocations={} failed={} foreground allocations={} interrupts while holding a batch={} corrupt={}",
            cpu, i, a, f, g, h, x
        );
        ok &= i > 0 && a > 0 && f == 0 && x == 0 && g > 0;
    }
    let invariants = PAGES.check_invariants();
    let slab_errors = SLAB.validate_all();
    let after = crate::mm::settled_free_pages();
    if crate::tty::signal_pending() {
        cprintln!("irqtest: interrupted (^C)");
    }
    cprintln!("irqtest: {} CPUs, {} ms; free pages before={} after={}", cpus, ms, before, after);
    if let Err(e) = invariants {
        cprintln!("irqtest: page allocator invariant broken: {}", e);
        ok = false;
    }
    if slab_errors != 0 {
        cprintln!("irqtest: {} slab errors", slab_errors);
        ok = false;
    }
    ok &= before == after;
    cprintln!("irqtest: {}", if ok { "OK" } else { "FAILED" });
    ok
}
