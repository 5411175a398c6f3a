//! The kernel's kinds of movable pages ([`mm::page_alloc::MovableOps`], registered with the
//! page allocator by kind), and the compaction entry points that drain every CPU's lists
//! first.
//!
//! - [`VMALLOC_MOVABLE`]: a `__GFP_MOVABLE` vmalloc's page; moved under the vmalloc areas
//!   lock and the page-table lock (in that order, [`VMALLOC`]), copied while its entry is
//!   invalid; a batch of them ([`MovableOps::migrate_pages`]) under one lock round and one
//!   TLB invalidation;
//! - [`CONSOLE_MOVABLE`] and [`LAB_MOVABLE`]: tables above this layer (the console's
//!   handles, the sweep's fragmentation lab), which register their operations at boot
//!   ([`register`]).
//!
//! Lock order: an owner's lock (handle table, lab table, or vmalloc areas then page
//! table), then the page allocator's (the old block is freed after the owner let go).
//! Compaction holds no lock while it calls an owner.

use super::page_alloc::{PAGES, PAGE_SOURCE};
use super::vmalloc::VMALLOC;
use crate::percpu::smp_processor_id as this_cpu;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use mm::addr::{Pfn, PhysAddr, VirtAddr};
use mm::page_alloc::{
    BlockMove, CmaAllocStats, CmaError, CompactResult, MigrateCtx, MigrateError, MigrateMode, MovableKind, MovableOps,
    MovableOwner, MAX_PAGE_ORDER, MIGRATE_BATCH,
};
use mm::pgtable::PageMove;
use mm::vmalloc::{movable_va, VMALLOC_MOVABLE};

/// The movable kind of the console's `alloc pages N GFP_HIGHUSER_MOVABLE` handles (the
/// owner's private part: the handle table's slot).
pub const CONSOLE_MOVABLE: MovableKind = MovableKind(1);
/// The movable kind of the fragmentation lab's pages (private part: the entry's index).
pub const LAB_MOVABLE: MovableKind = MovableKind(3);

/// Registers `ops` as the operations of `kind`'s movable blocks (at boot; again with the
/// same `ops` is no change); a refusal is a bug, reported.
pub fn register(kind: MovableKind, ops: &'static dyn MovableOps) {
    if let Err(e) = PAGES.movable_ops.register(kind, ops) {
        crate::pr_warn!("WARNING: movable kind {}: {} (not registered)", kind.0, e);
    }
}

/// Marks the live block headed at `pfn` as movable by `owner` (a no-op before the page
/// allocator is set up, or for anything but such a block; see
/// [`mm::owner::set_movable_owner`]).
pub fn set_movable_owner(pfn: Pfn, owner: MovableOwner) {
    if let Some(mm) = PAGES.mem_map() {
        mm::owner::set_movable_owner(&mm, pfn, owner);
    }
}

/// vmalloc's movable pages (registered for [`VMALLOC_MOVABLE`] at boot).
#[derive(Debug)]
struct VmallocPages;

/// The vmalloc pages under migration: the page range `[first, end)` as page numbers from
/// `VMALLOC_START`, packed `first << 32 | end` (0: none). Vmalloc migrations hold the
/// vmalloc locks, so there is at most one batch; its range covers every page of it (and
/// maybe pages between them, which do not fault).
static MIGRATING: AtomicU64 = AtomicU64::new(0);

/// Batches of vmalloc migrations finished: a waiter that saw its page covered retries
/// once this moved on, even if the next batch covers the page again.
static MIGRATION_SEQ: AtomicU64 = AtomicU64::new(0);

/// Accesses that met a page under migration, waited and were retried.
static MIGRATION_FAULTS: AtomicU64 = AtomicU64::new(0);

