//! [`PageTable::migrate_page`]: switch one 4 KiB page entry to another frame,
//! break-before-make, with the copy made while the entry is invalid (page migration of
//! vmalloc pages).

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::cursor::Cursor;
use super::desc::{Desc, DescKind};
use super::error::PtError;
use super::table::PageTable;
use super::{PhysMemory, TlbMaint};

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
        if !self.in_range(va) {
            return Err(PtError::OutOfRange(va));
        }
        let va = va.align_down(PAGE_SIZE as u64);
        let mut c = Cursor::new(self, va.as_u64(), PAGE_SIZE as u64);
        loop {
            let d = c.read();
            match d.kind(c.level()) {
                DescKind::Table => c.descend(d.addr()),
                DescKind::Page if d.addr() == old.as_u64() => {
                    let (table, i) = (c.table(), c.index());
                    self.write(table, i, Desc::INVALID);
                    self.tlb.sync();
                    self.tlb.flush_va(va);
                    self.tlb.sync();
                    copy();
                    self.write(table, i, Desc::leaf(new.as_u64(), d.prot(), 3));
                    self.tlb.sync();
                    return Ok(());
                }
                _ => return Err(PtError::NotMapped(va)),
            }
        }
    }
}
