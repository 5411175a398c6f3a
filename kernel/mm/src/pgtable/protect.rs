//! [`PageTable::split_to`] and [`PageTable::protect`]: break blocks into smaller entries and
//! change the permissions of a range (break-before-make where a live entry changes), both
//! cursor walks.

use crate::addr::{VirtAddr, PAGE_SIZE};

use super::cursor::Cursor;
use super::desc::{Desc, DescKind, Prot};
use super::error::PtError;
use super::table::{level_size, PageTable};

const PAGE: u64 = PAGE_SIZE as u64;
use super::{PhysMemory, TableAlloc, TlbMaint, PTRS_PER_TABLE};

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Replaces the block `d` at `table[i]` (mapping `base`) by a table of the next level
    /// mapping the same range with the same attributes, break-before-make.
    pub(super) fn split<A: TableAlloc>(
        &self,
        alloc: &mut A,
        table: u64,
        i: usize,
        level: u32,
        base: u64,
        d: Desc,
    ) -> Result<u64, PtError> {
        let child = self.new_table(alloc, false)?.as_u64();
        let cl = level + 1;
        let cs = level_size(cl);
        for j in 0..PTRS_PER_TABLE {
            self.write(child, j, Desc::leaf(d.addr() + j as u64 * cs, d.prot(), cl));
        }
        self.tlb.sync();
        self.bbm_replace(table, i, base, level_size(level), Desc::table(child));
        Ok(child)
    }

    /// Splits the block containing `va` (if any) down to `level` (2 or 3), so that a later
    /// change at that granularity needs no allocation. Returns the number of splits.
    pub fn split_to<A: TableAlloc>(&mut self, alloc: &mut A, va: VirtAddr, level: u32) -> Result<usize, PtError> {
        if !self.in_range(va) {
            return Err(PtError::OutOfRange(va));
        }
        let mut c = Cursor::new(self, va.as_u64(), PAGE);
        let mut splits = 0;
        while c.level() < level.min(3) {
            let d = c.read();
            let table = match d.kind(c.level()) {
                DescKind::Table => d.addr(),
                DescKind::Block => {
                    splits += 1;
                    self.split(alloc, c.table(), c.index(), c.level(), c.base(), d)?
                }
                _ => return Err(PtError::NotMapped(va)),
            };
            c.descend(table);
        }
        Ok(splits)
    }

    /// Changes the attributes of every leaf in [va, va + size) to `prot`, break-before-make,
    /// splitting blocks covered in part. The whole range must be mapped
    /// ([`PtError::NotMapped`] otherwise, before anything changes).
    pub fn protect<A: TableAlloc>(
        &mut self,
        alloc: &mut A,
        va: VirtAddr,
        size: u64,
        prot: Prot,
    ) -> Result<(), PtError> {
        self.check_range(va, size)?;
        let mut c = Cursor::new(self, va.as_u64(), size);
        // First pass, read only: everything must be mapped.
        while !c.done() {
            let d = c.read_leaf();
            match d.kind(c.level()) {
                DescKind::Block | DescKind::Page => c.advance(),
                _ => return Err(PtError::NotMapped(VirtAddr::new(c.va()))),
            }
        }
        let mut c = Cursor::new(self, va.as_u64(), size);
        while !c.done() {
            let (level, d) = (c.level(), c.read());
            match d.kind(level) {
                DescKind::Table => {
                    c.descend(d.addr());
                    continue;
                }
                DescKind::Block | DescKind::Page if d.prot() == prot => {}
                DescKind::Block | DescKind::Page if c.covers_entry() => {
                    self.bbm_replace(
                        c.table(),
                        c.index(),
                        c.base(),
                        c.entry_size(),
                        Desc::leaf(d.addr(), prot, level).with_run_of(d),
                    );
                }
                DescKind::Block => {
                    let child = self.split(alloc, c.table(), c.index(), level, c.base(), d)?;
                    c.descend(child);
                    continue;
                }
                _ => return Err(PtError::NotMapped(VirtAddr::new(c.va()))),
            }
            c.advance();
        }
        Ok(())
    }
}
