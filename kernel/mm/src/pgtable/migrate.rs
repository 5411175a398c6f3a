//! [`PageTable::migrate_pages`]: switch 4 KiB page entries to other frames,
//! break-before-make, with the copies made while the entries are invalid (page migration
//! of vmalloc pages), a batch at a time so that one TLB invalidation serves many pages.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::cursor::Cursor;
use super::desc::{Desc, DescKind};
use super::error::PtError;
use super::table::PageTable;
use super::{PhysMemory, TlbMaint};

/// Most entries one break-before-make round of [`PageTable::migrate_pages`] makes invalid
/// at once (Linux's `COMPACT_CLUSTER_MAX`); longer batches are done in rounds of this.
pub const MIGRATE_BATCH: usize = 32;

/// One page of a [`PageTable::migrate_pages`] batch: the page mapped at `va` moves from
/// frame `old` to frame `new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageMove {
    /// Page-aligned VA (a lower address is aligned down).
    pub va: VirtAddr,
    /// The frame `va` is mapped to now.
    pub old: PhysAddr,
    /// The frame it is to be mapped to.
    pub new: PhysAddr,
}

/// An entry of a round checked and about to be switched.
#[derive(Clone, Copy)]
struct Slot {
    table: u64,
    index: usize,
    desc: Desc,
    /// Position of the move in the caller's batch.
    at: usize,
}

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Moves the page mapped at `va` from frame `old` to frame `new`: the entry is made
    /// invalid and its TLB entries invalidated, then `copy` runs (no CPU can read or write
    /// the page through `va` meanwhile: an access faults instead of seeing a torn page),
    /// then the entry is written with `new` and the same attributes.
    ///
    /// Refused, with nothing changed, unless `va` is mapped by a 4 KiB page entry to
    /// `old` (a 2 MiB block is not migrated page by page).
    pub fn migrate_page(
        &mut self,
        va: VirtAddr,
        old: PhysAddr,
        new: PhysAddr,
        copy: &mut dyn FnMut(),
    ) -> Result<(), PtError> {
        let mut r = [Ok(())];
        self.migrate_pages(&[PageMove { va, old, new }], &mut |_| copy(), &mut r);
        r[0]
    }

    /// [`Self::migrate_page`] for a batch: `result[k]` says how `moves[k]` went, and
    /// `copy(k)` copies its contents. Each move is checked first (mapped by a page entry
    /// to its `old`, and not the same entry as an earlier move); a refused move changes
    /// nothing and does not stop the others. The rest are switched in rounds of up to
    /// [`MIGRATE_BATCH`]: every entry of the round made invalid, one barrier, the TLB
    /// entries of all of them invalidated together ([`TlbMaint::flush_vas`]), a barrier,
    /// then for each page its copy and its new entry, and a final barrier. A CPU that
    /// touches a page of the round between its invalidation and its new entry faults.
    ///
    /// # Panics
    ///
    /// If `result` is shorter than `moves`.
    pub fn migrate_pages(
        &mut self,
        moves: &[PageMove],
        copy: &mut dyn FnMut(usize),
        result: &mut [Result<(), PtError>],
    ) {
        assert!(result.len() >= moves.len(), "one result per move");
        for (round, chunk) in moves.chunks(MIGRATE_BATCH).enumerate() {
            let base = round * MIGRATE_BATCH;
            let mut slots = [Slot { table: 0, index: 0, desc: Desc::INVALID, at: 0 }; MIGRATE_BATCH];
            let mut vas = [VirtAddr::new(0); MIGRATE_BATCH];
            let mut n = 0;
            for (k, m) in chunk.iter().enumerate() {
                let va = m.va.align_down(PAGE_SIZE as u64);
                result[base + k] = match self.page_entry(va, m.old) {
                    Ok((table, index, desc)) => {
                        if slots[..n].iter().any(|s| s.table == table && s.index == index) {
                            // The same entry twice: its old frame would be freed twice.
                            Err(PtError::Overlap(va))
                        } else {
                            slots[n] = Slot { table, index, desc, at: base + k };
                            vas[n] = va;
                            n += 1;
                            Ok(())
                        }
                    }
                    Err(e) => Err(e),
                };
            }
            if n == 0 {
                continue;
            }
            for s in &slots[..n] {
                self.write(s.table, s.index, Desc::INVALID);
            }
            // Real hardware: the invalid entries must reach the other cores' walkers
            // (`dsb ish`) before the invalidation, and the invalidation must be complete
            // everywhere (`dsb ish`) before the first copy reads the old frame, or a core
            // could still write the old frame through a cached translation after it was
            // copied (a lost write).
            self.tlb.sync();
            self.tlb.flush_vas(&vas[..n]);
            self.tlb.sync();
            for s in &slots[..n] {
                let m = &moves[s.at];
                copy(s.at);
                self.write(s.table, s.index, Desc::leaf(m.new.as_u64(), s.desc.prot(), 3));
            }
            // Real hardware: the new entries visible to the walkers before the pages are
            // used again (a CPU waiting on the migration retries its access after this).
            self.tlb.sync();
        }
    }

    /// The page entry (table, index, descriptor) mapping `va` to `old`.
    fn page_entry(&self, va: VirtAddr, old: PhysAddr) -> Result<(u64, usize, Desc), PtError> {
        if !self.in_range(va) {
            return Err(PtError::OutOfRange(va));
        }
        let mut c = Cursor::new(self, va.as_u64(), PAGE_SIZE as u64);
        let d = c.read_leaf();
        match d.kind(c.level()) {
            DescKind::Page if d.addr() == old.as_u64() => Ok((c.table(), c.index(), d)),
            _ => Err(PtError::NotMapped(va)),
        }
    }
}
