//! Emptying an aligned range by migration (Linux's `alloc_contig_range` and
//! `alloc_contig_pages`), for two users:
//!
//! - CMA ([`Cma::alloc`](super::Cma::alloc)) empties a range of its area;
//! - compaction, once its scanners have met, empties the one aligned block of the
//!   zone's highest achievable order that the scanners could not free
//!   ([`Compactor::evacuate_block`]). The scanners move data only upwards, so with
//!   more than half of a zone in use they pack it across the boundary of the top-order
//!   blocks; moving the few blocks that overlap one of them elsewhere frees it, as Linux's
//!   `alloc_contig_pages` does for a gigantic page.
//!
//! [`PageAllocator::migrate_range_out`] is the step both share: every live block of the
//! range is migrated with `migrate_page` to a target outside it; the first block that
//! does not move stops it (what moved stays moved, every owner's reference valid).

use core::sync::atomic::Ordering::Relaxed;

use super::migratetype::MigrateType;
use super::page::{MemMap, PageState};
use super::Compactor;
use super::Migrator;
use super::{CompactResult, MAX_PAGE_ORDER, NR_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::addr::Pfn;
use crate::cpu::CpuId;
use crate::owner::movable_owner;

/// At most this many candidate blocks are tried per evacuation (each failed try has
/// migrated pages for nothing).
const MAX_EVACUATE_TRIES: usize = 4;

/// What [`PageAllocator::migrate_range_out`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeMigration {
    /// Blocks migrated out of the range.
    pub migrated: u64,
    /// Pages in them.
    pub pages: u64,
    /// Blocks a migration was tried on and failed (the walk stopped at the first).
    pub failed: u64,
    /// Pages of the range walked.
    pub scanned: u64,
}

/// What compaction's evacuation step did (see [`Compactor::evacuate_block`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evacuation {
    /// The largest free order when the scanners met (`None`: no free block at all).
    pub scanners_order: Option<u32>,
    /// The order of the blocks tried: the highest for which a candidate existed.
    pub order: u32,
    /// The block emptied, now free; `None` if no candidate could be emptied.
    pub block: Option<Pfn>,
    /// Candidate blocks tried.
    pub tried: u32,
    /// Blocks migrated out of the candidates (counted in the compaction's `migrated`).
    pub migrated: u64,
    /// Pages in them.
    pub pages: u64,
    /// Migrations that failed (each gave its candidate up).
    pub failed: u64,
}

/// One candidate's pages, from [`PageAllocator::contig_census`].
#[derive(Clone, Copy, Debug, Default)]
struct Census {
    /// Pages in live movable blocks (to be migrated out).
    used: u64,
    /// Free pages usable as migration targets (free buddy blocks in target pageblocks).
    free_target: u64,
}

/// Whether free pages of a pageblock of type `mt` may receive migrated (movable) data
/// (Linux's `suitable_migration_target`): Movable, and Cma unless a `cma_alloc` is
/// emptying the area (`cma_isolated`). Unmovable, Reclaimable and HighAtomic pageblocks
/// never receive it.
pub(super) fn target_pageblock(mt: MigrateType, cma_isolated: bool) -> bool {
    mt == MigrateType::Movable || (mt == MigrateType::Cma && !cma_isolated)
}

/// The evacuation's migration targets: free blocks outside `[skip.0, skip.1)`, in
/// target pageblocks, from the zone's start up.
struct RangeTargets {
    zi: usize,
    end: u64,
    skip: (u64, u64),
    /// Next pfn looked at.
    pfn: u64,
    scanned: u64,
}

