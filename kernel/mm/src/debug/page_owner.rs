//! Linux's page_owner: for every page, who allocated it (order, GFP mask, migratetype,
//! CPU, time, call trace) and who freed it last, in a fixed table reserved at boot, one
//! record per page frame, traces kept once in a [`StackDepot`].
//!
//! Only a block's first page is written (the others are found from it, like the
//! buddy's own descriptors), so recording costs the same for every order. Nothing on
//! the allocation or free path allocates or waits: a frame outside the table, or a
//! trace the full depot cannot keep, is counted and the record says "no trace".
//!
//! [`PageOwner::aggregate`] groups the allocated blocks by identical trace, order and
//! mask into the caller's buffer, sorted as Linux's `tools/mm/page_owner_sort` does by default (most blocks
//! first), for the console's `page_owner`.

use super::stack_depot::{StackDepot, Trace, NO_HANDLE};
use crate::gfp::Gfp;
use crate::page_alloc::{gfp_migratetype, MigrateType};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

const ALLOCATED: u64 = 1;
const EVER_ALLOCATED: u64 = 2;
const FREED: u64 = 4;
/// The block was migrated: to here (the record copied from the old block), or from
/// here (the old block, freed by the migration).
const MIGRATED: u64 = 8;
/// Highest order a lookup searches for a block's first page.
const MAX_LOOKUP_ORDER: u32 = 24;

/// One page frame's record (three words; only a block's first page is written).
pub struct OwnerRecord {
    /// Allocation trace handle (low 32 bits), GFP mask (high 32).
    alloc: AtomicU64,
    /// Free trace handle (low 32), order (bits 32..40), migratetype (40..48), CPU
    /// (48..56), flags (56..64).
    info: AtomicU64,
    /// Allocation time (low 32), last free time (high 32), in the caller's unit.
    times: AtomicU64,
}

impl OwnerRecord {
    /// An empty record (for building the table).
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: OwnerRecord =
        OwnerRecord { alloc: AtomicU64::new(0), info: AtomicU64::new(0), times: AtomicU64::new(0) };
}

/// What the table says about one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerInfo {
    /// The block's first page frame.
    pub head_pfn: u64,
    /// Still allocated (else: freed, and `free_handle` says by whom).
    pub allocated: bool,
    /// Order of the block.
    pub order: u32,
    /// Mask of the allocation.
    pub gfp: Gfp,
    /// Migratetype the mask asked for.
    pub migratetype: MigrateType,
    /// CPU that allocated it.
    pub cpu: u32,
    /// Allocation time since boot, in the caller's unit (the kernel: 2^16 counter ticks).
    pub ts_alloc_ms: u32,
    /// Last free time since boot, in the same unit (when freed).
    pub ts_free_ms: u32,
    /// Allocation trace ([`NO_HANDLE`]: none kept).
    pub alloc_handle: u32,
    /// Last free's trace ([`NO_HANDLE`]: never freed, or none kept).
    pub free_handle: u32,
    /// Migrated: an allocated block's record came with its contents from the block it
    /// was migrated from; a free block's last free was that migration.
    pub migrated: bool,
}

/// Allocated blocks with the same trace, order and mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// The allocation trace's handle.
    pub handle: u32,
    /// Order of each block.
    pub order: u32,
    /// Mask of the allocations.
    pub gfp: Gfp,
    /// Migratetype asked for.
    pub migratetype: MigrateType,
    /// Blocks (page_owner_sort's "times").
    pub times: u64,
    /// Pages in them.
    pub pages: u64,
}

/// The page_owner table over records reserved by the caller, for frames from `base_pfn`.
pub struct PageOwner<'a> {
    base_pfn: u64,
    records: &'a [OwnerRecord],
    /// The traces.
    pub depot: StackDepot<'a>,
    outside: AtomicU64,
}

impl<'a> PageOwner<'a> {
    /// A table for `records.len()` frames from `base_pfn`, traces in `depot`.
    pub const fn new(base_pfn: u64, records: &'a [OwnerRecord], depot: StackDepot<'a>) -> Self {
        PageOwner { base_pfn, records, depot, outside: AtomicU64::new(0) }
    }

