//! A zone's buddy free lists and the operations done under the zone lock: take a block
//! (`__rmqueue` with migratetype fallback), give one back and coalesce
//! (`__free_one_page`), pageblock type changes and the HighAtomic reserve.

use super::free_area::FreeArea;
use super::migratetype::{MigrateType, ZoneType, MIGRATE_TYPES};
use super::page::{MemMap, PageState};
use super::{MAX_PAGE_ORDER, NR_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};

/// The state behind a zone's lock.
#[derive(Debug)]
pub struct Zone {
    /// Which zone.
    pub ty: ZoneType,
    pub(crate) mm: MemMap,
    /// First pfn of the zone's span.
    pub start_pfn: u64,
    /// One past the last pfn of the span.
    pub end_pfn: u64,
    /// Free lists per order.
    pub free_area: [FreeArea; NR_ORDERS],
    /// Pages on the buddy free lists (Linux's `NR_FREE_PAGES`; per-CPU pages not included).
    pub free_pages: u64,
    /// Pages in pageblocks reserved as HighAtomic.
    pub nr_reserved_highatomic: u64,
    /// Pages handed to the allocator.
    pub managed_pages: u64,
    /// The contiguous memory area in this zone, `(first pfn, pages)`; `(0, 0)` if none
    /// (Linux's `struct cma`, one area).
    pub cma: (u64, u64),
    /// Pages on the Cma free lists (Linux's `NR_FREE_CMA_PAGES`).
    pub free_cma_pages: u64,
    /// A `cma_alloc` is emptying a range: the area lends nothing meanwhile (Linux
    /// isolates the range's pageblocks, `MIGRATE_ISOLATE`).
    pub cma_isolated: bool,
}

impl Zone {
    /// An empty zone.
    pub const fn new(ty: ZoneType) -> Zone {
        Zone {
            ty,
            mm: MemMap { pages: &[], base_pfn: 0 },
            start_pfn: 0,
            end_pfn: 0,
            free_area: [FreeArea::EMPTY; NR_ORDERS],
            free_pages: 0,
            nr_reserved_highatomic: 0,
            managed_pages: 0,
            cma: (0, 0),
            free_cma_pages: 0,
            cma_isolated: false,
        }
    }

    fn in_zone(&self, pfn: u64) -> bool {
        pfn >= self.start_pfn && pfn < self.end_pfn && self.mm.contains(pfn)
    }

    /// First page of the pageblock of `pfn` (clipped to the zone), which holds its type.
    pub(crate) fn pageblock_head(&self, pfn: u64) -> u64 {
        (pfn & !(PAGEBLOCK_NR_PAGES - 1)).max(self.start_pfn)
    }
    /// The migratetype of the pageblock holding `pfn`. Every descriptor carries a copy of
    /// its pageblock's type, so that a free reads no other cache line.
    pub(crate) fn pageblock_mt(&self, pfn: u64) -> MigrateType {
        self.mm.at(self.mm.idx(pfn)).block_mt()
    }
    /// Sets the type of the pageblock holding `pfn` (in all its descriptors: constant
    /// work, done only when a pageblock is stolen or reserved). A Cma pageblock keeps its
    /// type (Linux's `is_migrate_cma` checks before every change): only
    /// [`Self::declare_cma`] makes one, and nothing unmakes it.
    fn set_pageblock_mt(&self, pfn: u64, mt: MigrateType) {
        if self.pageblock_mt(pfn) == MigrateType::Cma {
            return;
        }
        self.write_pageblock_mt(pfn, mt);
    }
    fn write_pageblock_mt(&self, pfn: u64, mt: MigrateType) {
        let start = self.pageblock_head(pfn);
        let end = ((pfn | (PAGEBLOCK_NR_PAGES - 1)) + 1).min(self.end_pfn);
        for p in start..end {
            if let Some(page) = self.mm.pfn_to_page(p) {
                page.set_block_mt(mt);
            }
        }
    }

