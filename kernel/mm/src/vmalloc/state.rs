//! [`Vmalloc`]: virtually contiguous kernel memory from order-0 pages, vmap and ioremap.
//!
//! No per-area page array is kept (it would itself need a large allocation): the frames of
//! an area are found again in the page tables, on vfree and vmalloc_to_page. Pages are
//! allocated one at a time while the tables are filled, one walk per L3 table.

use crate::addr::{pages_for, PhysAddr, VirtAddr, PAGE_SIZE};
use crate::gfp::{Gfp, GFP_KERNEL};
use crate::page_source::PageSource;
use crate::pgtable::layout::{IOREMAP_END, IOREMAP_START, VMALLOC_END, VMALLOC_START};
use crate::pgtable::{PageTable, PhysMemory, Prot, PtError, TlbMaint};

use super::area::{VmArea, VmKind, VmapAreas};
use super::error::{VmError, VmallocError, VmallocFail};
use super::tables::SourceTables;

const PAGE: u64 = PAGE_SIZE as u64;

/// The vmalloc and ioremap ranges and their accounting. Put it in a
/// `static VMALLOC: crate::sync::SpinLock<Vmalloc> = crate::sync::SpinLock::new(Vmalloc::new());`.
pub struct Vmalloc {
    pub(super) vmalloc: VmapAreas,
    pub(super) ioremap: VmapAreas,
    nr_table_pages: usize,
    nr_vmalloc_pages: usize,
}

impl Default for Vmalloc {
    fn default() -> Self {
        Self::new()
    }
}

impl Vmalloc {
    /// The kernel's ranges ([`VMALLOC_START`].., [`IOREMAP_START`]..).
    pub const fn new() -> Self {
        Self::with_ranges(VMALLOC_START, VMALLOC_END, IOREMAP_START, IOREMAP_END)
    }

    /// Other ranges (tests, a 4-level layout).
    pub const fn with_ranges(vm_start: u64, vm_end: u64, io_start: u64, io_end: u64) -> Self {
        Self {
            vmalloc: VmapAreas::new(vm_start, vm_end),
            ioremap: VmapAreas::new(io_start, io_end),
            nr_table_pages: 0,
            nr_vmalloc_pages: 0,
        }
    }

    /// Page-table pages allocated for the vmalloc and ioremap ranges and still in use.
    pub const fn nr_table_pages(&self) -> usize {
        self.nr_table_pages
    }

    /// Pages backing vmalloc areas (meminfo's `VmallocUsed`, in pages).
    pub const fn nr_vmalloc_pages(&self) -> usize {
        self.nr_vmalloc_pages
    }

    /// The vmalloc-range allocator (lookups for reports).
    pub fn vmalloc_areas(&self) -> &VmapAreas {
        &self.vmalloc
    }

    /// The ioremap-range allocator.
    pub fn ioremap_areas(&self) -> &VmapAreas {
        &self.ioremap
    }

    /// Whether `va` is inside the vmalloc range (mapped or not).
    pub fn is_vmalloc_addr(&self, va: VirtAddr) -> bool {
        let (s, e) = self.vmalloc.range();
        va >= s && va < e
    }

