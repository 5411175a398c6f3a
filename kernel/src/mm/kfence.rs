//! KFENCE-style sampling in the running kernel (`kfence.sample_interval=MS`, 100 ms by
//! default as in Linux, 0 disables): every interval, the next `kmalloc` is served from
//! a pool of guard-page-surrounded object pages (`mm::debug::kfence` keeps the slots),
//! its page mapped only while the object lives. An out-of-bounds access or a use after
//! free faults; the fault handler's hook prints Linux's `BUG: KFENCE: ...` report with
//! the allocation (and free) traces, skips the faulting instruction and the kernel
//! carries on. (Linux unprotects the page instead; here it stays protected, so the
//! next bad access is caught too.)
//!
//! Costs on the allocation path: none of its own on the fast paths. `kmalloc` loads the
//! slab hooks' gate byte (`slab_hooks`, shared with kmemleak), whose bit the sampling
//! timer sets; `kfree` checks the pool's range only for an address that is not a slab
//! object of the linear map (the pool is in the vmalloc range), and `ksize` every time.
//! Nothing waits: the pool and the page table are
//! only `try_lock`ed (a busy lock means "not sampled this time").

use super::page_alloc::{self, PAGE_SOURCE};
use super::slab_hooks;
use super::vmalloc::{vmap, VMALLOC};
use crate::arch::aarch64::{backtrace, esr::Abort, traps::read_stack_word};
use crate::ksyms::SymbolizedAddr;
use crate::mm::page_owner::capture;
use boot::TrapFrame;
use core::fmt::Write;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::debug::kfence::{FaultKind, KfencePool, Slot, Track};
use mm::debug::stack_depot::{Trace, DEPOT_DEPTH};
use mm::fault_inject::FaultAttr;
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::pgtable::Prot;
use mm::sync::SpinLock;
use mm::vmalloc::tables::SourceTables;

/// Objects in the pool (Linux's CONFIG_KFENCE_NUM_OBJECTS is 255; 63 keeps the pool in
/// one order-6 block and under one page table).
pub const NR_OBJECTS: usize = 63;
/// Pages of the pool's vmap area: with its guard page, 2 MiB, one page table's span,
/// so the vmalloc areas after it start where they would without KFENCE (the pool's
/// pages first, the rest the anchor page).
const AREA_PAGES: usize = 511;
const _: () = assert!(KfencePool::<NR_OBJECTS>::PAGES <= AREA_PAGES);
/// Linux's default `kfence.sample_interval`.
const DEFAULT_INTERVAL_MS: u64 = 100;

struct Kfence {
    pool: KfencePool<NR_OBJECTS>,
    /// Physical frame of object 0; object k's is k pages on.
    frames: PhysAddr,
    alloc_traces: [Trace; NR_OBJECTS],
    free_traces: [Trace; NR_OBJECTS],
    /// Table pages the map and unmap calls hold (none: the anchors keep the table).
    tables: usize,
    /// Frees whose page could not be unmapped (page table busy).
    unprotect_skipped: u64,
    rng: u64,
}

static KFENCE: SpinLock<Option<Kfence>> = SpinLock::new(None);
static START: AtomicU64 = AtomicU64::new(u64::MAX);
static END: AtomicU64 = AtomicU64::new(0);
static INTERVAL_MS: AtomicU64 = AtomicU64::new(0);
static REPORTS: AtomicU64 = AtomicU64::new(0);
/// The slab's fault injection (`fail_slab`), given by `init`'s caller.
static FAILSLAB: spin::Once<&'static FaultAttr> = spin::Once::new();

fn interval_from_cmdline() -> Result<u64, &'static str> {
    match crate::cmdline::option(crate::platform::cmdline(), "kfence.sample_interval") {
        None => Ok(DEFAULT_INTERVAL_MS),
        Some(v) => v.parse().map_err(|_| v),
    }
}