    fn add_free(&mut self, pfn: u64, order: u32, mt: MigrateType) {
        let idx = self.mm.idx(pfn);
        self.mm.at(idx).set_state(PageState::Buddy { order, mt });
        self.free_area[order as usize].add(&self.mm, idx, mt.index());
        if mt == MigrateType::Cma {
            self.free_cma_pages += 1 << order;
        }
    }
    fn del_free(&mut self, pfn: u64, order: u32, mt: MigrateType) {
        let idx = self.mm.idx(pfn);
        self.free_area[order as usize].del(&self.mm, idx, mt.index());
        self.mm.at(idx).set_state(PageState::Unmarked);
        if mt == MigrateType::Cma {
            self.free_cma_pages -= 1 << order;
        }
    }

    /// Linux's `__free_one_page`: gives back `2^order` pages at `pfn` (flags already
    /// cleared) and merges with free buddies of the same order in the same zone.
    pub(crate) fn free_one(&mut self, mut pfn: u64, mut order: u32, mt: MigrateType) {
        self.free_pages += 1 << order;
        while order < MAX_PAGE_ORDER {
            let buddy = pfn ^ (1 << order);
            if !self.in_zone(buddy) {
                break;
            }
            let PageState::Buddy { order: o, mt: bmt } = self.mm.at(self.mm.idx(buddy)).state() else {
                break;
            };
            if o != order {
                break;
            }
            // Linux's migratetype_is_mergeable: a CMA block never merges with another
            // type's (the area's edges need only be pageblock aligned).
            if order >= PAGEBLOCK_ORDER && (mt == MigrateType::Cma) != (bmt == MigrateType::Cma) {
                break;
            }
            self.del_free(buddy, order, bmt);
            pfn &= buddy;
            order += 1;
        }
        self.add_free(pfn, order, mt);
    }

    /// Splits a block of order `high` at `pfn` down to `low`, freeing the upper halves
    /// (Linux's `expand`).
    fn expand(&mut self, pfn: u64, low: u32, mut high: u32, mt: MigrateType) {
        while high > low {
            high -= 1;
            self.add_free(pfn + (1 << high), high, mt);
        }
    }

    /// Linux's `__rmqueue_smallest`.
    fn rmqueue_smallest(&mut self, order: u32, mt: MigrateType) -> Option<u64> {
        for o in order..=MAX_PAGE_ORDER {
            if let Some(idx) = self.free_area[o as usize].first(mt.index()) {
                let pfn = self.mm.base_pfn + idx as u64;
                self.del_free(pfn, o, mt);
                self.expand(pfn, order, o, mt);
                self.free_pages -= 1 << order;
                return Some(pfn);
            }
        }
        None
    }

    /// Takes the free buddy block headed at `pfn` (of order `have`) off its list and keeps
    /// its first `2^order` pages, freeing the rest back (compaction's free scanner,
    /// Linux's `isolate_freepages_block` + `split_page`). The caller saw `pfn` as a
    /// `Buddy { order: have }` head under this lock.
    pub(crate) fn take_free_at(&mut self, pfn: u64, have: u32, order: u32) -> bool {
        let PageState::Buddy { order: o, mt } = self.mm.at(self.mm.idx(pfn)).state() else { return false };
        if o != have || o < order {
            return false;
        }
        self.del_free(pfn, o, mt);
        self.expand(pfn, order, o, mt);
        self.free_pages -= 1 << order;
        true
    }

    /// Moves the free blocks of the pageblock holding `pfn` to the lists of `mt`; returns
    /// how many free pages it has (Linux's `move_freepages_block`). Constant work: one
    /// pageblock of descriptors. A Cma pageblock's blocks stay on the Cma lists (0).
    fn move_freepages_block(&mut self, pfn: u64, mt: MigrateType) -> u64 {
        if self.pageblock_mt(pfn) == MigrateType::Cma {
            return 0;
        }
        let start = self.pageblock_head(pfn);
        let end = ((pfn | (PAGEBLOCK_NR_PAGES - 1)) + 1).min(self.end_pfn);
        let mut p = start;
        let mut moved = 0;
        while p < end && self.mm.contains(p) {
            if let PageState::Buddy { order: o, mt: bmt } = self.mm.at(self.mm.idx(p)).state() {
                if bmt != mt {
                    self.del_free(p, o, bmt);
                    self.add_free(p, o, mt);
                }
                moved += 1 << o;
                p += 1 << o;
            } else {
                p += 1;
            }
        }
        moved
    }

