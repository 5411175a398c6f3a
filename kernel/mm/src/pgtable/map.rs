//! [`PageTable::map`] and [`PageTable::map_pages`]: walk down to the table that receives the
//! leaves, fill it entry by entry (blocks where size and alignment allow), roll back on
//! failure.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::desc::{Desc, DescKind, Prot};
use super::error::PtError;
use super::table::{level_index, level_size, LeafFn, PageTable, PA_LIMIT};
use super::{PhysMemory, TableAlloc, TlbMaint, PTRS_PER_TABLE};

const PAGE: u64 = PAGE_SIZE as u64;

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
        let (mut cur, mut p, mut left) = (va.as_u64(), pa.as_u64(), size);
        while left > 0 {
            let level = self.leaf_level(cur, p, left, allow_blocks);
            let table = match self.walk_create(alloc, cur, level) {
                Ok(t) => t,
                Err(e) => return Err(self.rollback(alloc, va.as_u64(), cur, e, &mut |_, _, _| {})),
            };
            let bs = level_size(level);
            let mut i = level_index(cur, level);
            loop {
                if self.read(table, i).is_valid() {
                    let e = PtError::Overlap(VirtAddr::new(cur));
                    return Err(self.rollback(alloc, va.as_u64(), cur, e, &mut |_, _, _| {}));
                }
                // Invalid -> valid needs no invalidation: faulting walks are never cached.
                self.write(table, i, Desc::leaf(p, prot, level));
                cur = cur.wrapping_add(bs);
                p += bs;
                left -= bs;
                i += 1;
                if left == 0 || i == PTRS_PER_TABLE || left < bs {
                    break;
                }
            }
        }
        self.tlb.sync();
        Ok(())
    }

    /// Maps `nr_pages` 4 KiB pages at `va`, asking `next` for each page's frame just before
    /// writing its entry (vmalloc allocates pages this way without a page array).
    ///
    /// On failure (`next` returns `None`: [`PtError::NoPageMemory`], table allocation,
    /// overlap) every entry written is cleared with TLB maintenance and its frame handed to
    /// `release`, and tables created for the call are freed.
    #[allow(clippy::too_many_arguments)]
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
        self.check_range(va, size)?;
        let mut rel = |_: VirtAddr, pa: PhysAddr, _: u64| release(pa);
        let (mut cur, mut left) = (va.as_u64(), nr_pages);
        while left > 0 {
            let l2 = match self.walk_create(alloc, cur, 2) {
                Ok(t) => t,
                Err(e) => return Err(self.rollback(alloc, va.as_u64(), cur, e, &mut rel)),
            };
            let pi = level_index(cur, 2);
            let i0 = level_index(cur, 3);
            let n = left.min(PTRS_PER_TABLE - i0);
            let d = self.read(l2, pi);
            let r = match d.kind(2) {
                DescKind::Table => self.fill_live_l3(d.addr(), cur, i0, n, prot, next, &mut rel),
                DescKind::Invalid => self.fill_new_l3(alloc, l2, pi, cur, i0, n, prot, next, &mut rel),
                _ => Err((PtError::Overlap(VirtAddr::new(cur & !(level_size(2) - 1))), 0)),
            };
            if let Err((e, done)) = r {
                let at = cur.wrapping_add(done as u64 * PAGE);
                return Err(self.rollback(alloc, va.as_u64(), at, e, &mut rel));
            }
            cur = cur.wrapping_add(n as u64 * PAGE);
            left -= n;
        }
        self.tlb.sync();
        Ok(())
    }

    /// Gets the frame for the page at `va` from `next`, checking it.
    pub(super) fn next_frame(
        next: &mut dyn FnMut(VirtAddr) -> Option<PhysAddr>,
        va: u64,
        rel: LeafFn<'_>,
    ) -> Result<u64, PtError> {
        match next(VirtAddr::new(va)) {
            Some(pa) if pa.is_page_aligned() && pa.as_u64() < PA_LIMIT => Ok(pa.as_u64()),
            Some(pa) => {
                rel(VirtAddr::new(va), pa, PAGE);
                Err(PtError::UnalignedPhys(pa))
            }
            None => Err(PtError::NoPageMemory),
        }
    }

    /// Fills entries [i0, i0 + n) of a live L3 table; on error, how many were written.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fill_live_l3(
        &self,
        table: u64,
        va: u64,
        i0: usize,
        n: usize,
        prot: Prot,
        next: &mut dyn FnMut(VirtAddr) -> Option<PhysAddr>,
        rel: LeafFn<'_>,
    ) -> Result<(), (PtError, usize)> {
        for k in 0..n {
            let cur = va.wrapping_add(k as u64 * PAGE);
            if self.read(table, i0 + k).is_valid() {
                return Err((PtError::Overlap(VirtAddr::new(cur)), k));
            }
            let pa = Self::next_frame(next, cur, rel).map_err(|e| (e, k))?;
            self.write(table, i0 + k, Desc::leaf(pa, prot, 3));
        }
        Ok(())
    }

    /// Builds a new L3 table with entries [i0, i0 + n) mapped and the rest invalid, and only
    /// then links it at `l2[pi]`: each entry is written once and nothing needs reading.
    /// On error the table was never visible: its frames are released and it is freed here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fill_new_l3<A: TableAlloc>(
        &self,
        alloc: &mut A,
        l2: u64,
        pi: usize,
        va: u64,
        i0: usize,
        n: usize,
        prot: Prot,
        next: &mut dyn FnMut(VirtAddr) -> Option<PhysAddr>,
        rel: LeafFn<'_>,
    ) -> Result<(), (PtError, usize)> {
        let t = self.new_table(alloc, false).map_err(|e| (e, 0))?;
        let table = t.as_u64();
        for i in 0..i0 {
            self.write(table, i, Desc::INVALID);
        }
        for k in 0..n {
            let cur = va.wrapping_add(k as u64 * PAGE);
            match Self::next_frame(next, cur, rel) {
                Ok(pa) => self.write(table, i0 + k, Desc::leaf(pa, prot, 3)),
                Err(e) => {
                    for j in 0..k {
                        let d = self.read(table, i0 + j);
                        rel(VirtAddr::new(va.wrapping_add(j as u64 * PAGE)), PhysAddr::new(d.addr()), PAGE);
                    }
                    alloc.free_table(t);
                    return Err((e, 0));
                }
            }
        }
        for i in i0 + n..PTRS_PER_TABLE {
            self.write(table, i, Desc::INVALID);
        }
        // The whole table must be visible before the walker can reach it.
        self.tlb.sync();
        self.write(l2, pi, Desc::table(table));
        Ok(())
    }

    /// Undoes a failed map of [start, cur): unmaps it and frees the empty tables left on the
    /// path of `cur`. Returns `err` for the caller's convenience.
    pub(super) fn rollback<A: TableAlloc>(
        &mut self,
        alloc: &mut A,
        start: u64,
        cur: u64,
        err: PtError,
        f: LeafFn<'_>,
    ) -> PtError {
        if cur != start {
            // Only leaves this call wrote lie in [start, cur): no split, no allocation.
            let _ = self.unmap_with(alloc, VirtAddr::new(start), cur.wrapping_sub(start), f);
        }
        self.prune_path(alloc, cur);
        err
    }
}