impl Compactor<'_> {
    /// Compaction's last step, after its scanners met in zone `zi`: if no free block of
    /// an order in `orders` (lowest, highest) exists, empty one (Linux's
    /// `alloc_contig_pages` without the allocation). From the highest order down, the
    /// candidates are the naturally aligned blocks of the zone (Linux's
    /// `pfn_range_valid_contig`) whose pageblocks are neither Cma nor HighAtomic (those
    /// do not merge into, or are kept from, an ordinary free block) and whose pages are
    /// all free or in live blocks with a movable owner (Linux's `has_unmovable_pages`),
    /// and whose used pages fit in the free target pages outside them. The one with the
    /// fewest used pages is emptied with [`Self::migrate_range_out`], its targets outside
    /// it in target pageblocks; if a block does not move, or the emptied block is not
    /// free once this CPU's lists are drained (another CPU took a page of it), the next
    /// candidate is tried, at most [`MAX_EVACUATE_TRIES`] in all. The result goes to
    /// `res.evacuation` (`None` if there was nothing to do or no candidate), its
    /// migrations and pages walked are added to `res`'s counts.
    pub(super) fn evacuate_block(&self, zi: usize, orders: (u32, u32), res: &mut CompactResult) {
        res.evacuation = self.evacuate(zi, orders, res);
        if let Some(ev) = res.evacuation {
            res.migrated += ev.migrated;
            res.failed += ev.failed;
        }
    }

    fn evacuate(&self, zi: usize, orders: (u32, u32), res: &mut CompactResult) -> Option<Evacuation> {
        let cpu = self.ctx.cpu;
        let mm = &self.pages.mem_map.get()?;
        let meta = &self.pages.meta[zi];
        let (start, end) = (meta.start_pfn.load(Relaxed), meta.end_pfn.load(Relaxed));
        self.pages.drain_cpu(cpu);
        let scanners_order = {
            let z = self.pages.lock_zone(zi);
            (0..=MAX_PAGE_ORDER).rev().find(|&o| z.has_free_block(o, false, false))
        };
        let lo = orders.0.max(PAGEBLOCK_ORDER).max(scanners_order.map_or(0, |o| o + 1));
        let mut ev = Evacuation { scanners_order, ..Default::default() };
        let mut tried = [(0, u64::MAX); MAX_EVACUATE_TRIES];
        for order in (lo..=orders.1.min(MAX_PAGE_ORDER)).rev() {
            let size = 1u64 << order;
            while (ev.tried as usize) < MAX_EVACUATE_TRIES {
                let total_free = self.contig_census(mm, zi, start, end, false).map_or(0, |c| c.free_target);
                // The candidate with the fewest used pages that fit in the targets outside it.
                let mut best: Option<(u64, u64)> = None;
                let mut b = start.next_multiple_of(size);
                while b + size <= end {
                    if !tried.contains(&(order, b)) {
                        if let Some(c) = self.contig_census(mm, zi, b, b + size, true) {
                            if c.used <= total_free.saturating_sub(c.free_target)
                                && best.is_none_or(|(u, _)| c.used < u)
                            {
                                best = Some((c.used, b));
                            }
                        }
                    }
                    b += size;
                }
                let Some((_, b)) = best else { break };
                tried[ev.tried as usize] = (order, b);
                ev.tried += 1;
                ev.order = order;
                let mut targets = RangeTargets::new(zi, start, end, (b, b + size));
                let mut st = RangeMigration::default();
                let moved = self.migrator().migrate_range_out(
                    mm,
                    (b, b + size),
                    &mut |o| self.range_target(&mut targets, o, cpu),
                    &mut st,
                );
                ev.migrated += st.migrated;
                ev.pages += st.pages;
                ev.failed += st.failed;
                res.migrate_scanned += st.scanned;
                res.free_scanned += targets.scanned;
                self.pages.drain_cpu(cpu);
                if moved && self.pages.lock_zone(zi).has_free_block(order, false, false) {
                    ev.block = Some(Pfn(b));
                    return Some(ev);
                }
            }
        }
        (ev.tried > 0).then_some(ev)
    }

    /// The pages of `[lo, hi)` in zone `zi`: used (live movable blocks) and free target
    /// pages. With `candidate`, `None` if the range cannot be emptied (a page outside
    /// the zone or `mem_map`, reserved, a compound tail or an unmovable block, a Cma or
    /// HighAtomic pageblock, a free block reaching outside it). Read without the zone
    /// lock, as the scanners do: a hint, which the migration and the final check confirm.
    fn contig_census(&self, mm: &MemMap, zi: usize, lo: u64, hi: u64, candidate: bool) -> Option<Census> {
        let cma_isolated = self.pages.lock_zone(zi).cma_isolated;
        let mut c = Census::default();
        let mut p = lo;
        while p < hi {
            let Some(page) = mm.pfn_to_page(p) else {
                if candidate {
                    return None;
                }
                p = (p | (PAGEBLOCK_NR_PAGES - 1)) + 1;
                continue;
            };
            if p == lo || p.is_multiple_of(PAGEBLOCK_NR_PAGES) {
                let mt = page.pageblock_migratetype();
                if candidate && matches!(mt, MigrateType::Cma | MigrateType::HighAtomic) {
                    return None;
                }
            }
            match page.state() {
                PageState::Buddy { order, .. } => {
                    if candidate && p + (1 << order) > hi {
                        return None;
                    }
                    if target_pageblock(page.pageblock_migratetype(), cma_isolated) {
                        c.free_target += 1 << order;
                    }
                    p += 1 << order;
                }
                PageState::Pcp { order, .. } => p += 1 << order,
                PageState::Head { order, compound: false, .. } if movable_owner(mm, Pfn(p)).is_some() => {
                    c.used += 1 << order;
                    p += 1 << order;
                }
                PageState::Head { order, .. } if !candidate => p += 1 << order,
                _ if !candidate => p += 1,
                _ => return None,
            }
        }
        Some(c)
    }

    /// The next target for [`Self::evacuate_block`]: a free block of `order` from the
    /// lowest target pageblock outside the candidate, taken as a live allocation. (Up
    /// from the zone's start: what is left of a large free block once a target is split
    /// off it lies above, where the walk goes next.)
    fn range_target(&self, t: &mut RangeTargets, order: u32, cpu: CpuId) -> Option<Pfn> {
        while t.pfn < t.end {
            if t.pfn >= t.skip.0 && t.pfn < t.skip.1 {
                t.pfn = t.skip.1;
                continue;
            }
            let b = t.pfn & !(PAGEBLOCK_NR_PAGES - 1);
            let hi = (b + PAGEBLOCK_NR_PAGES).min(t.end).min(if t.pfn < t.skip.0 { t.skip.0 } else { t.end });
            match self.take_free_target(t.zi, (t.pfn, hi), order, NR_ORDERS as u32, cpu, &mut t.scanned) {
                Ok(p) => {
                    t.pfn = p.0 + (1 << order);
                    return Some(p);
                }
                Err(next) => t.pfn = next,
            }
        }
        None
    }
}

