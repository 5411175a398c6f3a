//! Setting the page allocator up: Linux's `free_area_init` + `memblock_free_all` (every
//! descriptor reserved, the free ranges handed to the zones as maximal aligned blocks,
//! watermarks and per-CPU batch sizes computed).

use core::sync::atomic::Ordering::Relaxed;

use super::page::PageState;
use super::{pcp, watermark, MemMap, MigrateType, Page, PageAllocator, ZoneType, MAX_NR_ZONES, MAX_PAGE_ORDER};
use crate::addr::{Pfn, PhysAddr, PAGE_SHIFT, PAGE_SIZE};

/// `init` refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InitError {
    /// `init` already ran (or is running).
    AlreadyInitialized,
    /// `mem_map` is empty or has `u32::MAX` or more entries.
    BadMemMap,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::AlreadyInitialized => "page allocator already initialized",
            Self::BadMemMap => "mem_map empty or too large",
        })
    }
}

impl PageAllocator {
    /// Sets the allocator up, like Linux's `free_area_init` + `memblock_free_all`.
    ///
    /// - `mem_map`: one blank descriptor per frame from `base_pfn` on (the kernel places
    ///   it with memblock; host tests leak a `Vec`).
    /// - `dma_limit`: frames below it form the DMA zone, the rest Normal; pass 0 for no
    ///   DMA zone (the Pi).
    /// - `memory`: RAM ranges `(base, size)`, disjoint; they give `present` pages.
    /// - `free`: ranges `(base, size)` to hand to the allocator (memory minus memblock
    ///   reservations); freed as maximal naturally aligned blocks. Overlaps are harmless;
    ///   parts outside `mem_map` are ignored. Every other frame stays reserved.
    pub fn init(
        &self,
        mem_map: &'static [Page],
        base_pfn: Pfn,
        dma_limit: PhysAddr,
        memory: impl IntoIterator<Item = (PhysAddr, u64)>,
        free: impl IntoIterator<Item = (PhysAddr, u64)>,
    ) -> Result<(), InitError> {
        if mem_map.is_empty() || mem_map.len() >= u32::MAX as usize {
            return Err(InitError::BadMemMap);
        }
        if self.initializing.swap(true, Relaxed) {
            return Err(InitError::AlreadyInitialized);
        }
        let mm = MemMap { pages: mem_map, base_pfn: base_pfn.0 };
        let base = base_pfn.0;
        let end = base + mem_map.len() as u64;
        let dma_end = dma_limit.pfn().0.clamp(base, end);
        let spans = [(base, dma_end), (dma_end, end)];
        let zone_of = |pfn: u64| {
            if pfn < dma_end {
                ZoneType::Dma
            } else {
                ZoneType::Normal
            }
        };
        for (i, p) in mem_map.iter().enumerate() {
            p.set_state(PageState::Reserved);
            p.set_owner(0);
            p.init_info(zone_of(base + i as u64), MigrateType::Movable);
        }
        // Page range of (base, size), clipped to mem_map.
        let clip = |(pa, size): (PhysAddr, u64)| {
            let s = pa.align_up(PAGE_SIZE as u64).pfn().0.max(base);
            let e = (pa.as_u64().saturating_add(size) >> PAGE_SHIFT).min(end);
            (s, e.max(s))
        };
        let mut present = [0u64; MAX_NR_ZONES];
        for r in memory {
            let (s, e) = clip(r);
            for (z, &(zs, ze)) in spans.iter().enumerate() {
                present[z] += e.min(ze).saturating_sub(s.max(zs));
            }
        }
        for r in free {
            let (s, e) = clip(r);
            for pfn in s..e {
                mm.at(mm.idx(pfn)).set_state(PageState::Unmarked);
            }
        }
        for (zi, &(zs, ze)) in spans.iter().enumerate() {
            let mut z = self.lock_zone(zi);
            z.mm = mm;
            z.start_pfn = zs;
            z.end_pfn = ze;
            let mut p = zs;
            while p < ze {
                if mm.at(mm.idx(p)).state() != PageState::Unmarked {
                    p += 1;
                    continue;
                }
                let mut e = p;
                while e < ze && mm.at(mm.idx(e)).state() == PageState::Unmarked {
                    e += 1;
                }
                // Maximal naturally aligned blocks, like __free_pages_memory.
                while p < e {
                    let order = MAX_PAGE_ORDER.min(p.trailing_zeros()).min(63 - (e - p).leading_zeros());
                    z.managed_pages += 1 << order;
                    let mt = z.pageblock_mt(p);
                    z.free_one(p, order, mt);
                    p += 1 << order;
                }
            }
            let m = &self.meta[zi];
            m.managed.store(z.managed_pages, Relaxed);
            m.present.store(present[zi], Relaxed);
            m.start_pfn.store(zs, Relaxed);
            m.end_pfn.store(ze, Relaxed);
        }
        let managed: u64 = self.meta.iter().map(|m| m.managed.load(Relaxed)).sum();
        self.set_min_free_kbytes(watermark::default_min_free_kbytes(managed * 4));
        for (zi, m) in self.meta.iter().enumerate() {
            let (high, batch) = pcp::zone_batchsize(m.managed.load(Relaxed));
            // Before any CPU allocates (the allocator is not published yet).
            for cpu in &self.pcp {
                cpu[zi].set_high_batch(high, batch);
            }
        }
        self.mem_map.set(mm);
        Ok(())
    }

    /// [`Self::init`] from a memblock: its memory as present, its free ranges as free.
    pub fn init_from_memblock(
        &self,
        mem_map: &'static [Page],
        base_pfn: Pfn,
        dma_limit: PhysAddr,
        mb: &crate::memblock::Memblock,
    ) -> Result<(), InitError> {
        self.init(
            mem_map,
            base_pfn,
            dma_limit,
            mb.memory().iter().map(|r| (PhysAddr::new(r.base), r.size)),
            mb.free_ranges().map(|(s, e)| (PhysAddr::new(s), e - s)),
        )
    }
}