/// Sets up the pool: an order-6 block for the objects (and the anchor page), mapped
/// by `vmap` at pool pages whose guards and object pages are then unmapped. `failslab`:
/// the slab's fault injection, which holds sampling off while it is armed.
pub fn init(failslab: &'static FaultAttr) {
    FAILSLAB.call_once(|| failslab);
    let ms = match interval_from_cmdline() {
        Ok(0) => {
            crate::pr_info!("kfence: disabled (kfence.sample_interval=0)");
            return;
        }
        Ok(ms) => ms,
        Err(v) => {
            crate::pr_warn!(
                "kfence.sample_interval={}: expected milliseconds; disabled",
                crate::cmdline::Escaped(v.as_bytes(), 20)
            );
            return;
        }
    };
    let Some(block) = page_alloc::__get_free_pages(GFP_KERNEL | Gfp::GFP_ZERO, 6) else {
        crate::pr_warn!("kfence: no memory for the pool: disabled");
        return;
    };
    let pa = super::virt_to_phys(block);
    let anchor = PhysAddr::new(pa.as_u64() + (NR_OBJECTS * PAGE_SIZE) as u64);
    let pages = KfencePool::<NR_OBJECTS>::PAGES;
    let mut frames = [anchor; AREA_PAGES];
    for (p, f) in frames.iter_mut().enumerate() {
        *f = if p >= 2 && p.is_multiple_of(2) && p < pages - 1 {
            PhysAddr::new(pa.as_u64() + ((p - 2) / 2 * PAGE_SIZE) as u64)
        } else {
            anchor
        };
    }
    let base = match vmap(&frames, Prot::KERNEL_RW, "kfence_pool") {
        Ok(va) => va.as_u64(),
        Err(e) => {
            crate::pr_warn!("kfence: cannot map the pool ({e}): disabled");
            return;
        }
    };
    let mut tables = 0usize;
    let unmapped = VMALLOC.lock().with_pt(|_, pt| {
        let mut t = SourceTables { pages: &PAGE_SOURCE, gfp: GFP_KERNEL, count: &mut tables };
        (1..pages - 1).all(|p| pt.unmap(&mut t, VirtAddr::new(base + (p * PAGE_SIZE) as u64), PAGE_SIZE as u64).is_ok())
    });
    if unmapped != Some(true) {
        crate::pr_warn!("kfence: cannot unmap the pool's guard pages: disabled");
        return;
    }
    *KFENCE.lock() = Some(Kfence {
        pool: KfencePool::new(base),
        frames: pa,
        alloc_traces: [[0; DEPOT_DEPTH]; NR_OBJECTS],
        free_traces: [[0; DEPOT_DEPTH]; NR_OBJECTS],
        tables,
        unprotect_skipped: 0,
        rng: board::timer::ticks() | 1,
    });
    START.store(base, Relaxed);
    END.store(base + (pages * PAGE_SIZE) as u64, Relaxed);
    INTERVAL_MS.store(ms, Relaxed);
    crate::pr_info!(
        "kfence: initialized - using {} bytes for {} objects at {:#x}-{:#x}, sample interval {} ms",
        (NR_OBJECTS + 1) * PAGE_SIZE,
        NR_OBJECTS,
        base,
        base + (pages * PAGE_SIZE) as u64,
        ms
    );
}

fn sample_tick(_: usize) {
    slab_hooks::set(slab_hooks::KFENCE_DUE);
    arm();
}

fn arm() {
    let ms = INTERVAL_MS.load(Relaxed);
    if ms != 0 {
        let _ = crate::timer::add_timer(crate::timer::now() + crate::timer::us_to_ticks(ms * 1000), sample_tick, 0);
    }
}

/// Starts the sampling timer (once the timers work).
pub fn start_sampling() {
    arm();
}

/// Whether `p` is in the pool (a range check: `kfree` and `ksize` call it every time).
#[inline(always)]
pub fn is_kfence_address(p: u64) -> bool {
    p >= START.load(Relaxed) && p < END.load(Relaxed)
}

/// The sampled `kmalloc`: `None` unless the interval has passed (`kmalloc` calls it only
/// when the hooks' gate byte is set: [`slab_hooks`]).
/// While `fail_slab` is armed, a sample that falls due is skipped (the slab serves, and
/// fails as told): Linux checks `should_failslab` before `kfence_alloc`, so an injected
/// failure is never served from the pool instead.
#[inline(always)]
pub fn alloc(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    if slab_hooks::pending() & slab_hooks::KFENCE_DUE == 0 || !slab_hooks::take(slab_hooks::KFENCE_DUE) {
        return None;
    }
    alloc_due(size, gfp)
}

#[inline(never)]
fn alloc_due(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    if FAILSLAB.get().is_some_and(|f| f.armed()) {
        return None;
    }
    alloc_sampled(size, gfp)
}

