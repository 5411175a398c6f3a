//! The page allocator's invariant checker (a debugging aid for tests and the `mm> check`
//! path): walks every free list, per-CPU list and descriptor and counts pages by state.

use core::sync::atomic::Ordering::Relaxed;

use super::page::{self, PageState};
use super::{
    migratetype, MigrateType, PageAllocator, PerCpuPages, Zone, ZoneGuard, MAX_NR_ZONES, NR_CPUS, PAGEBLOCK_NR_PAGES,
    PCP_MAX_ORDER,
};

/// Every page of `mem_map` by state (from [`check_invariants`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PageCensus {
    /// Pages in blocks on buddy lists.
    pub buddy_free: u64,
    /// Pages on per-CPU lists.
    pub pcp_free: u64,
    /// Pages in live allocations.
    pub allocated: u64,
    /// Reserved pages.
    pub reserved: u64,
}

impl PageCensus {
    /// All pages counted.
    pub const fn total(&self) -> u64 {
        self.buddy_free + self.pcp_free + self.allocated + self.reserved
    }
}

/// Every pageblock's type, against what the zone's counters say: each descriptor of a
/// pageblock carries the same type; the CMA area's pageblocks are all Cma (`cma_alloc`
/// isolates the area with a flag, not a type, so there is no exception) and no other
/// one is; the HighAtomic pageblocks are the reserve `nr_reserved_highatomic` counts.
fn check_pageblocks(z: &Zone) -> Result<(), &'static str> {
    let (base, pages) = z.cma;
    let mut p = z.start_pfn;
    while p < z.end_pfn {
        let end = ((p | (PAGEBLOCK_NR_PAGES - 1)) + 1).min(z.end_pfn);
        let mt = z.pageblock_mt(p);
        if (p..end).any(|q| z.mm.pfn_to_page(q).is_some_and(|pg| pg.block_mt() != mt)) {
            return Err("pageblock whose pages disagree on its migratetype");
        }
        if (mt == MigrateType::Cma) != (p >= base && p < base + pages) {
            return Err("CMA area pageblock changed type (or a pageblock outside it is CMA)");
        }
        p = end;
    }
    let counts = z.pageblock_counts();
    if counts[MigrateType::Cma.index()] * PAGEBLOCK_NR_PAGES != pages {
        return Err("CMA pageblock count does not match the area");
    }
    if counts[MigrateType::HighAtomic.index()] * PAGEBLOCK_NR_PAGES != z.nr_reserved_highatomic {
        return Err("HighAtomic pageblock count does not match nr_reserved_highatomic");
    }
    if z.free_cma_pages > pages {
        return Err("more free CMA pages than the area has");
    }
    Ok(())
}