/// CPUs in [`retry_migration_fault`] right now. The next batch waits (briefly) until they
/// have left, so a waiter always gets to retry its access between two migrations of its
/// page: without that, under QEMU's `thread=single` (all vCPUs on one host thread, which
/// switches vCPU at the batch's TLB invalidation, while the page is unmapped) a worker
/// re-faulted into every migration of a page that is migrated again and again, for ever.
static MIGRATION_WAITERS: AtomicU32 = AtomicU32::new(0);

/// Longest a batch waits for the CPUs still in [`retry_migration_fault`] to leave (only
/// fairness rides on it: a waiter caught again waits again, and leaves after the next).
const WAITERS_GATE_US: u64 = 10_000;

/// How many accesses met a vmalloc page under migration and were retried.
pub fn migration_faults() -> u64 {
    MIGRATION_FAULTS.load(Ordering::Relaxed)
}

/// The [`MIGRATING`] word for the pages `vas` (those outside the vmalloc range are left
/// out: the area lookup refuses them).
fn migrating_range(vas: impl Iterator<Item = u64>) -> u64 {
    let (mut first, mut end) = (u64::MAX, 0);
    for va in vas.filter(|&va| mm::pgtable::layout::is_vmalloc_addr(va)) {
        let page = (va - mm::pgtable::layout::VMALLOC_START) >> mm::addr::PAGE_SHIFT;
        first = first.min(page);
        end = end.max(page + 1);
    }
    if end == 0 {
        0
    } else {
        (first << 32) | end
    }
}

/// Whether the [`MIGRATING`] word `m` covers the page at `va`.
fn covers(m: u64, va: u64) -> bool {
    let page = (va - mm::pgtable::layout::VMALLOC_START) >> mm::addr::PAGE_SHIFT;
    m != 0 && (m >> 32..m & 0xffff_ffff).contains(&page)
}

/// Longest wait of a fault on a page under migration (a batch of 32 page copies and one
/// TLB invalidation takes well under a millisecond, even in QEMU; the vmalloc lock, to
/// check a page whose migration ended before the fault handler looked, may be taken
/// batch after batch by a compaction).
const MIGRATION_WAIT_US: u64 = 1_000_000;

/// Registers vmalloc's movable pages with the page allocator (compaction and direct
/// compaction may run) and lets the exception handler retry accesses that met a vmalloc
/// page under migration.
pub fn init() {
    register(VMALLOC_MOVABLE, &VmallocPages);
    crate::arch::aarch64::traps::set_fault_retry(retry_migration_fault);
}

/// Whether a kernel data abort (`esr`, `far`) hit a vmalloc page while its entry was
/// invalid for migration: then it waits until the page is mapped again and the access
/// is retried (true). A level-3 translation fault in the vmalloc range only; anything
/// else, or a page still unmapped after the migration (a real bug), is an oops (false).
fn retry_migration_fault(esr: u64, far: u64) -> bool {
    const EC_DABT_CUR: u32 = 0x25;
    const DFSC_TRANSLATION_L3: u64 = 0x07;
    if crate::arch::aarch64::esr::ec(esr) != EC_DABT_CUR
        || esr & 0x3f != DFSC_TRANSLATION_L3
        || !(mm::pgtable::layout::VMALLOC_START..mm::pgtable::layout::VMALLOC_END).contains(&far)
    {
        return false;
    }
    MIGRATION_WAITERS.fetch_add(1, Ordering::AcqRel);
    let resolved = wait_for_migration(far);
    MIGRATION_WAITERS.fetch_sub(1, Ordering::AcqRel);
    // Wakes a batch waiting for the waiters to leave (a real core sleeping in `wfe`).
    boot::cpu::sev();
    resolved
}

