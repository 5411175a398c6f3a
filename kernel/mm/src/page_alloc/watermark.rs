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

/// What the watermark rule reads of a zone: its free pages on the buddy lists (Linux's
/// `NR_FREE_PAGES`) and the two parts of them a request may be barred from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ZoneFree {
    /// Free pages on the buddy lists (per-CPU lists not included).
    pub free: u64,
    /// Pages in HighAtomic-reserved pageblocks (usable only with `ALLOC_HARDER`).
    pub reserved_highatomic: u64,
    /// Free pages on the Cma lists (`NR_FREE_CMA_PAGES`, usable only with `ALLOC_CMA`).
    pub free_cma: u64,
}

/// One request's watermark question (Linux's `__zone_watermark_ok` arguments apart from
/// the zone and the order): the mark, the request's flags, and the zone's
/// `lowmem_reserve` against the request's highest zone (0 in that zone itself).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WatermarkCheck {
    /// The watermark's value in pages (from [`AllocFlags::wmark`]).
    pub mark: u64,
    /// The request's flags.
    pub flags: AllocFlags,
    /// Pages this zone keeps back from the request.
    pub lowmem_reserve: u64,
}

impl WatermarkCheck {
    /// The per-CPU fast path's question: the low mark, [`AllocFlags::LOW`] (with
    /// `ALLOC_CMA` if `cma`), the request's own highest zone (no reserve).
    pub const fn fast(low: u64, cma: bool) -> WatermarkCheck {
        WatermarkCheck { mark: low, flags: AllocFlags { cma, ..AllocFlags::LOW }, lowmem_reserve: 0 }
    }

    /// Linux's `__zone_watermark_ok`, the one watermark rule of every path: whether zone
    /// `z` allows an allocation of `order`. `has_free()` says whether a free block of at
    /// least `order` exists on a list the request may use (asked only for `order > 0`).
    /// Pages the request may not use are not counted: the HighAtomic reserve without
    /// `ALLOC_HARDER`, and free CMA pages without `ALLOC_CMA`, so that an unmovable
    /// request does not pass on pages only a movable one could get.
    #[inline]
    pub fn ok(&self, z: ZoneFree, order: u32, has_free: impl FnOnce() -> bool) -> bool {
        if self.flags.no_watermarks {
            return order == 0 || has_free();
        }
        fits(self.headroom(z), order) && (order == 0 || has_free())
    }

    /// The order-free part of [`Self::ok`]: the free pages the request may use minus its
    /// (lowered) mark and the reserve. A block of `order` passes iff [`fits`] says so.
    /// The per-CPU fast path reads this number cached for [`Self::fast`] (recomputed at
    /// every publish of the zone's counters and every watermark change), so that its
    /// check is one compare, by the same rule.
    #[inline]
    pub const fn headroom(&self, z: ZoneFree) -> i64 {
        let mut free = z.free as i64;
        let mut min = self.mark as i64;
        if self.flags.high {
            min -= min / 2;
        }
        if !self.flags.harder {
            free -= z.reserved_highatomic as i64;
        } else {
            min -= min / 4;
        }
        if !self.flags.cma {
            free -= z.free_cma as i64;
        }
        free - min - self.lowmem_reserve as i64
    }
}

/// Whether a block of `order` fits above the mark: Linux's
/// `free - ((1 << order) - 1) > min + reserve`, written on [`WatermarkCheck::headroom`]
/// (`free - min - reserve`) as `headroom >= 1 << order`.
#[inline(always)]
pub const fn fits(headroom: i64, order: u32) -> bool {
    fits_pages(headroom, 1 << order)
}

