//! [`PageTable::unmap`]: clear leaves (splitting blocks covered in part), one TLB
//! invalidation for the range, hand the frames back only after it, and free tables that
//! become empty.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::cursor::Cursor;
use super::desc::{Desc, DescKind, PTE_VALID};
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

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Unmaps whatever is mapped in [va, va + size) (holes are fine), splitting blocks the
    /// range covers only in part, and frees tables that become empty.
    pub fn unmap<A: TableAlloc>(&mut self, alloc: &mut A, va: VirtAddr, size: u64) -> Result<Unmapped, PtError> {
        self.unmap_with(alloc, va, size, &mut |_, _, _| {})
    }

    /// [`Self::unmap`], calling `f(va, pa, size)` for every leaf removed (a run of pages
    /// once, at its head, with the run's size: see [`super::desc::PTE_RUN_MASK`]), once the
    /// TLB no longer holds it (so `f` may free the frames).
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
    ///
    /// Linux's `vunmap_range` in three steps: one walk makes every leaf the range covers
    /// invalid and unhooks every table that ends up empty (or that the range covers
    /// whole), keeping each entry's address with only its valid bit cleared; then one TLB
    /// invalidation covers the whole range (walk caches included: each unhooked table maps
    /// some page of the range); then a second walk over the same tables hands every
    /// leaf to `f`, zeroes the entries and frees the unhooked tables. No frame is handed
    /// over and no table freed before the invalidation, and there is one invalidation per
    /// call instead of one per batch of leaves. The entries with a kept address are
    /// invalid to the walker (real hardware ignores every other bit of a descriptor whose
    /// bit 0 is clear) and exist only inside this call (under the caller's lock).
    /// Real hardware: the `sync` before the invalidation (`dsb ish`) makes the invalid
    /// entries visible to every walker first, the one after it (`dsb ish; isb`) completes
    /// the broadcast `tlbi` before any frame or table is handed back for reuse.
    pub(super) fn unmap_range<A: TableAlloc>(
        &self,
        alloc: &mut A,
        va: VirtAddr,
        size: u64,
        f: LeafFn<'_>,
    ) -> Result<Unmapped, PtError> {
        self.check_range(va, size)?;
        let mut stats = Unmapped::default();
        let (walked, changed, r) = self.unhook_range(alloc, va.as_u64(), size, &mut stats);
        if changed {
            // The invalid entries must reach the walkers before the invalidation, and the
            // invalidation must complete before a frame or table is reused.
            self.tlb.sync();
            self.flush_range(va.as_u64(), walked);
            self.tlb.sync();
            self.reap_range(alloc, va.as_u64(), walked, f, &mut stats);
        }
        r.map(|()| stats)
    }

    /// The first walk of an unmap: clears the valid bit of every leaf in the range and of
    /// the table entries whose tables the range covers or leaves empty, and splits blocks
    /// covered in part. Returns the bytes walked (all of them unless a split failed),
    /// whether any entry changed, and the error.
    fn unhook_range<A: TableAlloc>(
        &self,
        alloc: &mut A,
        va: u64,
        size: u64,
        stats: &mut Unmapped,
    ) -> (u64, bool, Result<(), PtError>) {
        let mut c = Cursor::new(self, va, size);
        let mut changed = false;
        while !c.done() {
            let level = c.level();
            if level == 3 {
                // The page table's entries in the range, in one loop.
                let (table, i0) = (c.table(), c.index());
                let n = (c.left() / PAGE).min((PTRS_PER_TABLE - i0) as u64) as usize;
                for i in i0..i0 + n {
                    let e = self.read(table, i);
                    if e.kind(3) == DescKind::Page {
                        self.write(table, i, Desc(e.0 & !PTE_VALID));
                        changed = true;
                    }
                }
                c.step_entries(n);
            } else if c.covers_entry() {
                // The entries of this table the range covers whole, in one loop: a leaf
                // or a table, each unhooked as one entry.
                let (table, i0) = (c.table(), c.index());
                let n = ((c.left() / c.entry_size()) as usize).min(PTRS_PER_TABLE - i0);
                // Valid and not a reserved encoding (a block at level 0).
                let must = if level == 0 { 3 } else { 1 };
                for i in i0..i0 + n {
                    let e = self.read(table, i);
                    if e.0 & must == must {
                        self.write(table, i, Desc(e.0 & !PTE_VALID));
                        changed = true;
                    }
                }
                c.step_entries(n);
            } else {
                let d = c.read();
                match d.kind(level) {
                    DescKind::Table => {
                        c.descend(d.addr());
                        continue;
                    }
                    DescKind::Block => match self.split(alloc, c.table(), c.index(), level, c.base(), d) {
                        Ok(child) => {
                            stats.splits += 1;
                            c.descend(child);
                            continue;
                        }
                        Err(e) => return (c.va().wrapping_sub(va), changed, Err(e)),
                    },
                    _ => c.step(),
                }
            }
            while let Some(up) = c.pop() {
                if self.table_is_empty(up.child) {
                    let e = self.read(up.table, up.index);
                    self.write(up.table, up.index, Desc(e.0 & !PTE_VALID));
                    changed = true;
                }
            }
        }
        (size, changed, Ok(()))
    }

    /// The second walk, after the invalidation: every entry the first left invalid with its
    /// address is zeroed, a leaf handed to `f`, an unhooked table released with all it
    /// maps.
    fn reap_range<A: TableAlloc>(&self, alloc: &mut A, va: u64, size: u64, f: LeafFn<'_>, stats: &mut Unmapped) {
        let mut c = Cursor::new(self, va, size);
        while !c.done() {
            let level = c.level();
            if c.covers_entry() {
                let (table, i0, es, at0) = (c.table(), c.index(), c.entry_size(), c.va());
                let n = ((c.left() / es) as usize).min(PTRS_PER_TABLE - i0);
                if level == 3 {
                    // A page table: pages only, the loop most entries go through.
                    for i in i0..i0 + n {
                        let e = self.read(table, i);
                        if !e.is_valid() && e.0 != 0 {
                            // A page the first walk cleared (it clears nothing else here).
                            self.write(table, i, Desc::INVALID);
                            stats.bytes += PAGE;
                            stats.leaves += 1;
                            if let Some(order) = e.run_order() {
                                let at = at0.wrapping_add((i - i0) as u64 * PAGE);
                                f(VirtAddr::new(at), PhysAddr::new(e.addr()), PAGE << order);
                            }
                        }
                    }
                    c.step_entries(n);
                    while let Some(up) = c.pop() {
                        if self.read(up.table, up.index).0 == 0 {
                            alloc.free_table(PhysAddr::new(up.child));
                            stats.tables_freed += 1;
                        }
                    }
                    continue;
                }
                for i in i0..i0 + n {
                    let e = self.read(table, i);
                    if e.is_valid() || e.0 == 0 {
                        continue;
                    }
                    self.write(table, i, Desc::INVALID);
                    let live = Desc(e.0 | PTE_VALID);
                    let at = at0.wrapping_add((i - i0) as u64 * es);
                    if live.kind(level) == DescKind::Table {
                        self.release_detached(alloc, live.addr(), level + 1, at, f, stats);
                    } else {
                        Self::report_leaf(live, level, at, f, stats);
                    }
                }
                c.step_entries(n);
            } else {
                let d = c.read();
                if d.0 != 0 && Desc(d.0 | PTE_VALID).kind(level) == DescKind::Table {
                    // A live table, or one the first walk left empty (only its part in the
                    // range holds anything): walked, and the latter freed on the way out.
                    if !d.is_valid() {
                        c.write(Desc::INVALID);
                    }
                    c.descend(d.addr());
                    continue;
                }
                c.step();
            }
            while let Some(up) = c.pop() {
                // Zeroed above: the table was unhooked, and is now empty.
                if self.read(up.table, up.index).0 == 0 {
                    alloc.free_table(PhysAddr::new(up.child));
                    stats.tables_freed += 1;
                }
            }
        }
    }

    /// Counts the leaf `d` (valid bit set) of `level` mapping from `va` and hands its
    /// frames to `f`: a block whole, a run of pages at its head, nothing for a run's other
    /// pages.
    fn report_leaf(d: Desc, level: u32, va: u64, f: LeafFn<'_>, stats: &mut Unmapped) {
        let size = match d.kind(level) {
            DescKind::Block => level_size(level),
            DescKind::Page => PAGE,
            _ => return,
        };
        stats.bytes += size;
        stats.leaves += 1;
        match (level, d.run_order()) {
            (3, Some(order)) => f(VirtAddr::new(va), PhysAddr::new(d.addr()), PAGE << order),
            (3, None) => {}
            _ => f(VirtAddr::new(va), PhysAddr::new(d.addr()), size),
        }
    }

    /// Reports every leaf of a table no walker can reach any more (of `level`, mapping from
    /// `va`), and frees it and its sub-tables, each after its entries were read. Its
    /// entries may be live or invalid with their address kept (both stand for what they
    /// map).
    fn release_detached<A: TableAlloc>(
        &self,
        alloc: &mut A,
        table: u64,
        level: u32,
        va: u64,
        f: LeafFn<'_>,
        stats: &mut Unmapped,
    ) {
        let span = level_size(level) * PTRS_PER_TABLE as u64;
        let mut c = Cursor::at(self, table, level, va, span);
        while !c.done() {
            // The table's remaining entries in one loop, down into the first sub-table (the
            // range is whole tables: it ends with the current one).
            let (t, i0, n) = (c.table(), c.index(), PTRS_PER_TABLE - c.index());
            let mut i = i0;
            let mut sub = None;
            while i < i0 + n {
                let raw = self.read(t, i);
                if raw.0 != 0 {
                    let d = Desc(raw.0 | PTE_VALID);
                    if d.kind(c.level()) == DescKind::Table {
                        sub = Some(d.addr());
                        break;
                    }
                    let at = c.va().wrapping_add((i - i0) as u64 * c.entry_size());
                    Self::report_leaf(d, c.level(), at, f, stats);
                }
                i += 1;
            }
            c.step_entries(i - i0);
            if let Some(child) = sub {
                c.descend(child);
                continue;
            }
            while let Some(up) = c.pop() {
                alloc.free_table(PhysAddr::new(up.child));
                stats.tables_freed += 1;
            }
        }
        alloc.free_table(PhysAddr::new(table));
        stats.tables_freed += 1;
    }
}