/// [`retry_migration_fault`]'s wait, bounded by the generic timer. It sleeps in `wfe`:
/// woken by the `sev` that ends a batch, or by the event stream on a real core; under
/// QEMU's TCG `wfe` hands the host thread to another vCPU, so the migrating CPU runs
/// even when every vCPU shares one host thread. (No Ctrl-C check: the faulting access
/// can only be retried or end in an oops, and the batch it waits for is short.)
fn wait_for_migration(far: u64) -> bool {
    let deadline = board::timer::ticks() + crate::timer::us_to_ticks(MIGRATION_WAIT_US);
    let mut saw = None;
    while board::timer::ticks() < deadline {
        let seq = MIGRATION_SEQ.load(Ordering::Acquire);
        if covers(MIGRATING.load(Ordering::Acquire), far) && saw.is_none_or(|s| s == seq) {
            // (A batch that ended after `seq` was read makes the wait one batch longer.)
            saw = saw.or(Some(seq));
            boot::cpu::wfe();
            continue;
        }
        if saw.is_some() {
            // The migration we waited for is over: the page is mapped again (a new
            // migration of it would fault the retry back here).
            MIGRATION_FAULTS.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        // The migration may have ended before we looked: mapped now means retry. (The
        // vmalloc lock may be busy for a while: a compaction takes it for every page.)
        let mapped =
            VMALLOC.try_lock().and_then(|mut g| g.try_with_pt(|_, pt| pt.translate(VirtAddr::new(far)).is_some()));
        match mapped {
            Some(m) => {
                if m {
                    MIGRATION_FAULTS.fetch_add(1, Ordering::Relaxed);
                }
                return m;
            }
            None => boot::cpu::wfe(),
        }
    }
    false
}

impl VmallocPages {
    /// The page move of `m`, a block of [`VMALLOC_MOVABLE`]; `None` if it is not one page.
    fn page_move(m: &BlockMove) -> Option<PageMove> {
        let va = movable_va(m.owner).filter(|_| m.order == 0)?;
        Some(PageMove { va, old: m.old.phys(), new: m.new.phys() })
    }
}

impl MovableOps for VmallocPages {
    fn migrate_page(&self, m: &BlockMove, mode: MigrateMode) -> Result<(), MigrateError> {
        let pm = Self::page_move(m).ok_or(MigrateError::NotMovable)?;
        let mut r = [Ok(())];
        move_vmalloc(&[pm], mode, &mut r);
        r[0]
    }

    fn migrate_pages(&self, moves: &[BlockMove], mode: MigrateMode, result: &mut [Result<(), MigrateError>]) {
        // The pages go together (one lock round, one TLB invalidation).
        let none = PageMove { va: VirtAddr::new(0), old: PhysAddr::new(0), new: PhysAddr::new(0) };
        let mut vm = [none; MIGRATE_BATCH];
        let mut from = [0usize; MIGRATE_BATCH];
        for (chunk, res) in moves.chunks(MIGRATE_BATCH).zip(result.chunks_mut(MIGRATE_BATCH)) {
            let mut n = 0;
            for (k, m) in chunk.iter().enumerate() {
                match Self::page_move(m) {
                    Some(pm) => {
                        vm[n] = pm;
                        from[n] = k;
                        n += 1;
                    }
                    None => res[k] = Err(MigrateError::NotMovable),
                }
            }
            let mut done = [Ok(()); MIGRATE_BATCH];
            if n > 0 {
                move_vmalloc(&vm[..n], mode, &mut done[..n]);
            }
            for j in 0..n {
                res[from[j]] = done[j];
            }
        }
    }
}

/// Moves a batch of vmalloc pages (at most [`MIGRATE_BATCH`]) under one round of the
/// vmalloc areas lock and the page-table lock (try-locks in [`MigrateMode::Async`]: busy
/// fails them all with [`MigrateError::Busy`]).
fn move_vmalloc(moves: &[PageMove], mode: MigrateMode, result: &mut [Result<(), MigrateError>]) {
    let fail = |result: &mut [Result<(), MigrateError>], e| result.iter_mut().for_each(|r| *r = Err(e));
    // The CPUs that waited for the last batch retry their accesses before this one starts
    // (bounded by the generic timer; `wfe` as in their wait, which they end with `sev`).
    let gate = board::timer::ticks() + crate::timer::us_to_ticks(WAITERS_GATE_US);
    while MIGRATION_WAITERS.load(Ordering::Acquire) != 0 && board::timer::ticks() < gate {
        boot::cpu::wfe();
    }
    let mut g = match mode {
        MigrateMode::Sync => VMALLOC.lock(),
        MigrateMode::Async => match VMALLOC.try_lock() {
            Some(g) => g,
            None => return fail(result, MigrateError::Busy),
        },
    };
    let mut f = |vm: &mut mm::vmalloc::Vmalloc, pt: &mut super::mmu::KernelPageTable| {
        // A CPU that touches a page of the batch while its entry is invalid faults and
        // waits for the batch to end (`retry_migration_fault`), as Linux waits on a
        // migration entry.
        MIGRATING.store(migrating_range(moves.iter().map(|m| m.va.as_u64())), Ordering::Release);
        vm.migrate_pages(moves, &PAGE_SOURCE, pt, result);
        MIGRATING.store(0, Ordering::Release);
        MIGRATION_SEQ.fetch_add(1, Ordering::Release);
        // Wakes the CPUs waiting in `wfe` for this batch (real cores; dsb first).
        boot::cpu::sev();
    };
    let ran = match mode {
        MigrateMode::Sync => g.with_pt(&mut f).is_some(),
        MigrateMode::Async => g.try_with_pt(&mut f).is_some(),
    };
    if !ran {
        let e = if mode == MigrateMode::Sync { MigrateError::Gone } else { MigrateError::Busy };
        fail(result, e);
    }
}

/// Copies `2^order` pages from `old` to `new` through the linear map (the caller holds
/// both blocks and the owner's lock, so nobody else writes either).
pub fn copy_block(old: Pfn, new: Pfn, order: u32) {
    debug_assert!(order <= MAX_PAGE_ORDER);
    let (src, dst) = (super::phys_to_virt(old.phys()), super::phys_to_virt(new.phys()));
    let len = mm::addr::PAGE_SIZE << order;
    // SAFETY: both blocks are allocated (2^order pages each), mapped read-write in the
    // linear map and distinct (the new one was free until the migration took it).
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr::<u8>(), dst.as_mut_ptr::<u8>(), len) };
}

