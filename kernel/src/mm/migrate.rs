//! The kernel's owners of movable pages ([`mm::page_alloc::MovableOwners`]), and the
//! compaction entry points that drain every CPU's lists first.
//!
//! - [`MovableOwner::Vmalloc`]: a `__GFP_MOVABLE` vmalloc's page; moved under the
//!   vmalloc areas lock and the page-table lock (in that order, [`VMALLOC`]), copied
//!   while its entry is invalid;
//! - [`MovableOwner::Console`] and [`MovableOwner::Lab`]: tables above this layer (the
//!   console's handles, the sweep's fragmentation lab), which register their mover here
//!   at boot ([`register_table`]).
//!
//! Lock order: an owner's lock (handle table, lab table, or vmalloc areas then page
//! table), then the page allocator's (the old block is freed after the owner let go).
//! Compaction holds no lock while it calls an owner.

use super::page_alloc::{PAGES, PAGE_SOURCE};
use super::this_cpu;
use super::vmalloc::VMALLOC;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::{Pfn, VirtAddr};
use mm::page_alloc::{
    CmaAllocStats, CmaError, CompactResult, MigrateError, MigrateMode, MovableOwner, MovableOwners, MAX_PAGE_ORDER,
};

/// Moves a block held in a table: `(index, old, new, order, mode)`.
pub type TableMover = fn(u32, Pfn, Pfn, u32, MigrateMode) -> Result<(), MigrateError>;

/// Which table a [`TableMover`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// The console's handle table.
    Console,
    /// The fragmentation lab's page array.
    Lab,
}

/// The kernel's movable owners (registered with the page allocator at boot).
#[derive(Debug)]
pub struct KernelOwners {
    console: spin::Once<TableMover>,
    lab: spin::Once<TableMover>,
}

/// The one instance.
pub static OWNERS: KernelOwners = KernelOwners { console: spin::Once::new(), lab: spin::Once::new() };

/// Registers the mover of a table's blocks (once per kind).
pub fn register_table(kind: TableKind, f: TableMover) {
    match kind {
        TableKind::Console => OWNERS.console.call_once(|| f),
        TableKind::Lab => OWNERS.lab.call_once(|| f),
    };
}

/// The vmalloc page being migrated (its VA), 0 for none. Vmalloc migrations hold the
/// vmalloc locks, so there is at most one.
static MIGRATING: AtomicU64 = AtomicU64::new(0);

/// Accesses that met a page under migration, waited and were retried.
static MIGRATION_FAULTS: AtomicU64 = AtomicU64::new(0);

/// How many accesses met a vmalloc page under migration and were retried.
pub fn migration_faults() -> u64 {
    MIGRATION_FAULTS.load(Ordering::Relaxed)
}

/// Longest wait of a fault on a page under migration (one page copy takes microseconds;
/// the vmalloc lock, to check a page whose migration ended before the fault handler
/// looked, may be taken page after page by a compaction).
const MIGRATION_WAIT_US: u64 = 1_000_000;

/// Hands [`OWNERS`] to the page allocator (compaction and direct compaction may run) and
/// lets the exception handler retry accesses that met a vmalloc page under migration.
pub fn init() {
    PAGES.set_movable_owners(&OWNERS);
    crate::arch::aarch64::exception::set_fault_retry(retry_migration_fault);
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
    let page = far & !(mm::addr::PAGE_SIZE as u64 - 1);
    let deadline = board::timer::ticks() + crate::timer::us_to_ticks(MIGRATION_WAIT_US);
    let mut saw = false;
    while board::timer::ticks() < deadline {
        if MIGRATING.load(Ordering::Acquire) == page {
            saw = true;
            core::hint::spin_loop();
            continue;
        }
        if saw {
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
            None => core::hint::spin_loop(),
        }
    }
    false
}

impl MovableOwners for KernelOwners {
    fn move_block(
        &self,
        owner: MovableOwner,
        old: Pfn,
        new: Pfn,
        order: u32,
        mode: MigrateMode,
    ) -> Result<(), MigrateError> {
        match owner {
            MovableOwner::Console(i) => self.console.get().ok_or(MigrateError::Gone)?(i, old, new, order, mode),
            MovableOwner::Lab(i) => self.lab.get().ok_or(MigrateError::Gone)?(i, old, new, order, mode),
            MovableOwner::Vmalloc(va) => {
                if order != 0 {
                    return Err(MigrateError::NotMovable);
                }
                let mut g = match mode {
                    MigrateMode::Sync => VMALLOC.lock(),
                    MigrateMode::Async => VMALLOC.try_lock().ok_or(MigrateError::Busy)?,
                };
                let f = |vm: &mut mm::vmalloc::Vmalloc, pt: &mut super::mmu::KernelPageTable| {
                    // A CPU that touches the page while its entry is invalid faults and
                    // waits for this to end (`retry_migration_fault`), as Linux waits
                    // on a migration entry.
                    MIGRATING.store(va, Ordering::Release);
                    let r = vm.migrate_page(VirtAddr::new(va), old.phys(), new.phys(), &PAGE_SOURCE, pt);
                    MIGRATING.store(0, Ordering::Release);
                    r
                };
                match mode {
                    MigrateMode::Sync => g.with_pt(f).ok_or(MigrateError::Gone)?,
                    MigrateMode::Async => g.try_with_pt(f).ok_or(MigrateError::Busy)?,
                }
            }
        }
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
    let r = PAGES.compact_memory(&OWNERS, MigrateMode::Sync, this_cpu());
    super::drain_all_cpu_caches();
    r
}

/// Linux's `cma_alloc`: every CPU's lists drained (CMA pages on them are free but not on
/// the buddy lists), then `count` pages of the CMA area, aligned to `2^align_order`, with
/// the borrowers migrated out through [`OWNERS`]. Never call it holding an owner's lock.
pub fn cma_alloc(count: u64, align_order: u32) -> Result<(Pfn, CmaAllocStats), CmaError> {
    super::drain_all_cpu_caches();
    let mut st = CmaAllocStats::default();
    let r = PAGES.cma_alloc(count, align_order, &OWNERS, this_cpu(), &mut st);
    r.map(|pfn| (pfn, st))
}

/// Linux's `cma_release` for a range [`cma_alloc`] returned; a refusal is reported.
pub fn cma_release(addr: VirtAddr, pages: usize) {
    let pfn = super::virt_to_phys(addr).pfn();
    if let Err(e) = PAGES.cma_release(pfn, pages as u64) {
        crate::pr_warn!("WARNING: cma_release of {} pages at {:#x}: {} (refused)", pages, pfn.0 << 12, e);
    }
}
