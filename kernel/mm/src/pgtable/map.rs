//! [`PageTable::map`] and [`PageTable::map_frames`]: one cursor walk that creates missing
//! tables on the way down and writes leaves (blocks where size and alignment allow, or
//! where the frame supplier offers one), rolling back on failure.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::cursor::Cursor;
use super::desc::{run_head, Desc, DescKind, Prot, RUN_TAIL};
use super::error::PtError;
use super::table::{level_size, PageTable, PA_LIMIT};
use super::{PhysMemory, TableAlloc, TlbMaint, PTRS_PER_TABLE};

const PAGE: u64 = PAGE_SIZE as u64;
/// Bytes of a level-2 block (Linux's PMD_SIZE).
pub const PMD_SIZE: u64 = level_size(2);

/// Where [`PageTable::map_frames`] gets the frames it maps, and gives them back on failure.
pub trait Frames {
    /// A 2 MiB-aligned block of 2 MiB for the whole level-2 entry at `va` (which the range
    /// covers and which is empty), or `None` to map that part with pages. The default
    /// never offers one.
    fn block(&mut self, _va: VirtAddr) -> Option<PhysAddr> {
        None
    }
    /// Frames for the pages from `va` on: `(pa, order)`, a naturally aligned block of
    /// `2^order` contiguous frames for the next `2^order` pages (at most `max`, which never
    /// crosses the end of a page table nor of the range), mapped as a *run*
    /// ([`super::desc::PTE_RUN_MASK`]); order 0 is one page. `None` makes the map fail
    /// ([`PtError::NoPageMemory`]).
    fn pages(&mut self, va: VirtAddr, max: usize) -> Option<(PhysAddr, u32)>;
    /// Takes back frames (`size` bytes: a page, a run or a block) that were mapped at `va`
    /// before a failure, once the TLB no longer holds them, or that were refused as
    /// misaligned.
    fn release(&mut self, va: VirtAddr, pa: PhysAddr, size: u64);
}

/// [`Frames`] from two closures, pages only ([`PageTable::map_pages`]).
struct PageFns<'a> {
    next: &'a mut dyn FnMut(VirtAddr) -> Option<PhysAddr>,
    release: &'a mut dyn FnMut(PhysAddr),
}

