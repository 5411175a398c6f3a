//! [`PageTable`]: map, unmap, protect and split, with break-before-make and rollback.
//!
//! Walks are iterative from the root down to the table that receives the leaves, then that
//! table is filled entry by entry: one walk per 4 KiB-page table (2 MiB of pages), never one
//! per page. No heap: the only state is on the stack and in the tables themselves.

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

use super::desc::{Desc, DescKind, Prot};
use super::error::PtError;
use super::{PhysMemory, TableAlloc, TlbMaint, PTRS_PER_TABLE};

const PAGE: u64 = PAGE_SIZE as u64;
/// Above this many pages one range invalidation becomes `flush_all` (Linux's MAX_TLBI_OPS).
pub const MAX_TLBI_OPS: u64 = PTRS_PER_TABLE as u64;
/// Largest output address + 1 (48-bit PA).
const PA_LIMIT: u64 = 1 << 48;

/// Bytes mapped by one entry at `level` (3 = 4 KiB page, 2 = 2 MiB, 1 = 1 GiB, 0 = 512 GiB).
pub const fn level_size(level: u32) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// Index of `va` in a table of `level`.
pub const fn level_index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (3 - level))) & (PTRS_PER_TABLE as u64 - 1)) as usize
}

/// Shape of a translation regime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtConfig {
    /// VA bits translated: 39 (3 levels, root at level 1) or 48 (4 levels, root at level 0).
    pub va_bits: u32,
    /// TTBR1 (upper, kernel) range if true, TTBR0 (lower) otherwise.
    pub upper: bool,
}

impl PtConfig {
    /// The kernel's regime: TTBR1, 39-bit VA, 3 levels.
    pub const KERNEL_39: PtConfig = PtConfig { va_bits: 39, upper: true };
    /// A 4-level TTBR1 regime (48-bit VA).
    pub const KERNEL_48: PtConfig = PtConfig { va_bits: 48, upper: true };

    /// Level of the root table. Only 39 and 48 bits (whole 9-bit levels) are supported;
    /// anything else is treated as 48.
    pub const fn start_level(self) -> u32 {
        if self.va_bits == 39 {
            1
        } else {
            0
        }
    }
    /// Lowest VA of the range.
    pub const fn va_base(self) -> u64 {
        if self.upper {
            !0u64 << self.va_bits
        } else {
            0
        }
    }
    /// Size of the range in bytes.
    pub const fn va_span(self) -> u64 {
        1 << self.va_bits
    }
}

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

/// A page-table tree rooted at `root`, with its memory accessor and TLB maintenance.
pub struct PageTable<M, T> {
    root: PhysAddr,
    cfg: PtConfig,
    pub(super) mem: M,
    pub(super) tlb: T,
}

/// Leaves cleared but not yet invalidated in the TLB: their pages are handed to the caller
/// only once the invalidation is complete (never free a page the TLB can still reach).
/// Leaves cleared but not yet invalidated: their frames are handed back only after the
/// TLB invalidation that covers them has completed.
struct Pending {
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
    const fn new() -> Self {
        Self { items: [(0, 0, 0); PENDING_MAX], n: 0 }
    }
}

