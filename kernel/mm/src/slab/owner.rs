//! The page owner word of slab and large-kmalloc pages: what `kfree` reads to find where an
//! address came from (Linux keeps this in `struct slab` / the folio; here it is the 64-bit
//! owner word of the page descriptor, see
//! [`PageSource::set_page_owner`](crate::page_source::PageSource::set_page_owner)).
//!
//! [`PageOwner`] encodes and decodes itself; nothing else knows the layout (a 16-bit tag in
//! the top bits, the cache index or block order in the low byte).

/// Tag in the top 16 bits: the page belongs to a slab.
const TAG_SLAB: u64 = 0x51ab;
/// Tag: the page heads a large kmalloc compound block.
const TAG_LARGE: u64 = 0x1a49;
const TAG_SHIFT: u32 = 48;
const LOW_MASK: u64 = 0xff;

// The low byte holds every registry index and every page order.
const _: () = assert!(super::MAX_CACHES as u64 <= LOW_MASK + 1);
const _: () = assert!(crate::page_alloc::MAX_PAGE_ORDER as u64 <= LOW_MASK);

/// What owns a page, as far as the slab layer is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageOwner {
    /// A page of a slab of the cache at this registry index.
    Slab(usize),
    /// The head page of a large kmalloc block of `2^order` pages.
    Large(u32),
    /// Anything else (owner word 0, or another user's word).
    Other,
}

impl PageOwner {
    /// The owner word to store.
    #[inline]
    pub(crate) const fn encode(self) -> u64 {
        match self {
            PageOwner::Slab(index) => (TAG_SLAB << TAG_SHIFT) | index as u64,
            PageOwner::Large(order) => (TAG_LARGE << TAG_SHIFT) | order as u64,
            PageOwner::Other => 0,
        }
    }
    /// The owner a stored word names.
    #[inline]
    pub(crate) const fn decode(w: u64) -> PageOwner {
        match w >> TAG_SHIFT {
            TAG_SLAB => PageOwner::Slab((w & LOW_MASK) as usize),
            TAG_LARGE => PageOwner::Large((w & LOW_MASK) as u32),
            _ => PageOwner::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_words() {
        for o in [PageOwner::Slab(0), PageOwner::Slab(63), PageOwner::Large(0), PageOwner::Large(16)] {
            assert_eq!(PageOwner::decode(o.encode()), o);
        }
        assert_eq!(PageOwner::Slab(3).encode(), 0x51ab_0000_0000_0003);
        assert_eq!(PageOwner::decode(0), PageOwner::Other);
        assert_eq!(PageOwner::decode(0x1234_0000_0000_0001), PageOwner::Other);
    }
}
