//! `stress`: every online CPU runs a bounded random mix of allocations and frees at
//! once (pages of orders 0-5, kmalloc of every class, vmalloc of 4 KiB-4 MiB), handing
//! some objects to other CPUs to free, then everything is drained and checked: the
//! buddy allocator's invariants, the slab caches (poison, red zones, freelists), the
//! patterns written into every object, and the count of free pages.
//!
//! `stress OPS SEED compact` gives one CPU to a compaction thread instead, which
//! migrates the workers' (movable) vmalloc pages while they write and check them, and a
//! hot page in which every worker counts its operations (a lost store would show).
//!
//! Objects are [`Allocation`] handles: dropping one frees it, so nothing here is unsafe.
#![deny(unsafe_code)]

use crate::cprintln;
use crate::mm::allocation::Allocation;
use crate::mm::page_alloc::PAGES;
use crate::mm::slab::SLAB;
use crate::percpu::{cpu_online, smp_processor_id, CpuId, NR_CPUS};
use crate::prng::xorshift64;
use crate::smp;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use mm::addr::PAGE_SIZE;
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_alloc::check_invariants;

const KMALLOC_SIZES: [usize; 13] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
const LOCAL_MAX: usize = 24;
const HANDOFF_MAX: usize = 64;

/// An object one CPU allocated (`owner`), freed when dropped by whichever CPU has it.
struct Item {
    alloc: Allocation,
    owner: usize,
}

impl Item {
    fn pattern(&self) -> u8 {
        0xa0 ^ (self.owner as u8) ^ (self.alloc.len() as u8)
    }
    /// Marks the first and last byte (the object is ours).
    fn mark(&self) {
        self.alloc.mark_ends(self.pattern());
    }
    fn intact(&self) -> bool {
        self.alloc.ends_are(self.pattern())
    }
}

#[derive(Default)]
struct Stats {
    ops: AtomicU64,
    allocs: AtomicU64,
    frees: AtomicU64,
    remote_frees: AtomicU64,
    failed_allocs: AtomicU64,
    corrupt: AtomicU64,
}

static STATS: [Stats; NR_CPUS] = [const {
    Stats {
        ops: AtomicU64::new(0),
        allocs: AtomicU64::new(0),
        frees: AtomicU64::new(0),
        remote_frees: AtomicU64::new(0),
        failed_allocs: AtomicU64::new(0),
        corrupt: AtomicU64::new(0),
    }
}; NR_CPUS];

/// Objects waiting to be freed by whichever CPU takes them.
static HANDOFF: mm::sync::SpinLock<([Option<Item>; HANDOFF_MAX], usize)> =
    mm::sync::SpinLock::new(([const { None }; HANDOFF_MAX], 0));
static SEED: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);
/// A seed given by the user (`stress OPS SEED`): the same operations every run, so a
/// fault-injection sweep can fail the Nth allocation of a repeatable run. 0: from the timer.
static FIXED_SEED: AtomicU64 = AtomicU64::new(0);

/// Seeds the next runs with `seed` (0: from the timer, the default).
pub fn set_seed(seed: u64) {
    FIXED_SEED.store(seed, Relaxed);
}

/// Puts an object in the hand-off, or frees it here if the hand-off is full.
fn handoff_push(cpu: usize, it: Item) {
    let mut h = HANDOFF.lock();
    let n = h.1;
    if n < HANDOFF_MAX {
        h.0[n] = Some(it);
        h.1 += 1;
    } else {
        drop(h);
        free_item(cpu, it);
    }
}

/// Takes the most recent object from the hand-off.
fn handoff_take() -> Option<Item> {
    let mut h = HANDOFF.lock();
    if h.1 == 0 {
        return None;
    }
    h.1 -= 1;
    let n = h.1;
    h.0[n].take()
}

fn free_item(cpu: usize, it: Item) {
    let st = &STATS[cpu];
    if !it.intact() {
        st.corrupt.fetch_add(1, Relaxed);
    }
    if it.owner != cpu {
        st.remote_frees.fetch_add(1, Relaxed);
    }
    drop(it);
    st.frees.fetch_add(1, Relaxed);
}