impl RangeTargets {
    fn new(zi: usize, start: u64, end: u64, skip: (u64, u64)) -> RangeTargets {
        RangeTargets { zi, end, skip, pfn: start, scanned: 0 }
    }
}

impl Migrator<'_> {
    /// Linux's `__alloc_contig_migrate_range`: migrates every live block of
    /// `[start, end)` out, each to a block `target(order)` supplies (outside the range).
    /// Free pages are skipped (those on a per-CPU list too: the caller drains them).
    /// Returns false at the first block that does not move: not movable, its owner
    /// refused or was busy, or no target. Blocks moved before stay moved.
    pub(super) fn migrate_range_out(
        &self,
        mm: &MemMap,
        (start, end): (u64, u64),
        target: &mut dyn FnMut(u32) -> Option<Pfn>,
        stats: &mut RangeMigration,
    ) -> bool {
        let mut p = start;
        while p < end {
            stats.scanned += 1;
            match mm.at(mm.idx(p)).state() {
                PageState::Buddy { order, .. } => p += 1 << order,
                // Inside a free block, or free on a per-CPU list.
                PageState::Unmarked | PageState::Pcp { .. } => p += 1,
                PageState::Head { order, .. } => {
                    if self.migrate_page(Pfn(p), target).is_err() {
                        stats.failed += 1;
                        return false;
                    }
                    stats.migrated += 1;
                    stats.pages += 1 << order;
                    p += 1 << order;
                }
                PageState::Tail | PageState::Reserved => return false,
            }
        }
        true
    }
}