impl Frames for PageFns<'_> {
    fn pages(&mut self, va: VirtAddr, _max: usize) -> Option<(PhysAddr, u32)> {
        (self.next)(va).map(|pa| (pa, 0))
    }
    fn release(&mut self, _va: VirtAddr, pa: PhysAddr, size: u64) {
        for i in 0..size / PAGE {
            (self.release)(pa.add(i * PAGE));
        }
    }
}

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Maps [va, va + size) to [pa, pa + size) with `prot`, with 2 MiB / 1 GiB blocks where
    /// both sides are aligned and `allow_blocks`, 4 KiB pages elsewhere.
    ///
    /// Refuses ([`PtError::Overlap`]) to replace anything already mapped; on any error what
    /// this call mapped is unmapped again and the tables it created are freed.
    pub fn map<A: TableAlloc>(
        &mut self,
        alloc: &mut A,
        va: VirtAddr,
        pa: PhysAddr,
        size: u64,
        prot: Prot,
        allow_blocks: bool,
    ) -> Result<(), PtError> {
        self.check_range(va, size)?;
        if !pa.is_page_aligned() {
            return Err(PtError::UnalignedPhys(pa));
        }
        if pa.as_u64() >= PA_LIMIT || size > PA_LIMIT - pa.as_u64() {
            return Err(PtError::PhysOutOfRange(pa));
        }
        let start = va.as_u64();
        let mut c = Cursor::new(self, start, size);
        while !c.done() {
            let (level, d) = (c.level(), c.read());
            let bs = c.entry_size();
            let p = pa.as_u64() + c.va().wrapping_sub(start);
            let leaf_here = level == 3
                || (allow_blocks && level >= 1 && c.va().is_multiple_of(bs) && p.is_multiple_of(bs) && c.left() >= bs);
            if leaf_here {
                if d.is_valid() {
                    let e = PtError::Overlap(VirtAddr::new(c.va()));
                    return Err(self.rollback(alloc, start, c.va(), e, &mut |_, _, _| {}));
                }
                // Invalid -> valid needs no invalidation: faulting walks are never cached.
                c.write(Desc::leaf(p, prot, level));
                c.advance();
                continue;
            }
            if let Err(e) = self.descend_create(alloc, &mut c, d) {
                return Err(self.rollback(alloc, start, c.va(), e, &mut |_, _, _| {}));
            }
        }
        self.tlb.sync();
        Ok(())
    }

    /// Maps `nr_pages` 4 KiB pages at `va`, asking `next` for each page's frame just before
    /// writing its entry. On failure every entry written is cleared with TLB maintenance
    /// and its frame handed to `release`, and tables created for the call are freed.
    pub fn map_pages<A: TableAlloc>(
        &mut self,
        alloc: &mut A,
        va: VirtAddr,
        nr_pages: usize,
        prot: Prot,
        next: &mut dyn FnMut(VirtAddr) -> Option<PhysAddr>,
        release: &mut dyn FnMut(PhysAddr),
    ) -> Result<(), PtError> {
        let size = (nr_pages as u64).checked_mul(PAGE).ok_or(PtError::BadSize(u64::MAX))?;
        self.map_frames(alloc, va, size, prot, &mut PageFns { next, release })
    }

    /// Maps [va, va + size) with frames from `frames`: a level-2 block wherever the range
    /// covers a whole empty 2 MiB entry and `frames` offers a block, 4 KiB pages elsewhere
    /// (vmalloc maps this way, huge where it can, without a page array).
    ///
    /// A new page table is filled completely before it is linked; a live one is filled in
    /// place. On failure ([`PtError::NoPageMemory`], table allocation, overlap) every entry
    /// written is cleared with TLB maintenance, its frame given to [`Frames::release`], and
    /// the tables created for the call are freed.
    pub fn map_frames<A: TableAlloc>(
        &mut self,
        alloc: &mut A,
        va: VirtAddr,
        size: u64,
        prot: Prot,
        frames: &mut dyn Frames,
    ) -> Result<(), PtError> {
        self.check_range(va, size)?;
        let start = va.as_u64();
        let mut c = Cursor::new(self, start, size);
        while !c.done() {
            let (level, d) = (c.level(), c.read());
            let r = if level == 3 {
                // A live page table: its empty entries from here (up to the table's or the
                // range's end, or the first entry in use) are filled in one loop.
                let (table, i0) = (c.table(), c.index());
                let n = (c.left() / PAGE).min((PTRS_PER_TABLE - i0) as u64) as usize;
                let free = (i0..i0 + n).take_while(|&i| !self.read(table, i).is_valid()).count();
                if free == 0 {
                    Err(PtError::Overlap(VirtAddr::new(c.va())))
                } else {
                    let (done, r) = self.fill_ptes(table, i0, free, c.va(), prot, frames);
                    c.step_entries(done);
                    while c.pop().is_some() {}
                    r
                }
            } else if level == 2 && d.kind(2) == DescKind::Invalid {
                self.fill_l2_entry(alloc, &mut c, prot, frames)
            } else {
                self.descend_create(alloc, &mut c, d)
            };
            if let Err(e) = r {
                let mut rel = |v: VirtAddr, pa: PhysAddr, s: u64| frames.release(v, pa, s);
                return Err(self.rollback(alloc, start, c.va(), e, &mut rel));
            }
        }
        self.tlb.sync();
        Ok(())
    }

    /// Frees the empty non-root tables on the walk path of `va`, deepest first.
    pub(super) fn prune_path<A: TableAlloc>(&self, alloc: &mut A, va: u64) {
        let mut c = Cursor::new(self, va, PAGE);
        c.read_leaf();
        while let Some(up) = c.up() {
            if !self.table_is_empty(up.child) {
                break;
            }
            self.free_table_entry(alloc, up.table, up.index, va, up.child);
        }
    }

    /// Goes down through the current entry `d` of `c`: into its table, or into a new zeroed
    /// one linked there if it is empty; a leaf in the way is an overlap.
    fn descend_create<A: TableAlloc>(&self, alloc: &mut A, c: &mut Cursor<'_, M, T>, d: Desc) -> Result<(), PtError> {
        match d.kind(c.level()) {
            DescKind::Table => c.descend(d.addr()),
            DescKind::Invalid => {
                let nt = self.new_table(alloc, true)?.as_u64();
                // The zeroes must be visible before the walker can reach the table.
                self.tlb.sync();
                c.write(Desc::table(nt));
                c.descend(nt);
            }
            _ => return Err(PtError::Overlap(VirtAddr::new(c.base()))),
        }
        Ok(())
    }

    /// Gets the frames for the pages from `va` on (at most `max`), checking them.
    fn next_run(frames: &mut dyn Frames, va: u64, max: usize) -> Result<(u64, u32), PtError> {
        match frames.pages(VirtAddr::new(va), max) {
            Some((pa, order))
                if order <= super::desc::RUN_ORDER_MAX
                    && 1usize << order <= max
                    && pa.as_u64().is_multiple_of(PAGE << order)
                    && pa.as_u64() < PA_LIMIT =>
            {
                Ok((pa.as_u64(), order))
            }
            Some((pa, order)) => {
                frames.release(VirtAddr::new(va), pa, PAGE << order.min(super::desc::RUN_ORDER_MAX));
                Err(PtError::UnalignedPhys(pa))
            }
            None => Err(PtError::NoPageMemory),
        }
    }

    /// Writes the `n` empty entries `table[i0..i0 + n]` (mapping from `va`) with frames
    /// from `frames`, a run at a time: the first page of a run gets its order, the others
    /// [`RUN_TAIL`], in one tight loop (Linux's `vmap_pages_pte_range`). Returns how many
    /// pages it mapped (whole runs only) and the error that stopped it, if any. Invalid ->
    /// valid needs no TLB maintenance (faulting walks are never cached); the caller's
    /// `sync` (real hardware: `dsb ish; isb`) publishes the entries before the area is
    /// handed out, or before a new table holding them is linked.
    fn fill_ptes(
        &self,
        table: u64,
        i0: usize,
        n: usize,
        va: u64,
        prot: Prot,
        frames: &mut dyn Frames,
    ) -> (usize, Result<(), PtError>) {
        let mut k = 0;
        while k < n {
            let cur = va.wrapping_add(k as u64 * PAGE);
            let (pa, order) = match Self::next_run(frames, cur, n - k) {
                Ok(r) => r,
                Err(e) => return (k, Err(e)),
            };
            let head = Desc::leaf(pa, prot, 3).0;
            if order == 0 {
                self.write(table, i0 + k, Desc(head));
                k += 1;
                continue;
            }
            self.write(table, i0 + k, Desc(head | run_head(order)));
            let tail = head | RUN_TAIL;
            for j in 1..1usize << order {
                self.write(table, i0 + k + j, Desc(tail + j as u64 * PAGE));
            }
            k += 1 << order;
        }
        (k, Ok(()))
    }

    /// Gives the frames of `table[i0..i0 + n]` (mapping from `va`, never linked, so never
    /// in a TLB) back to `frames`, a run at a time.
    fn release_ptes(&self, table: u64, i0: usize, n: usize, va: u64, frames: &mut dyn Frames) {
        for j in 0..n {
            let d = self.read(table, i0 + j);
            if let Some(order) = d.run_order() {
                let at = VirtAddr::new(va.wrapping_add(j as u64 * PAGE));
                frames.release(at, PhysAddr::new(d.addr()), PAGE << order);
            }
        }
    }

    /// Fills the empty level-2 entry under `c` and steps past it: with one block if the
    /// range covers the entry and `frames` offers one, else with a new page table built
    /// completely (entries outside the range invalid) and only then linked, so each entry
    /// is written once and nothing needs reading. On error nothing was linked: the frames
    /// are released and the table freed here.
    fn fill_l2_entry<A: TableAlloc>(
        &self,
        alloc: &mut A,
        c: &mut Cursor<'_, M, T>,
        prot: Prot,
        frames: &mut dyn Frames,
    ) -> Result<(), PtError> {
        if c.covers_entry() {
            if let Some(b) = frames.block(VirtAddr::new(c.va())) {
                if !b.as_u64().is_multiple_of(PMD_SIZE) || b.as_u64() >= PA_LIMIT {
                    frames.release(VirtAddr::new(c.va()), b, PMD_SIZE);
                    return Err(PtError::UnalignedPhys(b));
                }
                c.write(Desc::leaf(b.as_u64(), prot, 2));
                c.advance();
                return Ok(());
            }
        }
        let t = self.new_table(alloc, false)?;
        let table = t.as_u64();
        let (va, n) = (c.va(), (c.chunk() / PAGE) as usize);
        let i0 = super::table::level_index(va, 3);
        for i in 0..i0 {
            self.write(table, i, Desc::INVALID);
        }
        let (done, r) = self.fill_ptes(table, i0, n, va, prot, frames);
        if let Err(e) = r {
            self.release_ptes(table, i0, done, va, frames);
            alloc.free_table(t);
            return Err(e);
        }
        for i in i0 + n..PTRS_PER_TABLE {
            self.write(table, i, Desc::INVALID);
        }
        // The whole table must be visible before the walker can reach it.
        self.tlb.sync();
        c.write(Desc::table(table));
        c.advance();
        Ok(())
    }

    /// Undoes a failed map of [start, cur): unmaps it and frees the empty tables left on the
    /// path of `cur`. Returns `err` for the caller's convenience.
    fn rollback<A: TableAlloc>(
        &self,
        alloc: &mut A,
        start: u64,
        cur: u64,
        err: PtError,
        f: &mut dyn FnMut(VirtAddr, PhysAddr, u64),
    ) -> PtError {
        if cur != start {
            // Only leaves this call wrote lie in [start, cur): no split, no allocation.
            let _ = self.unmap_range(alloc, VirtAddr::new(start), cur.wrapping_sub(start), f);
        }
        self.prune_path(alloc, cur);
        err
    }
}
