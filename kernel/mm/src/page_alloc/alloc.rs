//! The allocation path: Linux's `__alloc_pages`. The fast path takes a block off this
//! CPU's list (see [`super::pcp`]) with no lock and no atomic read-modify-write; the slow
//! path refills the list from the zone in one zone-lock round (`rmqueue_bulk`), serves
//! the orders above the per-CPU ones from the zone, and walks the watermarks and the
//! HighAtomic reserve before giving up.

use core::sync::atomic::Ordering::Relaxed;

use super::page::{MemMap, PageState};
use super::pcp::pcp_pages;
use super::watermark::{self, AllocFlags, WatermarkCheck, ZoneFree};
use super::{gfp_migratetype, AllocFailure, MigrateType, PageAllocator, ZoneType, MAX_PAGE_ORDER, PCP_MAX_ORDER};
use crate::addr::Pfn;
use crate::cpu::CpuId;
use crate::gfp::Gfp;

impl PageAllocator {
    /// Allocates `2^order` naturally aligned pages (Linux's `__alloc_pages`). Never sleeps.
    ///
    /// Tries the low watermark first; requests that cannot sleep then retry against min
    /// (lowered for `__GFP_HIGH`/`__GFP_ATOMIC`); as a last resort a HighAtomic reserve is
    /// released. With `__GFP_COMP` the block is marked compound. The caller zeroes the
    /// block if [`want_init_on_alloc`] and prints [`report`] output unless
    /// [`AllocFailure::should_warn`] says not to.
    ///
    /// `cpu` is the CPU the caller runs on: its per-CPU lists are used with its interrupts
    /// masked and without any lock (see [`pcp`]).
    #[inline(always)]
    pub fn alloc_pages(&self, gfp: Gfp, order: u32, cpu: CpuId) -> Result<Pfn, AllocFailure> {
        match self.alloc_fast(gfp, order, cpu) {
            Some(pfn) => Ok(Pfn(pfn)),
            None => self.alloc_pages_slow(gfp, order, cpu),
        }
    }

    /// The fast path, Linux's `rmqueue_pcplist` hit: a plain request (no `__GFP_DMA`, no
    /// `__GFP_COMP`, no fault injection armed) of a per-CPU order, whose zone passes the
    /// low watermark, and a block on this CPU's list. The watermark is the one rule of
    /// every path ([`WatermarkCheck::ok`]), lockless as Linux's `zone_watermark_fast`,
    /// read in its cached form: the zone's headroom above `low` for this request
    /// (published with the zone's counters, see `ZoneMeta::fast_headroom`) and one
    /// compare ([`watermark::fits`]). The lists are held (the local lock) around the pop;
    /// no lock, no atomic read-modify-write. Anything else (an empty list included)
    /// returns `None` and the caller takes the whole path, which checks again and refills.
    #[inline(always)]
    fn alloc_fast(&self, gfp: Gfp, order: u32, cpu: CpuId) -> Option<u64> {
        if order > PCP_MAX_ORDER || gfp.intersects(Gfp::GFP_DMA.union(Gfp::GFP_COMP)) || self.fail.attr.armed() {
            return None;
        }
        // A copy: its fields stay in registers across the stores below.
        // Empty before init: the list is empty then too, and the pop's bounds test fails.
        let mm = self.mem_map.load();
        let zi = ZoneType::Normal.index();
        // No lowmem_reserve in the request's own highest zone; free CMA pages count only
        // for a movable request; the block itself is on the list or the pop fails.
        let cma = AllocFlags::low(gfp).cma;
        let n = pcp_pages(order);
        if !watermark::fits_pages(self.meta[zi].fast_headroom[cma as usize].load(Relaxed), n) {
            return None;
        }
        let pcp = self.try_local_pcp(cpu, zi)?;
        let (idx, page) = pcp.pop_page(&mm, order, gfp_migratetype(gfp).index())?;
        pcp.count_alloc(n);
        drop(pcp);
        // prep_new_page: the owner word is 0 (`pop` and `push` cleared the links).
        page.set_state(PageState::Head { order, compound: false, tail_owner: false });
        Some(mm.base_pfn + idx as u64)
    }

