//! Migration of vmalloc pages: Linux never moves them; here a vmalloc made with
//! `__GFP_MOVABLE` has its order-0 pages tagged with the owner of kind
//! [`VMALLOC_MOVABLE`](super::VMALLOC_MOVABLE) (the VA each is mapped at), so compaction
//! and CMA can move them. Only the page table refers to such a
//! page: the move copies it while its entry is invalid and switches the entry
//! (break-before-make, see [`PageTable::migrate_page`]); [`Vmalloc::migrate_pages`] does a
//! batch with one TLB invalidation per round of pages. 2 MiB blocks of huge mappings are
//! never tagged: they stay where they are (allocated without `__GFP_MOVABLE`, so they do
//! not sit in movable pageblocks).

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use crate::page_alloc::MigrateError;
use crate::page_source::PageSource;
use crate::pgtable::{PageMove, PageTable, PhysMemory, PtError, TlbMaint, MIGRATE_BATCH};

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
        let mut r = [Ok(())];
        self.migrate_pages(&[PageMove { va, old, new }], pages, pt, &mut r);
        r[0]
    }

    /// [`Self::migrate_page`] for a batch (`result[k]` for `moves[k]`): each move is
    /// checked as there, a refused one changes nothing and does not stop the others; the
    /// rest are switched together by [`PageTable::migrate_pages`] (their entries invalid
    /// at once, one TLB invalidation for all, each page copied and mapped again).
    ///
    /// # Panics
    ///
    /// If `result` is shorter than `moves`.
    pub fn migrate_pages<M: PhysMemory, T: TlbMaint>(
        &mut self,
        moves: &[PageMove],
        pages: &dyn PageSource,
        pt: &mut PageTable<M, T>,
        result: &mut [Result<(), MigrateError>],
    ) {
        assert!(result.len() >= moves.len(), "one result per move");
        for (round, chunk) in moves.chunks(MIGRATE_BATCH).enumerate() {
            let base = round * MIGRATE_BATCH;
            // The moves inside a live vmalloc area, and where each came from.
            let mut live =
                [PageMove { va: VirtAddr::new(0), old: PhysAddr::new(0), new: PhysAddr::new(0) }; MIGRATE_BATCH];
            let mut from = [0usize; MIGRATE_BATCH];
            let mut n = 0;
            for (k, m) in chunk.iter().enumerate() {
                result[base + k] = match self.vmalloc.find(m.va) {
                    Some(a) if a.kind == VmKind::Vmalloc => {
                        live[n] = *m;
                        from[n] = base + k;
                        n += 1;
                        Ok(())
                    }
                    _ => Err(MigrateError::Gone),
                };
            }
            let mut done = [Ok::<(), PtError>(()); MIGRATE_BATCH];
            pt.migrate_pages(
                &live[..n],
                &mut |j| {
                    let (src, dst) = (pages.phys_to_virt(live[j].old), pages.phys_to_virt(live[j].new));
                    // SAFETY: both frames are allocated, 4 KiB each, readable and writable
                    // through the linear map (`PageSource`'s contract); `old` is mapped
                    // nowhere else now (its only other mapping, at its VA, was just made
                    // invalid and its TLB entries invalidated) and `new` is not mapped yet.
                    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr::<u8>(), dst.as_mut_ptr::<u8>(), PAGE_SIZE) };
                },
                &mut done[..n],
            );
            for j in 0..n {
                result[from[j]] = done[j].map_err(|_| MigrateError::Gone);
            }
        }
    }
}