/// With a compaction thread: vmallocs are movable, so it migrates their pages under the
/// workers.
static COMPACTING: AtomicBool = AtomicBool::new(false);
/// Set when the workers are done: the compaction thread stops.
static WORKERS_DONE: AtomicBool = AtomicBool::new(false);
/// Compaction passes and pages migrated by the compaction thread.
static COMPACT_PASSES: AtomicU64 = AtomicU64::new(0);
static COMPACT_MIGRATED: AtomicU64 = AtomicU64::new(0);

/// The hot page: one movable vmalloc page in which every worker counts its operations
/// (word `cpu`), while the compaction thread migrates it again and again.
static HOT: mm::sync::SpinLock<Option<Allocation>> = mm::sync::SpinLock::new(None);
/// Migrations of the hot page.
static HOT_MIGRATIONS: AtomicU64 = AtomicU64::new(0);
/// Hot-page migrations per compaction pass.
const HOT_MIGRATIONS_PER_PASS: usize = 200;

/// Migrates the hot page once (it moves to another frame; its VA stays).
fn migrate_hot(cpu: mm::cpu::CpuId, va: mm::addr::VirtAddr) {
    let Some(pa) = crate::mm::vmalloc::vmalloc_to_page(va) else { return };
    let quiet = mm::gfp::GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN;
    let r = mm::page_alloc::Migrator::new(&PAGES, mm::page_alloc::MigrateCtx::sync(cpu))
        .migrate_page(pa.pfn(), &mut |o| PAGES.alloc_pages(quiet, o, cpu).ok());
    if r.is_ok() {
        HOT_MIGRATIONS.fetch_add(1, Relaxed);
    }
}

/// The compaction thread: compacts memory again and again until the workers are done
/// (this CPU's lists only are drained: the others belong to the busy workers), and
/// between passes migrates the hot page the workers count in.
fn compactor(va: usize) {
    let cpu = smp_processor_id();
    let va = mm::addr::VirtAddr::new(va as u64);
    while !WORKERS_DONE.load(Relaxed) && !crate::tty::signal_pending() {
        let r = mm::page_alloc::Compactor::new(&PAGES, mm::page_alloc::MigrateCtx::sync(cpu)).compact_memory();
        COMPACT_PASSES.fetch_add(1, Relaxed);
        COMPACT_MIGRATED.fetch_add(r.migrated, Relaxed);
        for _ in 0..HOT_MIGRATIONS_PER_PASS {
            if WORKERS_DONE.load(Relaxed) || crate::tty::signal_pending() {
                break;
            }
            migrate_hot(cpu, va);
        }
    }
}

fn alloc_item(cpu: usize, rng: &mut u64) -> Option<Item> {
    let quiet = GFP_KERNEL | Gfp::GFP_NOWARN;
    let vm_gfp = if COMPACTING.load(Relaxed) { quiet | Gfp::GFP_MOVABLE } else { quiet };
    let r = xorshift64(rng);
    let alloc = match r % 10 {
        0..=3 => Allocation::pages(quiet, (r >> 8) as u32 % 6)?,
        4..=8 => Allocation::kmalloc(KMALLOC_SIZES[(r >> 8) as usize % KMALLOC_SIZES.len()], quiet)?,
        _ => Allocation::vmalloc((1 + (r >> 8) as usize % 1024) * PAGE_SIZE, vm_gfp, "stress").ok()?,
    };
    let it = Item { alloc, owner: cpu };
    it.mark();
    Some(it)
}