    /// Everything [`Self::alloc_fast`] does not take: checks, refills, larger orders,
    /// lower watermarks, the HighAtomic reserve, failures.
    #[cold]
    #[inline(never)]
    pub(super) fn alloc_pages_slow(&self, gfp: Gfp, order: u32, cpu: CpuId) -> Result<Pfn, AllocFailure> {
        let mm = &self.mem_map.get().ok_or(AllocFailure::NotInitialized)?;
        if order > MAX_PAGE_ORDER {
            return Err(AllocFailure::OrderTooLarge { order, gfp });
        }
        if self.fail.should_fail(gfp, order) {
            self.failures.fetch_add(1, Relaxed);
            return Err(AllocFailure::Injected { order, gfp });
        }
        let mt = gfp_migratetype(gfp);
        let high_zone = self.highest_zone(gfp);
        let low = AllocFlags::low(gfp);
        let mut found = self.get_page_from_freelist(mm, order, mt, high_zone, cpu, low);
        // A request that may sleep keeps the low mark (there is no reclaim to wait for),
        // but `__GFP_MEMALLOC` lifts the watermarks for it too (Linux's
        // `__gfp_pfmemalloc_flags`, whatever the request's other flags).
        let slow = if gfp.may_sleep() {
            AllocFlags { no_watermarks: AllocFlags::slowpath(gfp).no_watermarks, ..low }
        } else {
            AllocFlags::slowpath(gfp)
        };
        if found.is_none() && slow != low {
            found = self.get_page_from_freelist(mm, order, mt, high_zone, cpu, slow);
        }
        if found.is_none() && super::Compactor::try_direct_compact(self, gfp, order, high_zone, cpu) {
            found = self.get_page_from_freelist(mm, order, mt, high_zone, cpu, slow);
        }
        if found.is_none() && self.drain_cpu(cpu) {
            // Blocks on this CPU's lists of another migratetype or order (the rest of a
            // refill for page tables, say) are free but out of this request's reach: back
            // to the zone with them and one more try, as Linux drains the per-CPU lists
            // before it gives up (`__alloc_pages_direct_reclaim`).
            found = self.get_page_from_freelist(mm, order, mt, high_zone, cpu, slow);
        }
        if found.is_none() {
            // No reclaim to try: give back a HighAtomic reserve, as Linux does before OOM.
            for zi in (0..=high_zone).rev() {
                let mut z = self.lock_zone(zi);
                if z.unreserve_highatomic(mt) {
                    drop(z);
                    found = self.get_page_from_freelist(mm, order, mt, high_zone, cpu, slow);
                    break;
                }
            }
        }
        let Some(pfn) = found else {
            self.failures.fetch_add(1, Relaxed);
            return Err(AllocFailure::NoMemory { order, gfp });
        };
        // prep_new_page: the block is ours now; mark head (and compound tails).
        let idx = mm.idx(pfn);
        let head = mm.at(idx);
        self.count_alloc(cpu, head.zone().index(), 1 << order);
        let comp = gfp.contains(Gfp::GFP_COMP) && order > 0;
        if comp {
            for i in 1..(1u32 << order) {
                mm.at(idx + i).set_state(PageState::Tail);
            }
        }
        head.set_owner(0);
        head.set_state(PageState::Head { order, compound: comp, tail_owner: false });
        Ok(Pfn(pfn))
    }