/// An object from the pool now, whatever the interval (`crash kfence-*`); `None` when
/// KFENCE is off, the pool is full or busy.
#[inline(never)]
pub fn alloc_sampled(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    let trace = capture(boot::cpu::fp() as u64);
    let mut g = KFENCE.try_lock()?;
    let k = g.as_mut()?;
    let right = crate::prng::xorshift64(&mut k.rng) & 1 == 1;
    let track = Track { handle: 0, cpu: boot::cpu::cpu_id() as u32, ts_ns: crate::printk::now_ns() };
    let (slot, addr) = k.pool.alloc(size, 8, right, track)?;
    let page = k.pool.slot_page(slot);
    let frame = PhysAddr::new(k.frames.as_u64() + (slot * PAGE_SIZE) as u64);
    let mut tables = k.tables;
    let mapped = VMALLOC.try_lock().and_then(|mut vm| {
        vm.try_with_pt(|_, pt| {
            let mut t = SourceTables { pages: &PAGE_SOURCE, gfp: gfp | Gfp::GFP_NOWARN, count: &mut tables };
            pt.map(&mut t, VirtAddr::new(page), frame, PAGE_SIZE as u64, Prot::KERNEL_RW, false).is_ok()
        })
    });
    k.tables = tables;
    if mapped != Some(true) {
        let _ = k.pool.free(addr, track);
        return None;
    }
    k.alloc_traces[slot] = trace;
    // The object's bytes start zeroed (kzalloc's promise, and no stale data).
    boot::cache::zero_range(addr as usize, size);
    NonNull::new(addr as *mut u8)
}

/// The object's size (`ksize`), if `p` is a live pool object.
pub fn ksize(p: u64) -> Option<usize> {
    KFENCE.lock().as_ref().and_then(|k| k.pool.size_of(p))
}

/// Frees a pool object (`kfree` of an address [`is_kfence_address`] accepted): its page
/// is unmapped, so a later access faults; a bad free is reported and refused.
#[inline(never)]
pub fn free(p: u64) {
    let trace = capture(boot::cpu::fp() as u64);
    let mut g = KFENCE.lock();
    let Some(k) = g.as_mut() else { return };
    let track = Track { handle: 0, cpu: boot::cpu::cpu_id() as u32, ts_ns: crate::printk::now_ns() };
    match k.pool.free(p, track) {
        Ok(slot) => {
            k.free_traces[slot] = trace;
            let page = k.pool.slot_page(slot);
            let mut tables = k.tables;
            let done = VMALLOC.try_lock().and_then(|mut vm| {
                vm.try_with_pt(|_, pt| {
                    let mut t = SourceTables { pages: &PAGE_SOURCE, gfp: GFP_KERNEL, count: &mut tables };
                    pt.unmap(&mut t, VirtAddr::new(page), PAGE_SIZE as u64).is_ok()
                })
            });
            k.tables = tables;
            if done != Some(true) {
                k.unprotect_skipped += 1;
            }
        }
        Err(_) => {
            drop(g);
            crate::printk::with_console(|w| {
                let _ = writeln!(w, "==================================================================");
                let _ = writeln!(
                    w,
                    "BUG: KFENCE: invalid free in {}",
                    SymbolizedAddr(crate::platform::symbols(), trace[0])
                );
                let _ = writeln!(w);
                let _ = writeln!(w, "Invalid free of 0x{p:016x}:");
                write_trace(w, &trace);
                let _ = writeln!(w, "==================================================================");
            });
        }
    }
}

fn write_trace(w: &mut dyn Write, t: &Trace) {
    let syms = crate::platform::symbols();
    for &a in t.iter().take_while(|&&a| a != 0) {
        let _ = writeln!(w, " {}", SymbolizedAddr(syms, a));
    }
}

fn write_track(w: &mut dyn Write, what: &str, t: &Track, trace: &Trace) {
    let _ = writeln!(
        w,
        "{what} by task 0 on cpu {} at {}.{:06}s:",
        t.cpu,
        t.ts_ns / 1_000_000_000,
        t.ts_ns / 1000 % 1_000_000
    );
    write_trace(w, trace);
}

/// The kmalloc cache an object of `size` would have come from.
fn cache_of(size: usize) -> usize {
    size.next_power_of_two().max(8)
}