    fn record(&self, pfn: u64) -> Option<&OwnerRecord> {
        let r = pfn.checked_sub(self.base_pfn).and_then(|i| self.records.get(i as usize));
        if r.is_none() {
            self.outside.fetch_add(1, Relaxed);
        }
        r
    }

    /// Events for frames the table does not cover (counted, not recorded).
    pub fn outside(&self) -> u64 {
        self.outside.load(Relaxed)
    }

    /// Whether the table has a record for `pfn`.
    pub fn covers(&self, pfn: u64) -> bool {
        pfn.checked_sub(self.base_pfn).is_some_and(|i| i < self.records.len() as u64)
    }

    /// Frames the table covers.
    pub fn nr_frames(&self) -> usize {
        self.records.len()
    }

    /// Records an allocation of `2^order` pages at `pfn` (Linux's `__set_page_owner`);
    /// a migration mark of an earlier life of the frame goes.
    pub fn set_alloc(&self, pfn: u64, order: u32, gfp: Gfp, cpu: u32, now_ms: u32, trace: &Trace) {
        let Some(r) = self.record(pfn) else { return };
        let handle = self.depot.save(trace);
        let mt = gfp_migratetype(gfp).index() as u64;
        r.alloc.store(handle as u64 | (gfp.bits() as u64) << 32, Relaxed);
        let free_handle = r.info.load(Relaxed) & 0xffff_ffff;
        let flags = ALLOCATED | EVER_ALLOCATED;
        r.info.store(
            free_handle | (order as u64 & 0xff) << 32 | mt << 40 | (cpu as u64 & 0xff) << 48 | flags << 56,
            Relaxed,
        );
        let t = r.times.load(Relaxed);
        r.times.store((t & !0xffff_ffff) | now_ms as u64, Relaxed);
    }

    /// Records the free of the block at `pfn` (Linux's `__reset_page_owner`): the
    /// allocation stays readable, marked freed, with the free's trace and time.
    pub fn set_free(&self, pfn: u64, now_ms: u32, trace: &Trace) {
        let Some(r) = self.record(pfn) else { return };
        let handle = self.depot.save(trace);
        let info = r.info.load(Relaxed);
        let flags = (info >> 56) & !ALLOCATED | FREED;
        r.info.store((info & 0x00ff_ffff_0000_0000) | handle as u64 | flags << 56, Relaxed);
        let t = r.times.load(Relaxed);
        r.times.store((t & 0xffff_ffff) | (now_ms as u64) << 32, Relaxed);
    }

    /// The block at `old` was migrated to `new` (Linux's `__folio_copy_owner`): `new`
    /// gets `old`'s record (allocation trace, mask, order, CPU, times, last free),
    /// marked migrated; `old`, which the migration frees, is marked freed by it (`trace`
    /// at `now_ms`) and migrated, its allocation kept readable. No record of `old`
    /// (a frame outside the table, or never recorded): `new` is left as it is.
    pub fn copy_owner(&self, old: u64, new: u64, now_ms: u32, trace: &Trace) {
        let (Some(o), Some(n)) = (self.record(old), self.record(new)) else { return };
        let info = o.info.load(Relaxed);
        if (info >> 56) & (EVER_ALLOCATED | FREED) == 0 {
            return;
        }
        n.alloc.store(o.alloc.load(Relaxed), Relaxed);
        n.times.store(o.times.load(Relaxed), Relaxed);
        let flags = ((info >> 56) | ALLOCATED | EVER_ALLOCATED | MIGRATED) & !FREED;
        n.info.store((info & 0x00ff_ffff_ffff_ffff) | flags << 56, Relaxed);
        self.set_free(old, now_ms, trace);
        o.info.fetch_or(MIGRATED << 56, Relaxed);
    }

