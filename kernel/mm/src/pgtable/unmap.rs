//! [`PageTable::unmap`]: clear leaves (splitting blocks covered in part), batch the TLB
//! invalidation, hand the frames back only after it, and free tables that become empty.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::cursor::Cursor;
use super::desc::{Desc, DescKind};
use super::error::PtError;
use super::table::{level_size, LeafFn, PageTable};
use super::{PhysMemory, TableAlloc, TlbMaint, PTRS_PER_TABLE};

const PAGE: u64 = PAGE_SIZE as u64;

/// What an unmap removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unmapped {
    /// Bytes that were mapped and no longer are.
    pub bytes: u64,
    /// Leaf descriptors (pages and blocks) cleared.
    pub leaves: usize,
    /// Blocks split because the range covered only part of them.
    pub splits: usize,
    /// Tables that became empty and were given back to the [`TableAlloc`].
    pub tables_freed: usize,
}

/// Leaves cleared but not yet invalidated in the TLB: their frames are handed to the
/// caller's `f` only once the invalidation that covers them has completed (never free a
/// page the TLB can still reach). Also counts what the unmap did.
pub(super) struct Pending<'f> {
    items: [(u64, u64, u64); PENDING_MAX],
    n: usize,
    f: LeafFn<'f>,
    stats: Unmapped,
}

/// Cleared leaves collected before one invalidation (a batch).
const PENDING_MAX: usize = 64;

impl<'f> Pending<'f> {
    fn new(f: LeafFn<'f>) -> Self {
        Self { items: [(0, 0, 0); PENDING_MAX], n: 0, f, stats: Unmapped::default() }
    }
}

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Unmaps whatever is mapped in [va, va + size) (holes are fine), splitting blocks the
    /// range covers only in part, and frees tables that become empty.
    pub fn unmap<A: TableAlloc>(&mut self, alloc: &mut A, va: VirtAddr, size: u64) -> Result<Unmapped, PtError> {
        self.unmap_with(alloc, va, size, &mut |_, _, _| {})
    }

    /// [`Self::unmap`], calling `f(va, pa, size)` for every leaf removed, once the TLB no
    /// longer holds it (so `f` may free the frames).
    ///
    /// On [`PtError::NoTableMemory`] (a split could not get a table) the part before the
    /// failing block is unmapped and the rest is left as it was.
    pub fn unmap_with<A: TableAlloc>(
        &mut self,
        alloc: &mut A,
        va: VirtAddr,
        size: u64,
        f: LeafFn<'_>,
    ) -> Result<Unmapped, PtError> {
        self.unmap_range(alloc, va, size, f)
    }

    /// [`Self::unmap_with`] on a shared reference (rollback of a failed map uses it).
    pub(super) fn unmap_range<A: TableAlloc>(
        &self,
        alloc: &mut A,
        va: VirtAddr,
        size: u64,
        f: LeafFn<'_>,
    ) -> Result<Unmapped, PtError> {
        self.check_range(va, size)?;
        let mut p = Pending::new(f);
        let r = self.unmap_walk(alloc, va.as_u64(), size, &mut p);
        self.flush_pending(&mut p);
        r.map(|()| p.stats)
    }

    fn flush_pending(&self, p: &mut Pending<'_>) {
        if p.n == 0 {
            return;
        }
        self.tlb.sync();
        let pages: u64 = p.items[..p.n].iter().map(|&(_, _, s)| s / PAGE).sum();
        if pages >= super::TLB_FLUSH_ALL_PAGES {
            self.tlb.flush_all();
        } else {
            for &(va, _, s) in &p.items[..p.n] {
                self.flush_range(va, s);
            }
        }
        self.tlb.sync();
        for &(va, pa, s) in &p.items[..p.n] {
            (p.f)(VirtAddr::new(va), PhysAddr::new(pa), s);
        }
        p.n = 0;
    }

    /// The cursor walk of an unmap: leaves covered whole are cleared into the batch, tables
    /// covered whole are unhooked first (one invalidation for their span) and emptied out
    /// of the walker's reach, blocks covered in part are split and walked into, and a
    /// table the walk emptied is freed on the way back up.
    fn unmap_walk<A: TableAlloc>(&self, alloc: &mut A, va: u64, size: u64, p: &mut Pending<'_>) -> Result<(), PtError> {
        let mut c = Cursor::new(self, va, size);
        while !c.done() {
            let (level, d) = (c.level(), c.read());
            let (base, bs) = (c.base(), c.entry_size());
            match d.kind(level) {
                DescKind::Invalid | DescKind::Reserved => {}
                DescKind::Table if c.covers_entry() => {
                    self.flush_pending(p);
                    c.write(Desc::INVALID);
                    self.tlb.sync();
                    self.flush_range(base, bs);
                    self.tlb.sync();
                    self.release_detached(alloc, d.addr(), level + 1, base, p);
                }
                DescKind::Table => {
                    c.descend(d.addr());
                    continue;
                }
                DescKind::Block | DescKind::Page if c.covers_entry() => {
                    c.write(Desc::INVALID);
                    if p.n == p.items.len() {
                        self.flush_pending(p);
                    }
                    p.items[p.n] = (base, d.addr(), bs);
                    p.n += 1;
                    p.stats.bytes += bs;
                    p.stats.leaves += 1;
                }
                DescKind::Block | DescKind::Page => {
                    self.flush_pending(p);
                    let child = self.split(alloc, c.table(), c.index(), level, base, d)?;
                    p.stats.splits += 1;
                    c.descend(child);
                    continue;
                }
            }
            c.step();
            while let Some(up) = c.pop() {
                if self.table_is_empty(up.child) {
                    self.flush_pending(p);
                    self.free_table_entry(alloc, up.table, up.index, up.base, up.child);
                    p.stats.tables_freed += 1;
                }
            }
        }
        Ok(())
    }

    /// Reports every leaf of a table no walker can reach any more (of `level`, mapping from
    /// `va`), and frees it and its sub-tables, each after its entries were read.
    fn release_detached<A: TableAlloc>(&self, alloc: &mut A, table: u64, level: u32, va: u64, p: &mut Pending<'_>) {
        let span = level_size(level) * PTRS_PER_TABLE as u64;
        let mut c = Cursor::at(self, table, level, va, span);
        while !c.done() {
            let d = c.read_leaf();
            match d.kind(c.level()) {
                DescKind::Block | DescKind::Page => {
                    let bs = c.entry_size();
                    p.stats.bytes += bs;
                    p.stats.leaves += 1;
                    (p.f)(VirtAddr::new(c.base()), PhysAddr::new(d.addr()), bs);
                }
                _ => {}
            }
            c.step();
            while let Some(up) = c.pop() {
                alloc.free_table(PhysAddr::new(up.child));
                p.stats.tables_freed += 1;
            }
        }
        alloc.free_table(PhysAddr::new(table));
        p.stats.tables_freed += 1;
    }
}