/// [`fits`] for a block of `pages` (`1 << order`) pages.
#[inline(always)]
pub const fn fits_pages(headroom: i64, pages: u64) -> bool {
    headroom >= pages as i64
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

    /// `int_sqrt` is the floor of the square root (`r² <= x < (r+1)²`, in u128) for every
    /// small number, both sides of every square up to 2^20, and the top of the range;
    /// `default_min_free_kbytes` is that root of 16 times the memory, clamped.
    #[test]
    fn int_sqrt_is_the_floor_of_the_root() {
        let floor_root = |x: u64, r: u64| {
            let (x, r) = (u128::from(x), u128::from(r));
            r * r <= x && x < (r + 1) * (r + 1)
        };
        let squares = (1..1u64 << 20).step_by(997).flat_map(|k| [k * k - 1, k * k, k * k + 1]);
        let top = (0..64u64).map(|i| u64::MAX - i).chain([(1 << 32) - 1, 1 << 32, (1 << 32) + 1]);
        for x in (0..5000u64).chain(squares).chain(top) {
            let r = int_sqrt(x);
            assert!(floor_root(x, r), "int_sqrt({x}) = {r}");
            let kb = x / 16;
            let want = int_sqrt(kb * 16).clamp(128, 262_144);
            assert_eq!(default_min_free_kbytes(kb), want, "{kb} KiB");
        }
    }

    /// `ALLOC_NO_WATERMARKS` comes from `__GFP_MEMALLOC` unless `__GFP_NOMEMALLOC` forbids
    /// it, which also takes `ALLOC_HARDER` from `GFP_ATOMIC` (Linux's `gfp_to_alloc_flags`).
    #[test]
    fn nomemalloc_forbids_the_reserves() {
        let memalloc = AllocFlags::slowpath(GFP_KERNEL | Gfp::GFP_MEMALLOC);
        assert!(memalloc.no_watermarks && !memalloc.harder);
        let both = AllocFlags::slowpath(GFP_KERNEL | Gfp::GFP_MEMALLOC | Gfp::GFP_NOMEMALLOC);
        assert!(!both.no_watermarks);
        assert!(!AllocFlags::slowpath(GFP_KERNEL | Gfp::GFP_NOMEMALLOC).no_watermarks);
        let atomic = AllocFlags::slowpath(GFP_ATOMIC | Gfp::GFP_NOMEMALLOC);
        assert!(atomic.high && !atomic.harder && !atomic.no_watermarks);
    }

    /// `(free, highatomic, cma)` as a zone, a check of `mark` with `flags` and `reserve`.
    fn zf(free: u64, reserved_highatomic: u64, free_cma: u64) -> ZoneFree {
        ZoneFree { free, reserved_highatomic, free_cma }
    }
    fn wc(mark: u64, flags: AllocFlags, lowmem_reserve: u64) -> WatermarkCheck {
        WatermarkCheck { mark, flags, lowmem_reserve }
    }

    #[test]
    fn flags_and_check() {
        let k = AllocFlags::slowpath(GFP_KERNEL);
        assert!(!k.high && !k.harder);
        let a = AllocFlags::slowpath(GFP_ATOMIC);
        assert!(a.high && a.harder && a.wmark == Wmark::Min);
        let n = AllocFlags::slowpath(GFP_NOWAIT);
        assert!(!n.high && !n.harder);
        let m = AllocFlags::slowpath(GFP_HIGHUSER_MOVABLE);
        assert!(m.cma && !n.cma && !a.cma && !k.cma);
        assert!(AllocFlags::low(GFP_HIGHUSER_MOVABLE).cma && !AllocFlags::low(GFP_KERNEL).cma);
        // (zone, check, order, a free block of the order exists, expected); mark 100.
        let table = [
            // min = 100: normal needs free > 100, atomic needs free > 100 - 50 - 12 = 38.
            (zf(100, 0, 0), wc(100, n, 0), 0, true, false),
            (zf(101, 0, 0), wc(100, n, 0), 0, true, true),
            (zf(39, 0, 0), wc(100, a, 0), 0, true, true),
            (zf(38, 0, 0), wc(100, a, 0), 0, true, false),
            // High-order needs a block, and (1 << order) - 1 pages are discounted.
            (zf(200, 0, 0), wc(100, n, 0), 2, false, false),
            (zf(103, 0, 0), wc(100, n, 0), 2, true, false),
            (zf(104, 0, 0), wc(100, n, 0), 2, true, true),
            // The highatomic reserve is not free for ordinary requests, nor the lowmem
            // reserve for a request that may use a higher zone.
            (zf(150, 50, 0), wc(100, n, 0), 0, true, false),
            (zf(151, 50, 0), wc(100, n, 0), 0, true, true),
            (zf(150, 0, 0), wc(100, n, 50), 0, true, false),
            (zf(151, 0, 0), wc(100, n, 50), 0, true, true),
            // ... but the highatomic reserve is free for ALLOC_HARDER.
            (zf(150, 120, 0), wc(100, a, 0), 0, true, true),
            // Free CMA pages count only for movable requests (ALLOC_CMA).
            (zf(150, 0, 100), wc(100, m, 0), 0, true, true),
            (zf(150, 0, 100), wc(100, n, 0), 0, true, false),
            // Atomic: 150 - 120 = 30 usable, not above its lowered min of 38.
            (zf(150, 0, 0), wc(100, a, 0), 0, true, true),
            (zf(150, 0, 120), wc(100, a, 0), 0, true, false),
            // ALLOC_NO_WATERMARKS: only the block matters.
            (zf(0, 0, 0), wc(100, AllocFlags { no_watermarks: true, ..n }, 0), 0, false, true),
            (zf(0, 0, 0), wc(100, AllocFlags { no_watermarks: true, ..n }, 0), 1, false, false),
            (zf(0, 0, 0), wc(100, AllocFlags { no_watermarks: true, ..n }, 0), 1, true, true),
        ];
        for (i, &(z, c, order, has, want)) in table.iter().enumerate() {
            assert_eq!(c.ok(z, order, || has), want, "row {i}: {z:?} {c:?} order {order}");
        }
    }

    /// Linux's `__zone_watermark_ok` as written (mm/page_alloc.c), the model.
    fn linux(z: ZoneFree, order: u32, c: WatermarkCheck, has_free: bool) -> bool {
        let f = c.flags;
        if f.no_watermarks {
            return order == 0 || has_free;
        }
        let mut free_pages = z.free as i128 - ((1i128 << order) - 1);
        let mut min = c.mark as i128;
        if f.high {
            min -= min / 2;
        }
        if f.harder {
            min -= min / 4;
        } else {
            free_pages -= z.reserved_highatomic as i128;
        }
        if !f.cma {
            free_pages -= z.free_cma as i128;
        }
        if free_pages <= min + c.lowmem_reserve as i128 {
            return false;
        }
        order == 0 || has_free
    }

    /// The rule and the fast path's cached form of it ([`WatermarkCheck::fast`]'s
    /// headroom with [`fits`]) agree with the model over a grid around every boundary.
    #[test]
    fn rule_and_fast_form_match_linux() {
        let mut cases = 0;
        for free in (0..300u64).step_by(7).chain(95..110) {
            for (ha, cma) in [(0, 0), (17, 0), (0, 33), (64, 90)] {
                let z = zf(free, ha, cma);
                for mark in [0u64, 1, 37, 100, 160] {
                    for reserve in [0u64, 5] {
                        for bits in 0..32u32 {
                            let flags = AllocFlags {
                                wmark: Wmark::Min,
                                high: bits & 1 != 0,
                                harder: bits & 2 != 0,
                                no_watermarks: bits & 4 != 0,
                                cma: bits & 8 != 0,
                            };
                            let c = wc(mark, flags, reserve);
                            for order in 0..=5 {
                                for has in [false, true] {
                                    assert_eq!(c.ok(z, order, || has), linux(z, order, c, has), "{z:?} {c:?} {order}");
                                    cases += 1;
                                }
                            }
                        }
                        for cma_flag in [false, true] {
                            let c = WatermarkCheck::fast(mark, cma_flag);
                            assert_eq!(c.flags, AllocFlags { cma: cma_flag, ..AllocFlags::LOW });
                            for order in 0..=3 {
                                assert_eq!(fits(c.headroom(z), order), linux(z, order, c, true));
                            }
                        }
                    }
                }
            }
        }
        assert!(cases > 100_000);
    }
}
