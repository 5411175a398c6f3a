//! [`Cursor`]: the one way the library walks a tree, as Linux's pgd/p4d/pud/pmd/pte walk
//! and Asterinas OSTD's page-table cursor do.
//!
//! A cursor covers a VA range [va, va + size) and stands on one entry of one table: the
//! entry at level [`Cursor::level`] holding [`Cursor::va`]. An operation reads that entry
//! and either goes down into the table it points to ([`Cursor::descend`]) or deals with the
//! part of the range inside the entry and moves past it ([`Cursor::step`]). When a step
//! leaves the last entry of a table (or the range ends), [`Cursor::pop`] climbs back to the
//! entry that points to that table, so an operation can free a table it emptied on the way
//! up. The path from the root is kept on the stack (at most four tables): no recursion, no
//! heap, one walk per table rather than one per page.
//!
//! Every operation (`map`, `map_frames`, `unmap`, `protect`, `split_to`, `translate`,
//! `for_each_leaf`, `count_tables`, releasing a detached table) is a loop over a cursor.

use super::desc::{Desc, DescKind};
use super::table::{level_index, level_size, PageTable};
use super::{PhysMemory, TlbMaint};

/// A walk position in a [`PageTable`] over a VA range.
pub(super) struct Cursor<'a, M, T> {
    pt: &'a PageTable<M, T>,
    /// `path[l]`: the table of level `l` on the walk (valid for `top..=level`).
    path: [u64; 4],
    /// `parent_base[l]`: first VA of the entry of level `l - 1` that points to `path[l]`.
    parent_base: [u64; 4],
    level: u32,
    top: u32,
    va: u64,
    left: u64,
}

/// The entry a [`Cursor::pop`] climbed back to: `table[index]` pointed (and may still
/// point) to `child`, and maps from `base`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Up {
    pub table: u64,
    pub index: usize,
    #[allow(dead_code)] // the cursor's test checks it; no walk needs it today
    pub base: u64,
    pub child: u64,
}

impl<'a, M: PhysMemory, T: TlbMaint> Cursor<'a, M, T> {
    /// A cursor on the root table over [va, va + size).
    pub fn new(pt: &'a PageTable<M, T>, va: u64, size: u64) -> Self {
        Self::at(pt, pt.root.as_u64(), pt.cfg.start_level(), va, size)
    }

    /// A cursor over [va, va + size) inside `table`, a table of `level` (the root, or a
    /// table already taken out of the tree).
    pub fn at(pt: &'a PageTable<M, T>, table: u64, level: u32, va: u64, size: u64) -> Self {
        let mut path = [0; 4];
        path[level as usize] = table;
        Self { pt, path, parent_base: [0; 4], level, top: level, va, left: size }
    }

    /// Level of the current table (3 = page table).
    pub fn level(&self) -> u32 {
        self.level
    }
    /// The current VA (inside the current entry).
    pub fn va(&self) -> u64 {
        self.va
    }
    /// Bytes of the range still ahead.
    pub fn left(&self) -> u64 {
        self.left
    }
    /// Whether the whole range has been stepped over.
    pub fn done(&self) -> bool {
        self.left == 0
    }
    /// The current table.
    pub fn table(&self) -> u64 {
        self.path[self.level as usize]
    }
    /// Index of the current entry in its table.
    pub fn index(&self) -> usize {
        level_index(self.va, self.level)
    }
    /// Bytes mapped by one entry of the current level.
    pub fn entry_size(&self) -> u64 {
        level_size(self.level)
    }
    /// First VA of the current entry.
    pub fn base(&self) -> u64 {
        self.va & !(self.entry_size() - 1)
    }
    /// Bytes of the range inside the current entry.
    pub fn chunk(&self) -> u64 {
        (self.entry_size() - (self.va - self.base())).min(self.left)
    }
    /// Whether the range covers the current entry whole.
    pub fn covers_entry(&self) -> bool {
        self.chunk() == self.entry_size()
    }
    /// The current entry.
    pub fn read(&self) -> Desc {
        self.pt.read(self.table(), self.index())
    }
    /// Overwrites the current entry (the caller does the barriers and invalidation).
    pub fn write(&self, d: Desc) {
        self.pt.write(self.table(), self.index(), d)
    }

    /// Goes down into `table`, which the current entry points to (or is about to).
    pub fn descend(&mut self, table: u64) {
        let base = self.base();
        self.level += 1;
        self.path[self.level as usize] = table;
        self.parent_base[self.level as usize] = base;
    }

