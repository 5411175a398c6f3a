//! `free_area[order].free_list[migratetype]`: intrusive doubly linked lists threaded
//! through the page descriptors (`u32` mem_map indices), plus `nr_free` per order.

use super::migratetype::MIGRATE_TYPES;
use super::page::{MemMap, NIL};

/// The free lists of one order.
#[derive(Clone, Copy, Debug)]
pub struct FreeArea {
    heads: [u32; MIGRATE_TYPES],
    /// Number of free blocks of this order, over all migratetypes.
    pub nr_free: u64,
}

impl FreeArea {
    /// Empty lists.
    pub const EMPTY: FreeArea = FreeArea { heads: [NIL; MIGRATE_TYPES], nr_free: 0 };

    /// Whether the list of `mt` is empty.
    pub fn is_empty(&self, mt: usize) -> bool {
        self.heads[mt] == NIL
    }
    /// First element of the list of `mt`.
    pub(crate) fn first(&self, mt: usize) -> Option<u32> {
        (self.heads[mt] != NIL).then_some(self.heads[mt])
    }
    /// Pushes `idx` at the head of the list of `mt`.
    pub(crate) fn add(&mut self, mm: &MemMap, idx: u32, mt: usize) {
        let head = self.heads[mt];
        let p = mm.at(idx);
        p.set_next(head);
        p.set_prev(NIL);
        if head != NIL {
            mm.at(head).set_prev(idx);
        }
        self.heads[mt] = idx;
        self.nr_free += 1;
    }
    /// Unlinks `idx` from the list of `mt` (it must be on it) and clears its links.
    pub(crate) fn del(&mut self, mm: &MemMap, idx: u32, mt: usize) {
        let p = mm.at(idx);
        let (next, prev) = (p.next(), p.prev());
        if prev != NIL {
            mm.at(prev).set_next(next);
        } else {
            debug_assert_eq!(self.heads[mt], idx);
            self.heads[mt] = next;
        }
        if next != NIL {
            mm.at(next).set_prev(prev);
        }
        p.set_next(0);
        p.set_prev(0);
        self.nr_free -= 1;
    }
    /// Walks the list of `mt`.
    pub(crate) fn iter<'a>(&self, mm: &'a MemMap, mt: usize) -> impl Iterator<Item = u32> + 'a {
        let mut cur = self.heads[mt];
        core::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let r = cur;
            cur = mm.at(cur).next();
            Some(r)
        })
    }
}