    /// Linux's `__rmqueue_fallback`: steals a block of a fallback type, claiming whole
    /// pageblocks when the block is at least a pageblock, or when at least half the
    /// pageblock is free (the pageblock then changes type).
    ///
    /// Which block: Linux takes the largest, as the best guess at the pageblock with the
    /// most free pages. Any block of pageblock order or more is a wholly free pageblock,
    /// and with Linux's largest order (4 MiB) such a block is at most two pageblocks;
    /// with ours (256 MiB) the largest could be 128 of them, all claimed for one page,
    /// and the zone's largest free block broken. So the smallest block of at least
    /// pageblock order (and of `order`) is taken first, and only without one the largest
    /// smaller block, as Linux.
    ///
    /// A HighAtomic or Cma pageblock is never claimed (Linux's `steal_suitable_fallback`
    /// goes to `single_page` for a HighAtomic one; Cma is nobody's fallback, and its
    /// blocks sit only on the Cma lists): only the block moves.
    fn rmqueue_fallback(&mut self, order: u32, start_mt: MigrateType) -> bool {
        let whole = order.max(PAGEBLOCK_ORDER)..=MAX_PAGE_ORDER;
        let partial = (order..order.max(PAGEBLOCK_ORDER)).rev();
        for o in whole.chain(partial) {
            for &fb in start_mt.fallbacks() {
                let Some(idx) = self.free_area[o as usize].first(fb.index()) else {
                    continue;
                };
                let pfn = self.mm.base_pfn + idx as u64;
                let claimable = |mt| !matches!(mt, MigrateType::HighAtomic | MigrateType::Cma);
                if o >= PAGEBLOCK_ORDER {
                    // change_pageblock_range: every pageblock of the block.
                    let mut p = pfn;
                    while p < pfn + (1 << o) {
                        if claimable(self.pageblock_mt(p)) {
                            self.set_pageblock_mt(p, start_mt);
                        }
                        p += PAGEBLOCK_NR_PAGES;
                    }
                    self.del_free(pfn, o, fb);
                    self.add_free(pfn, o, start_mt);
                } else if claimable(self.pageblock_mt(pfn))
                    && (o >= PAGEBLOCK_ORDER / 2
                        || start_mt == MigrateType::Unmovable
                        || start_mt == MigrateType::Reclaimable)
                {
                    let free = self.move_freepages_block(pfn, start_mt);
                    if free >= PAGEBLOCK_NR_PAGES / 2 {
                        self.set_pageblock_mt(pfn, start_mt);
                    }
                } else {
                    self.del_free(pfn, o, fb);
                    self.add_free(pfn, o, start_mt);
                }
                return true;
            }
        }
        false
    }

    /// Linux's `__rmqueue`: the request's own lists, then a fallback steal. A movable
    /// request borrows from the CMA area first when more than half of the zone's free
    /// pages are CMA ones (Linux's rule for `ALLOC_CMA`, which keeps the other free pages
    /// for requests that may not use CMA), and otherwise only before stealing; nothing
    /// else ever gets a CMA page.
    pub(crate) fn rmqueue(&mut self, order: u32, mt: MigrateType, harder: bool) -> Option<u64> {
        if harder && order > 0 {
            if let Some(p) = self.rmqueue_smallest(order, MigrateType::HighAtomic) {
                return Some(p);
            }
        }
        let cma = mt == MigrateType::Movable && self.free_cma_pages != 0 && !self.cma_isolated;
        if cma && self.free_cma_pages > self.free_pages / 2 {
            if let Some(p) = self.rmqueue_smallest(order, MigrateType::Cma) {
                return Some(p);
            }
        }
        if let Some(p) = self.rmqueue_smallest(order, mt) {
            return Some(p);
        }
        if cma {
            if let Some(p) = self.rmqueue_smallest(order, MigrateType::Cma) {
                return Some(p);
            }
        }
        if self.rmqueue_fallback(order, mt) {
            return self.rmqueue_smallest(order, mt);
        }
        None
    }

