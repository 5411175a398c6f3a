//! [`PageTable::split_to`] and [`PageTable::protect`]: break blocks into smaller entries and
//! change the permissions of a range (break-before-make where a live entry changes).

use crate::addr::VirtAddr;

use super::desc::{Desc, DescKind, Prot};
use super::error::PtError;
use super::table::{level_index, level_size, PageTable};
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
        let mut table = self.root.as_u64();
        let mut l = self.cfg.start_level();
        let mut splits = 0;
        while l < level.min(3) {
            let i = level_index(va.as_u64(), l);
            let d = self.read(table, i);
            table = match d.kind(l) {
                DescKind::Table => d.addr(),
                DescKind::Block => {
                    splits += 1;
                    let base = va.as_u64() & !(level_size(l) - 1);
                    self.split(alloc, table, i, l, base, d)?
                }
                _ => return Err(PtError::NotMapped(va)),
            };
            l += 1;
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
        let (mut cur, mut left) = (va.as_u64(), size);
        while left > 0 {
            let t = self.translate(VirtAddr::new(cur)).ok_or(PtError::NotMapped(VirtAddr::new(cur)))?;
            let bs = level_size(t.level);
            let step = (bs - (cur & (bs - 1))).min(left);
            cur = cur.wrapping_add(step);
            left -= step;
        }
        let root = self.root.as_u64();
        self.protect_level(alloc, root, self.cfg.start_level(), va.as_u64(), size, prot)
    }

    pub(super) fn protect_level<A: TableAlloc>(
        &self,
        alloc: &mut A,
        table: u64,
        level: u32,
        va: u64,
        size: u64,
        prot: Prot,
    ) -> Result<(), PtError> {
        let bs = level_size(level);
        let (mut cur, mut left) = (va, size);
        let mut i = level_index(cur, level);
        while left > 0 {
            let base = cur & !(bs - 1);
            let chunk = (bs - (cur - base)).min(left);
            let d = self.read(table, i);
            match d.kind(level) {
                DescKind::Table => self.protect_level(alloc, d.addr(), level + 1, cur, chunk, prot)?,
                DescKind::Block | DescKind::Page if d.prot() == prot => {}
                DescKind::Block | DescKind::Page if chunk == bs => {
                    self.bbm_replace(table, i, base, bs, Desc::leaf(d.addr(), prot, level));
                }
                DescKind::Block => {
                    let child = self.split(alloc, table, i, level, base, d)?;
                    self.protect_level(alloc, child, level + 1, cur, chunk, prot)?;
                }
                _ => return Err(PtError::NotMapped(VirtAddr::new(cur))),
            }
            cur = cur.wrapping_add(chunk);
            left -= chunk;
            i += 1;
        }
        Ok(())
    }
}
