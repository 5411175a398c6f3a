//! What the zone lock publishes: the per-zone numbers read without the lock ([`ZoneMeta`],
//! for the lockless watermark check and reports), and the lock guard ([`ZoneGuard`]) whose
//! drop publishes them, so a change made under the lock cannot go unpublished.

use core::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use super::watermark::{WatermarkCheck, ZoneFree};
use super::{Watermarks, Zone};

/// Per-zone numbers read without the zone lock (watermark fast path, reports).
#[derive(Debug)]
pub(super) struct ZoneMeta {
    pub(super) free: AtomicU64,
    pub(super) reserved_highatomic: AtomicU64,
    /// Free pages on the Cma lists (unusable for requests without `ALLOC_CMA`).
    pub(super) free_cma: AtomicU64,
    pub(super) managed: AtomicU64,
    pub(super) present: AtomicU64,
    pub(super) start_pfn: AtomicU64,
    pub(super) end_pfn: AtomicU64,
    pub(super) min: AtomicU64,
    pub(super) low: AtomicU64,
    pub(super) high: AtomicU64,
    /// Pages this zone keeps back from requests that could use a higher zone.
    pub(super) lowmem_reserve: AtomicU64,
    /// Pages allocated and freed by interrupts that found their CPU's lists busy (the
    /// other events are counted per CPU, in `PerCpuPages`).
    pub(super) pgalloc: AtomicU64,
    pub(super) pgfree: AtomicU64,
    /// The per-CPU fast path's watermark check, cached: [`WatermarkCheck::headroom`] of
    /// [`WatermarkCheck::fast`] against `low`, without and with `ALLOC_CMA` (index
    /// `cma as usize`); recomputed at every publish and watermark change.
    pub(super) fast_headroom: [AtomicI64; 2],
}

impl ZoneMeta {
    pub(super) const fn new() -> ZoneMeta {
        ZoneMeta {
            free: AtomicU64::new(0),
            reserved_highatomic: AtomicU64::new(0),
            free_cma: AtomicU64::new(0),
            managed: AtomicU64::new(0),
            present: AtomicU64::new(0),
            start_pfn: AtomicU64::new(0),
            end_pfn: AtomicU64::new(0),
            min: AtomicU64::new(0),
            low: AtomicU64::new(0),
            high: AtomicU64::new(0),
            lowmem_reserve: AtomicU64::new(0),
            pgalloc: AtomicU64::new(0),
            pgfree: AtomicU64::new(0),
            fast_headroom: [AtomicI64::new(0), AtomicI64::new(0)],
        }
    }
    pub(super) fn wmarks(&self) -> Watermarks {
        Watermarks { min: self.min.load(Relaxed), low: self.low.load(Relaxed), high: self.high.load(Relaxed) }
    }
    /// The published counters the watermark rule reads (each a single load).
    pub(super) fn zone_free(&self) -> ZoneFree {
        ZoneFree {
            free: self.free.load(Relaxed),
            reserved_highatomic: self.reserved_highatomic.load(Relaxed),
            free_cma: self.free_cma.load(Relaxed),
        }
    }
    fn sync(&self, z: &Zone) {
        self.free.store(z.free_pages, Relaxed);
        self.reserved_highatomic.store(z.nr_reserved_highatomic, Relaxed);
        self.free_cma.store(z.free_cma_pages, Relaxed);
        let zf =
            ZoneFree { free: z.free_pages, reserved_highatomic: z.nr_reserved_highatomic, free_cma: z.free_cma_pages };
        let low = self.low.load(Relaxed);
        for (cma, h) in self.fast_headroom.iter().enumerate() {
            h.store(WatermarkCheck::fast(low, cma != 0).headroom(zf), Relaxed);
        }
    }
}

/// A held zone lock (from [`PageAllocator::lock_zone`]). Dropping it publishes the zone's
/// free, reserved-highatomic and free CMA counts to its [`ZoneMeta`], which the lockless watermark
/// check reads, before the lock is released: no change under the lock can go unpublished.
pub(super) struct ZoneGuard<'a> {
    pub(super) zone: crate::sync::SpinLockGuard<'a, Zone>,
    pub(super) meta: &'a ZoneMeta,
}

impl core::ops::Deref for ZoneGuard<'_> {
    type Target = Zone;
    fn deref(&self) -> &Zone {
        &self.zone
    }
}

impl core::ops::DerefMut for ZoneGuard<'_> {
    fn deref_mut(&mut self) -> &mut Zone {
        &mut self.zone
    }
}

impl Drop for ZoneGuard<'_> {
    fn drop(&mut self) {
        // Runs before the field `zone` drops, so still under the lock.
        self.meta.sync(&self.zone);
    }
}