    /// Whether a free block of at least `order` exists on a list the request may use: the
    /// three ordinary ones, HighAtomic with `harder` (`ALLOC_HARDER`), Cma with `cma`
    /// (`ALLOC_CMA`).
    pub(crate) fn has_free_block(&self, order: u32, harder: bool, cma: bool) -> bool {
        self.free_area[order as usize..].iter().any(|a| {
            a.nr_free != 0
                && ((0..3).any(|m| !a.is_empty(m))
                    || (harder && !a.is_empty(MigrateType::HighAtomic.index()))
                    || (cma && !a.is_empty(MigrateType::Cma.index())))
        })
    }

    /// Linux's `reserve_highatomic_pageblock`: after a successful high-order atomic
    /// allocation, reserve its pageblock (at most ~1% of the zone plus one pageblock).
    pub(crate) fn reserve_highatomic(&mut self, pfn: u64) {
        let max = self.managed_pages / 100 + PAGEBLOCK_NR_PAGES;
        if self.nr_reserved_highatomic + PAGEBLOCK_NR_PAGES > max {
            return;
        }
        if matches!(self.pageblock_mt(pfn), MigrateType::HighAtomic | MigrateType::Cma) {
            return;
        }
        self.nr_reserved_highatomic += PAGEBLOCK_NR_PAGES;
        self.set_pageblock_mt(pfn, MigrateType::HighAtomic);
        self.move_freepages_block(pfn, MigrateType::HighAtomic);
    }

    /// Linux's `unreserve_highatomic_pageblock`: when memory is short, give one reserved
    /// pageblock back to `mt`. Returns whether one was released. A block on the HighAtomic
    /// lists whose pageblock is no longer HighAtomic (freed through a per-CPU list after
    /// an earlier release) moves without changing the reserve's count.
    pub(crate) fn unreserve_highatomic(&mut self, mt: MigrateType) -> bool {
        if self.nr_reserved_highatomic == 0 {
            return false;
        }
        for o in 0..NR_ORDERS {
            if let Some(idx) = self.free_area[o].first(MigrateType::HighAtomic.index()) {
                let pfn = self.mm.base_pfn + idx as u64;
                if self.pageblock_mt(pfn) == MigrateType::HighAtomic {
                    self.nr_reserved_highatomic = self.nr_reserved_highatomic.saturating_sub(PAGEBLOCK_NR_PAGES);
                    self.set_pageblock_mt(pfn, mt);
                    self.move_freepages_block(pfn, mt);
                } else {
                    let o = o as u32;
                    self.del_free(pfn, o, MigrateType::HighAtomic);
                    self.add_free(pfn, o, self.pageblock_mt(pfn));
                }
                return true;
            }
        }
        false
    }

    /// Linux's `cma_declare_contiguous` + `cma_activate_area` for a running zone: the
    /// highest free run of `pages` (a multiple of a pageblock), aligned to the largest
    /// power of two not above it (at most a `MAX_PAGE_ORDER` block, at least a pageblock),
    /// becomes the CMA area: its pageblocks change type to Cma and its free pages move to
    /// the Cma lists. Returns the first pfn, or `None` if no such run is free (or an area
    /// exists already).
    pub(crate) fn declare_cma(&mut self, pages: u64) -> Option<u64> {
        if pages == 0 || !pages.is_multiple_of(PAGEBLOCK_NR_PAGES) || self.cma.1 != 0 {
            return None;
        }
        let align = 1u64 << (63 - pages.leading_zeros()).min(MAX_PAGE_ORDER);
        let mut start = self.end_pfn.checked_sub(pages)? & !(align - 1);
        while start >= self.start_pfn {
            if self.take_free_range(start, start + pages, Some(MigrateType::Cma)) {
                let mut b = start;
                while b < start + pages {
                    if self.pageblock_mt(b) == MigrateType::HighAtomic {
                        self.nr_reserved_highatomic -= PAGEBLOCK_NR_PAGES;
                    }
                    self.write_pageblock_mt(b, MigrateType::Cma);
                    b += PAGEBLOCK_NR_PAGES;
                }
                self.cma = (start, pages);
                return Some(start);
            }
            start = start.checked_sub(align)?;
        }
        None
    }

