//! The page owner word: the 64-bit word of a live block's head page descriptor that says
//! who holds the block (Linux keeps this in `struct slab`, the folio's `mapping` and its
//! `PAGE_MAPPING_MOVABLE` bit; here it is one word, see
//! [`PageSource::set_page_owner`](crate::page_source::PageSource::set_page_owner)).
//!
//! This module is the only one that knows the word's layout: a 16-bit tag in the top bits,
//! the rest the tag's own. The slab layer's words ([`PageOwner`]: a slab's cache index, a
//! large kmalloc block's order) and the movable blocks' words ([`MovableOwner`]: a kind
//! number, which selects the registered
//! [`MovableOps`](crate::page_alloc::MovableOps) that can move the block, and 48 bits
//! private to that kind) are all encoded and decoded here. A word of no tag (0, or the
//! free lists' links) is nobody's.

/// Tag in the top 16 bits: the page belongs to a slab.
const TAG_SLAB: u64 = 0x51ab;
/// Tag: the page heads a large kmalloc compound block.
const TAG_LARGE: u64 = 0x1a49;
/// Tags `TAG_MOVABLE | kind`: the block is movable by the kind's registered operations.
const TAG_MOVABLE: u64 = 0x3c00;
const TAG_SHIFT: u32 = 48;
/// The slab tags keep their index or order in the low byte.
const SLAB_LOW_MASK: u64 = 0xff;
/// A movable owner's private part: the low 48 bits.
pub const MOVABLE_PRIVATE_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// Most slab cache indexes and block orders a slab-layer word can hold (one byte).
pub(crate) const SLAB_LOW_LIMIT: u64 = SLAB_LOW_MASK + 1;

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
            TAG_SLAB => PageOwner::Slab((w & SLAB_LOW_MASK) as usize),
            TAG_LARGE => PageOwner::Large((w & SLAB_LOW_MASK) as u32),
            _ => PageOwner::Other,
        }
    }
}

/// A kind of movable block's owner: the number its [`MovableOps`] are registered under
/// with the page allocator. The mm core numbers its own kinds (vmalloc's,
/// [`crate::vmalloc::VMALLOC_MOVABLE`]); the kernel numbers the others.
///
/// [`MovableOps`]: crate::page_alloc::MovableOps
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MovableKind(pub u8);

/// Kinds are below this (the size of the page allocator's registry).
pub const MAX_MOVABLE_KINDS: usize = 8;

/// Who holds a movable block and can repoint it: a kind and a value private to the kind
/// (a table index, a page-aligned address's page number), at most 48 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovableOwner {
    /// Which registered operations move it.
    pub kind: MovableKind,
    /// The kind's own reference to the block (the low 48 bits are kept).
    pub private: u64,
}

impl MovableOwner {
    /// An owner of kind `kind` (`private` is cut to 48 bits).
    pub const fn new(kind: MovableKind, private: u64) -> Self {
        Self { kind, private: private & MOVABLE_PRIVATE_MASK }
    }
    /// The owner word to store.
    pub const fn encode(self) -> u64 {
        ((TAG_MOVABLE | self.kind.0 as u64) << TAG_SHIFT) | (self.private & MOVABLE_PRIVATE_MASK)
    }
    /// The owner a word names; `None` for any other word (slab, 0, list links).
    pub const fn decode(w: u64) -> Option<MovableOwner> {
        let tag = w >> TAG_SHIFT;
        if tag & !0xff != TAG_MOVABLE || (tag & 0xff) as usize >= MAX_MOVABLE_KINDS {
            return None;
        }
        Some(MovableOwner { kind: MovableKind(tag as u8), private: w & MOVABLE_PRIVATE_MASK })
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

    #[test]
    fn movable_words_round_trip_and_foreign_words_are_not_movable() {
        for o in [
            MovableOwner::new(MovableKind(1), 0),
            MovableOwner::new(MovableKind(1), 1023),
            MovableOwner::new(MovableKind(3), 123_456),
            MovableOwner::new(MovableKind(2), 0xffff_ff80_0000_0000 >> 12),
            MovableOwner::new(MovableKind(2), 0xffff_ff80_1234_5000 >> 12),
        ] {
            assert_eq!(MovableOwner::decode(o.encode()), Some(o));
            assert_eq!(PageOwner::decode(o.encode()), PageOwner::Other, "not a slab word");
        }
        // The words the kinds stored before the registry (kinds 1..=3) are unchanged.
        assert_eq!(MovableOwner::new(MovableKind(1), 5).encode(), 0x3c01_0000_0000_0005);
        assert_eq!(MovableOwner::new(MovableKind(3), 7).encode(), 0x3c03_0000_0000_0007);
        assert_eq!(MovableOwner::decode(0), None);
        assert_eq!(MovableOwner::decode(0x51ab_0000_0000_0003), None, "a slab page");
        assert_eq!(MovableOwner::decode(0x1a49_0000_0000_0003), None, "a large kmalloc");
        assert_eq!(MovableOwner::decode(0x0000_0001_0000_0002), None, "list links");
        assert_eq!(MovableOwner::decode(0x3c08_0000_0000_0002), None, "a kind past the registry");
    }
}
