//! Memory compaction (Linux's `mm/compaction.c`): two scanners over a zone, meeting in
//! the middle. The migrate scanner walks pageblocks up from the zone's start and migrates
//! the movable blocks it finds (`isolate_migratepages`); the free scanner walks
//! pageblocks down from the zone's end and hands out free blocks as migration targets
//! (`isolate_freepages`). Movable data gathers at the top, free pages merge at the
//! bottom into large blocks. Only Movable and Cma pageblocks are scanned, by both (Linux's
//! `is_migrate_movable`): an unmovable pageblock has nothing to move and must not receive
//! movable data; only movable data ever moves, so none but movable data enters the CMA
//! area. The free scanner takes nothing from a free block of the zone's largest free
//! order when it starts, or larger, nor of a pageblock or more when that order is
//! smaller (Linux takes nothing from any free block of a pageblock or more): a
//! compaction does not undo the large blocks it is meant to make.
//!
//! Data moves only upwards, so with more than half of a zone in use the scanners pack it
//! across the boundary of the zone's top-order blocks. When they have met without a free
//! block of the highest order the zone could have, `compact_memory` empties one such block
//! by migrating its few used pages elsewhere ([`super::contig`], as Linux's
//! `alloc_contig_pages` does for gigantic pages); direct compaction does the same for a
//! request of pageblock order or more.
//!
//! Direct compaction ([`PageAllocator::try_direct_compact`]) runs inside a high-order
//! allocation that may sleep and would fail, in [`MigrateMode::Async`], stops as soon as
//! a block of the order is free, and is deferred after failures (Linux's
//! `defer_compaction`) so that an exhausted machine does not scan on every request.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::contig::{self, Evacuation};
use super::migrate::{MigrateCtx, MigrateError, Migrator};
use super::migratetype::MigrateType;
use super::page::PageState;
use super::zone_meta::ZoneGuard;
use super::{PageAllocator, MAX_PAGE_ORDER, NR_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::addr::Pfn;
use crate::cpu::CpuId;
use crate::gfp::Gfp;
use crate::owner::movable_owner;

/// Largest direct-compaction deferral: skip up to `2^6` requests after failures (Linux's
/// `COMPACT_MAX_DEFER_SHIFT`).
const COMPACT_MAX_DEFER_SHIFT: u32 = 6;
/// Linux's `sysctl_extfrag_threshold`: at or below this fragmentation index a failure is
/// for lack of memory, and compaction would not help.
pub const EXTFRAG_THRESHOLD: i32 = 500;

/// What one compaction run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactResult {
    /// Blocks migrated.
    pub migrated: u64,
    /// Blocks a migration was tried on and failed.
    pub failed: u64,
    /// Pages the migrate scanner looked at.
    pub migrate_scanned: u64,
    /// Pages the free scanner looked at.
    pub free_scanned: u64,
    /// The goal (a free block of the order asked for) was reached.
    pub success: bool,
    /// The evacuation step after the scanners met, if it tried a block (its migrations
    /// are counted above too).
    pub evacuation: Option<Evacuation>,
}

/// Direct-compaction deferral state (Linux's `compact_considered`/`compact_defer_shift`).
#[derive(Debug)]
pub(super) struct CompactDefer {
    considered: AtomicU32,
    shift: AtomicU32,
}

impl CompactDefer {
    pub(super) const fn new() -> Self {
        Self { considered: AtomicU32::new(0), shift: AtomicU32::new(0) }
    }
    fn deferred(&self) -> bool {
        let limit = 1u32 << self.shift.load(Relaxed);
        let c = self.considered.fetch_add(1, Relaxed) + 1;
        c < limit
    }
    fn failed(&self) {
        self.considered.store(0, Relaxed);
        let s = self.shift.load(Relaxed);
        self.shift.store((s + 1).min(COMPACT_MAX_DEFER_SHIFT), Relaxed);
    }
    fn succeeded(&self) {
        self.considered.store(0, Relaxed);
        self.shift.store(0, Relaxed);
    }
}

/// The two scanners' positions (Linux's `struct compact_control`).
struct Scanners {
    zi: usize,
    start: u64,
    end: u64,
    /// First pfn of the pageblock the migrate scanner is in.
    migrate_block: u64,
    /// First pfn of the pageblock the free scanner is in.
    free_block: u64,
    /// Next pfn the free scanner looks at inside `free_block`.
    free_pfn: u64,
    free_scanned: u64,
    /// The free scanner leaves free blocks of this order or more alone.
    keep_order: u32,
}