    fn info_at(&self, head: u64) -> Option<OwnerInfo> {
        let r = self.records.get(head.checked_sub(self.base_pfn)? as usize)?;
        let info = r.info.load(Relaxed);
        let flags = info >> 56;
        if flags & (EVER_ALLOCATED | FREED) == 0 {
            return None;
        }
        let alloc = r.alloc.load(Relaxed);
        let times = r.times.load(Relaxed);
        Some(OwnerInfo {
            head_pfn: head,
            allocated: flags & ALLOCATED != 0,
            order: ((info >> 32) & 0xff) as u32,
            gfp: Gfp::from_bits((alloc >> 32) as u32 & 0x7f_ffff).unwrap_or(Gfp::EMPTY),
            migratetype: MigrateType::from_index(((info >> 40) & 0xff) as usize),
            cpu: ((info >> 48) & 0xff) as u32,
            ts_alloc_ms: times as u32,
            ts_free_ms: (times >> 32) as u32,
            alloc_handle: alloc as u32,
            free_handle: info as u32,
            migrated: flags & MIGRATED != 0,
        })
    }

    /// The record of the block that holds `pfn` (the smallest aligned block with a
    /// record that covers it), or `None` if no allocation ever covered it.
    pub fn lookup(&self, pfn: u64) -> Option<OwnerInfo> {
        for o in 0..=MAX_LOOKUP_ORDER {
            let head = pfn & !((1u64 << o) - 1);
            if let Some(i) = self.info_at(head) {
                if pfn < head + (1u64 << i.order) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Allocated blocks grouped by (trace, order, mask) into `out`, most blocks first,
    /// then most pages, then by handle; returns the groups written and the blocks left
    /// out because `out` was full (counted, not an error). No allocation.
    pub fn aggregate(&self, out: &mut [Group]) -> (usize, u64) {
        self.aggregate_held(out, &|_, _| true)
    }

    /// [`Self::aggregate`] of the records `held(pfn, order)` confirms: the page
    /// allocator's own view, for blocks that left without a free through the hooks
    /// (migration frees the old block inside the allocator).
    pub fn aggregate_held(&self, out: &mut [Group], held: &dyn Fn(u64, u32) -> bool) -> (usize, u64) {
        let mut n = 0;
        let mut left_out = 0;
        for (i, r) in self.records.iter().enumerate() {
            let info = r.info.load(Relaxed);
            if (info >> 56) & ALLOCATED == 0 {
                continue;
            }
            let Some(inf) = self.info_at(self.base_pfn + i as u64) else { continue };
            if !held(inf.head_pfn, inf.order) {
                continue;
            }
            let key = (inf.alloc_handle, inf.order, inf.gfp.bits());
            match out[..n].binary_search_by_key(&key, |g| (g.handle, g.order, g.gfp.bits())) {
                Ok(k) => {
                    out[k].times += 1;
                    out[k].pages += 1 << inf.order;
                }
                Err(_) if n == out.len() => left_out += 1,
                Err(k) => {
                    out.copy_within(k..n, k + 1);
                    out[k] = Group {
                        handle: inf.alloc_handle,
                        order: inf.order,
                        gfp: inf.gfp,
                        migratetype: inf.migratetype,
                        times: 1,
                        pages: 1 << inf.order,
                    };
                    n += 1;
                }
            }
        }
        out[..n]
            .sort_unstable_by(|a, b| b.times.cmp(&a.times).then(b.pages.cmp(&a.pages)).then(a.handle.cmp(&b.handle)));
        (n, left_out)
    }
}

impl Group {
    /// An empty group (for the caller's buffer).
    pub const EMPTY: Group =
        Group { handle: 0, order: 0, gfp: Gfp::EMPTY, migratetype: MigrateType::Unmovable, times: 0, pages: 0 };
}

/// `true` when `h` names a kept trace.
pub fn has_trace(h: u32) -> bool {
    h != NO_HANDLE
}

#[cfg(test)]
mod tests {
    use super::super::stack_depot::{DepotSlot, DEPOT_DEPTH};
    use super::*;
    use crate::gfp::{GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};
    use std::collections::HashMap;

    fn trace(seed: u64) -> Trace {
        let mut t = [0; DEPOT_DEPTH];
        t[0] = 0x1000 + seed;
        t[1] = 0x2000 + seed * 3;
        t
    }

    fn table(frames: usize, depot: usize) -> PageOwner<'static> {
        let recs: &'static [OwnerRecord] = Box::leak((0..frames).map(|_| OwnerRecord::EMPTY).collect());
        let slots: &'static [DepotSlot] = Box::leak((0..depot).map(|_| DepotSlot::EMPTY).collect());
        PageOwner::new(0x100, recs, StackDepot::new(slots))
    }

    #[test]
    fn records_alloc_then_free_and_finds_tail_pages() {
        let po = table(64, 16);
        po.set_alloc(0x108, 3, GFP_KERNEL, 2, 1234, &trace(1));
        let i = po.lookup(0x10d).unwrap();
        assert_eq!((i.head_pfn, i.allocated, i.order, i.cpu, i.ts_alloc_ms), (0x108, true, 3, 2, 1234));
        assert_eq!(i.gfp, GFP_KERNEL);
        assert_eq!(i.migratetype, MigrateType::Unmovable);
        assert_eq!(po.depot.fetch(i.alloc_handle), Some(trace(1)));
        assert_eq!(i.free_handle, NO_HANDLE);
        assert!(po.lookup(0x110).is_none(), "past the block");
        po.set_free(0x108, 2000, &trace(2));
        let f = po.lookup(0x108).unwrap();
        assert!(!f.allocated);
        assert_eq!((f.order, f.ts_alloc_ms, f.ts_free_ms), (3, 1234, 2000));
        assert_eq!(po.depot.fetch(f.free_handle), Some(trace(2)));
        assert_eq!(po.depot.fetch(f.alloc_handle), Some(trace(1)), "the allocation stays readable");
        // A new allocation of a page inside it is the nearer record.
        po.set_alloc(0x10a, 0, GFP_HIGHUSER_MOVABLE, 0, 3000, &trace(3));
        let n = po.lookup(0x10a).unwrap();
        assert_eq!((n.head_pfn, n.order, n.migratetype), (0x10a, 0, MigrateType::Movable));
    }

    #[test]
    fn migration_copies_the_record_to_the_new_block_and_frees_the_old() {
        let po = table(64, 16);
        po.set_alloc(0x110, 2, GFP_HIGHUSER_MOVABLE, 3, 500, &trace(1));
        po.set_free(0x110, 600, &trace(2));
        po.set_alloc(0x110, 2, GFP_HIGHUSER_MOVABLE, 3, 700, &trace(3));
        // The target held something before (its stale record must go entirely).
        po.set_alloc(0x128, 3, GFP_KERNEL, 1, 100, &trace(4));
        po.set_free(0x128, 200, &trace(5));
        let before = po.lookup(0x110).unwrap();
        po.copy_owner(0x110, 0x128, 900, &trace(6));
        let n = po.lookup(0x12b).unwrap();
        assert_eq!(
            n,
            OwnerInfo { head_pfn: 0x128, migrated: true, ..before },
            "the new block carries the old one's record (and its last free)"
        );
        assert_eq!(po.lookup(0x12c), None, "the stale order-3 record of the target is gone");
        assert_eq!(po.depot.fetch(n.alloc_handle), Some(trace(3)));
        let o = po.lookup(0x111).unwrap();
        assert!(!o.allocated && o.migrated, "the old block: freed by the migration");
        assert_eq!((o.ts_alloc_ms, o.ts_free_ms, o.order), (700, 900, 2));
        assert_eq!(po.depot.fetch(o.free_handle), Some(trace(6)));
        assert_eq!(po.depot.fetch(o.alloc_handle), Some(trace(3)), "its allocation stays readable");
        // Held blocks: the new one counts, the old one does not.
        let mut buf = vec![Group::EMPTY; 4];
        let (k, _) = po.aggregate(&mut buf);
        assert_eq!(buf[..k].iter().map(|g| (g.handle, g.times, g.pages)).collect::<Vec<_>>(), [(n.alloc_handle, 1, 4)]);
        // A new allocation at the old place is not marked migrated.
        po.set_alloc(0x110, 0, GFP_KERNEL, 0, 950, &trace(7));
        assert!(!po.lookup(0x110).unwrap().migrated);
        // No record of the source (never allocated, or outside): the target is untouched.
        po.copy_owner(0x138, 0x128, 990, &trace(8));
        assert_eq!(po.lookup(0x128).unwrap(), n);
        po.copy_owner(0x20, 0x128, 990, &trace(8));
        assert_eq!(po.lookup(0x128).unwrap(), n);
    }

    #[test]
    fn frames_outside_and_a_full_depot_are_counted_not_failed() {
        let po = table(8, 2);
        po.set_alloc(0x50, 0, GFP_KERNEL, 0, 0, &trace(1));
        po.set_alloc(0x108, 0, GFP_KERNEL, 0, 0, &trace(1));
        assert_eq!(po.outside(), 2);
        for (k, pfn) in (0x100..0x108).enumerate() {
            po.set_alloc(pfn, 0, GFP_KERNEL, 0, 0, &trace(k as u64));
        }
        assert_eq!(po.depot.used(), 2);
        assert_eq!(po.depot.dropped(), 6);
        // Every page is still recorded, the ones past the depot without a trace.
        let no_trace = (0x100..0x108).filter(|&p| po.lookup(p).unwrap().alloc_handle == NO_HANDLE).count();
        assert_eq!(no_trace, 6);
    }

    #[test]
    fn aggregation_matches_a_model_and_is_sorted_like_page_owner_sort() {
        let po = table(4096, 64);
        let mut model: HashMap<(u64, u32, u32), (u64, u64)> = HashMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut pfn = 0x100;
        let mut freed = vec![];
        while pfn < 0x100 + 4000 {
            let order = (next() % 4) as u32;
            let seed = next() % 5;
            let gfp = if next() % 2 == 0 { GFP_KERNEL } else { GFP_ATOMIC };
            pfn = (pfn + (1 << order) - 1) & !((1 << order) - 1);
            po.set_alloc(pfn, order, gfp, 0, 0, &trace(seed));
            if next() % 4 == 0 {
                freed.push(pfn);
            } else {
                let e = model.entry((seed, order, gfp.bits())).or_default();
                e.0 += 1;
                e.1 += 1 << order;
            }
            pfn += 1 << order;
        }
        for p in freed {
            po.set_free(p, 1, &trace(9));
        }
        let mut buf = vec![Group::EMPTY; 64];
        let (n, left) = po.aggregate(&mut buf);
        let groups = &buf[..n];
        assert_eq!((groups.len(), left), (model.len(), 0));
        for g in groups {
            let t = po.depot.fetch(g.handle).unwrap();
            let seed = t[0] - 0x1000;
            assert_eq!(model[&(seed, g.order, g.gfp.bits())], (g.times, g.pages), "{g:?}");
        }
        assert!(groups.windows(2).all(|w| (w[0].times, w[0].pages) >= (w[1].times, w[1].pages)), "sorted");
        // The allocator's view filters: only order-0 blocks confirmed.
        let mut zbuf = vec![Group::EMPTY; 64];
        let (zn, _) = po.aggregate_held(&mut zbuf, &|_, order| order == 0);
        let want: u64 = model.iter().filter(|(k, _)| k.1 == 0).map(|(_, v)| v.0).sum();
        assert_eq!(zbuf[..zn].iter().map(|g| g.times).sum::<u64>(), want);
        assert!(zbuf[..zn].iter().all(|g| g.order == 0));
        // A buffer too small keeps the first groups found and counts the blocks left out.
        let mut small = vec![Group::EMPTY; 2];
        let (sn, left) = po.aggregate(&mut small);
        let total: u64 = model.values().map(|v| v.0).sum();
        assert_eq!(sn, 2);
        assert_eq!(small.iter().map(|g| g.times).sum::<u64>() + left, total);
    }
}
