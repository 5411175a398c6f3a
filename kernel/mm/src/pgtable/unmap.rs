//! [`PageTable::unmap`]: clear leaves (splitting blocks covered in part), batch the TLB
//! invalidation, hand the frames back only after it, and free tables that become empty.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::desc::{Desc, DescKind};
use super::error::PtError;
use super::table::{level_index, level_size, LeafFn, PageTable};
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

/// Leaves cleared but not yet invalidated in the TLB: their pages are handed to the caller
/// only once the invalidation is complete (never free a page the TLB can still reach).
/// Leaves cleared but not yet invalidated: their frames are handed back only after the
/// TLB invalidation that covers them has completed.
pub(super) struct Pending {
    items: [(u64, u64, u64); PENDING_MAX],
    n: usize,
}

/// Cleared leaves collected before one invalidation (a batch).
const PENDING_MAX: usize = 64;
/// A batch of more pages than this is invalidated with one `flush_all` rather than page
/// by page: on a Cortex-A53 either is cheap, but every broadcast invalidation is a
/// synchronisation of all cores (and under QEMU an expensive one), so fewer is better.
const PENDING_FLUSH_ALL_PAGES: u64 = 16;

impl Pending {
    pub(super) const fn new() -> Self {
        Self { items: [(0, 0, 0); PENDING_MAX], n: 0 }
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
        self.check_range(va, size)?;
        let mut pending = Pending::new();
        let mut stats = Unmapped::default();
        let root = self.root.as_u64();
        let r = self.unmap_level(alloc, root, self.cfg.start_level(), va.as_u64(), size, &mut pending, f, &mut stats);
        self.flush_pending(&mut pending, f);
        r.map(|()| stats)
    }

    pub(super) fn flush_pending(&self, p: &mut Pending, f: LeafFn<'_>) {
        if p.n == 0 {
            return;
        }
        self.tlb.sync();
        let pages: u64 = p.items[..p.n].iter().map(|&(_, _, s)| s / PAGE).sum();
        if pages > PENDING_FLUSH_ALL_PAGES {
            self.tlb.flush_all();
        } else {
            for &(va, _, s) in &p.items[..p.n] {
                self.flush_range(va, s);
            }
        }
        self.tlb.sync();
        for &(va, pa, s) in &p.items[..p.n] {
            f(VirtAddr::new(va), PhysAddr::new(pa), s);
        }
        p.n = 0;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn unmap_level<A: TableAlloc>(
        &self,
        alloc: &mut A,
        table: u64,
        level: u32,
        va: u64,
        size: u64,
        pending: &mut Pending,
        f: LeafFn<'_>,
        stats: &mut Unmapped,
    ) -> Result<(), PtError> {
        let bs = level_size(level);
        let (mut cur, mut left) = (va, size);
        let mut i = level_index(cur, level);
        while left > 0 {
            let base = cur & !(bs - 1);
            let off = cur - base;
            let chunk = (bs - off).min(left);
            let d = self.read(table, i);
            match d.kind(level) {
                DescKind::Invalid | DescKind::Reserved => {}
                DescKind::Table if chunk == bs => {
                    // The whole table goes: unhook it first (one invalidation for its
                    // span), then empty it at leisure, out of the walker's reach.
                    self.flush_pending(pending, f);
                    self.write(table, i, Desc::INVALID);
                    self.tlb.sync();
                    self.flush_range(base, bs);
                    self.tlb.sync();
                    self.release_detached(alloc, d.addr(), level + 1, base, f, stats);
                }
                DescKind::Table => {
                    let child = d.addr();
                    self.unmap_level(alloc, child, level + 1, cur, chunk, pending, f, stats)?;
                    if self.table_is_empty(child) {
                        self.flush_pending(pending, f);
                        self.free_table_entry(alloc, table, i, base, child);
                        stats.tables_freed += 1;
                    }
                }
                DescKind::Block | DescKind::Page => {
                    if chunk == bs {
                        self.write(table, i, Desc::INVALID);
                        if pending.n == pending.items.len() {
                            self.flush_pending(pending, f);
                        }
                        pending.items[pending.n] = (base, d.addr(), bs);
                        pending.n += 1;
                        stats.bytes += bs;
                        stats.leaves += 1;
                    } else {
                        self.flush_pending(pending, f);
                        let child = self.split(alloc, table, i, level, base, d)?;
                        stats.splits += 1;
                        self.unmap_level(alloc, child, level + 1, cur, chunk, pending, f, stats)?;
                    }
                }
            }
            cur = cur.wrapping_add(chunk);
            left -= chunk;
            i += 1;
        }
        Ok(())
    }

    /// Reports every leaf of a table no walker can reach any more, and frees it and its
    /// sub-tables.
    pub(super) fn release_detached<A: TableAlloc>(
        &self,
        alloc: &mut A,
        table: u64,
        level: u32,
        va: u64,
        f: LeafFn<'_>,
        stats: &mut Unmapped,
    ) {
        let bs = level_size(level);
        for i in 0..PTRS_PER_TABLE {
            let d = self.read(table, i);
            let eva = va.wrapping_add(i as u64 * bs);
            match d.kind(level) {
                DescKind::Table => self.release_detached(alloc, d.addr(), level + 1, eva, f, stats),
                DescKind::Block | DescKind::Page => {
                    stats.bytes += bs;
                    stats.leaves += 1;
                    f(VirtAddr::new(eva), PhysAddr::new(d.addr()), bs);
                }
                _ => {}
            }
        }
        alloc.free_table(PhysAddr::new(table));
        stats.tables_freed += 1;
    }
}