/// Whether compaction scans a pageblock of type `mt` (Linux's `suitable_migration_source`
/// and `suitable_migration_target`, which agree here): Movable and Cma (the free scanner
/// skips Cma pageblocks while a `cma_alloc` empties the area,
/// [`contig::target_pageblock`]).
fn scannable(mt: MigrateType) -> bool {
    matches!(mt, MigrateType::Movable | MigrateType::Cma)
}

/// Compaction (Linux's `compact_zone` and its scanners): borrows the page allocator and
/// runs its migrations with one [`MigrateCtx`].
#[derive(Debug)]
pub struct Compactor<'a> {
    pub(super) pages: &'a PageAllocator,
    pub(super) ctx: MigrateCtx,
}

impl<'a> Compactor<'a> {
    /// Compaction of `pages` running as `ctx` says.
    pub const fn new(pages: &'a PageAllocator, ctx: MigrateCtx) -> Self {
        Self { pages, ctx }
    }

    /// The migration driver for this compaction.
    pub(super) fn migrator(&self) -> Migrator<'a> {
        Migrator::new(self.pages, self.ctx)
    }
}

impl Compactor<'_> {
    /// Compacts every zone (Linux's `compact_memory`, the `/proc/sys/vm/compact_memory`
    /// write): both scanners run until they meet. This CPU's lists are drained first and
    /// at the end; the kernel drains the other CPUs' lists before calling.
    pub fn compact_memory(&self) -> CompactResult {
        let mut total = CompactResult::default();
        for zi in 0..self.pages.meta.len() {
            let r = self.compact_zone(zi, None);
            total.migrated += r.migrated;
            total.failed += r.failed;
            total.migrate_scanned += r.migrate_scanned;
            total.free_scanned += r.free_scanned;
            total.evacuation = r.evacuation.or(total.evacuation);
        }
        total.success = true;
        total
    }

    /// Compacts zone `zi` (Linux's `compact_zone`): until the scanners meet, or, with a
    /// `goal` order, until a free block of that order exists. Then, if the scanners met
    /// without one, the evacuation step ([`Self::evacuate_block`]): for the highest order
    /// the zone can have, or for a `goal` of pageblock order or more.
    pub fn compact_zone(&self, zi: usize, goal: Option<u32>) -> CompactResult {
        let cpu = self.ctx.cpu;
        let mut res = CompactResult::default();
        let meta = &self.pages.meta[zi];
        let (start, end) = (meta.start_pfn.load(Relaxed), meta.end_pfn.load(Relaxed));
        if meta.managed.load(Relaxed) == 0 || start >= end {
            return res;
        }
        let Some(mm) = self.pages.mem_map.get() else { return res };
        let mm = &mm;
        self.pages.drain_cpu(cpu);
        let keep_order = {
            let z = self.pages.lock_zone(zi);
            let largest = (0..NR_ORDERS).rev().find(|&o| z.free_area[o].nr_free != 0);
            largest.map_or(PAGEBLOCK_ORDER, |o| (o as u32).max(PAGEBLOCK_ORDER))
        };
        let last_block = (end - 1) & !(PAGEBLOCK_NR_PAGES - 1);
        let mut sc = Scanners {
            zi,
            start,
            end,
            migrate_block: start & !(PAGEBLOCK_NR_PAGES - 1),
            free_block: last_block,
            free_pfn: last_block.max(start),
            free_scanned: 0,
            keep_order,
        };
        let mut batch = super::migrate::MigrateBatch::new();
        'blocks: while sc.migrate_block < sc.free_block {
            let b = sc.migrate_block;
            let (lo, hi) = (b.max(start), (b + PAGEBLOCK_NR_PAGES).min(end));
            if self.block_scannable(lo) {
                let mut pfn = lo;
                while pfn < hi {
                    let Some(page) = self.pages.pfn_to_page(Pfn(pfn)) else { break };
                    res.migrate_scanned += 1;
                    match page.state() {
                        PageState::Buddy { order, .. } | PageState::Pcp { order, .. } => pfn += 1 << order,
                        PageState::Head { order, compound: false, .. } if order < PAGEBLOCK_ORDER => {
                            if movable_owner(mm, Pfn(pfn)).is_some() {
                                batch.push(Pfn(pfn));
                                if batch.is_full() && self.migrate_batch(&mut batch, &mut sc, &mut res) {
                                    break 'blocks;
                                }
                            }
                            pfn += 1 << order;
                        }
                        PageState::Head { order, .. } => pfn += 1 << order,
                        _ => pfn += 1,
                    }
                }
                if self.migrate_batch(&mut batch, &mut sc, &mut res) {
                    break 'blocks;
                }
            } else {
                res.migrate_scanned += hi - lo;
            }
            sc.migrate_block += PAGEBLOCK_NR_PAGES;
            if let Some(order) = goal {
                self.pages.drain_cpu(cpu);
                if self.pages.lock_zone(zi).has_free_block(order, false, false) {
                    res.success = true;
                    break;
                }
            }
        }
        self.pages.drain_cpu(cpu);
        if let Some(order) = goal {
            res.success = res.success || self.pages.lock_zone(zi).has_free_block(order, false, false);
        }
        res.free_scanned = sc.free_scanned;
        let evacuate = match goal {
            None => Some((0, MAX_PAGE_ORDER)),
            Some(order) if !res.success && order >= PAGEBLOCK_ORDER => Some((order, order)),
            Some(_) => None,
        };
        if let Some(orders) = evacuate {
            self.evacuate_block(zi, orders, &mut res);
            if goal.is_some() {
                res.success = res.evacuation.is_some_and(|ev| ev.block.is_some());
            }
        }
        let m = &self.pages.migrate;
        m.compact_migrate_scanned.fetch_add(res.migrate_scanned, Relaxed);
        m.compact_free_scanned.fetch_add(res.free_scanned, Relaxed);
        m.compact_isolated.fetch_add(res.migrated * 2, Relaxed);
        res
    }

    /// Migrates the blocks the migrate scanner collected in `batch` as one batch
    /// ([`Migrator::migrate_pages`](super::Migrator::migrate_pages), targets from the free scanner) and empties it;
    /// true when the free scanner ran out of targets (the scanners met).
    fn migrate_batch(
        &self,
        batch: &mut super::migrate::MigrateBatch,
        sc: &mut Scanners,
        res: &mut CompactResult,
    ) -> bool {
        let mut result = [Err(MigrateError::NotMovable); super::migrate::MIGRATE_BATCH];
        let n = batch.pfns().len();
        let cpu = self.ctx.cpu;
        self.migrator().migrate_pages(batch.pfns(), &mut |o| self.isolate_free(sc, o, cpu), &mut result);
        batch.clear();
        let mut met = false;
        for r in &result[..n] {
            match r {
                Ok(_) => res.migrated += 1,
                // Not tried: the targets had run out.
                Err(MigrateError::NoTarget) if met => {}
                Err(e) => {
                    res.failed += 1;
                    met |= *e == MigrateError::NoTarget;
                }
            }
        }
        met
    }

    fn block_scannable(&self, pfn: u64) -> bool {
        self.pages.pfn_to_page(Pfn(pfn)).is_some_and(|p| scannable(p.pageblock_migratetype()))
    }

    /// The free scanner: a free block of `order` from the highest scannable pageblock
    /// above the migrate scanner, taken off the free lists as a live allocation; `None`
    /// once the scanners meet.
    fn isolate_free(&self, sc: &mut Scanners, order: u32, cpu: CpuId) -> Option<Pfn> {
        while sc.free_block > sc.migrate_block {
            let hi = (sc.free_block + PAGEBLOCK_NR_PAGES).min(sc.end);
            let r = self.take_free_target(sc.zi, (sc.free_pfn, hi), order, sc.keep_order, cpu, &mut sc.free_scanned);
            if let Ok(p) = r {
                sc.free_pfn = p.0 + (1 << order);
                return Some(p);
            }
            sc.free_block = sc.free_block.saturating_sub(PAGEBLOCK_NR_PAGES);
            sc.free_pfn = sc.free_block.max(sc.start);
        }
        None
    }

    /// A migration target from `[from, hi)`, inside one pageblock: the first free block
    /// of at least `order` and below `below` there, `order` pages of it taken as a live
    /// block ([`Self::isolate_free_block`]), if the pageblock may receive movable data
    /// ([`contig::target_pageblock`]). Counts the pages looked at in `scanned`; `Err`
    /// says where the walk ended (`hi` or past it). For both the free scanner and the
    /// evacuation's targets.
    pub(super) fn take_free_target(
        &self,
        zi: usize,
        (from, hi): (u64, u64),
        order: u32,
        below: u32,
        cpu: CpuId,
        scanned: &mut u64,
    ) -> Result<Pfn, u64> {
        if self.pages.pfn_to_page(Pfn(from)).is_none() {
            return Err(hi);
        }
        let mut z = self.pages.lock_zone(zi);
        if !contig::target_pageblock(z.pageblock_mt(from), z.cma_isolated) {
            return Err(hi);
        }
        let mut pfn = from;
        while pfn < hi {
            let Some(page) = self.pages.pfn_to_page(Pfn(pfn)) else { break };
            *scanned += 1;
            match page.state() {
                PageState::Buddy { order: have, .. } if have >= order && have < below => {
                    if let Some(p) = self.isolate_free_block(z, zi, pfn, have, order, cpu) {
                        return Ok(p);
                    }
                    z = self.pages.lock_zone(zi);
                    pfn += 1;
                }
                PageState::Buddy { order: have, .. }
                | PageState::Pcp { order: have, .. }
                | PageState::Head { order: have, .. } => pfn += 1 << have,
                _ => pfn += 1,
            }
        }
        Err(pfn.max(hi))
    }

    /// Takes the free block of order `have` at `pfn` (seen under `z`, which this drops) as
    /// a live block of `order` (a migration target), the rest freed back; `None` if it
    /// changed meanwhile.
    pub(super) fn isolate_free_block(
        &self,
        mut z: ZoneGuard<'_>,
        zi: usize,
        pfn: u64,
        have: u32,
        order: u32,
        cpu: CpuId,
    ) -> Option<Pfn> {
        if !z.take_free_at(pfn, have, order) {
            return None;
        }
        drop(z);
        self.pages.count_alloc(cpu, zi, 1 << order);
        let head = self.pages.pfn_to_page(Pfn(pfn))?;
        head.set_owner(0);
        head.set_state(PageState::Head { order, compound: false, tail_owner: false });
        Some(Pfn(pfn))
    }

    /// Direct compaction (Linux's `__alloc_pages_direct_compact`): for a request of
    /// `order` > 0 that may sleep (not `GFP_ATOMIC`/`GFP_NOWAIT`, not `__GFP_NORETRY`),
    /// when the zone has the memory but not in one piece (fragmentation index above
    /// [`EXTFRAG_THRESHOLD`]) and compaction is not deferred. Returns whether it ran.
    pub(super) fn try_direct_compact(pages: &PageAllocator, gfp: Gfp, order: u32, zi: usize, cpu: CpuId) -> bool {
        if order == 0 || !gfp.may_sleep() || gfp.contains(Gfp::GFP_NORETRY) {
            return false;
        }
        if !pages.movable_ops.any() {
            return false;
        }
        if extfrag_index(pages, zi, order) <= EXTFRAG_THRESHOLD || pages.defer.deferred() {
            return false;
        }
        pages.migrate.compact_stall.fetch_add(1, Relaxed);
        let r = Compactor::new(pages, MigrateCtx::async_on(cpu)).compact_zone(zi, Some(order));
        if r.success {
            pages.migrate.compact_success.fetch_add(1, Relaxed);
            pages.defer.succeeded();
        } else {
            pages.migrate.compact_fail.fetch_add(1, Relaxed);
            pages.defer.failed();
        }
        true
    }
}

