//! [`Vmalloc`]: virtually contiguous kernel memory from single pages, vmap and ioremap.
//!
//! No per-area page array is kept (it would itself need a large allocation): the frames of
//! an area are found again in the page tables, on vfree and vmalloc_to_page. Frames are
//! allocated while the tables are filled, one cursor walk per area: 2 MiB blocks for the
//! whole 2 MiB pieces of a large area, blocks of up to 256 pages mapped by page
//! descriptors as runs for the rest, order-0 pages in bulk where no such block is free.

use crate::addr::{pages_for, PhysAddr, VirtAddr, PAGE_SIZE};
use crate::gfp::{Gfp, GFP_KERNEL};
use crate::page_source::PageSource;
use crate::pgtable::layout::{IOREMAP_END, IOREMAP_START, VMALLOC_END, VMALLOC_START};
use crate::pgtable::{Frames, PageTable, PhysMemory, Prot, PtError, TlbMaint, PMD_SIZE, PTRS_PER_TABLE};

use super::area::{VmArea, VmKind, VmapAreas};
use super::error::{VmError, VmallocError, VmallocFail};
use super::tables::SourceTables;

const PAGE: u64 = PAGE_SIZE as u64;
/// Smallest vmalloc mapped with 2 MiB blocks where it can be (Linux: `PMD_SIZE` with
/// `VM_ALLOW_HUGE_VMAP`).
pub const HUGE_VMALLOC_MIN: u64 = PMD_SIZE;

/// The vmalloc and ioremap ranges and their accounting. Put it in a
/// `static VMALLOC: crate::sync::SpinLock<Vmalloc> = crate::sync::SpinLock::new(Vmalloc::new());`.
pub struct Vmalloc {
    pub(super) vmalloc: VmapAreas,
    pub(super) ioremap: VmapAreas,
    nr_table_pages: usize,
    nr_vmalloc_pages: usize,
    nr_huge_blocks: usize,
    allow_huge: bool,
    /// Largest run order the next vmalloc tries: one below the last that failed (below
    /// [`RUN_ORDER_MIN`]: single pages only), back to [`RUN_ORDER_MAX`] when a vfree
    /// gives back at least a run's worth. A failed attempt is not free (the page
    /// allocator's slow path drains the per-CPU lists and may give up a HighAtomic
    /// reserve), so each vmalloc makes at most one, and near exhaustion the attempts stop.
    run_cap: u32,
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
            nr_huge_blocks: 0,
            allow_huge: true,
            run_cap: RUN_ORDER_MAX,
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

    /// 2 MiB blocks mapping live vmalloc areas (each also counts as 512 pages in
    /// [`Self::nr_vmalloc_pages`]).
    pub const fn nr_huge_blocks(&self) -> usize {
        self.nr_huge_blocks
    }

    /// Whether vmallocs of [`HUGE_VMALLOC_MIN`] and more may use 2 MiB blocks (Linux's
    /// `vmap_allow_huge`, on by default; `nohugevmalloc` turns it off there).
    pub const fn allow_huge(&self) -> bool {
        self.allow_huge
    }

    /// Turns huge vmalloc mappings on or off for later allocations.
    pub fn set_allow_huge(&mut self, on: bool) {
        self.allow_huge = on;
    }

