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
use mm::addr::{Pfn, VirtAddr};
use mm::page_alloc::{CompactResult, MigrateError, MigrateMode, MovableOwner, MovableOwners, MAX_PAGE_ORDER};

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

/// Hands [`OWNERS`] to the page allocator: compaction and direct compaction may run.
pub fn init() {
    PAGES.set_movable_owners(&OWNERS);
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
                    vm.migrate_page(VirtAddr::new(va), old.phys(), new.phys(), &PAGE_SOURCE, pt)
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
