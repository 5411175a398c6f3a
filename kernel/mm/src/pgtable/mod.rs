//! AArch64 stage-1 page tables (4 KiB granule), free of hardware and of the heap.
//!
//! The kernel builds its TTBR1 tables with this library before any heap exists, so every
//! dependency is a small caller trait:
//!
//! - [`PhysMemory`]: reads and writes one descriptor of a table given by its physical
//!   address (the linear map in the kernel, simulated RAM on the host);
//! - [`TableAlloc`]: hands out and takes back table pages (an early bump allocator at boot,
//!   the page allocator later);
//! - [`TlbMaint`]: barriers and TLB invalidation, so host tests can record the exact order
//!   of descriptor writes and invalidations (break-before-make).
//!
//! [`boot`] has the early table allocator and the helpers that build the kernel's tables.
//!
//! [`PageTable`] offers `map`, `unmap`, `protect`, `translate`, `migrate_pages` (page
//! migration, a batch per TLB invalidation), a `dump` like Linux's ptdump
//! and [`PageTable::fault_info`] for "level N translation fault" reports.

pub mod boot;
mod cursor;
pub mod desc;
pub mod error;
pub mod layout;
mod map;
mod migrate;
mod protect;
pub mod table;
mod unmap;
pub mod walk;

pub use desc::{Desc, DescKind, MemType, Prot};
pub use error::PtError;
pub use map::{Frames, PMD_SIZE};
pub use migrate::{PageMove, MIGRATE_BATCH};
pub use table::{PageTable, PtConfig};
pub use unmap::Unmapped;
pub use walk::{Access, FaultInfo, Leaf, Translation};

use crate::addr::{PhysAddr, VirtAddr};

/// Entries per table (4 KiB granule, 8-byte descriptors).
pub const PTRS_PER_TABLE: usize = 512;

/// Access to the descriptors of tables in physical memory.
pub trait PhysMemory {
    /// Reads entry `index` (0..512) of the table at `table`.
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64;
    /// Writes entry `index` of the table at `table` (a single 64-bit store: the walker must
    /// never see a torn descriptor).
    fn write_entry(&self, table: PhysAddr, index: usize, val: u64);
}

/// A source of table pages.
pub trait TableAlloc {
    /// One page-aligned 4 KiB page; need not be zeroed (the library zeroes it).
    fn alloc_table(&mut self) -> Option<PhysAddr>;
    /// Gives back a page obtained from [`Self::alloc_table`] (or one of the tables the
    /// library split or emptied: any table it stops referencing).
    fn free_table(&mut self, pa: PhysAddr);
}

/// The one TLB-flush policy: an invalidation of this many pages or more (a range, a batch
/// of cleared leaves, a batch of migrated pages) is one [`TlbMaint::flush_all`] rather
/// than a [`TlbMaint::flush_va`] per page. Measured in QEMU raspi3b (sweep=fragment,
/// batches of 32): a `tlbi vaae1is` costs 12-20 us there (QEMU stops every vCPU for each
/// broadcast invalidation), a `tlbi vmalle1is` 120-170 us, so from about 8 pages one full
/// invalidation is cheaper. Real hardware: both are correct; on a Cortex-A53 a
/// `tlbi vaae1is` is cheap and a full invalidation costs the refills of every other entry
/// afterwards, so Linux flushes page by page up to `MAX_TLBI_OPS` (512 pages): on the Pi
/// a higher value may well be the cheaper one.
pub const TLB_FLUSH_ALL_PAGES: u64 = 8;

/// TLB maintenance and barriers.
///
/// The library issues, for every change of a live entry: write invalid, `sync`, `flush_va`
/// for each page of the old mapping (or `flush_all`), `sync`, write the new entry, `sync`.
/// A batch of page migrations ([`PageTable::migrate_pages`]) writes all its entries
/// invalid, `sync`, [`TlbMaint::flush_vas`] for all of them, `sync`, then the new entries
/// and one final `sync`.
pub trait TlbMaint {
    /// Invalidates all cached translations of `va` at every level, walk caches included
    /// (`tlbi vaae1is` / `vae1is`: the library also uses it after removing a table entry).
    fn flush_va(&self, va: VirtAddr);
    /// Invalidates every kernel translation (`tlbi vmalle1is`).
    fn flush_all(&self);
    /// Invalidates the translations of every page in `vas`, as one operation: the caller
    /// syncs before and after. By default [`Self::flush_va`] for each; an implementation
    /// may issue the per-page invalidations with one barrier for all, or one
    /// [`Self::flush_all`] where that is cheaper.
    fn flush_vas(&self, vas: &[VirtAddr]) {
        for &va in vas {
            self.flush_va(va);
        }
    }
    /// Makes earlier descriptor writes visible to the walker and completes earlier
    /// invalidations (`dsb ish; isb` in the kernel).
    fn sync(&self);
}

impl<P: PhysMemory + ?Sized> PhysMemory for &P {
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64 {
        (**self).read_entry(table, index)
    }
    fn write_entry(&self, table: PhysAddr, index: usize, val: u64) {
        (**self).write_entry(table, index, val)
    }
}

impl<T: TlbMaint + ?Sized> TlbMaint for &T {
    fn flush_va(&self, va: VirtAddr) {
        (**self).flush_va(va)
    }
    fn flush_all(&self) {
        (**self).flush_all()
    }
    fn flush_vas(&self, vas: &[VirtAddr]) {
        (**self).flush_vas(vas)
    }
    fn sync(&self) {
        (**self).sync()
    }
}

/// [`PhysMemory`] through a linear mapping: table `pa` is at `pa + offset` (wrapping).
///
/// The kernel uses it with `offset = PAGE_OFFSET` (or the identity map early at boot); the
/// host tests with the address of their simulated RAM.
#[derive(Clone, Copy, Debug)]
pub struct LinearPhysMemory {
    offset: u64,
}

impl LinearPhysMemory {
    /// An accessor adding `offset` to physical addresses.
    ///
    /// # Safety
    ///
    /// For every table address later passed to the accessor, the 4 KiB at `pa + offset`
    /// must be mapped, writable, 8-byte aligned and not otherwise referenced by Rust
    /// references while the accessor is used.
    pub const unsafe fn new(offset: u64) -> Self {
        Self { offset }
    }

    fn ptr(&self, table: PhysAddr, index: usize) -> *mut u64 {
        let index = index % PTRS_PER_TABLE;
        table.as_u64().wrapping_add(self.offset).wrapping_add(index as u64 * 8) as usize as *mut u64
    }
}

impl PhysMemory for LinearPhysMemory {
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `new`'s contract: the table is mapped at `pa + offset`; `index` is reduced
        // to the table's 512 entries. Volatile because the walker reads the same memory.
        unsafe { core::ptr::read_volatile(self.ptr(table, index)) }
    }
    fn write_entry(&self, table: PhysAddr, index: usize, val: u64) {
        // SAFETY: as in `read_entry`; an aligned 64-bit volatile store is single-copy atomic.
        unsafe { core::ptr::write_volatile(self.ptr(table, index), val) }
    }
}