    fn get_page_from_freelist(
        &self,
        mm: &MemMap,
        order: u32,
        mt: MigrateType,
        high_zone: usize,
        cpu: CpuId,
        flags: AllocFlags,
    ) -> Option<u64> {
        for zi in (0..=high_zone).rev() {
            let meta = &self.meta[zi];
            if meta.managed.load(Relaxed) == 0 {
                continue;
            }
            let check = WatermarkCheck {
                mark: meta.wmarks().get(flags.wmark),
                flags,
                lowmem_reserve: if zi < high_zone { meta.lowmem_reserve.load(Relaxed) } else { 0 },
            };
            if order <= PCP_MAX_ORDER {
                // Lockless check on the published counters, as Linux's
                // zone_watermark_fast; the block itself comes from the pcp list or a
                // refill, which fails if none.
                if !check.ok(meta.zone_free(), order, || true) {
                    continue;
                }
                if let Some(pfn) = self.rmqueue_pcplist(mm, zi, cpu, order, mt) {
                    if flags.harder && order > 0 {
                        let mut z = self.lock_zone(zi);
                        z.reserve_highatomic(pfn);
                    }
                    return Some(pfn);
                }
                continue;
            }
            let mut z = self.lock_zone(zi);
            let zf = ZoneFree {
                free: z.free_pages,
                reserved_highatomic: z.nr_reserved_highatomic,
                free_cma: z.free_cma_pages,
            };
            if !check.ok(zf, order, || z.has_free_block(order, flags.harder, flags.cma)) {
                continue;
            }
            if let Some(pfn) = z.rmqueue(order, mt, flags.harder) {
                if flags.harder && order > 0 {
                    z.reserve_highatomic(pfn);
                }
                return Some(pfn);
            }
        }
        None
    }

    /// Allocation from this CPU's list, refilled with a batch from the zone in one
    /// zone-lock round (Linux's `rmqueue_pcplist` / `rmqueue_bulk`).
    /// From an interrupt that found the lists busy, the block comes from the zone.
    fn rmqueue_pcplist(&self, mm: &MemMap, zi: usize, cpu: CpuId, order: u32, mt: MigrateType) -> Option<u64> {
        let Some(pcp) = self.try_local_pcp(cpu, zi) else {
            return self.lock_zone(zi).rmqueue(order, mt, false);
        };
        if pcp.drain_pending() {
            self.pcp_overflow(mm, zi, &pcp);
        }
        let list = mt.index();
        if let Some((idx, page)) = pcp.pop_page(mm, order, list) {
            page.set_state(PageState::Unmarked);
            return Some(mm.base_pfn + idx as u64);
        }
        let batch = pcp.batch();
        let blocks = if order == 0 { batch.max(1) } else { (batch >> order).max(2) };
        self.rmqueue_bulk(zi, order, mt, blocks, |pfn| {
            let idx = mm.idx(pfn);
            // A block borrowed from the CMA area is marked Cma (Linux's
            // `set_pcppage_migratetype` with the list it came from), so that a drain
            // returns it to the Cma lists, never to the Movable ones, where it would
            // merge with blocks outside the area and a steal would claim its pageblock.
            let from = if mm.at(idx).block_mt() == MigrateType::Cma { MigrateType::Cma } else { mt };
            mm.at(idx).set_state(PageState::Pcp { order, mt: from });
            pcp.push(mm, idx, order, list);
        });
        let idx = pcp.pop(mm, order, list)?;
        mm.at(idx).set_state(PageState::Unmarked);
        Some(mm.base_pfn + idx as u64)
    }

    /// Takes up to `count` blocks of `order` off the buddy lists of zone `zi` in one
    /// zone-lock round (Linux's `rmqueue_bulk`), handing each pfn to `take` (called under
    /// the zone lock, in the zone's order); returns how many it took.
    pub(super) fn rmqueue_bulk(
        &self,
        zi: usize,
        order: u32,
        mt: MigrateType,
        count: u64,
        mut take: impl FnMut(u64),
    ) -> u64 {
        let mut z = self.lock_zone(zi);
        let mut n = 0;
        while n < count {
            let Some(pfn) = z.rmqueue(order, mt, false) else {
                break;
            };
            take(pfn);
            n += 1;
        }
        n
    }

    /// Counts `n` pages allocated in zone `zi` by `cpu` (Linux's `pgalloc_<zone>`): in
    /// its per-CPU counters, or, from an interrupt that found them busy, in the zone's.
    pub(super) fn count_alloc(&self, cpu: CpuId, zi: usize, n: u64) {
        match self.try_local_pcp(cpu, zi) {
            Some(p) => p.count_alloc(n),
            None => {
                self.meta[zi].pgalloc.fetch_add(n, Relaxed);
            }
        }
    }
}