    /// Allocates `size` bytes of virtually contiguous memory from order-0 pages, mapped
    /// RW/NX. `__GFP_ZERO` zeroes each page through the linear map.
    ///
    /// On failure everything is unwound (pages freed, entries cleared with TLB maintenance,
    /// tables freed, area released) and the error tells how far it got.
    pub fn vmalloc<M: PhysMemory, T: TlbMaint>(
        &mut self,
        size: usize,
        gfp: Gfp,
        caller: &'static str,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<VirtAddr, VmallocError> {
        let nr = pages_for(size).unwrap_or(0);
        let mut err =
            VmallocError { allocated_bytes: 0, requested_bytes: nr as u64 * PAGE, gfp, reason: VmallocFail::ZeroSize };
        if size == 0 {
            return Err(err);
        }
        if nr == 0 {
            err.requested_bytes = size as u64;
            err.reason = VmallocFail::NoVirtualSpace(super::area::AreaError::Overflow);
            return Err(err);
        }
        let area = self
            .vmalloc
            .alloc(nr as u64 * PAGE, VmKind::Vmalloc, caller, None)
            .map_err(|e| VmallocError { reason: VmallocFail::NoVirtualSpace(e), ..err })?;
        let zero = gfp.contains(Gfp::GFP_ZERO);
        let mut allocated = 0u64;
        let mut tables = SourceTables { pages, gfp: table_gfp(gfp), count: &mut self.nr_table_pages };
        let r = pt.map_pages(
            &mut tables,
            area.start,
            nr,
            Prot::KERNEL_RW,
            &mut |_| {
                let pa = pages.alloc_pages(gfp, 0)?;
                if zero {
                    zero_page(pages, pa);
                }
                allocated += 1;
                Some(pa)
            },
            &mut |pa| pages.free_pages(pa, 0),
        );
        match r {
            Ok(()) => {
                self.nr_vmalloc_pages += nr;
                Ok(area.start)
            }
            Err(e) => {
                let _ = self.vmalloc.release(area.start);
                err.allocated_bytes = allocated * PAGE;
                err.reason = match e {
                    PtError::NoPageMemory => VmallocFail::NoPages,
                    PtError::NoTableMemory => VmallocFail::NoTablePages,
                    other => VmallocFail::Map(other),
                };
                Err(err)
            }
        }
    }

    /// [`Self::vmalloc`] with `__GFP_ZERO`.
    pub fn vzalloc<M: PhysMemory, T: TlbMaint>(
        &mut self,
        size: usize,
        caller: &'static str,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<VirtAddr, VmallocError> {
        self.vmalloc(size, GFP_KERNEL | Gfp::GFP_ZERO, caller, pages, pt)
    }

