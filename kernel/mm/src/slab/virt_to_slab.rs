//! Linux's `virt_to_slab` for `kfree`'s fast path: the cache of an object from the owner
//! word of its page descriptor, found by arithmetic on the address.
//!
//! The page source's `virt_page_owner` answers the same question through a `dyn` call and
//! the page allocator's checks (is the descriptor array set up, is the frame inside it, is
//! the page allocated). Here the descriptor array and the linear map's offset are given
//! once ([`VirtToSlab::set`]) and the fast path is: the page index by subtraction and a
//! shift, one bounds test, one compare of the owner word's high half (the slab tag and
//! an index inside the registry, [`PageOwner::slab_index_below`]). A page that is
//! not allocated holds free list links in that word, which carry no tag (see
//! [`crate::owner`]), so only a slab page reads as one; everything else (large blocks, foreign pointers, an allocator not
//! yet told) takes `kfree`'s owner-word path with all its checks.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::addr::PAGE_SHIFT;
use crate::owner::PageOwner;
use crate::page_alloc::{MemMap, MemMapCell};

/// The page descriptors of the linear map, for `kfree`.
pub(crate) struct VirtToSlab {
    /// Linear-map address of the page of the array's first descriptor.
    start: AtomicUsize,
    /// The array (empty until set, published after `start`).
    map: MemMapCell,
}

impl VirtToSlab {
    /// No descriptors: every lookup misses.
    pub(crate) const fn new() -> Self {
        VirtToSlab { start: AtomicUsize::new(0), map: MemMapCell::new() }
    }

    /// The descriptor array `mm`, whose frames are at `phys + linear_offset` (wrapping);
    /// once (a second array is ignored).
    pub(crate) fn set(&self, mm: MemMap, linear_offset: u64) {
        if self.map.get().is_some() {
            return;
        }
        let start = (mm.base_pfn << PAGE_SHIFT).wrapping_add(linear_offset);
        // Before the array's publication: a reader that sees the array sees `start`.
        self.start.store(start as usize, Relaxed);
        self.map.set(mm);
    }

    /// The registry index in the owner word of the page of `va` if it is a slab page, else
    /// `None` (outside the array, or not a slab page).
    #[inline(always)]
    pub(crate) fn cache_of(&self, va: usize) -> Option<usize> {
        // The array first: its acquire load orders the read of `start` after it.
        let pages = self.map.pages();
        let i = va.wrapping_sub(self.start.load(Relaxed)) >> PAGE_SHIFT;
        let page = pages.get(i)?;
        // One compare: only a slab word naming a registry slot passes.
        PageOwner::slab_index_below(page, super::MAX_CACHES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page_alloc::Page;
    use proptest::prelude::*;

    #[test]
    fn slab_pages_name_their_cache_and_nothing_else_does() {
        let pages: &'static [Page] = Box::leak((0..8).map(|_| Page::new()).collect());
        let v = VirtToSlab::new();
        let start = 0xffff_0000_1000_0000usize;
        assert_eq!(v.cache_of(start), None, "not set: every lookup misses");
        v.set(MemMap { pages, base_pfn: 0x100 }, (start - (0x100 << PAGE_SHIFT)) as u64);
        pages[2].set_owner(PageOwner::Slab(7).encode());
        pages[3].set_owner(PageOwner::Large(2).encode());
        pages[4].set_owner(0x0000_0003_0000_0005); // free list links: no tag
        let page = |i: usize| start + (i << PAGE_SHIFT);
        assert_eq!(v.cache_of(page(2)), Some(7));
        assert_eq!(v.cache_of(page(2) + 4095), Some(7));
        assert_eq!(v.cache_of(page(3)), None, "a large block");
        assert_eq!(v.cache_of(page(4)), None, "links");
        assert_eq!(v.cache_of(page(5)), None, "owner 0");
        assert_eq!(v.cache_of(page(8)), None, "beyond the array");
        assert_eq!(v.cache_of(start - 1), None, "below it");
        assert_eq!(v.cache_of(16), None, "ZERO_SIZE_PTR");
        pages[5].set_owner(PageOwner::Slab(super::super::MAX_CACHES).encode());
        assert_eq!(v.cache_of(page(5)), None, "an index beyond the registry is not masked into it");
        pages[6].set_owner(PageOwner::Slab(3).encode() | 1 << 44);
        assert_eq!(v.cache_of(page(6)), None, "a slab word with a stray bit beside its index");
        pages[7].set_owner(PageOwner::Slab(0).encode());
        assert_eq!(v.cache_of(page(7)), Some(0));
        let other: &'static [Page] = Box::leak((0..8).map(|_| Page::new()).collect());
        other[2].set_owner(PageOwner::Slab(9).encode());
        v.set(MemMap { pages: other, base_pfn: 0x100 }, (start - (0x100 << PAGE_SHIFT)) as u64 + 4096);
        assert_eq!(v.cache_of(page(2)), Some(7), "set once: the first array and offset stay");
    }

    proptest! {
        /// Any owner word: the fast path names a cache exactly for the words `decode`
        /// reads as a slab of a registry index with nothing else in the high half (every
        /// word `encode` makes), and then the same cache; never a page of another owner.
        #[test]
        fn the_one_compare_agrees_with_decode(
            tag in prop_oneof![Just(0x51abu64), Just(0x1a49), 0x3c00u64..0x3c08, any::<u16>().prop_map(u64::from)],
            mid in prop_oneof![3 => Just(0u64), 1 => 0u64..0x100],
            index in prop_oneof![0u64..70, 0u64..0x100],
            low in prop_oneof![Just(0u64), any::<u32>().prop_map(u64::from)],
        ) {
            let w = (tag << 48) | (mid << 40) | (index << 32) | low;
            let max = super::super::MAX_CACHES;
            let page = Page::new();
            page.set_owner(w);
            let expect = match PageOwner::decode(w) {
                PageOwner::Slab(i) if mid == 0 && i < max => Some(i),
                _ => None,
            };
            prop_assert_eq!(PageOwner::slab_index_below(&page, max), expect);
            for i in 0..max {
                page.set_owner(PageOwner::Slab(i).encode());
                prop_assert_eq!(PageOwner::slab_index_below(&page, max), Some(i));
            }
        }
    }
}
