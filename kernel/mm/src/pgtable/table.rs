//! [`PageTable`]: the tree, its regime ([`PtConfig`]) and the steps every operation shares:
//! descriptor reads and writes, the walk down that creates tables, TLB range invalidation,
//! break-before-make, and freeing tables that became empty. The operations live next door:
//! `map.rs` (map, with rollback), `unmap.rs` and `protect.rs` (split and protect).
//!
//! Every walk is a `Cursor` (`cursor.rs`). No heap: the only state is on the stack and
//! in the tables themselves.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::desc::Desc;
use super::error::PtError;
use super::{PhysMemory, TableAlloc, TlbMaint, PTRS_PER_TABLE, TLB_FLUSH_ALL_PAGES};

const PAGE: u64 = PAGE_SIZE as u64;
/// Largest output address + 1 (48-bit PA).
pub(super) const PA_LIMIT: u64 = 1 << 48;

/// Bytes mapped by one entry at `level` (3 = 4 KiB page, 2 = 2 MiB, 1 = 1 GiB, 0 = 512 GiB).
pub const fn level_size(level: u32) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// Index of `va` in a table of `level`.
pub const fn level_index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (3 - level))) & (PTRS_PER_TABLE as u64 - 1)) as usize
}

/// Shape of a translation regime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtConfig {
    /// VA bits translated: 39 (3 levels, root at level 1) or 48 (4 levels, root at level 0).
    pub va_bits: u32,
    /// TTBR1 (upper, kernel) range if true, TTBR0 (lower) otherwise.
    pub upper: bool,
}

impl PtConfig {
    /// The kernel's regime: TTBR1, 39-bit VA, 3 levels.
    pub const KERNEL_39: PtConfig = PtConfig { va_bits: 39, upper: true };
    /// A 4-level TTBR1 regime (48-bit VA).
    pub const KERNEL_48: PtConfig = PtConfig { va_bits: 48, upper: true };

    /// Level of the root table. Only 39 and 48 bits (whole 9-bit levels) are supported;
    /// anything else is treated as 48.
    pub const fn start_level(self) -> u32 {
        if self.va_bits == 39 {
            1
        } else {
            0
        }
    }
    /// Lowest VA of the range.
    pub const fn va_base(self) -> u64 {
        if self.upper {
            !0u64 << self.va_bits
        } else {
            0
        }
    }
    /// Size of the range in bytes.
    pub const fn va_span(self) -> u64 {
        1 << self.va_bits
    }
}

/// A page-table tree rooted at `root`, with its memory accessor and TLB maintenance.
pub struct PageTable<M, T> {
    pub(super) root: PhysAddr,
    pub(super) cfg: PtConfig,
    pub(super) mem: M,
    pub(super) tlb: T,
}

pub(super) type LeafFn<'a> = &'a mut dyn FnMut(VirtAddr, PhysAddr, u64);

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Wraps an existing root table (zeroed by the caller if new).
    pub const fn new(root: PhysAddr, cfg: PtConfig, mem: M, tlb: T) -> Self {
        Self { root, cfg, mem, tlb }
    }

    /// Allocates and zeroes a root table.
    pub fn create<A: TableAlloc>(alloc: &mut A, cfg: PtConfig, mem: M, tlb: T) -> Result<Self, PtError> {
        let pt = Self::new(PhysAddr::new(0), cfg, mem, tlb);
        let root = pt.new_table(alloc, true)?;
        Ok(Self { root, ..pt })
    }

    /// Physical address of the root table (for TTBR1_EL1).
    pub const fn root(&self) -> PhysAddr {
        self.root
    }
    /// The regime.
    pub const fn config(&self) -> PtConfig {
        self.cfg
    }
    /// The memory accessor.
    pub fn mem(&self) -> &M {
        &self.mem
    }
    /// The TLB maintenance.
    pub fn tlb(&self) -> &T {
        &self.tlb
    }

    pub(super) fn read(&self, table: u64, i: usize) -> Desc {
        Desc(self.mem.read_entry(PhysAddr::new(table), i))
    }
    pub(super) fn write(&self, table: u64, i: usize, d: Desc) {
        self.mem.write_entry(PhysAddr::new(table), i, d.0)
    }

    /// Checks that [va, va + size) is page aligned, non-empty and inside the regime.
    pub(super) fn check_range(&self, va: VirtAddr, size: u64) -> Result<(), PtError> {
        if !va.is_page_aligned() {
            return Err(PtError::UnalignedVirt(va));
        }
        if size == 0 || !size.is_multiple_of(PAGE) {
            return Err(PtError::BadSize(size));
        }
        // Below the base the offset wraps past the span.
        let off = va.as_u64().wrapping_sub(self.cfg.va_base());
        if off >= self.cfg.va_span() {
            return Err(PtError::OutOfRange(va));
        }
        if size > self.cfg.va_span() - off {
            return Err(PtError::OutOfRange(VirtAddr::new(va.as_u64().wrapping_add(size))));
        }
        Ok(())
    }

    /// Whether `va` is inside the regime.
    pub fn in_range(&self, va: VirtAddr) -> bool {
        // Below the base the offset wraps past the span.
        va.as_u64().wrapping_sub(self.cfg.va_base()) < self.cfg.va_span()
    }

    pub(super) fn new_table<A: TableAlloc>(&self, alloc: &mut A, zero: bool) -> Result<PhysAddr, PtError> {
        let t = alloc.alloc_table().ok_or(PtError::NoTableMemory)?;
        if !t.is_page_aligned() {
            // A broken allocator: refuse rather than corrupt a neighbour.
            alloc.free_table(t);
            return Err(PtError::NoTableMemory);
        }
        if zero {
            for i in 0..PTRS_PER_TABLE {
                self.mem.write_entry(t, i, 0);
            }
        }
        Ok(t)
    }

    /// Invalidates every page of [va, va + size), or everything from
    /// [`TLB_FLUSH_ALL_PAGES`] pages on.
    pub(super) fn flush_range(&self, va: u64, size: u64) {
        if size / PAGE >= TLB_FLUSH_ALL_PAGES {
            self.tlb.flush_all();
        } else {
            let mut a = va;
            for _ in 0..size / PAGE {
                self.tlb.flush_va(VirtAddr::new(a));
                a = a.wrapping_add(PAGE);
            }
        }
    }

    /// Break-before-make: replaces a live entry mapping [va, va + size) by `new`.
    pub(super) fn bbm_replace(&self, table: u64, i: usize, va: u64, size: u64, new: Desc) {
        self.write(table, i, Desc::INVALID);
        self.tlb.sync();
        self.flush_range(va, size);
        self.tlb.sync();
        self.write(table, i, new);
        self.tlb.sync();
    }

    pub(super) fn table_is_empty(&self, table: u64) -> bool {
        (0..PTRS_PER_TABLE).all(|i| !self.read(table, i).is_valid())
    }

    /// Clears a table descriptor and frees the table, after the walk caches forgot it
    /// (`va`: a page the table mapped; a walker's VAs are page aligned).
    pub(super) fn free_table_entry<A: TableAlloc>(&self, alloc: &mut A, parent: u64, i: usize, va: u64, child: u64) {
        self.write(parent, i, Desc::INVALID);
        self.tlb.sync();
        self.tlb.flush_va(VirtAddr::new(va));
        self.tlb.sync();
        alloc.free_table(PhysAddr::new(child));
    }
}
