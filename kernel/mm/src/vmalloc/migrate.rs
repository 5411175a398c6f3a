//! Migration of vmalloc pages: Linux never moves them; here a vmalloc made with
//! `__GFP_MOVABLE` has its order-0 pages tagged [`MovableOwner::Vmalloc`] (the VA each is
//! mapped at), so compaction and CMA can move them. Only the page table refers to such a
//! page: the move copies it while its entry is invalid and switches the entry
//! (break-before-make, see [`PageTable::migrate_page`]). 2 MiB blocks of huge mappings are
//! never tagged: they stay where they are (allocated without `__GFP_MOVABLE`, so they do
//! not sit in movable pageblocks).
//!
//! [`MovableOwner::Vmalloc`]: crate::page_alloc::MovableOwner::Vmalloc

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use crate::page_alloc::MigrateError;
use crate::page_source::PageSource;
use crate::pgtable::{PageTable, PhysMemory, TlbMaint};

use super::area::VmKind;
use super::state::Vmalloc;

impl Vmalloc {
    /// Moves the vmalloc page at `va` from frame `old` to frame `new` (both allocated by
    /// the caller; `new` is the caller's to free on error): copies the 4 KiB through the
    /// linear map while the entry is invalid, then maps `new`. Refused, with nothing
    /// changed, unless `va` is inside a live vmalloc area and mapped to `old` by a page
    /// entry.
    pub fn migrate_page<M: PhysMemory, T: TlbMaint>(
        &mut self,
        va: VirtAddr,
        old: PhysAddr,
        new: PhysAddr,
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
    ) -> Result<(), MigrateError> {
        match self.vmalloc.find(va) {
            Some(a) if a.kind == VmKind::Vmalloc => {}
            _ => return Err(MigrateError::Gone),
        }
        let (src, dst) = (pages.phys_to_virt(old), pages.phys_to_virt(new));
        pt.migrate_page(va, old, new, &mut || {
            // SAFETY: both frames are allocated, 4 KiB each, readable and writable
            // through the linear map (`PageSource`'s contract); `old` is mapped nowhere
            // else now (its only other mapping, at `va`, was just made invalid and its
            // TLB entries invalidated) and `new` is not mapped yet.
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr::<u8>(), dst.as_mut_ptr::<u8>(), PAGE_SIZE) };
        })
        .map_err(|_| MigrateError::Gone)
    }
}
