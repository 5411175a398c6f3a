//! `virt_to_slab` for `kfree`'s fast path: which cache's slab holds a linear-map page,
//! by arithmetic on the address and one byte load.
//!
//! Linux reads the cache from the page descriptor (`virt_to_slab(obj)->slab_cache`). Ours
//! keeps the same fact in the page's owner word, but reaching it goes through the page
//! source and the page allocator's checks (is the descriptor array set up, is the frame
//! inside it, is the page allocated). So the slab layer keeps its own byte per page of the
//! linear map: 0, or a bit and the registry index of the cache whose slab holds the page. It is
//! written where the owner word is, when a slab is made and when it is given back, and
//! only for caches without debugging: a debug cache's objects, large blocks and foreign
//! pointers all read 0 and take the owner-word path with its checks.
//!
//! The table covers [`SLAB_MAP_PAGES`] pages from the start of the source's linear map
//! ([`PageSource::linear_map`](crate::page_source::PageSource::linear_map)), 1 GiB, all
//! of a Raspberry Pi 3's memory; a slab page beyond it reads 0 and is freed through the
//! owner word (correct, only slower).

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

use crate::addr::PAGE_SHIFT;

/// Pages the table covers (one byte each).
pub const SLAB_MAP_PAGES: usize = 1 << 18;

/// The bit of an entry that says a cache index follows in the low bits.
const MAPPED: u8 = 0x80;
const INDEX_MASK: u8 = (super::MAX_CACHES - 1) as u8;
// Every registry index fits under the bit (and the mask keeps it in the registry).
const _: () = assert!(super::MAX_CACHES.is_power_of_two() && super::MAX_CACHES <= MAPPED as usize);

/// One byte per page of the linear map: 0, or [`MAPPED`] | the index of the (debug-off)
/// cache whose slab holds the page.
pub(crate) struct SlabMap {
    /// Address of the first page covered (set once, before any slab exists).
    start: AtomicUsize,
    cache: [AtomicU8; SLAB_MAP_PAGES],
}

impl SlabMap {
    /// An empty table (every page reads 0).
    pub(crate) const fn new() -> Self {
        SlabMap { start: AtomicUsize::new(0), cache: [const { AtomicU8::new(0) }; SLAB_MAP_PAGES] }
    }

    /// Places the table at the linear map's first page (once, before any slab is made).
    pub(crate) fn set_start(&self, va: usize) {
        self.start.store(va, Relaxed);
    }

    /// The index of the cache whose slab holds the page of `va`, or `None`: not a slab
    /// page of a cache without debugging (or beyond the table).
    ///
    /// Ordering: an entry is written before any object of its slab is handed out, and a
    /// caller only asks about an object it was handed (through some synchronisation), so
    /// it sees the entry; `start` is written before any slab exists.
    #[inline(always)]
    pub(crate) fn cache_of(&self, va: usize) -> Option<usize> {
        let i = va.wrapping_sub(self.start.load(Relaxed)) >> PAGE_SHIFT;
        let b = self.cache.get(i)?.load(Relaxed);
        (b & MAPPED != 0).then_some((b & INDEX_MASK) as usize)
    }

    /// Records `pages` pages from `va` as cache `index`'s, or (`index` `None`) as nobody's.
    /// Pages beyond the table are skipped.
    pub(crate) fn set(&self, va: usize, pages: usize, index: Option<usize>) {
        let v = index.map_or(0, |i| MAPPED | i as u8);
        let first = va.wrapping_sub(self.start.load(Relaxed)) >> PAGE_SHIFT;
        for i in first..first.saturating_add(pages) {
            if let Some(b) = self.cache.get(i) {
                b.store(v, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::PAGE_SIZE;

    #[test]
    fn pages_map_to_their_cache_and_nothing_else_does() {
        let m: Box<SlabMap> = Box::new(SlabMap::new());
        let start = 0xffff_0000_1000_0000usize;
        assert_eq!(m.cache_of(start), None, "an empty table knows nothing");
        m.set_start(start);
        m.set(start + 4 * PAGE_SIZE, 2, Some(7));
        assert_eq!(m.cache_of(start + 4 * PAGE_SIZE), Some(7));
        assert_eq!(m.cache_of(start + 5 * PAGE_SIZE + 4095), Some(7));
        assert_eq!(m.cache_of(start + 6 * PAGE_SIZE), None);
        assert_eq!(m.cache_of(start + 3 * PAGE_SIZE + 4095), None);
        assert_eq!(m.cache_of(start - 1), None, "below the map");
        assert_eq!(m.cache_of(16), None, "ZERO_SIZE_PTR");
        assert_eq!(m.cache_of(start + SLAB_MAP_PAGES * PAGE_SIZE), None, "beyond the map");
        m.set(start + (SLAB_MAP_PAGES - 1) * PAGE_SIZE, 4, Some(0));
        assert_eq!(m.cache_of(start + (SLAB_MAP_PAGES - 1) * PAGE_SIZE), Some(0), "the last page");
        m.set(start + 4 * PAGE_SIZE, 2, None);
        assert_eq!(m.cache_of(start + 5 * PAGE_SIZE), None, "cleared");
    }
}
