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
//!
//! It is also the one that stores and reads the word in the page descriptors of the
//! `mem_map` ([`set_page_owner`], [`page_owner`], [`try_page_owner`], and their movable
//! forms [`set_movable_owner`], [`movable_owner`]): only a live block's pages may hold
//! one, since a free block's descriptors keep the free lists' links in that word.

use crate::addr::Pfn;
use crate::page_alloc::page::{MemMap, Page, PageState};
use crate::page_alloc::MAX_PAGE_ORDER;

/// Tag in the top 16 bits: the page belongs to a slab.
const TAG_SLAB: u64 = 0x51ab;
/// Tag: the page heads a large kmalloc compound block.
const TAG_LARGE: u64 = 0x1a49;
/// Tags `TAG_MOVABLE | kind`: the block is movable by the kind's registered operations.
const TAG_MOVABLE: u64 = 0x3c00;
const TAG_SHIFT: u32 = 48;
/// The slab tags keep their index or order in a byte: a large block's order in the low
/// byte, a slab's cache index in bits 32..40, next to the tag in the word's high half, so
/// that `kfree` finds both in one 32-bit load ([`PageOwner::slab_index_below`]).
const SLAB_LOW_MASK: u64 = 0xff;
const SLAB_INDEX_SHIFT: u32 = 32;
/// The high half of the word of `Slab(0)`.
const SLAB_HIGH: u32 = (TAG_SLAB << (TAG_SHIFT - SLAB_INDEX_SHIFT)) as u32;
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
            PageOwner::Slab(index) => (TAG_SLAB << TAG_SHIFT) | (index as u64) << SLAB_INDEX_SHIFT,
            PageOwner::Large(order) => (TAG_LARGE << TAG_SHIFT) | order as u64,
            PageOwner::Other => 0,
        }
    }
    /// The owner a stored word names.
    #[inline]
    pub(crate) const fn decode(w: u64) -> PageOwner {
        match w >> TAG_SHIFT {
            TAG_SLAB => PageOwner::Slab(((w >> SLAB_INDEX_SHIFT) & SLAB_LOW_MASK) as usize),
            TAG_LARGE => PageOwner::Large((w & SLAB_LOW_MASK) as u32),
            _ => PageOwner::Other,
        }
    }
    /// The cache index of a page whose owner word is `encode(Slab(index))` with
    /// `index < limit`, else `None`: one 32-bit load (the word's high half, which holds
    /// the tag and a slab's index), one subtraction and one compare, for `kfree`'s fast
    /// path. A word of another tag, 0, the free lists' links (no tag) and a slab word
    /// whose index is `limit` or more all miss and get [`Self::decode`]'s answer on the
    /// slow path; a high half that passes is one `decode` reads as `Slab(index)` too.
    /// `limit` must be at most [`SLAB_LOW_LIMIT`].
    #[inline(always)]
    pub(crate) fn slab_index_below(page: &Page, limit: usize) -> Option<usize> {
        // In usize: the zero extension is the load's, not one more instruction.
        let index = (page.owner_high() as usize).wrapping_sub(SLAB_HIGH as usize);
        if index < limit {
            Some(index)
        } else {
            None
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

/// The head of the live allocation holding `pfn`, a page with flags 0 (not a head, not a
/// compound tail); `None` if `pfn` lies in a free block or in no block. Blocks are
/// naturally aligned and disjoint, so the head is the first `pfn` rounded down to `2^o`
/// (`o` = 1, 2, ...) that heads a block of order at least `o`.
fn alloc_head_of(mm: &MemMap, pfn: u64) -> Option<&'static Page> {
    for o in 1..=MAX_PAGE_ORDER {
        let c = pfn & !((1u64 << o) - 1);
        if c == pfn {
            continue;
        }
        let h = mm.pfn_to_page(c)?;
        let s = h.state();
        if s.block_order().is_some_and(|bo| bo >= o) {
            return matches!(s, PageState::Head { .. }).then_some(h);
        }
    }
    None
}

/// Stores the owner word of an allocated page (for a `PageSource` implementation);
/// false (nothing stored) if the page is free (a free block's head or a page inside a
/// free block), reserved or outside `mm`. On a tail page it also marks the allocation's
/// head so that the free clears the tails' owner words.
pub fn set_page_owner(mm: &MemMap, pfn: Pfn, word: u64) -> bool {
    let Some(p) = mm.pfn_to_page(pfn.0) else { return false };
    let s = p.state();
    if !s.may_own() {
        return false;
    }
    if s == PageState::Unmarked {
        // A tail of a non-compound block (compound heads clear their tails anyway).
        let Some(head) = alloc_head_of(mm, pfn.0) else { return false };
        head.mark_tail_owner();
    }
    p.set_owner(word);
    true
}

/// The owner word of an allocated page; 0 for a free, reserved or unknown page.
#[inline]
pub fn page_owner(mm: &MemMap, pfn: Pfn) -> u64 {
    try_page_owner(mm, pfn).unwrap_or(0)
}

/// [`page_owner`] with one lookup that also tells whether `pfn` is in `mm`: `None`
/// outside it, `Some(0)` for a free or reserved page.
#[inline]
pub fn try_page_owner(mm: &MemMap, pfn: Pfn) -> Option<u64> {
    let p = mm.pfn_to_page(pfn.0)?;
    Some(if p.state().may_own() { p.owner() } else { 0 })
}

/// Marks the live block headed at `pfn` as movable by `owner`; false (nothing stored)
/// if `pfn` is not the head of a live non-compound block or the kind is out of range.
pub fn set_movable_owner(mm: &MemMap, pfn: Pfn, owner: MovableOwner) -> bool {
    let Some(p) = mm.pfn_to_page(pfn.0) else { return false };
    if owner.kind.0 as usize >= MAX_MOVABLE_KINDS {
        return false;
    }
    if !matches!(p.state(), PageState::Head { compound: false, .. }) {
        return false;
    }
    p.set_owner(owner.encode());
    true
}

/// The movable owner of the live block headed at `pfn`, with the block's order.
pub fn movable_owner(mm: &MemMap, pfn: Pfn) -> Option<(MovableOwner, u32)> {
    let p = mm.pfn_to_page(pfn.0)?;
    let PageState::Head { order, compound: false, .. } = p.state() else { return None };
    Some((MovableOwner::decode(p.owner())?, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_words() {
        for o in [PageOwner::Slab(0), PageOwner::Slab(63), PageOwner::Large(0), PageOwner::Large(16)] {
            assert_eq!(PageOwner::decode(o.encode()), o);
        }
        assert_eq!(PageOwner::Slab(3).encode(), 0x51ab_0003_0000_0000);
        assert_eq!(PageOwner::Large(3).encode(), 0x1a49_0000_0000_0003);
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
        assert_eq!(MovableOwner::decode(0x51ab_0003_0000_0000), None, "a slab page");
        assert_eq!(MovableOwner::decode(0x1a49_0000_0000_0003), None, "a large kmalloc");
        assert_eq!(MovableOwner::decode(0x0000_0001_0000_0002), None, "list links");
        assert_eq!(MovableOwner::decode(0x3c08_0000_0000_0002), None, "a kind past the registry");
    }
}
