//! The movable kind of vmalloc's pages: a `__GFP_MOVABLE` vmalloc tags each order-0 page
//! it maps with [`movable_owner`] of the page's VA, and the kernel registers operations
//! for [`VMALLOC_MOVABLE`] that move such a page under vmalloc's locks
//! ([`Vmalloc::migrate_pages`](super::Vmalloc::migrate_pages)).

use crate::addr::{VirtAddr, PAGE_SHIFT};
use crate::owner::{MovableKind, MovableOwner, MOVABLE_PRIVATE_MASK};

/// The movable kind of vmalloc's pages (the mm core's one kind; the kernel numbers its
/// others around it).
pub const VMALLOC_MOVABLE: MovableKind = MovableKind(2);

/// The owner of the vmalloc page mapped at the page-aligned kernel VA `va`: its page
/// number, the top bits (all set in a kernel VA) dropped.
pub const fn movable_owner(va: VirtAddr) -> MovableOwner {
    MovableOwner::new(VMALLOC_MOVABLE, va.as_u64() >> PAGE_SHIFT)
}

/// The VA of the page an owner of [`VMALLOC_MOVABLE`] names (the inverse of
/// [`movable_owner`]: the top bits sign-extended back); `None` for another kind.
pub const fn movable_va(o: MovableOwner) -> Option<VirtAddr> {
    if o.kind.0 != VMALLOC_MOVABLE.0 {
        return None;
    }
    let high = !((MOVABLE_PRIVATE_MASK << PAGE_SHIFT) | ((1 << PAGE_SHIFT) - 1));
    Some(VirtAddr::new(((o.private & MOVABLE_PRIVATE_MASK) << PAGE_SHIFT) | high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_va_round_trips_through_its_owner_word() {
        for va in [0xffff_ff80_0000_0000u64, 0xffff_ff80_1234_5000, 0xffff_ffff_ffff_f000] {
            let o = movable_owner(VirtAddr::new(va));
            assert_eq!(MovableOwner::decode(o.encode()), Some(o));
            assert_eq!(movable_va(o), Some(VirtAddr::new(va)));
        }
        // The word is the one vmalloc stored before the registry.
        assert_eq!(movable_owner(VirtAddr::new(0xffff_ff80_1234_5000)).encode(), 0x3c02_ffff_f801_2345);
        assert_eq!(movable_va(MovableOwner::new(MovableKind(1), 5)), None);
    }
}
