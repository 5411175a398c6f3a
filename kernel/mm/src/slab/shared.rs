//! The node's shared array (Linux SLAB's `kmem_cache_node::shared`): one more stack of
//! free object pointers per cache, under the node lock, between the CPUs' arrays and the
//! slabs.
//!
//! A full CPU array flushes its oldest objects here, with one copy, while there is room;
//! an empty one refills from here, newest first, before it walks any slab's freelist. A
//! working set a little larger than a CPU's array then moves between the two arrays as a
//! copy of words instead of through the slabs' freelists (a hardened pointer written,
//! read and checked per object, and the slab lists touched). Objects here count as in use
//! in their slabs, as those in the CPU arrays do.
//!
//! Sizes are Linux's `enable_cpucache`: `shared * batchcount` entries with `shared = 8`
//! for objects up to a page, none above. A debug cache has none: every free object of a
//! debug cache is checked when it is used again, and `validate` walks only the CPU arrays
//! and the slabs. The entries live in one page from the page source, taken when the cache
//! grows its second slab (a cache that fits in one slab has nothing to share) and given
//! back, with the objects, by `kmem_cache_shrink`. The per-CPU drains leave it alone, as
//! Linux's `drain_cpu_caches` leaves the shared array to its own drain.

use core::sync::atomic::AtomicUsize;

use super::raw;
use crate::addr::{PhysAddr, PAGE_SIZE};

/// Linux's `shared` tunable for objects up to a page: the shared array holds this many
/// batches.
pub(crate) const SHARED_FACTOR: usize = 8;
/// Entries one page holds.
const CAPACITY: usize = PAGE_SIZE / core::mem::size_of::<usize>();

/// Linux's choice of the `shared` tunable: [`SHARED_FACTOR`] for objects of a page or less
/// (slot size `size`), 0 above and for a debug cache.
pub(crate) fn shared_factor(size: usize, debug: bool) -> usize {
    if debug || size > PAGE_SIZE {
        0
    } else {
        SHARED_FACTOR
    }
}

/// A cache's shared array (its page, once taken, and the objects in it).
pub(crate) struct SharedArray {
    /// Linear-map address of the entries' page; 0 before it is taken.
    entries: usize,
    /// Physical address of that page, to give it back.
    pa: u64,
    /// Objects in the array (entries `0..avail`, the newest on top).
    avail: usize,
    /// Most objects the array holds; 0: the cache has none.
    limit: usize,
    /// `shared`, for slabinfo.
    factor: usize,
}

impl SharedArray {
    /// No shared array (a slot not yet made live).
    pub(crate) const NONE: SharedArray = SharedArray { entries: 0, pa: 0, avail: 0, limit: 0, factor: 0 };

    /// The shared array of a cache with `factor` (see [`shared_factor`]) and per-CPU
    /// `batchcount`: `factor * batchcount` entries, at most a page's worth. Its page is
    /// taken later ([`Self::install`]).
    pub(crate) fn new(factor: usize, batchcount: usize) -> Self {
        SharedArray { limit: (factor * batchcount).min(CAPACITY), factor, ..Self::NONE }
    }

    /// Whether the cache has a shared array whose page is still to be taken.
    #[inline]
    pub(crate) fn wants_page(&self) -> bool {
        self.limit > 0 && self.entries == 0
    }

    /// Gives the array its page (`va` is the linear-map address of the page at `pa`).
    /// `false` if it has one, or needs none: the caller gives the page back.
    pub(crate) fn install(&mut self, va: usize, pa: PhysAddr) -> bool {
        if !self.wants_page() || !va.is_multiple_of(core::mem::size_of::<usize>()) {
            return false;
        }
        self.entries = va;
        self.pa = pa.as_u64();
        true
    }

    /// Takes the page back from an empty array (the array can take another later).
    pub(crate) fn release(&mut self) -> Option<PhysAddr> {
        if self.entries == 0 || self.avail > 0 {
            return None;
        }
        self.entries = 0;
        Some(PhysAddr::new(self.pa))
    }

    /// Objects in the array.
    #[inline]
    pub(crate) fn avail(&self) -> usize {
        self.avail
    }

    /// `shared` (0: none).
    pub(crate) fn factor(&self) -> usize {
        self.factor
    }

    /// Whether the array has its page.
    pub(crate) fn has_page(&self) -> bool {
        self.entries != 0
    }