/// One CPU's share: `ops` random operations, then everything it still holds is freed.
fn worker(ops: usize) {
    let cpu = smp_processor_id().index();
    let st = &STATS[cpu];
    let fixed = FIXED_SEED.load(Relaxed);
    let mut rng =
        if fixed != 0 { fixed } else { SEED.load(Relaxed) ^ board::timer::ticks() } ^ ((cpu as u64 + 1) << 32);
    let mut local: [Option<Item>; LOCAL_MAX] = [const { None }; LOCAL_MAX];
    for _ in 0..ops {
        // Ctrl-C: stop here; what this CPU holds is handed off and freed as usual.
        if crate::tty::signal_pending() {
            break;
        }
        st.ops.fetch_add(1, Relaxed);
        if let Some(h) = HOT.lock().as_ref() {
            h.bump_word(cpu);
        }
        let r = xorshift64(&mut rng) % 100;
        let slot = (xorshift64(&mut rng) % LOCAL_MAX as u64) as usize;
        match r {
            0..=49 => {
                if let Some(old) = local[slot].take() {
                    free_item(cpu, old);
                }
                match alloc_item(cpu, &mut rng) {
                    Some(it) => {
                        st.allocs.fetch_add(1, Relaxed);
                        local[slot] = Some(it);
                    }
                    None => {
                        st.failed_allocs.fetch_add(1, Relaxed);
                    }
                }
            }
            50..=69 => {
                if let Some(it) = local[slot].take() {
                    free_item(cpu, it);
                }
            }
            70..=84 => {
                if let Some(it) = local[slot].take() {
                    handoff_push(cpu, it);
                }
            }
            _ => {
                if let Some(it) = handoff_take() {
                    free_item(cpu, it);
                }
            }
        }
    }
    // Leftovers go to the hand-off, so whichever CPU runs next (or the final drain)
    // frees them: every run has cross-CPU frees, however the CPUs were scheduled.
    for it in local.iter_mut().filter_map(Option::take) {
        handoff_push(cpu, it);
    }
}

fn reset_stats() {
    for s in &STATS {
        for c in [&s.ops, &s.allocs, &s.frees, &s.remote_frees, &s.failed_allocs, &s.corrupt] {
            c.store(0, Relaxed);
        }
    }
}

fn drain_handoff(cpu: usize) {
    while let Some(it) = handoff_take() {
        free_item(cpu, it);
    }
}

/// Pages the kernel holds for its own structures: (slab pages, vmalloc page tables).
fn kernel_held_pages() -> (usize, usize) {
    (SLAB.slab_bytes() / PAGE_SIZE, crate::mm::vmalloc::usage().1)
}

/// Slabs and objects in use per cache (by registry slot), for saying where a leak sits.
type CacheCounts = [(usize, usize); mm::slab::MAX_CACHES];

fn cache_counts() -> CacheCounts {
    let mut out = [(0, 0); mm::slab::MAX_CACHES];
    SLAB.for_each_cache(|id, s| out[id.index()] = (s.num_slabs, s.active_objs));
    out
}

/// After a leak: every cache that holds more slabs than before, and its objects in use.
fn print_grown_caches(was: &CacheCounts) {
    SLAB.for_each_cache(|id, s| {
        let (slabs, objs) = was[id.index()];
        if s.num_slabs > slabs {
            cprintln!(
                "stress:   {}: slabs {} -> {} ({} pages each), objects in use {} -> {}",
                s.name,
                slabs,
                s.num_slabs,
                s.pagesperslab,
                objs,
                s.active_objs
            );
        }
    });
}

/// How long the leak check keeps draining for pages still on their way back.
const SETTLE_MS: u64 = 2000;

/// Free pages once every CPU's frees have landed: every CPU's per-CPU lists and slab
/// arrays drained and empty slabs returned ([`crate::mm::settled_free_pages`]), again
/// while fewer than `before` are free, for at most [`SETTLE_MS`] (a CPU that answers
/// the drain late still holds a freed object, so its slab page is not empty yet), or
/// until Ctrl-C. Returns the count and the milliseconds it waited (0: whole at once).
fn settled_after(before: u64) -> (u64, u64) {
    let t0 = board::timer::ticks();
    let ms = || board::timer::ticks_to_ns(board::timer::ticks() - t0) / 1_000_000;
    let mut after = crate::mm::settled_free_pages();
    if after >= before {
        return (after, 0);
    }
    while after < before && ms() < SETTLE_MS && !crate::tty::signal_pending() {
        board::timer::delay_us(10_000);
        after = crate::mm::settled_free_pages();
    }
    (after, ms().max(1))
}

