//! Building the kernel's TTBR1 tables at boot, before any heap exists: an early bump
//! allocator of table pages and helpers for the fixed regions of [`super::layout`].
//!
//! ```text
//! let mut tables = BumpTables::new(PhysAddr::new(pgtable_pool_start), PhysAddr::new(pgtable_pool_end));
//! let mem = unsafe { LinearPhysMemory::new(0) }; // identity-mapped (MMU off) at this point
//! let mut pt = PageTable::create(&mut tables, PtConfig::KERNEL_39, mem, Tlb)?;
//! map_linear(&mut pt, &mut tables, PhysAddr::new(0), PhysAddr::new(ram_end))?;
//! map_kimage(&mut pt, &mut tables, &[(text_start, text_end, Prot::KERNEL_RX), ...])?;
//! protect_linear_alias(&mut pt, &mut tables, text_start, text_end, Prot::KERNEL_RO)?;
//! for cpu in 0..4 { map_stack(&mut pt, &mut tables, cpu, stack_pa[cpu])?; }
//! // TTBR1_EL1 = pt.root(); MAIR_EL1 = MAIR_EL1_VALUE; TCR_EL1.T1SZ = T1SZ
//! ```

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::layout::{phys_to_kimage, phys_to_linear, stack_slot, STACK_GUARD_SIZE, STACK_SLOT_SIZE};
use super::{PageTable, PhysMemory, Prot, PtError, TableAlloc, TlbMaint};

const PAGE: u64 = PAGE_SIZE as u64;
const REUSE: usize = 8;

/// Table pages carved from a reserved physical range, lowest first. Pages given back (a
/// split table emptied during boot) are kept in a small list and reused.
pub struct BumpTables {
    next: u64,
    end: u64,
    reuse: [u64; REUSE],
    nr_reuse: usize,
    allocated: usize,
    lost: usize,
}

impl BumpTables {
    /// Pages from [start, end) (rounded inwards to pages).
    pub const fn new(start: PhysAddr, end: PhysAddr) -> Self {
        Self {
            next: start.align_up(PAGE).as_u64(),
            end: end.align_down(PAGE).as_u64(),
            reuse: [0; REUSE],
            nr_reuse: 0,
            allocated: 0,
            lost: 0,
        }
    }
    /// Table pages handed out and not given back.
    pub const fn in_use(&self) -> usize {
        self.allocated
    }
    /// First page never handed out: [next_free, end) can go to the page allocator.
    pub const fn next_free(&self) -> PhysAddr {
        PhysAddr::new(self.next)
    }
    /// Pages given back that did not fit the reuse list (still reserved, not in a table).
    pub const fn lost(&self) -> usize {
        self.lost
    }
}

impl TableAlloc for BumpTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pa = if self.nr_reuse > 0 {
            self.nr_reuse -= 1;
            self.reuse[self.nr_reuse]
        } else if self.end.saturating_sub(self.next) >= PAGE {
            self.next += PAGE;
            self.next - PAGE
        } else {
            return None;
        };
        self.allocated += 1;
        Some(PhysAddr::new(pa))
    }
    fn free_table(&mut self, pa: PhysAddr) {
        self.allocated = self.allocated.saturating_sub(1);
        if self.nr_reuse < REUSE {
            self.reuse[self.nr_reuse] = pa.as_u64();
            self.nr_reuse += 1;
        } else {
            self.lost += 1;
        }
    }
}

/// Maps RAM [start, end) at `PAGE_OFFSET + pa`, RW/NX, with the largest blocks possible.
pub fn map_linear<M: PhysMemory, T: TlbMaint, A: TableAlloc>(
    pt: &mut PageTable<M, T>,
    alloc: &mut A,
    start: PhysAddr,
    end: PhysAddr,
) -> Result<(), PtError> {
    let size = end.as_u64().checked_sub(start.as_u64()).ok_or(PtError::BadSize(0))?;
    pt.map(alloc, VirtAddr::new(phys_to_linear(start.as_u64())), start, size, Prot::KERNEL_RW, true)
}

/// Maps kernel-image sections `(phys_start, phys_end, prot)` at `KIMAGE_VADDR + pa`
/// (blocks wherever a section allows them).
pub fn map_kimage<M: PhysMemory, T: TlbMaint, A: TableAlloc>(
    pt: &mut PageTable<M, T>,
    alloc: &mut A,
    sections: &[(PhysAddr, PhysAddr, Prot)],
) -> Result<(), PtError> {
    for &(s, e, prot) in sections {
        let size = e.as_u64().checked_sub(s.as_u64()).ok_or(PtError::BadSize(0))?;
        pt.map(alloc, VirtAddr::new(phys_to_kimage(s.as_u64())), s, size, prot, true)?;
    }
    Ok(())
}

/// Changes the linear-map alias of [start, end) (e.g. kernel text: read-only, so it
/// cannot be patched through the alias), splitting blocks as needed.
pub fn protect_linear_alias<M: PhysMemory, T: TlbMaint, A: TableAlloc>(
    pt: &mut PageTable<M, T>,
    alloc: &mut A,
    start: PhysAddr,
    end: PhysAddr,
    prot: Prot,
) -> Result<(), PtError> {
    let size = end.as_u64().checked_sub(start.as_u64()).ok_or(PtError::BadSize(0))?;
    pt.protect(alloc, VirtAddr::new(phys_to_linear(start.as_u64())), size, prot)
}

/// Maps CPU `cpu`'s stack: 60 KiB of RAM at `stack_pa` above the unmapped guard page of
/// its slot. Returns the initial stack pointer (top of the slot).
pub fn map_stack<M: PhysMemory, T: TlbMaint, A: TableAlloc>(
    pt: &mut PageTable<M, T>,
    alloc: &mut A,
    cpu: u64,
    stack_pa: PhysAddr,
) -> Result<VirtAddr, PtError> {
    let slot = stack_slot(cpu);
    let size = STACK_SLOT_SIZE - STACK_GUARD_SIZE;
    pt.map(alloc, VirtAddr::new(slot + STACK_GUARD_SIZE), stack_pa, size, Prot::KERNEL_RW, false)?;
    Ok(VirtAddr::new(slot + STACK_SLOT_SIZE))
}