/// The fault handler's hook: a data abort in the pool is reported in Linux's format
/// and the faulting instruction skipped (true); anything else is left to the oops.
pub fn handle_fault(frame: &mut TrapFrame) -> bool {
    let far = frame.far;
    let Some(abort) = Abort::decode(frame.esr) else { return false };
    if abort.exec || !is_kfence_address(far) {
        return false;
    }
    let Some(g) = KFENCE.try_lock() else { return false };
    let Some(k) = g.as_ref() else { return false };
    let kind = k.pool.classify(far);
    let info = match kind {
        FaultKind::OutOfBounds { slot, .. } | FaultKind::UseAfterFree { slot } => {
            Some((slot, *k.pool.slot(slot), k.alloc_traces[slot], k.free_traces[slot]))
        }
        FaultKind::Unknown => None,
    };
    drop(g);
    REPORTS.fetch_add(1, Relaxed);
    let rw = if abort.write { "write" } else { "read" };
    let syms = crate::platform::symbols();
    crate::printk::with_console(|w| {
        let _ = writeln!(w, "==================================================================");
        let what = match kind {
            FaultKind::OutOfBounds { .. } => "out-of-bounds",
            FaultKind::UseAfterFree { .. } => "use-after-free",
            FaultKind::Unknown => "invalid",
        };
        let _ = writeln!(w, "BUG: KFENCE: {what} {rw} in {}", SymbolizedAddr(syms, frame.elr));
        let _ = writeln!(w);
        match kind {
            FaultKind::OutOfBounds { slot, right, bytes } => {
                let _ = writeln!(
                    w,
                    "Out-of-bounds {rw} at 0x{far:016x} ({bytes}B {} of kfence-#{slot}):",
                    if right { "right" } else { "left" }
                );
            }
            FaultKind::UseAfterFree { slot } => {
                let _ = writeln!(w, "Use-after-free {rw} at 0x{far:016x} (in kfence-#{slot}):");
            }
            FaultKind::Unknown => {
                let _ = writeln!(w, "Invalid {rw} at 0x{far:016x}:");
            }
        }
        let _ = writeln!(w, " {}", SymbolizedAddr(syms, frame.elr));
        backtrace::walk(frame.regs[29], read_stack_word, |ret| {
            let _ = writeln!(w, " {}", SymbolizedAddr(syms, ret));
        });
        if let Some((slot, s, at, ft)) = info {
            write_object(w, slot, &s, &at, &ft);
        }
        let _ = writeln!(w);
        let cpu = boot::cpu::cpu_id();
        let _ = writeln!(w, "CPU: {cpu} PID: 0 Comm: swapper/{cpu} Not tainted {} #1", crate::oops::VERSION);
        let _ = writeln!(w, "Hardware name: {}", crate::platform::revision());
        let _ = writeln!(w, "==================================================================");
    });
    // Skip the access (A64 instructions are 4 bytes) and carry on.
    frame.elr += 4;
    true
}

fn write_object(w: &mut dyn Write, slot: usize, s: &Slot, at: &Trace, ft: &Trace) {
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "kfence-#{slot}: 0x{:016x}-0x{:016x}, size={}, cache=kmalloc-{}",
        s.addr,
        s.addr + s.size as u64 - 1,
        s.size,
        cache_of(s.size)
    );
    let _ = writeln!(w);
    write_track(w, "allocated", &s.alloc, at);
    if s.state == mm::debug::kfence::SlotState::Freed {
        let _ = writeln!(w);
        write_track(w, "freed", &s.free, ft);
    }
}

/// `(sampled allocations, frees, pool-full fallbacks, objects live, reports)`, for
/// the console.
pub fn stats() -> Option<(u64, u64, u64, usize, u64)> {
    let g = KFENCE.lock();
    let k = g.as_ref()?;
    let (a, f, fb) = k.pool.stats();
    Some((a, f, fb, k.pool.nr_allocated(), REPORTS.load(Relaxed)))
}

/// Whether `a` is inside a live pool object's page (mapped now).
pub fn is_live(a: u64) -> bool {
    let Some(g) = KFENCE.try_lock() else { return false };
    g.as_ref().is_some_and(|k| {
        k.pool.object_slot(a).is_some_and(|s| k.pool.slot(s).state == mm::debug::kfence::SlotState::Allocated)
    })
}

/// The pool's metadata (which holds every object's address): kmemleak does not take it
/// for a reference.
pub fn metadata_range() -> (usize, usize) {
    let s = core::ptr::addr_of!(KFENCE) as usize;
    (s, s + core::mem::size_of_val(&KFENCE))
}
