//! The contiguous memory allocator's area (Linux's `mm/cma.c`, one area): `cma=SIZE`
//! turns a pageblock-aligned run of the Normal zone into Cma pageblocks at boot. Movable
//! allocations borrow its pages (see `Zone::rmqueue`); nothing else may.

use super::{PageAllocator, ZoneType, PAGEBLOCK_NR_PAGES};
use crate::addr::Pfn;

/// The CMA area's numbers (`/proc/meminfo`'s `CmaTotal`/`CmaFree`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CmaStats {
    /// First page frame of the area.
    pub base: Pfn,
    /// Pages in the area.
    pub pages: u64,
    /// Pages of it on the buddy free lists (not borrowed, not on per-CPU lists).
    pub free: u64,
}

impl PageAllocator {
    /// Declares the CMA area: `bytes` rounded up to whole pageblocks, placed as high as a
    /// free, aligned run allows (Linux's `cma_declare_contiguous`). Call once, early, when
    /// most memory is still free. `None` if there is no such run or an area exists.
    pub fn cma_declare(&self, bytes: u64) -> Option<CmaStats> {
        let pages = bytes.div_ceil(4096).div_ceil(PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES;
        let mut z = self.lock_zone(ZoneType::Normal.index());
        let base = z.declare_cma(pages)?;
        Some(CmaStats { base: Pfn(base), pages, free: z.free_cma_pages })
    }

    /// The CMA area, if one was declared.
    pub fn cma_stats(&self) -> Option<CmaStats> {
        let z = self.lock_zone(ZoneType::Normal.index());
        (z.cma.1 != 0).then(|| CmaStats { base: Pfn(z.cma.0), pages: z.cma.1, free: z.free_cma_pages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{PhysAddr, PAGE_SHIFT, PAGE_SIZE};
    use crate::cpu::CpuId;
    use crate::gfp::{Gfp, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};
    use crate::page_alloc::{MigrateType, Page};

    /// An allocator over `n` free pages from pfn 0, no watermarks.
    fn make(n: u64) -> &'static PageAllocator {
        let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
        let map: &'static [Page] = Box::leak((0..n).map(|_| Page::new()).collect());
        let all = [(PhysAddr::new(0), n * PAGE_SIZE as u64)];
        a.init(map, Pfn(0), PhysAddr::new(0), all, all).unwrap();
        a.set_min_free_kbytes(0);
        a
    }

    /// Every page `gfp` can get (the per-CPU lists drained once, for their last pages).
    fn take_all(a: &PageAllocator, gfp: Gfp) -> Vec<u64> {
        let mut v = Vec::new();
        for _ in 0..2 {
            while let Ok(p) = a.alloc_pages(gfp | Gfp::GFP_NOWARN, 0, CpuId::of(0)) {
                v.push(p.0);
            }
            a.drain_all();
        }
        v
    }

    #[test]
    fn declare_places_an_aligned_area_at_the_top() {
        let a = make(4096);
        assert_eq!(a.cma_stats(), None);
        assert_eq!(a.cma_declare(0), None);
        assert_eq!(a.cma_declare(8192 << PAGE_SHIFT), None, "larger than the zone");
        // 4 MiB: 1024 pages, aligned to 1024, as high as possible.
        let c = a.cma_declare(4 << 20).unwrap();
        assert_eq!(c, CmaStats { base: Pfn(3072), pages: 1024, free: 1024 });
        assert_eq!(a.cma_stats(), Some(c));
        assert_eq!(a.cma_declare(4 << 20), None, "one area only");
        a.check_invariants().unwrap();
        // A size is rounded up to whole pageblocks.
        let b = make(4096);
        assert_eq!(b.cma_declare(5000).unwrap().pages, 512);
        assert_eq!(b.cma_stats().unwrap().base, Pfn(3584));
        b.check_invariants().unwrap();
        // pagetypeinfo grows a CMA column only with an area.
        let mut pt = String::new();
        a.pagetypeinfo(&mut pt).unwrap();
        assert!(
            pt.contains(
                "type          CMA      0      0      0      0      0      0      0      0      0      0      1 "
            ),
            "{pt}"
        );
        assert!(pt.contains("HighAtomic          CMA \n"), "{pt}");
        assert!(pt.ends_with("            6            0            0            2 \n"), "{pt}");
    }

    #[test]
    fn declare_skips_busy_memory_and_needs_it_free() {
        let a = make(4096);
        // An unmovable page in the top 4 MiB: the area goes one aligned step lower.
        let mut held = take_all(a, GFP_KERNEL);
        held.sort_unstable();
        let top = held.pop().unwrap();
        assert!(top >= 3072);
        for p in held {
            a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
        }
        a.drain_all();
        assert_eq!(a.cma_declare(4 << 20).unwrap().base, Pfn(2048));
        a.check_invariants().unwrap();
        let full = make(1024);
        // (The low watermark keeps a few pages back.)
        assert!(take_all(full, GFP_KERNEL).len() > 1000);
        assert_eq!(full.cma_declare(2 << 20), None);
    }

    #[test]
    fn only_movable_requests_borrow_and_the_blocks_come_back() {
        let a = make(4096);
        a.cma_declare(4 << 20).unwrap();
        let cma = 3072..4096;
        // Free CMA (1024) is not more than half of free memory (4096): a movable request
        // takes the ordinary lists first, then borrows the area to the last page.
        let first = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, CpuId::of(0)).unwrap();
        assert!(!cma.contains(&first.0));
        let mut got = take_all(a, GFP_HIGHUSER_MOVABLE);
        got.push(first.0);
        // The low watermark keeps a few pages back.
        assert!(got.len() > 4096 - 16, "{}", got.len());
        let borrowed = got.iter().filter(|p| cma.contains(p)).count() as u64;
        assert_eq!(borrowed + a.cma_stats().unwrap().free, 1024);
        assert!(borrowed > 1024 - 16, "{borrowed}");
        a.check_invariants().unwrap();
        for p in got {
            a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
        }
        a.drain_all();
        a.check_invariants().unwrap();
        // Everything merged back, but never across the area's edge.
        let mut blocks = Vec::new();
        a.for_each_free_block(|_, p, o, m| blocks.push((p, o, m)));
        blocks.sort_unstable();
        assert_eq!(
            blocks,
            [(0, 11, MigrateType::Movable), (2048, 10, MigrateType::Movable), (3072, 10, MigrateType::Cma)]
        );
        assert_eq!(a.cma_stats().unwrap().free, 1024);
        // Unmovable and reclaimable requests never get an area page.
        for gfp in [GFP_KERNEL, GFP_KERNEL | Gfp::GFP_RECLAIMABLE] {
            let got = take_all(a, gfp);
            assert!(got.len() > 3072 - 16, "{gfp}: {}", got.len());
            assert!(got.iter().all(|p| !cma.contains(p)), "{gfp}");
            for p in got {
                a.free_pages(Pfn(p), 0, CpuId::of(0)).unwrap();
            }
            a.drain_all();
            assert_eq!(a.cma_stats().unwrap().free, 1024);
            a.check_invariants().unwrap();
        }
    }

    #[test]
    fn movable_requests_prefer_the_area_when_it_holds_most_free_memory() {
        let a = make(2048);
        let c = a.cma_declare(6 << 20).unwrap();
        assert_eq!((c.base, c.pages), (Pfn(0), 1536));
        let p = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, CpuId::of(0)).unwrap();
        assert!(p.0 < 1536, "{p:?}");
        let k = a.alloc_pages(GFP_KERNEL, 0, CpuId::of(0)).unwrap();
        assert!(k.0 >= 1536, "{k:?}");
        a.check_invariants().unwrap();
    }
}