/// Linux's `fragmentation_index` × 1000 for a request of `order` in zone `zi`, from
/// its buddy lists: -1000 if a block of the order is free, 0 if nothing is free, else
/// `1000 - (1000 + free_pages * 1000 / 2^order) / free_blocks`: towards 1000 the
/// failure would be for fragmentation, towards 0 for lack of memory.
pub fn extfrag_index(pages: &PageAllocator, zi: usize, order: u32) -> i32 {
    let z = pages.lock_zone(zi);
    let mut total = 0u64;
    let mut suitable = 0u64;
    let mut free = 0u64;
    for (o, a) in z.free_area.iter().enumerate() {
        total += a.nr_free;
        free += a.nr_free << o;
        if o as u32 >= order {
            suitable += a.nr_free << (o as u32 - order);
        }
    }
    drop(z);
    fragmentation_index(total, suitable, free, order)
}

/// [`extfrag_index`] for every order.
pub fn extfrag_indices(pages: &PageAllocator, zi: usize) -> [i32; NR_ORDERS] {
    core::array::from_fn(|o| extfrag_index(pages, zi, o as u32))
}

/// Linux's `__fragmentation_index` (× 1000).
pub const fn fragmentation_index(
    free_blocks_total: u64,
    free_blocks_suitable: u64,
    free_pages: u64,
    order: u32,
) -> i32 {
    if free_blocks_total == 0 {
        return 0;
    }
    if free_blocks_suitable != 0 {
        return -1000;
    }
    let requested = 1u64 << order;
    1000 - ((1000 + free_pages * 1000 / requested) / free_blocks_total) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragmentation_index_as_linux() {
        assert_eq!(fragmentation_index(0, 0, 0, 3), 0);
        assert_eq!(fragmentation_index(4, 1, 40, 3), -1000);
        // 512 single free pages, order 9 wanted: almost all fragmentation.
        assert_eq!(fragmentation_index(512, 0, 512, 9), 1000 - (1000 + 1000) / 512);
        // One free page, order 9 wanted: lack of memory.
        assert_eq!(fragmentation_index(1, 0, 1, 9), 1000 - (1000 + 1));
    }

    /// Linux's `suitable_migration_source`/`_target`: Movable and Cma pageblocks only.
    #[test]
    fn compaction_scans_movable_and_cma_pageblocks_only() {
        let scanned: Vec<_> = MigrateType::ALL.into_iter().filter(|&mt| scannable(mt)).collect();
        assert_eq!(scanned, [MigrateType::Movable, MigrateType::Cma]);
    }

    /// Linux's `__fragmentation_index`, written out for the test.
    fn linux_index(total: u64, suitable: u64, free: u64, order: u32) -> i32 {
        match (total, suitable) {
            (0, _) => 0,
            (_, s) if s > 0 => -1000,
            _ => 1000 - ((1000 + free * 1000 / (1 << order)) / total) as i32,
        }
    }

    /// `extfrag_index` counts the zone's free blocks, the free pages and the blocks that
    /// could serve the order (a larger block counts for all its pieces) from its buddy
    /// lists: a fresh 4096-page zone (one order-12 block), then the same after an
    /// order-4 allocation split it (one free block of each order 4-11, 4080 pages).
    #[test]
    fn extfrag_index_reads_the_buddy_lists() {
        let a = super::super::migrate_tests::make(4096);
        let zi = super::super::ZoneType::Normal.index();
        let fresh: Vec<i32> = (0..NR_ORDERS as u32).map(|o| linux_index(1, u64::from(o <= 12), 4096, o)).collect();
        assert_eq!(extfrag_indices(a, zi).to_vec(), fresh);
        let p = a.alloc_pages(crate::gfp::GFP_KERNEL, 4, CpuId::of(0)).unwrap();
        let split: Vec<i32> = (0..NR_ORDERS as u32).map(|o| linux_index(8, u64::from(o <= 11), 4080, o)).collect();
        assert_eq!(extfrag_indices(a, zi).to_vec(), split);
        assert!(split[12] > 0 && split[12] < 1000, "{split:?}");
        a.free_pages(p, 4, CpuId::of(0)).unwrap();
    }

    /// How many of the next `n` considerations of direct compaction are deferred.
    fn deferred_of(d: &CompactDefer, n: u32) -> Vec<bool> {
        (0..n).map(|_| d.deferred()).collect()
    }

    /// Linux's `defer_compaction`/`compaction_deferred`: after the k-th failure in a row,
    /// the next 2^k - 1 considerations are skipped (k at most 6), the 2^k-th runs;
    /// a success ends the deferral.
    #[test]
    fn each_failure_doubles_the_deferral_up_to_64() {
        let d = CompactDefer::new();
        assert_eq!(deferred_of(&d, 3), [false; 3], "nothing failed yet");
        for k in 1..=8u32 {
            d.failed();
            let skipped = (1u32 << k.min(COMPACT_MAX_DEFER_SHIFT)) - 1;
            let seen = deferred_of(&d, skipped + 2);
            let mut want = vec![true; skipped as usize];
            want.extend([false, false]);
            assert_eq!(seen, want, "after failure {k}");
        }
        d.succeeded();
        assert_eq!(deferred_of(&d, 2), [false; 2], "a success ends the deferral");
        d.failed();
        assert_eq!(deferred_of(&d, 3), [true, false, false], "and starts the count again");
    }
}