/// Checks every structure (a debugging aid, O(mem_map)): list links, flags and counts
/// of every free list and per-CPU list, that each page is in exactly one state, and
/// every pageblock's type (the CMA area's still Cma, the HighAtomic reserve counted).
/// Returns the census, or what is wrong.
pub fn check_invariants(pages: &PageAllocator) -> Result<PageCensus, &'static str> {
    let Some(mm) = pages.mem_map.get() else {
        return Ok(PageCensus::default());
    };
    let mm = &mm;
    // The guards are released in array order, not in reverse: one mask around them.
    let _irq = crate::sync::IrqGuard::new();
    // The per-CPU lists belong to their CPUs and have no lock: read them while no
    // other CPU allocates (at the prompt, after `stress`), or expect a false alarm.
    let pcps: &[[PerCpuPages; MAX_NR_ZONES]; NR_CPUS] = &pages.pcp;
    let zones: [ZoneGuard<'_>; MAX_NR_ZONES] = core::array::from_fn(|z| pages.lock_zone(z));
    let mut c = PageCensus::default();
    let mut heads = 0u64;
    for (zi, z) in zones.iter().enumerate() {
        let mut free = 0;
        let mut free_cma = 0;
        for (o, a) in z.free_area.iter().enumerate() {
            let mut n = 0;
            for m in MigrateType::ALL {
                let mut prev = page::NIL;
                for idx in a.iter(mm, m.index()) {
                    let p = mm.at(idx);
                    if p.prev() != prev {
                        return Err("free list prev link broken");
                    }
                    if p.state() != (PageState::Buddy { order: o as u32, mt: m }) {
                        return Err("page on free list without matching PageBuddy flags");
                    }
                    let pfn = mm.base_pfn + idx as u64;
                    if pfn & ((1 << o) - 1) != 0 || pfn < z.start_pfn || pfn + (1 << o) > z.end_pfn {
                        return Err("free block misaligned or outside its zone");
                    }
                    if p.zone().index() != zi {
                        return Err("free block in the wrong zone");
                    }
                    // A CMA block is on the Cma lists, and only a CMA block is.
                    if (m == MigrateType::Cma) != (p.block_mt() == MigrateType::Cma)
                        || (m == MigrateType::Cma && (pfn < z.cma.0 || pfn + (1 << o) > z.cma.0 + z.cma.1))
                    {
                        return Err("free block on the wrong side of the CMA area's lists");
                    }
                    if m == MigrateType::Cma {
                        free_cma += 1u64 << o;
                    }
                    prev = idx;
                    n += 1;
                }
            }
            if n != a.nr_free {
                return Err("nr_free does not match the lists");
            }
            heads += n;
            free += n << o;
        }
        if free != z.free_pages || free != pages.meta[zi].free.load(Relaxed) {
            return Err("zone free_pages does not match the lists");
        }
        if free_cma != z.free_cma_pages {
            return Err("zone free_cma_pages does not match the Cma lists");
        }
        check_pageblocks(z)?;
    }
    for cpu in pcps {
        for p in cpu {
            let mut n = 0;
            for (o, l) in (0..=PCP_MAX_ORDER).flat_map(|o| (0..migratetype::MIGRATE_PCPTYPES).map(move |l| (o, l))) {
                let mut cur = p.lists_head(o, l);
                while cur != page::NIL {
                    if !matches!(mm.at(cur).state(), PageState::Pcp { order, .. } if order == o) {
                        return Err("page on pcp list without the pcp flag");
                    }
                    n += 1 << o;
                    if n > mm.pages.len() as u64 {
                        return Err("pcp list loops");
                    }
                    cur = mm.at(cur).next();
                }
            }
            if n != p.count() {
                return Err("pcp count does not match its lists");
            }
        }
    }
    let mut i = 0usize;
    let mut seen_heads = 0;
    while i < mm.pages.len() {
        let s = mm.pages[i].state();
        if let Some(order) = s.block_order() {
            let n = 1usize << order;
            if i + n > mm.pages.len() {
                return Err("block runs past mem_map");
            }
            for t in &mm.pages[i + 1..i + n] {
                let ts = t.state();
                let compound = matches!(s, PageState::Head { compound: true, .. });
                let ok = ts == PageState::Unmarked || (compound && ts == PageState::Tail);
                if !ok {
                    return Err("page inside a block has flags of its own");
                }
            }
            if let PageState::Buddy { .. } = s {
                seen_heads += 1;
                c.buddy_free += n as u64;
            } else if let PageState::Pcp { .. } = s {
                c.pcp_free += n as u64;
            } else {
                c.allocated += n as u64;
            }
            i += n;
        } else if s == PageState::Reserved {
            c.reserved += 1;
            i += 1;
        } else {
            return Err("page in no state (not free, allocated or reserved)");
        }
    }
    if seen_heads != heads {
        return Err("PageBuddy page not on a free list");
    }
    let pcp_total: u64 = pcps.iter().flatten().map(PerCpuPages::count).sum();
    if pcp_total != c.pcp_free {
        return Err("pcp pages not all on pcp lists");
    }
    Ok(c)
}