    /// Frees a vmalloc area: unmaps it (TLB invalidated before any page is reused), gives
    /// every page back, frees the tables that became empty. `va` must be the start of a
    /// live vmalloc area.
    pub fn vfree<M: PhysMemory, T: TlbMaint>(
        &mut self,
        va: VirtAddr,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<(), VmError> {
        match self.vmalloc.get(va) {
            Some(a) if a.kind == VmKind::Vmalloc => {}
            _ => return Err(VmError::NotAnArea(va)),
        }
        let area = self.vmalloc.free(va).map_err(VmError::Area)?;
        let mut tables = SourceTables { pages, gfp: GFP_KERNEL, count: &mut self.nr_table_pages };
        let r = pt.unmap_with(&mut tables, area.start, area.size, &mut |_, pa, size| {
            // vmalloc maps 4 KiB pages only.
            for i in 0..size / PAGE {
                pages.free_pages(pa.add(i * PAGE), 0);
            }
        });
        self.nr_vmalloc_pages = self.nr_vmalloc_pages.saturating_sub(area.nr_pages);
        r.map(|_| ()).map_err(VmError::Map)
    }

    /// The frame mapped at `va` in the vmalloc range.
    pub fn vmalloc_to_page<M: PhysMemory, T: TlbMaint>(&self, va: VirtAddr, pt: &PageTable<M, T>) -> Option<PhysAddr> {
        if !self.is_vmalloc_addr(va) {
            return None;
        }
        pt.translate(va).map(|t| t.pa.align_down(PAGE))
    }

    /// Maps the caller's frames contiguously with `prot`; the frames stay the caller's.
    pub fn vmap<M: PhysMemory, T: TlbMaint>(
        &mut self,
        frames: &[PhysAddr],
        prot: Prot,
        caller: &'static str,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<VirtAddr, VmError> {
        let size = (frames.len() as u64).checked_mul(PAGE).ok_or(VmError::Area(super::area::AreaError::Overflow))?;
        let area = self.vmalloc.alloc(size, VmKind::Vmap, caller, None).map_err(VmError::Area)?;
        let mut tables = SourceTables { pages, gfp: GFP_KERNEL, count: &mut self.nr_table_pages };
        let mut it = frames.iter();
        let r = pt.map_pages(&mut tables, area.start, frames.len(), prot, &mut |_| it.next().copied(), &mut |_| {});
        match r {
            Ok(()) => Ok(area.start),
            Err(e) => {
                let _ = self.vmalloc.release(area.start);
                Err(VmError::Map(e))
            }
        }
    }

    /// Undoes [`Self::vmap`] (the frames are not freed).
    pub fn vunmap<M: PhysMemory, T: TlbMaint>(
        &mut self,
        va: VirtAddr,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<(), VmError> {
        self.unmap_area(va, VmKind::Vmap, pages, pt)
    }

    /// Maps device memory [pa, pa + size) Device-nGnRE in the ioremap range; returns the VA
    /// of `pa` (its offset in the page kept).
    pub fn ioremap<M: PhysMemory, T: TlbMaint>(
        &mut self,
        pa: PhysAddr,
        size: u64,
        caller: &'static str,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<VirtAddr, VmError> {
        let off = pa.page_offset();
        let base = pa.align_down(PAGE);
        if size == 0 {
            return Err(VmError::Area(super::area::AreaError::ZeroSize));
        }
        let len = size
            .checked_add(off)
            .and_then(|l| l.checked_add(PAGE - 1))
            .ok_or(VmError::Area(super::area::AreaError::Overflow))?
            & !(PAGE - 1);
        let area = self.ioremap.alloc(len, VmKind::Ioremap, caller, Some(base)).map_err(VmError::Area)?;
        let mut tables = SourceTables { pages, gfp: GFP_KERNEL, count: &mut self.nr_table_pages };
        match pt.map(&mut tables, area.start, base, len, Prot::DEVICE, false) {
            Ok(()) => Ok(area.start.add(off)),
            Err(e) => {
                let _ = self.ioremap.release(area.start);
                Err(VmError::Map(e))
            }
        }
    }

    /// Undoes [`Self::ioremap`]; any address inside the first page of the mapping works.
    pub fn iounmap<M: PhysMemory, T: TlbMaint>(
        &mut self,
        va: VirtAddr,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<(), VmError> {
        self.unmap_area(va.align_down(PAGE), VmKind::Ioremap, pages, pt)
    }

    fn unmap_area<M: PhysMemory, T: TlbMaint>(
        &mut self,
        va: VirtAddr,
        kind: VmKind,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<(), VmError> {
        let areas = if kind == VmKind::Ioremap { &mut self.ioremap } else { &mut self.vmalloc };
        let area: VmArea = match areas.get(va) {
            Some(a) if a.kind == kind => areas.free(va).map_err(VmError::Area)?,
            _ => return Err(VmError::NotAnArea(va)),
        };
        let mut tables = SourceTables { pages, gfp: GFP_KERNEL, count: &mut self.nr_table_pages };
        pt.unmap(&mut tables, area.start, area.size).map(|_| ()).map_err(VmError::Map)
    }
}

/// Flags for page-table pages: the caller's reclaim behaviour, but never zeroing (the
/// library zeroes tables itself) nor zone modifiers.
fn table_gfp(gfp: Gfp) -> Gfp {
    gfp.without(Gfp::GFP_ZERO | Gfp::GFP_HIGHMEM | Gfp::GFP_COMP | Gfp::GFP_MOVABLE)
}

fn zero_page(pages: &dyn PageSource, pa: PhysAddr) {
    let va = pages.phys_to_virt(pa);
    // SAFETY: `PageSource` guarantees the frame just allocated is readable and writable
    // through the linear map at `phys_to_virt(pa)`, and nobody else uses it yet.
    unsafe { core::ptr::write_bytes(va.as_mut_ptr::<u8>(), 0, PAGE_SIZE) };
}

#[cfg(test)]
mod tests {
    use super::*;

    // The kernel keeps the state in a static: construction must be const and the type Send.
    static VMALLOC: crate::sync::SpinLock<Vmalloc> = crate::sync::SpinLock::new(Vmalloc::new());

    #[test]
    fn usable_as_a_static() {
        let vm = VMALLOC.lock();
        assert_eq!(vm.nr_table_pages(), 0);
        assert!(vm.is_vmalloc_addr(VirtAddr::new(VMALLOC_START)));
        assert!(!vm.is_vmalloc_addr(VirtAddr::new(VMALLOC_END)));
        assert_eq!(vm.vmalloc_areas().free_bytes(), VMALLOC_END - VMALLOC_START);
    }
}
