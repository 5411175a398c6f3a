//! [`PageTable::map`] and [`PageTable::map_frames`]: one cursor walk that creates missing
//! tables on the way down and writes leaves (blocks where size and alignment allow, or
//! where the frame supplier offers one), rolling back on failure.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::cursor::Cursor;
use super::desc::{Desc, DescKind, Prot};
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
    /// The frame for the 4 KiB page at `va`; `None` makes the map fail
    /// ([`PtError::NoPageMemory`]).
    fn page(&mut self, va: VirtAddr) -> Option<PhysAddr>;
    /// Takes back a frame (`size` bytes: a page or a block) that was mapped at `va` before a
    /// failure, once the TLB no longer holds it, or that was refused as misaligned.
    fn release(&mut self, va: VirtAddr, pa: PhysAddr, size: u64);
}

/// [`Frames`] from two closures, pages only ([`PageTable::map_pages`]).
struct PageFns<'a> {
    next: &'a mut dyn FnMut(VirtAddr) -> Option<PhysAddr>,
    release: &'a mut dyn FnMut(PhysAddr),
}

impl Frames for PageFns<'_> {
    fn page(&mut self, va: VirtAddr) -> Option<PhysAddr> {
        (self.next)(va)
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
                if d.is_valid() {
                    Err(PtError::Overlap(VirtAddr::new(c.va())))
                } else {
                    Self::next_frame(frames, c.va()).map(|pa| {
                        c.write(Desc::leaf(pa, prot, 3));
                        c.advance();
                    })
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

    /// Gets the frame for the page at `va`, checking it.
    fn next_frame(frames: &mut dyn Frames, va: u64) -> Result<u64, PtError> {
        match frames.page(VirtAddr::new(va)) {
            Some(pa) if pa.is_page_aligned() && pa.as_u64() < PA_LIMIT => Ok(pa.as_u64()),
            Some(pa) => {
                frames.release(VirtAddr::new(va), pa, PAGE);
                Err(PtError::UnalignedPhys(pa))
            }
            None => Err(PtError::NoPageMemory),
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
        for k in 0..n {
            let cur = va.wrapping_add(k as u64 * PAGE);
            match Self::next_frame(frames, cur) {
                Ok(pa) => self.write(table, i0 + k, Desc::leaf(pa, prot, 3)),
                Err(e) => {
                    for j in 0..k {
                        let d = self.read(table, i0 + j);
                        frames.release(VirtAddr::new(va.wrapping_add(j as u64 * PAGE)), PhysAddr::new(d.addr()), PAGE);
                    }
                    alloc.free_table(t);
                    return Err(e);
                }
            }
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
