//! The descriptor array of a `static` allocator, published once and read without a lock
//! (Linux's global `mem_map`, set up at boot).
//!
//! Before it is published the cell reads as an *empty* array, so every lookup fails its
//! bounds check: a fast path needs no separate "initialised?" test, the index's bounds
//! test answers both questions. The array's address and base frame are stored first and
//! its length last (release), so a reader that loads a non-zero length (acquire) sees the
//! rest; a reader that loads 0 holds an empty slice, valid with any address.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};

use super::page::{MemMap, Page};

/// A [`MemMap`] set once ([`MemMapCell::set`]) and read lock-free.
#[derive(Debug)]
pub struct MemMapCell {
    /// Frame number of `pages[0]`.
    base_pfn: AtomicU64,
    /// `pages.as_ptr()` of the `&'static [Page]` given to `set`; a dangling, aligned
    /// address before (the address of an empty slice).
    pages: AtomicPtr<Page>,
    /// `pages.len()`: 0 until set, published last.
    len: AtomicUsize,
}

impl Default for MemMapCell {
    fn default() -> Self {
        Self::new()
    }
}

impl MemMapCell {
    /// Not yet set: reads as an empty array.
    pub const fn new() -> Self {
        MemMapCell {
            base_pfn: AtomicU64::new(0),
            pages: AtomicPtr::new(NonNull::<Page>::dangling().as_ptr()),
            len: AtomicUsize::new(0),
        }
    }

    /// Publishes `mm`, once: `false` (and nothing changed) if an array was published
    /// before, or if `mm` is empty (it could not be told from none).
    pub fn set(&self, mm: MemMap) -> bool {
        let unset = NonNull::<Page>::dangling().as_ptr();
        // The address is claimed first (two racing calls: one wins), the length last.
        if mm.pages.is_empty()
            || self.pages.compare_exchange(unset, mm.pages.as_ptr().cast_mut(), Relaxed, Relaxed).is_err()
        {
            return false;
        }
        self.base_pfn.store(mm.base_pfn, Relaxed);
        // Published last: a reader that sees the length sees the array.
        self.len.store(mm.pages.len(), Release);
        true
    }

    /// The array's descriptors, empty before [`Self::set`].
    #[inline(always)]
    pub fn pages(&self) -> &'static [Page] {
        let len = self.len.load(Acquire);
        // SAFETY: `len` is 0, and the address (dangling or not) is non-null and aligned,
        // so the slice is empty; or `len` was published by `set` after the address of the
        // `&'static [Page]` it came with (release then acquire), and `set` stores each
        // once, so the address read here is that slice's and the slice lives for ever.
        unsafe { core::slice::from_raw_parts(self.pages.load(Relaxed), len) }
    }

    /// The array, empty (no descriptor, base 0) before [`Self::set`].
    #[inline(always)]
    pub fn load(&self) -> MemMap {
        let pages = self.pages();
        MemMap { base_pfn: self.base_pfn.load(Relaxed), pages }
    }

    /// The array once set.
    #[inline]
    pub fn get(&self) -> Option<MemMap> {
        let mm = self.load();
        (!mm.pages.is_empty()).then_some(mm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked(n: usize) -> &'static [Page] {
        Box::leak((0..n).map(|_| Page::new()).collect())
    }

    #[test]
    fn empty_until_set_then_the_array_for_good() {
        let c = MemMapCell::new();
        assert!(c.get().is_none());
        assert!(c.pages().is_empty());
        assert_eq!(c.load().pfn_to_page(0).map(|p| p as *const Page), None, "every lookup misses");
        assert!(!c.set(MemMap { base_pfn: 5, pages: &[] }), "an empty array is refused");
        let pages = leaked(3);
        assert!(c.set(MemMap { base_pfn: 0x100, pages }));
        let mm = c.get().expect("set");
        assert_eq!((mm.base_pfn, mm.pages.as_ptr(), mm.pages.len()), (0x100, pages.as_ptr(), 3));
        assert!(core::ptr::eq(c.load().pfn_to_page(0x102).unwrap(), &pages[2]));
        assert!(!c.set(MemMap { base_pfn: 0x200, pages: leaked(4) }), "set once");
        assert_eq!((c.load().base_pfn, c.pages().len()), (0x100, 3), "the first array stays");
    }

    #[test]
    fn a_reader_on_another_thread_sees_nothing_or_the_whole_array() {
        let c: &'static MemMapCell = Box::leak(Box::new(MemMapCell::new()));
        let pages = leaked(64);
        // Bounded: a cell that never publishes fails the test instead of hanging it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reader = std::thread::spawn(move || loop {
            let mm = c.load();
            if !mm.pages.is_empty() {
                assert_eq!((mm.base_pfn, mm.pages.as_ptr(), mm.pages.len()), (7, pages.as_ptr(), 64));
                break;
            }
            assert_eq!(mm.pages.len(), 0);
            assert!(std::time::Instant::now() < deadline, "the array was never published");
            std::thread::yield_now();
        });
        assert!(c.set(MemMap { base_pfn: 7, pages }));
        reader.join().unwrap();
    }
}