    /// The free buddy block holding `pfn`, as `(head, order, migratetype)`.
    fn free_block_of(&self, pfn: u64) -> Option<(u64, u32, MigrateType)> {
        (0..=MAX_PAGE_ORDER).find_map(|o| {
            let head = pfn & !((1u64 << o) - 1);
            match self.in_zone(head).then(|| self.mm.at(self.mm.idx(head)).state()) {
                Some(PageState::Buddy { order, mt }) if head + (1u64 << order) > pfn => Some((head, order, mt)),
                _ => None,
            }
        })
    }

    /// If every page of `[start, end)` is free on the buddy lists, moves them to the lists
    /// of `to` (`Some`: no merging, the pages stay free) or takes them off the lists
    /// (`None`: they are the caller's now, `Unmarked`, Linux's `isolate_freepages_range`)
    /// and returns true; otherwise changes nothing. Blocks that straddle an edge are
    /// split, their outer parts stay where they were.
    pub(crate) fn take_free_range(&mut self, start: u64, end: u64, to: Option<MigrateType>) -> bool {
        let mut p = start;
        while p < end {
            match self.free_block_of(p) {
                Some((head, order, _)) => p = head + (1u64 << order),
                None => return false,
            }
        }
        let mut p = start;
        while p < end {
            let Some((head, order, old)) = self.free_block_of(p) else { unreachable!() };
            let block_end = head + (1u64 << order);
            self.del_free(head, order, old);
            let mut q = head;
            while q < block_end {
                let limit = if q < start {
                    start
                } else if q < end {
                    end.min(block_end)
                } else {
                    block_end
                };
                let o = (q.trailing_zeros()).min(63 - (limit - q).leading_zeros());
                match (q >= start && q < end, to) {
                    (false, _) => self.add_free(q, o, old),
                    (true, Some(mt)) => self.add_free(q, o, mt),
                    (true, None) => {}
                }
                q += 1u64 << o;
            }
            p = block_end;
        }
        if to.is_none() {
            self.free_pages -= end - start;
        }
        true
    }

    /// Free pages per (order, migratetype), for reports.
    pub(crate) fn list_lengths(&self) -> [[u64; MIGRATE_TYPES]; NR_ORDERS] {
        let mut out = [[0; MIGRATE_TYPES]; NR_ORDERS];
        for (o, a) in self.free_area.iter().enumerate() {
            for (m, slot) in out[o].iter_mut().enumerate() {
                *slot = a.iter(&self.mm, m).count() as u64;
            }
        }
        out
    }

    /// Walks every free block as (pfn, order, migratetype).
    pub(crate) fn for_each_free_block(&self, f: &mut dyn FnMut(u64, u32, MigrateType)) {
        for (o, a) in self.free_area.iter().enumerate() {
            for m in MigrateType::ALL {
                for idx in a.iter(&self.mm, m.index()) {
                    f(self.mm.base_pfn + idx as u64, o as u32, m);
                }
            }
        }
    }

    /// Pageblocks of the zone per migratetype.
    pub(crate) fn pageblock_counts(&self) -> [u64; MIGRATE_TYPES] {
        let mut c = [0; MIGRATE_TYPES];
        if self.start_pfn >= self.end_pfn {
            return c;
        }
        let mut p = self.start_pfn;
        while p < self.end_pfn {
            c[self.pageblock_mt(p).index()] += 1;
            p = (p | (PAGEBLOCK_NR_PAGES - 1)) + 1;
        }
        c
    }
}