/// Linux's `compact_memory` (a write to /proc/sys/vm/compact_memory): every CPU's lists
/// drained, then both scanners over every zone until they meet.
pub fn compact_memory() -> CompactResult {
    super::drain_all_cpu_caches();
    let r = mm::page_alloc::Compactor::new(&PAGES, MigrateCtx::sync(this_cpu())).compact_memory();
    super::drain_all_cpu_caches();
    r
}

/// Linux's `cma_alloc`: every CPU's lists drained (CMA pages on them are free but not on
/// the buddy lists), then `count` pages of the CMA area, aligned to `2^align_order`, with
/// the borrowers migrated out by their kinds' operations. Never call it holding an owner's
/// lock.
pub fn cma_alloc(count: u64, align_order: u32) -> Result<(Pfn, CmaAllocStats), CmaError> {
    super::drain_all_cpu_caches();
    let mut st = CmaAllocStats::default();
    let r = mm::page_alloc::Cma::new(&PAGES).alloc(count, align_order, this_cpu(), &mut st);
    r.map(|pfn| (pfn, st))
}

/// Linux's `cma_release` for a range [`cma_alloc`] returned; a refusal is reported.
pub fn cma_release(addr: VirtAddr, pages: usize) {
    let pfn = super::virt_to_phys(addr).pfn();
    if let Err(e) = mm::page_alloc::Cma::new(&PAGES).release(pfn, pages as u64) {
        crate::pr_warn!("WARNING: cma_release of {} pages at {:#x}: {} (refused)", pages, pfn.0 << 12, e);
    }
}