type LeafFn<'a> = &'a mut dyn FnMut(VirtAddr, PhysAddr, u64);

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Wraps an existing root table (zeroed by the caller if new).
    pub const fn new(root: PhysAddr, cfg: PtConfig, mem: M, tlb: T) -> Self {
        Self { root, cfg, mem, tlb }
    }

    /// Allocates and zeroes a root table.
    pub fn create<A: TableAlloc>(alloc: &mut A, cfg: PtConfig, mem: M, tlb: T) -> Result<Self, PtError> {
        let pt = Self::new(PhysAddr::new(0), cfg, mem, tlb);
        let root = pt.new_table(alloc, true)?;
        Ok(Self { root, ..pt })
    }

    /// Physical address of the root table (for TTBR1_EL1).
    pub const fn root(&self) -> PhysAddr {
        self.root
    }
    /// The regime.
    pub const fn config(&self) -> PtConfig {
        self.cfg
    }
    /// The memory accessor.
    pub fn mem(&self) -> &M {
        &self.mem
    }
    /// The TLB maintenance.
    pub fn tlb(&self) -> &T {
        &self.tlb
    }

    pub(super) fn read(&self, table: u64, i: usize) -> Desc {
        Desc(self.mem.read_entry(PhysAddr::new(table), i))
    }
    fn write(&self, table: u64, i: usize, d: Desc) {
        self.mem.write_entry(PhysAddr::new(table), i, d.0)
    }

    pub(super) fn root_table(&self) -> u64 {
        self.root.as_u64()
    }

    /// Checks that [va, va + size) is page aligned, non-empty and inside the regime.
    pub(super) fn check_range(&self, va: VirtAddr, size: u64) -> Result<(), PtError> {
        if !va.is_page_aligned() {
            return Err(PtError::UnalignedVirt(va));
        }
        if size == 0 || !size.is_multiple_of(PAGE) {
            return Err(PtError::BadSize(size));
        }
        let off = va.as_u64().wrapping_sub(self.cfg.va_base());
        if va.as_u64() < self.cfg.va_base() || off >= self.cfg.va_span() {
            return Err(PtError::OutOfRange(va));
        }
        if size > self.cfg.va_span() - off {
            return Err(PtError::OutOfRange(VirtAddr::new(va.as_u64().wrapping_add(size))));
        }
        Ok(())
    }

    /// Whether `va` is inside the regime.
    pub fn in_range(&self, va: VirtAddr) -> bool {
        va.as_u64() >= self.cfg.va_base() && va.as_u64() - self.cfg.va_base() < self.cfg.va_span()
    }

    fn new_table<A: TableAlloc>(&self, alloc: &mut A, zero: bool) -> Result<PhysAddr, PtError> {
        let t = alloc.alloc_table().ok_or(PtError::NoTableMemory)?;
        if !t.is_page_aligned() {
            // A broken allocator: refuse rather than corrupt a neighbour.
            alloc.free_table(t);
            return Err(PtError::NoTableMemory);
        }
        if zero {
            for i in 0..PTRS_PER_TABLE {
                self.mem.write_entry(t, i, 0);
            }
        }
        Ok(t)
    }

    /// Invalidates every page of [va, va + size), or everything if that is cheaper.
    fn flush_range(&self, va: u64, size: u64) {
        if size / PAGE >= MAX_TLBI_OPS {
            self.tlb.flush_all();
        } else {
            let mut a = va;
            for _ in 0..size / PAGE {
                self.tlb.flush_va(VirtAddr::new(a));
                a = a.wrapping_add(PAGE);
            }
        }
    }

    /// Break-before-make: replaces a live entry mapping [va, va + size) by `new`.
    fn bbm_replace(&self, table: u64, i: usize, va: u64, size: u64, new: Desc) {
        self.write(table, i, Desc::INVALID);
        self.tlb.sync();
        self.flush_range(va, size);
        self.tlb.sync();
        self.write(table, i, new);
        self.tlb.sync();
    }

    /// Walks to the table of `target` level holding `va`, creating missing tables.
    fn walk_create<A: TableAlloc>(&self, alloc: &mut A, va: u64, target: u32) -> Result<u64, PtError> {
        let mut table = self.root.as_u64();
        let mut level = self.cfg.start_level();
        while level < target {
            let i = level_index(va, level);
            let d = self.read(table, i);
            table = match d.kind(level) {
                DescKind::Table => d.addr(),
                DescKind::Invalid => {
                    let nt = self.new_table(alloc, true)?;
                    // The zeroes must be visible before the walker can reach the table.
                    self.tlb.sync();
                    self.write(table, i, Desc::table(nt.as_u64()));
                    nt.as_u64()
                }
                _ => return Err(PtError::Overlap(VirtAddr::new(va & !(level_size(level) - 1)))),
            };
            level += 1;
        }
        Ok(table)
    }

    /// Largest leaf level usable at `va`/`pa` with `left` bytes to go.
    fn leaf_level(&self, va: u64, pa: u64, left: u64, allow_blocks: bool) -> u32 {
        if allow_blocks {
            for level in self.cfg.start_level().max(1)..3 {
                let bs = level_size(level);
                if va.is_multiple_of(bs) && pa.is_multiple_of(bs) && left >= bs {
                    return level;
                }
            }
        }
        3
    }

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
    fn next_frame(
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
    fn fill_live_l3(
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
    fn fill_new_l3<A: TableAlloc>(
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
    fn rollback<A: TableAlloc>(&mut self, alloc: &mut A, start: u64, cur: u64, err: PtError, f: LeafFn<'_>) -> PtError {
        if cur != start {
            // Only leaves this call wrote lie in [start, cur): no split, no allocation.
            let _ = self.unmap_with(alloc, VirtAddr::new(start), cur.wrapping_sub(start), f);
        }
        self.prune_path(alloc, cur);
        err
    }

    /// Frees the empty non-root tables on the walk path of `va`, deepest first.
    fn prune_path<A: TableAlloc>(&self, alloc: &mut A, va: u64) {
        let mut path = [(0u64, 0usize); 4];
        let mut n = 0;
        let mut table = self.root.as_u64();
        let mut level = self.cfg.start_level();
        while level < 3 {
            let i = level_index(va, level);
            let d = self.read(table, i);
            if d.kind(level) != DescKind::Table {
                break;
            }
            path[n] = (table, i);
            n += 1;
            table = d.addr();
            level += 1;
        }
        while n > 0 {
            n -= 1;
            let (parent, i) = path[n];
            let child = self.read(parent, i).addr();
            if !self.table_is_empty(child) {
                break;
            }
            self.free_table_entry(alloc, parent, i, va, child);
        }
    }

    fn table_is_empty(&self, table: u64) -> bool {
        (0..PTRS_PER_TABLE).all(|i| !self.read(table, i).is_valid())
    }

    /// Clears a table descriptor and frees the table, after the walk caches forgot it.
    fn free_table_entry<A: TableAlloc>(&self, alloc: &mut A, parent: u64, i: usize, va: u64, child: u64) {
        self.write(parent, i, Desc::INVALID);
        self.tlb.sync();
        self.tlb.flush_va(VirtAddr::new(va & !(PAGE - 1)));
        self.tlb.sync();
        alloc.free_table(PhysAddr::new(child));
    }

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

    fn flush_pending(&self, p: &mut Pending, f: LeafFn<'_>) {
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
    fn unmap_level<A: TableAlloc>(
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
    fn release_detached<A: TableAlloc>(
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

    /// Replaces the block `d` at `table[i]` (mapping `base`) by a table of the next level
    /// mapping the same range with the same attributes, break-before-make.
    fn split<A: TableAlloc>(
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

    fn protect_level<A: TableAlloc>(
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