    /// Moves as many of `objs` (from the front) as there is room for onto the array;
    /// returns how many. None without a page.
    #[inline]
    pub(crate) fn put(&mut self, objs: &[AtomicUsize]) -> usize {
        let n = if self.entries == 0 { 0 } else { objs.len().min(self.limit - self.avail) };
        if n == 0 {
            // No page or no room: no copy (and no address computed from a missing page).
            return 0;
        }
        let at = self.entries + self.avail * core::mem::size_of::<usize>();
        // SAFETY: `n` entries from `avail` stay below `limit`, inside the array's page,
        // which only the node lock's holder (the caller: `&mut self`) touches; `objs` are
        // entries of a held CPU array, `usize`-sized (AtomicUsize has usize's layout), in
        // static or slab memory, never in this page.
        unsafe { raw::copy(objs.as_ptr() as usize, at, n * core::mem::size_of::<usize>()) };
        self.avail += n;
        n
    }

    /// Moves the newest objects, as many as `out` holds and the array has, into `out`
    /// (from its front); returns how many.
    #[inline]
    pub(crate) fn take(&mut self, out: &[AtomicUsize]) -> usize {
        let n = out.len().min(self.avail);
        if n == 0 {
            // Empty, or no page: no copy.
            return 0;
        }
        self.avail -= n;
        let at = self.entries + self.avail * core::mem::size_of::<usize>();
        // SAFETY: as in `put`: entries `avail..avail + n` are inside the page (`n > 0`
        // means the array has one, as only `put` with a page raises `avail`); `out` are
        // free slots of a held CPU array, which nobody else reads until the holder
        // publishes them.
        unsafe { raw::copy(at, out.as_ptr() as usize, n * core::mem::size_of::<usize>()) };
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[usize]) -> Vec<AtomicUsize> {
        v.iter().map(|&x| AtomicUsize::new(x)).collect()
    }
    fn vals(v: &[AtomicUsize]) -> Vec<usize> {
        v.iter().map(|a| a.load(core::sync::atomic::Ordering::Relaxed)).collect()
    }

    #[test]
    fn linux_factor_is_eight_batches_up_to_a_page_and_none_above_or_with_debug() {
        assert_eq!(shared_factor(8, false), 8);
        assert_eq!(shared_factor(PAGE_SIZE, false), 8);
        assert_eq!(shared_factor(PAGE_SIZE + 1, false), 0);
        assert_eq!(shared_factor(64, true), 0);
        let s = SharedArray::new(8, 60);
        assert_eq!((s.limit, s.factor(), s.avail()), (480, 8, 0));
        assert_eq!(SharedArray::new(8, 100).limit, CAPACITY, "at most a page");
        assert_eq!(SharedArray::new(0, 60).limit, 0);
    }

    #[test]
    fn put_fills_to_the_limit_take_returns_newest_first_and_the_page_goes_back_only_empty() {
        let mut page = vec![0usize; CAPACITY];
        let va = page.as_mut_ptr() as usize;
        let mut s = SharedArray::new(2, 3);
        assert!(s.wants_page() && !s.has_page());
        assert_eq!(s.put(&words(&[1, 2])), 0, "no page: nothing kept");
        assert!(!s.install(va + 1, PhysAddr::new(0x5000)), "misaligned");
        assert!(s.install(va, PhysAddr::new(0x5000)));
        assert!(!s.wants_page() && s.has_page());
        assert!(!s.install(va, PhysAddr::new(0x6000)), "already has one");
        assert_eq!(s.put(&words(&[10, 11, 12, 13])), 4);
        assert_eq!(s.put(&words(&[14, 15, 16])), 2, "room for 6 in all");
        assert_eq!(s.avail(), 6);
        assert_eq!(s.release(), None, "not empty");
        let out = words(&[0; 4]);
        assert_eq!(s.take(&out), 4);
        assert_eq!(vals(&out), [12, 13, 14, 15], "the newest, in their order");
        assert_eq!(s.take(&out[..1]), 1);
        assert_eq!(vals(&out[..1]), [11]);
        assert_eq!(s.put(&words(&[20])), 1);
        assert_eq!(s.take(&out), 2);
        assert_eq!(vals(&out[..2]), [10, 20]);
        assert_eq!(s.take(&out), 0, "empty");
        assert_eq!(s.release(), Some(PhysAddr::new(0x5000)));
        assert!(s.wants_page() && !s.has_page());
        assert_eq!(s.release(), None, "given back once");
        drop(page);
    }
}
