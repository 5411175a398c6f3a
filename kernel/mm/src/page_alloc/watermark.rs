//! Zone watermarks (min/low/high) and the check every allocation passes, as Linux computes
//! them (`__setup_per_zone_wmarks`, `__zone_watermark_ok`).
//!
//! There is no reclaim here: a `GFP_KERNEL` request that would take a zone below its *low*
//! watermark fails instead of sleeping; non-sleeping requests may go down to *min*, and
//! `GFP_ATOMIC` (`__GFP_HIGH` + `__GFP_ATOMIC`) below it.

use crate::gfp::Gfp;

/// Which watermark a request is checked against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wmark {
    /// `WMARK_MIN`.
    Min,
    /// `WMARK_LOW`.
    Low,
    /// `WMARK_HIGH`.
    High,
}

/// Linux's `alloc_flags` relevant here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AllocFlags {
    /// The watermark checked.
    pub wmark: Wmark,
    /// `ALLOC_HIGH` (from `__GFP_HIGH`): min reduced by half.
    pub high: bool,
    /// `ALLOC_HARDER` (from `__GFP_ATOMIC` without `__GFP_NOMEMALLOC`): min reduced by a
    /// further quarter, and the HighAtomic reserve may be used.
    pub harder: bool,
    /// `ALLOC_NO_WATERMARKS` (`__GFP_MEMALLOC`).
    pub no_watermarks: bool,
    /// `ALLOC_CMA` (a movable request): free CMA pages count towards the watermark and
    /// free CMA blocks as blocks of the order. Without it they are unusable free memory.
    pub cma: bool,
}

impl AllocFlags {
    /// The fast-path flags: the low watermark, nothing special (not even CMA).
    pub const LOW: AllocFlags =
        AllocFlags { wmark: Wmark::Low, high: false, harder: false, no_watermarks: false, cma: false };

    /// The fast-path flags of a request: [`Self::LOW`], with `ALLOC_CMA` if it is movable
    /// (Linux's `gfp_to_alloc_flags_cma`).
    pub const fn low(gfp: Gfp) -> AllocFlags {
        AllocFlags { cma: gfp.contains(Gfp::GFP_MOVABLE), ..Self::LOW }
    }

    /// Linux's `gfp_to_alloc_flags` for the slow path (there is no reclaim to try first).
    pub const fn slowpath(gfp: Gfp) -> AllocFlags {
        AllocFlags {
            wmark: Wmark::Min,
            high: gfp.contains(Gfp::GFP_HIGH),
            harder: gfp.contains(Gfp::GFP_ATOMIC) && !gfp.contains(Gfp::GFP_NOMEMALLOC),
            no_watermarks: gfp.contains(Gfp::GFP_MEMALLOC) && !gfp.contains(Gfp::GFP_NOMEMALLOC),
            cma: gfp.contains(Gfp::GFP_MOVABLE),
        }
    }
}

/// A zone's three watermarks, in pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Watermarks {
    /// `WMARK_MIN`.
    pub min: u64,
    /// `WMARK_LOW`.
    pub low: u64,
    /// `WMARK_HIGH`.
    pub high: u64,
}

impl Watermarks {
    /// The value of one mark.
    pub const fn get(&self, w: Wmark) -> u64 {
        match w {
            Wmark::Min => self.min,
            Wmark::Low => self.low,
            Wmark::High => self.high,
        }
    }
}

