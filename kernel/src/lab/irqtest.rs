//! `irqtest`: the allocators called from interrupt context. On every online CPU a
//! timer interrupt fires every 250 us and its handler allocates with GFP_ATOMIC (a
//! kmalloc-64 object and a page), writes them, checks and frees them, while the code it
//! interrupts loops on allocations from the same caches and holds a batch of them
//! across the interrupts. The allocators' locks mask interrupts (`mm::sync::SpinLock`),
//! so a handler can never find a lock held by the code it interrupted on its CPU;
//! without that this test deadlocks at once. Afterwards: every pattern intact, the
//! buddy and slab invariants, and the free-page count exactly as before.
//!
//! A failed GFP_ATOMIC allocation is no failure of the test (memory may be short, fault
//! injection may be on): they are counted and reported, with the failures the
//! fault-injection knobs injected meanwhile. Each CPU runs until its time is up and its
//! timer has fired at least once (bounded: a second more at most, and Ctrl-C), so a
//! CPU that started late in a 1 ms run is not a failure either. A FAILED line says why.

use crate::cprintln;
use crate::mm::page_alloc::{self, PAGES};
use crate::mm::slab::{self, SLAB};
use crate::percpu::{online_mask, smp_processor_id, CpuId, NR_CPUS};
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
/// How long a CPU whose timer has not fired yet keeps going after its time is up.
const FIRST_CALLBACK_US: u64 = 1_000_000;

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
    // Past `end`, only until the first callback (a vCPU may start late, or its timer
    // fire late, on a loaded host).
    let last = end + timer::us_to_ticks(FIRST_CALLBACK_US);
    let running = || {
        let now = timer::now();
        (now < end || (now < last && st.interrupts.load(Relaxed) == 0)) && !crate::tty::signal_pending()
    };
    let quiet = GFP_KERNEL | Gfp::GFP_NOWARN;
    while running() {
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

/// Runs the test for `ms` milliseconds on every online CPU; true if nothing was
/// corrupted or leaked, the invariants hold and every CPU's timer fired (an interrupted
/// run says so instead of OK).
pub fn run(ms: u64) -> bool {
    for s in &STATS {
        for c in [&s.interrupts, &s.irq_allocs, &s.irq_failures, &s.while_holding, &s.fg_allocs, &s.corrupt] {
            c.store(0, Relaxed);
        }
    }
    let injected = || (PAGES.fail.injected(), SLAB.fail.attr.injected());
    let injected0 = injected();
    let before = crate::mm::settled_free_pages();
    let mut tickets = [None; NR_CPUS];
    for (c, t) in CpuId::all().zip(tickets.iter_mut()).skip(1) {
        *t = smp::run_on(c, worker, ms as usize).ok();
    }
    worker(ms as usize);
    let mut stuck = 0;
    for (c, t) in CpuId::all().zip(tickets.iter()) {
        if let Some(t) = t {
            if let Err(why) = smp::wait(c, *t, crate::tty::signal_pending) {
                cprintln!("irqtest: cpu{} {}", c, why);
                stuck += 1;
            }
        }
    }
    let cpus: usize = 1 + tickets.iter().flatten().count();
    let mut silent = [false; NR_CPUS];
    let (mut atomic_failed, mut corrupt) = (0, 0);
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
        silent[cpu] = i == 0;
        atomic_failed += f;
        corrupt += x;
    }
    let injected1 = injected();
    let (pages_injected, slab_injected) = (injected1.0 - injected0.0, injected1.1 - injected0.1);
    let invariants = mm::page_alloc::check_invariants(&PAGES);
    let slab_errors = SLAB.validate_all();
    let after = crate::mm::settled_free_pages();
    let interrupted = crate::tty::signal_pending();
    if interrupted {
        cprintln!("irqtest: interrupted (^C)");
    }
    let stop = if interrupted { "interrupted before " } else { "" };
    cprintln!("irqtest: {} CPUs, {}{} ms; free pages before={} after={}", cpus, stop, ms, before, after);
    if atomic_failed != 0 || pages_injected != 0 || slab_injected != 0 {
        cprintln!(
            "irqtest: {} GFP_ATOMIC allocations failed (no error: memory may run short); injected meanwhile: {} by fail_page_alloc, {} by fail_slab",
            atomic_failed,
            pages_injected,
            slab_injected
        );
    }
    let mut problems = 0;
    let mut problem = |args: core::fmt::Arguments<'_>| {
        problems += 1;
        cprintln!("irqtest: FAILED: {}", args);
    };
    if corrupt != 0 {
        problem(format_args!("{corrupt} allocations lost their pattern"));
    }
    if let Err(e) = invariants {
        problem(format_args!("page allocator invariant broken: {e}"));
    }
    if slab_errors != 0 {
        problem(format_args!("{slab_errors} slab errors"));
    }
    if before != after {
        problem(format_args!("leak: free pages before={before} after={after}"));
    }
    if stuck != 0 {
        problem(format_args!("{stuck} CPUs did not finish"));
    }
    if tickets.iter().skip(1).flatten().count() + 1 != online_mask().count_ones() as usize {
        problem(format_args!("a CPU did not take its work"));
    }
    // An interrupted run may end before a timer fired; otherwise each CPU had at least
    // its time and up to a second more for the first callback.
    if !interrupted {
        for (cpu, _) in silent.iter().enumerate().filter(|(_, &s)| s) {
            problem(format_args!("cpu{cpu} got no timer callback in {} ms", ms + FIRST_CALLBACK_US / 1000));
        }
    }
    if problems != 0 {
        false
    } else if interrupted {
        cprintln!("irqtest: interrupted: nothing corrupted or leaked");
        true
    } else {
        cprintln!("irqtest: OK");
        true
    }
}