    /// Gives back the vmap node chunks both ranges no longer need
    /// ([`VmapAreas::shrink_nodes`]); returns the chunks given back.
    pub fn shrink_nodes(&mut self) -> usize {
        self.vmalloc.shrink_nodes() + self.ioremap.shrink_nodes()
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

    /// Allocates `size` bytes of virtually contiguous memory, mapped RW/NX. From
    /// [`HUGE_VMALLOC_MIN`] up (unless [`Self::set_allow_huge`] turned it off) the area is
    /// 2 MiB-aligned and every whole 2 MiB of it for which the page allocator has an
    /// order-9 block is mapped by one level-2 block descriptor (Linux's
    /// `VM_ALLOW_HUGE_VMAP`); the rest is mapped with 4 KiB pages from blocks of up to 256
    /// pages where the page allocator has them (a *run*: see `VmallocFrames`), order-0
    /// pages taken in bulk otherwise. `__GFP_ZERO` zeroes each page or block once,
    /// through the linear map.
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
        let bytes = nr as u64 * PAGE;
        // A movable vmalloc is mapped with pages only: its pages can migrate, blocks not.
        let huge = self.allow_huge && bytes >= HUGE_VMALLOC_MIN && !gfp.contains(Gfp::GFP_MOVABLE);
        let align = if huge { PMD_SIZE } else { PAGE };
        let area = self
            .vmalloc
            .alloc_aligned(bytes, align, VmKind::Vmalloc, caller, None)
            .map_err(|e| VmallocError { reason: VmallocFail::NoVirtualSpace(e), ..err })?;
        let mut frames = VmallocFrames::new(pages, gfp, huge, self.run_cap, nr);
        let mut tables = SourceTables { pages, gfp: table_gfp(gfp), count: &mut self.nr_table_pages };
        let r = pt.map_frames(&mut tables, area.start, bytes, Prot::KERNEL_RW, &mut frames);
        frames.put_back_unused();
        if let Some(order) = frames.run_failed {
            self.run_cap = order.saturating_sub(1);
        }
        match r {
            Ok(()) => {
                self.nr_vmalloc_pages += nr;
                self.nr_huge_blocks += frames.blocks;
                self.vmalloc.set_huge(area.start, frames.blocks);
                Ok(area.start)
            }
            Err(e) => {
                let _ = self.vmalloc.release(area.start);
                err.allocated_bytes = frames.allocated;
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
        let mut batch = FreeBatch::new(pages);
        // Each leaf is handed over after the TLB invalidation that covers it: a 2 MiB
        // block goes back as one order-9 block, pages in bulk.
        let r = pt.unmap_with(&mut tables, area.start, area.size, &mut |_, pa, size| batch.free(pa, size));
        batch.flush();
        if area.nr_pages >= 1 << RUN_ORDER_MIN {
            self.run_cap = RUN_ORDER_MAX;
        }
        self.nr_vmalloc_pages = self.nr_vmalloc_pages.saturating_sub(area.nr_pages);
        self.nr_huge_blocks = self.nr_huge_blocks.saturating_sub(area.huge);
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
        self.ioremap_prot(pa, size, caller, Prot::DEVICE, pages, pt)
    }

    /// [`Self::ioremap`] with the given attributes (Linux's `ioremap_prot`; its
    /// `ioremap_wc` is [`Prot::KERNEL_RW_NC`] on arm64: Normal non-cacheable).
    pub fn ioremap_prot<M: PhysMemory, T: TlbMaint>(
        &mut self,
        pa: PhysAddr,
        size: u64,
        caller: &'static str,
        prot: Prot,
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
        match pt.map(&mut tables, area.start, base, len, prot, false) {
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

fn zero_frames(pages: &dyn PageSource, pa: PhysAddr, len: u64) {
    let va = pages.phys_to_virt(pa);
    // SAFETY: `PageSource` guarantees the block just allocated is readable and writable
    // through the linear map at `phys_to_virt(pa)`, and nobody else uses it yet.
    unsafe { core::ptr::write_bytes(va.as_mut_ptr::<u8>(), 0, len as usize) };
}

/// Pages taken from the page allocator per bulk call.
const BULK: usize = 64;
/// Order of a 2 MiB block.
const HUGE_ORDER: u32 = 9;
/// Largest block mapped with pages as one run (256 pages, half a page table): below
/// [`HUGE_ORDER`], so that a frame of 2 MiB given back is always a level-2 block.
const RUN_ORDER_MAX: u32 = HUGE_ORDER - 1;
/// Smallest run worth a block allocation: fewer pages come in bulk.
const RUN_ORDER_MIN: u32 = 3;

/// The frames of one vmalloc: 2 MiB blocks where the page allocator has them (mapped by
/// one level-2 entry), else blocks of up to [`RUN_ORDER_MAX`] mapped by page entries as
/// one run each (Linux requests large orders for vmalloc's pages the same way, falling
/// back order by order), else order-0 pages taken [`BULK`] at a time (Linux's
/// `alloc_pages_bulk` in `vm_area_alloc_pages`), never more than the area still needs.
/// A movable vmalloc gets order-0 pages only: each may be migrated on its own.
struct VmallocFrames<'a> {
    pages: &'a dyn PageSource,
    /// Flags for the pages (`__GFP_ZERO` removed: zeroing is done here, once).
    gfp: Gfp,
    zero: bool,
    huge: bool,
    /// Largest run order to try; 0 once an attempt failed (the rest comes in bulk).
    run_cap: u32,
    /// The order of the attempt at a run's block that failed.
    run_failed: Option<u32>,
    /// Pages of the area not yet handed out (nor buffered).
    want: usize,
    buf: [PhysAddr; BULK],
    head: usize,
    len: usize,
    /// Blocks handed out.
    blocks: usize,
    /// Bytes handed out (what a failure report says was allocated before it failed).
    allocated: u64,
}

impl<'a> VmallocFrames<'a> {
    fn new(pages: &'a dyn PageSource, gfp: Gfp, huge: bool, run_cap: u32, nr: usize) -> Self {
        let movable = gfp.contains(Gfp::GFP_MOVABLE);
        Self {
            pages,
            gfp: gfp.without(Gfp::GFP_ZERO),
            zero: gfp.contains(Gfp::GFP_ZERO),
            huge,
            run_cap: if movable { 0 } else { run_cap },
            run_failed: None,
            want: nr,
            buf: [PhysAddr::new(0); BULK],
            head: 0,
            len: 0,
            blocks: 0,
            allocated: 0,
        }
    }

    /// Gives back the buffered pages no entry took (the map is over: nothing is taken
    /// from the buffer after this).
    fn put_back_unused(&self) {
        self.pages.free_pages_bulk(&self.buf[self.head..self.len]);
    }

    /// A block for a run of at most `max` pages: the largest order that fits, from
    /// [`RUN_ORDER_MIN`] up; `None` when it is too short, or (and no run tried again in
    /// this vmalloc) when the page allocator has no such block.
    fn run(&mut self, max: usize) -> Option<(PhysAddr, u32)> {
        let fit = max.min(self.want);
        if self.head != self.len || fit < 1 << RUN_ORDER_MIN {
            return None;
        }
        let order = self.run_cap.min(fit.ilog2());
        if order < RUN_ORDER_MIN {
            return None;
        }
        // A missing block is no failure: pages in bulk follow. (A movable vmalloc has no
        // runs: its pages must migrate one by one.)
        let gfp = self.gfp | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY;
        let pa = self.pages.alloc_pages(gfp, order);
        if pa.is_none() {
            self.run_cap = 0;
            self.run_failed = Some(order);
        }
        pa.map(|pa| (pa, order))
    }
}

impl Frames for VmallocFrames<'_> {
    fn block(&mut self, _va: VirtAddr) -> Option<PhysAddr> {
        if !self.huge || self.want < PTRS_PER_TABLE {
            return None;
        }
        // A missing block is no failure: that part is mapped with pages.
        // Blocks are never migrated: keep them out of movable pageblocks.
        let gfp = self.gfp.without(Gfp::GFP_MOVABLE) | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY;
        let pa = self.pages.alloc_pages(gfp, HUGE_ORDER)?;
        if self.zero {
            zero_frames(self.pages, pa, PMD_SIZE);
        }
        self.want -= PTRS_PER_TABLE;
        self.blocks += 1;
        self.allocated += PMD_SIZE;
        Some(pa)
    }

    fn pages(&mut self, va: VirtAddr, max: usize) -> Option<(PhysAddr, u32)> {
        if self.run_cap >= RUN_ORDER_MIN {
            if let Some((pa, order)) = self.run(max) {
                let bytes = PAGE << order;
                if self.zero {
                    zero_frames(self.pages, pa, bytes);
                }
                self.want -= 1 << order;
                self.allocated += bytes;
                return Some((pa, order));
            }
        }
        if self.head == self.len {
            let n = self.want.min(BULK);
            if n == 0 {
                return None;
            }
            let got = self.pages.alloc_pages_bulk(self.gfp, &mut self.buf[..n]);
            if got == 0 {
                return None;
            }
            self.want -= got;
            self.head = 0;
            self.len = got;
        }
        let pa = self.buf[self.head];
        self.head += 1;
        if self.zero {
            zero_frames(self.pages, pa, PAGE);
        }
        if self.gfp.contains(Gfp::GFP_MOVABLE) {
            // Compaction may move it: the page table at `va` is its only reference.
            self.pages.set_page_owner(pa, super::movable::movable_owner(va).encode());
        }
        self.allocated += PAGE;
        Some((pa, 0))
    }

    /// Only on the way to a failed map (the count of blocks is then not used).
    fn release(&mut self, _va: VirtAddr, pa: PhysAddr, size: u64) {
        self.pages.free_pages(pa, order_of(size));
    }
}

/// The order of a frame of `size` bytes (a page, a run or a block).
fn order_of(size: u64) -> u32 {
    (size / PAGE).max(1).ilog2()
}

/// Frames of an unmapped vmalloc area on their way back: blocks and runs one by one,
/// pages in bulk.
struct FreeBatch<'a> {
    pages: &'a dyn PageSource,
    buf: [PhysAddr; BULK],
    len: usize,
}

impl<'a> FreeBatch<'a> {
    fn new(pages: &'a dyn PageSource) -> Self {
        Self { pages, buf: [PhysAddr::new(0); BULK], len: 0 }
    }

    fn free(&mut self, pa: PhysAddr, size: u64) {
        if size != PAGE {
            self.pages.free_pages(pa, order_of(size));
            return;
        }
        if self.len == BULK {
            self.flush();
        }
        self.buf[self.len] = pa;
        self.len += 1;
    }

    fn flush(&mut self) {
        self.pages.free_pages_bulk(&self.buf[..self.len]);
        self.len = 0;
    }
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