/// Integer square root (Linux's `int_sqrt`).
pub const fn int_sqrt(x: u64) -> u64 {
    if x < 2 {
        return x;
    }
    let mut lo = 1u64;
    let mut hi = if x < (1 << 32) { x } else { 1 << 32 };
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if mid <= x / mid {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Linux's default `min_free_kbytes`: `sqrt(lowmem_kbytes * 16)` clamped to 128..=262144.
pub const fn default_min_free_kbytes(lowmem_kbytes: u64) -> u64 {
    let v = int_sqrt(lowmem_kbytes * 16);
    if v < 128 {
        128
    } else if v > 262_144 {
        262_144
    } else {
        v
    }
}

/// Linux's `__setup_per_zone_wmarks` for one zone: its share of `min_free_kbytes` in
/// proportion to its managed pages, then `low`/`high` a quarter of min (or 0.1% of the
/// zone, `watermark_scale_factor = 10`) above it.
pub const fn zone_watermarks(min_free_kbytes: u64, zone_managed: u64, lowmem_pages: u64) -> Watermarks {
    if lowmem_pages == 0 {
        return Watermarks { min: 0, low: 0, high: 0 };
    }
    let pages_min = min_free_kbytes >> (crate::addr::PAGE_SHIFT - 10);
    let min = pages_min * zone_managed / lowmem_pages;
    let a = min >> 2;
    let b = zone_managed * 10 / 10_000;
    let tmp = if a > b { a } else { b };
    Watermarks { min, low: min + tmp, high: min + 2 * tmp }
}

/// Linux's `__zone_watermark_ok`: whether `free_pages` (buddy pages of the zone) allow an
/// allocation of `order` against `mark`. `has_free()` says whether a free block of at
/// least `order` exists on a list the request may use. Pages the request may not use are
/// not counted: the HighAtomic reserve without `ALLOC_HARDER`, and the zone's free CMA
/// pages (`free_cma`, Linux's `NR_FREE_CMA_PAGES`) without `ALLOC_CMA`, so that an
/// unmovable request does not pass on pages only a movable one could get.
/// The per-CPU fast path calls it too (inlined there, with its flags constant).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn watermark_ok(
    free_pages: u64,
    order: u32,
    mark: u64,
    flags: AllocFlags,
    reserved_highatomic: u64,
    free_cma: u64,
    lowmem_reserve: u64,
    has_free: impl FnOnce() -> bool,
) -> bool {
    if flags.no_watermarks {
        return order == 0 || has_free();
    }
    let mut free = free_pages as i64 - ((1i64 << order) - 1);
    let mut min = mark as i64;
    if flags.high {
        min -= min / 2;
    }
    if !flags.harder {
        free -= reserved_highatomic as i64;
    } else {
        min -= min / 4;
    }
    if !flags.cma {
        free -= free_cma as i64;
    }
    if free <= min + lowmem_reserve as i64 {
        return false;
    }
    order == 0 || has_free()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::{GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_NOWAIT};

    #[test]
    fn linux_numbers() {
        assert_eq!(int_sqrt(0), 0);
        assert_eq!(int_sqrt(15), 3);
        assert_eq!(int_sqrt(16), 4);
        assert_eq!(int_sqrt(u64::MAX), 4_294_967_295);
        // A Pi 3 with 900 MiB managed: min_free_kbytes = sqrt(921600 * 16) = 3840.
        let kb = default_min_free_kbytes(900 * 1024);
        assert_eq!(kb, 3840);
        let w = zone_watermarks(kb, 230_400, 230_400);
        assert_eq!(w, Watermarks { min: 960, low: 1200, high: 1440 });
        assert_eq!(default_min_free_kbytes(10), 128);
        assert_eq!(default_min_free_kbytes(u64::MAX / 32), 262_144);
    }

    #[test]
    fn flags_and_check() {
        let k = AllocFlags::slowpath(GFP_KERNEL);
        assert!(!k.high && !k.harder);
        let a = AllocFlags::slowpath(GFP_ATOMIC);
        assert!(a.high && a.harder && a.wmark == Wmark::Min);
        let n = AllocFlags::slowpath(GFP_NOWAIT);
        assert!(!n.high && !n.harder);
        // min = 100: normal needs free > 100, atomic needs free > 100 - 50 - 12 = 38.
        assert!(!watermark_ok(100, 0, 100, n, 0, 0, 0, || true));
        assert!(watermark_ok(101, 0, 100, n, 0, 0, 0, || true));
        assert!(watermark_ok(39, 0, 100, a, 0, 0, 0, || true));
        assert!(!watermark_ok(38, 0, 100, a, 0, 0, 0, || true));
        // High-order needs a block, and (1 << order) - 1 pages are discounted.
        assert!(!watermark_ok(200, 2, 100, n, 0, 0, 0, || false));
        assert!(!watermark_ok(103, 2, 100, n, 0, 0, 0, || true));
        assert!(watermark_ok(104, 2, 100, n, 0, 0, 0, || true));
        // The highatomic reserve is not free for ordinary requests.
        assert!(!watermark_ok(150, 0, 100, n, 50, 0, 0, || true));
        assert!(!watermark_ok(150, 0, 100, n, 0, 0, 50, || true));
        // Free CMA pages count only for movable requests (ALLOC_CMA).
        let m = AllocFlags::slowpath(GFP_HIGHUSER_MOVABLE);
        assert!(m.cma && !n.cma && !a.cma && !k.cma);
        assert!(AllocFlags::low(GFP_HIGHUSER_MOVABLE).cma && !AllocFlags::low(GFP_KERNEL).cma);
        assert!(watermark_ok(150, 0, 100, m, 0, 100, 0, || true));
        assert!(!watermark_ok(150, 0, 100, n, 0, 100, 0, || true));
        // Atomic: 150 - 120 = 30 usable, not above its lowered min of 38.
        assert!(watermark_ok(150, 0, 100, a, 0, 0, 0, || true));
        assert!(!watermark_ok(150, 0, 100, a, 0, 120, 0, || true));
    }
}