/// Runs the stress test with `ops` operations per CPU; true if everything held. With
/// `compact`, the last online CPU runs compaction in a loop instead of working, and the
/// workers' vmallocs are movable: their pages migrate while the workers use them.
pub fn run(ops: usize, compact: bool) -> bool {
    let mut cpus = [CpuId::BOOT; NR_CPUS - 1];
    let mut nr = 0;
    for c in CpuId::all().skip(1) {
        if cpu_online(c) {
            cpus[nr] = c;
            nr += 1;
        }
    }
    let compact_cpu = if compact && nr > 0 {
        nr -= 1;
        Some(cpus[nr])
    } else {
        None
    };
    let cpus = &cpus[..nr];
    let before = crate::mm::settled_free_pages();
    let held_before = kernel_held_pages();
    let caches_before = cache_counts();
    match compact_cpu {
        Some(c) => {
            cprintln!("stress: {} CPUs working, {} operations per CPU, cpu{} compacting", 1 + cpus.len(), ops, c)
        }
        None => cprintln!("stress: {} CPUs online, {} operations per CPU", 1 + cpus.len(), ops),
    }

    // One CPU alone, for the throughput baseline.
    reset_stats();
    let t0 = board::timer::ticks();
    worker(ops);
    drain_handoff(0);
    let one = board::timer::ticks_to_ns(board::timer::ticks() - t0).max(1);
    let one_ops = STATS[0].ops.load(Relaxed);

    // All CPUs at once (and the compaction thread, if asked for).
    reset_stats();
    let t0 = board::timer::ticks();
    let mut tickets = [None; NR_CPUS];
    COMPACTING.store(compact_cpu.is_some(), Relaxed);
    WORKERS_DONE.store(false, Relaxed);
    COMPACT_PASSES.store(0, Relaxed);
    COMPACT_MIGRATED.store(0, Relaxed);
    let waited = crate::mm::migrate::migration_faults();
    HOT_MIGRATIONS.store(0, Relaxed);
    let mut hot_va = 0;
    if compact_cpu.is_some() {
        let quiet = GFP_KERNEL | Gfp::GFP_MOVABLE | Gfp::GFP_NOWARN | Gfp::GFP_ZERO;
        if let Ok(h) = Allocation::vmalloc(PAGE_SIZE, quiet, "stress_hot") {
            hot_va = h.addr().as_usize();
            *HOT.lock() = Some(h);
        }
    }
    let compact_ticket = compact_cpu.and_then(|c| smp::run_on(c, compactor, hot_va).ok().map(|t| (c, t)));
    for &c in cpus {
        tickets[c.index()] = smp::run_on(c, worker, ops).ok();
    }
    worker(ops);
    // A CPU that did not finish (only possible after Ctrl-C, see `smp::wait`).
    let mut stuck = 0usize;
    for (c, t) in CpuId::all().zip(tickets.iter()) {
        if let Some(t) = t {
            if let Err(why) = smp::wait(c, *t, crate::tty::signal_pending) {
                cprintln!("stress: cpu{} {}", c, why);
                stuck |= 1 << c.index();
            }
        }
    }
    WORKERS_DONE.store(true, Relaxed);
    if let Some((c, t)) = compact_ticket {
        if let Err(why) = smp::wait(c, t, crate::tty::signal_pending) {
            cprintln!("stress: cpu{} {}", c, why);
            stuck |= 1 << c.index();
        }
        cprintln!(
            "stress: compaction on cpu{}: {} passes, {} pages migrated under the workers, {} accesses waited for a migration",
            c,
            COMPACT_PASSES.load(Relaxed),
            COMPACT_MIGRATED.load(Relaxed),
            crate::mm::migrate::migration_faults() - waited
        );
    }
    COMPACTING.store(false, Relaxed);
    // Every operation of every worker was counted in the hot page, whatever frame it
    // was on at the time.
    let hot = HOT.lock().take();
    let mut lost_counts = 0u64;
    if let Some(h) = &hot {
        for (cpu, s) in STATS.iter().enumerate().filter(|(c, _)| *c == 0 || cpus.iter().any(|x| x.index() == *c)) {
            lost_counts += s.ops.load(Relaxed).abs_diff(h.word(cpu));
        }
        cprintln!(
            "stress: hot page migrated {} times under the workers, {} counts lost",
            HOT_MIGRATIONS.load(Relaxed),
            lost_counts
        );
    }
    drop(hot);
    let started = tickets.iter().flatten().count();
    drain_handoff(0);
    let all = board::timer::ticks_to_ns(board::timer::ticks() - t0).max(1);

    let mut total_ops = 0;
    let mut remote = 0;
    let mut corrupt = 0;
    for (cpu, s) in STATS.iter().enumerate().filter(|(c, _)| *c == 0 || cpus.iter().any(|x| x.index() == *c)) {
        let (o, a, f, r) =
            (s.ops.load(Relaxed), s.allocs.load(Relaxed), s.frees.load(Relaxed), s.remote_frees.load(Relaxed));
        cprintln!(
            "stress: cpu{} ops={} allocs={} frees={} remote_frees={} failed_allocs={}",
            cpu,
            o,
            a,
            f,
            r,
            s.failed_allocs.load(Relaxed)
        );
        total_ops += o;
        remote += r;
        corrupt += s.corrupt.load(Relaxed);
    }
    let per_s = |ops: u64, ns: u64| ops * 1_000_000_000 / ns;
    let (t1, tn) = (per_s(one_ops, one), per_s(total_ops, all));
    // An interrupted run's rates measure the interruption, not the allocators.
    if !crate::tty::signal_pending() {
        cprintln!(
            "stress: throughput 1 CPU {} ops/s, {} CPUs {} ops/s ({}.{:02}x)",
            t1,
            1 + started,
            tn,
            tn / t1.max(1),
            tn * 100 / t1.max(1) % 100
        );
    }

    let corrupt_total = corrupt;
    let invariants = check_invariants(&PAGES);
    let slab_errors = SLAB.validate_all();
    let (after, late_ms) = settled_after(before);
    let corrupt = corrupt_total;
    if crate::tty::signal_pending() {
        cprintln!("stress: interrupted (^C); everything allocated was freed");
    }
    cprintln!("stress: free pages before={} after={}, {} remote frees", before, after, remote);
    // Each problem is printed as it is found (nothing allocated: stress also runs when
    // memory is short or fault injection is on).
    let mut problems = 0;
    let mut problem = |args: core::fmt::Arguments<'_>| {
        problems += 1;
        cprintln!("stress: FAILED: {}", args);
    };
    if lost_counts != 0 {
        problem(format_args!("{lost_counts} counts lost in the hot page"));
    }
    if compact_cpu.is_some() && compact_ticket.is_none() {
        problem(format_args!("the compaction CPU did not take its work"));
    }
    if started != cpus.len() {
        problem(format_args!("a CPU did not take its work"));
    }
    if stuck != 0 {
        let n = stuck.count_ones();
        problem(format_args!("{n} CPUs did not finish their work (the counts above are not final)"));
    }
    if corrupt != 0 {
        problem(format_args!("{corrupt} objects lost their contents"));
    }
    if let Err(e) = invariants {
        problem(format_args!("page allocator invariant broken: {e}"));
    }
    if slab_errors != 0 {
        problem(format_args!("{slab_errors} slab errors"));
    }
    if before != after {
        // Where the difference sits, if the kernel's own structures grew (slab pages,
        // vmalloc page tables): the report then says where to look.
        let (was, held) = (held_before, kernel_held_pages());
        problem(format_args!(
            "leak: free pages before={before} after={after} after {late_ms} ms of draining every CPU \
             (slab pages {} -> {}, vmalloc page tables {} -> {})",
            was.0, held.0, was.1, held.1
        ));
        print_grown_caches(&caches_before);
    } else if late_ms > 0 {
        cprintln!("stress: free pages came back late: {late_ms} ms of draining every CPU before the count was whole");
    }
    if problems == 0 && !crate::tty::signal_pending() {
        crate::record::emit(records::Stress {
            cpus: (1 + started) as u32,
            ops: total_ops,
            seed: FIXED_SEED.load(Relaxed),
            compact: compact_cpu.is_some(),
            ops_per_s: tn,
            free_before: before,
            free_after: after,
            ok: true,
        });
    }
    if problems == 0 {
        cprintln!("stress: OK");
        true
    } else {
        false
    }
}