    /// The current entry, after going down through every table entry on the way (the
    /// descend loop of every walk): a block, a page or an invalid entry, at
    /// [`Self::level`].
    pub fn read_leaf(&mut self) -> Desc {
        loop {
            let d = self.read();
            if d.kind(self.level) != DescKind::Table {
                return d;
            }
            self.descend(d.addr());
        }
    }

    /// Moves past the range's part of the current entry.
    pub fn step(&mut self) {
        let c = self.chunk();
        self.va = self.va.wrapping_add(c);
        self.left -= c;
    }

    /// Moves `n` entries on inside the current table (`n` at most the entries left in the
    /// table and, whole, in the range): the loops of map and unmap that handle a table's
    /// entries in one go.
    pub fn step_entries(&mut self, n: usize) {
        let b = n as u64 * self.entry_size();
        debug_assert!(b <= self.left && self.index() + n <= super::PTRS_PER_TABLE);
        self.va = self.va.wrapping_add(b);
        self.left -= b;
    }

    /// Climbs one level if the last step left the current table (or ended the range),
    /// returning the entry that points to the table left behind (`None` at the cursor's
    /// top table, as [`Self::up`]).
    pub fn pop(&mut self) -> Option<Up> {
        if self.left == 0 || self.index() == 0 {
            self.up()
        } else {
            None
        }
    }

    /// Climbs one level unconditionally (`None` at the cursor's top table).
    pub fn up(&mut self) -> Option<Up> {
        if self.level == self.top {
            return None;
        }
        let child = self.table();
        let base = self.parent_base[self.level as usize];
        self.level -= 1;
        Some(Up { table: self.table(), index: level_index(base, self.level), base, child })
    }

    /// [`Self::step`], then every [`Self::pop`] it calls for, with nothing to do on the
    /// way up.
    pub fn advance(&mut self) {
        self.step();
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{PhysAddr, VirtAddr};
    use crate::pgtable::boot::BumpTables;
    use crate::pgtable::{LinearPhysMemory, Prot, PtConfig};

    struct NoTlb;
    impl TlbMaint for NoTlb {
        fn flush_va(&self, _: VirtAddr) {}
        fn flush_all(&self) {}
        fn sync(&self) {}
    }

    const K: u64 = 4096;
    const M2: u64 = 2 << 20;

    #[test]
    fn walks_down_steps_and_climbs_back_at_table_ends() {
        // Eight table pages of host memory at "physical" 0x10_0000.
        let buf = vec![0u64; 9 * 512];
        let base = (buf.as_ptr() as u64).next_multiple_of(K);
        // SAFETY: the tables live in `buf` (kept alive below), addressed as pa + offset.
        let mem = unsafe { LinearPhysMemory::new(base.wrapping_sub(0x10_0000)) };
        let mut tables = BumpTables::new(PhysAddr::new(0x10_0000), PhysAddr::new(0x10_0000 + 8 * K));
        let mut pt = PageTable::create(&mut tables, PtConfig::KERNEL_39, mem, NoTlb).unwrap();
        let v = crate::pgtable::layout::VMALLOC_START + M2 - 2 * K;
        // Two pages at the end of one L3 table, two at the start of the next.
        pt.map(&mut tables, VirtAddr::new(v), PhysAddr::new(0x4000_0000), 4 * K, Prot::KERNEL_RW, false).unwrap();
        let mut c = Cursor::new(&pt, v, 4 * K);
        let (mut leaves, mut pops) = (Vec::new(), Vec::new());
        while !c.done() {
            let d = c.read_leaf();
            match d.kind(c.level()) {
                DescKind::Page => leaves.push((c.va(), d.addr())),
                k => panic!("{k:?} at {:#x}", c.va()),
            }
            c.step();
            while let Some(up) = c.pop() {
                pops.push((up.base, up.index));
            }
        }
        let pa: Vec<u64> = (0..4).map(|i| 0x4000_0000 + i * K).collect();
        assert_eq!(leaves, (0..4).map(|i| (v + i * K, pa[i as usize])).collect::<Vec<_>>());
        // Leaving the first L3 table climbs to its L2 entry; the end of the range climbs
        // out of the second L3 table and then out of the L2 table to the root.
        let l2i = |va: u64| ((va >> 21) & 511) as usize;
        let l1i = ((v >> 30) & 511) as usize;
        assert_eq!(pops, vec![(v - (M2 - 2 * K), l2i(v)), (v + 2 * K, l2i(v + 2 * K)), (v & !((1 << 30) - 1), l1i)]);
        assert_eq!(c.level(), 1);
        assert!(c.up().is_none(), "nothing above the root");
        drop(buf);
    }
}
