//! A cache's slab lists and counters (Linux's `kmem_cache_node`): partial, full and free
//! slabs, linked through their headers.

use super::header::Slab;
use super::layout::CacheCfg;
use super::shared::SharedArray;

pub(crate) const LIST_PARTIAL: usize = 0;
pub(crate) const LIST_FULL: usize = 1;
pub(crate) const LIST_FREE: usize = 2;

/// The cache's slab lists and counters (Linux's `kmem_cache_node`).
pub(crate) struct Node {
    pub(crate) head: [usize; 3],
    pub(crate) nr_slabs: usize,
    pub(crate) nr_free_slabs: usize,
    /// Free objects inside slabs (not counting per-CPU arrays).
    pub(crate) free_objects: usize,
    /// Objects withheld because they were found corrupted.
    pub(crate) quarantined: usize,
    pub(crate) errors: u64,
    /// The shared array (Linux's `n->shared`).
    pub(crate) shared: SharedArray,
}

impl Node {
    pub(crate) const fn new() -> Self {
        Node {
            head: [0; 3],
            nr_slabs: 0,
            nr_free_slabs: 0,
            free_objects: 0,
            quarantined: 0,
            errors: 0,
            shared: SharedArray::NONE,
        }
    }

    pub(crate) fn list_add(&mut self, slab: Slab, list: usize) {
        let old = self.head[list];
        slab.set_next(old);
        slab.set_prev(0);
        slab.set_list(list);
        if old != 0 {
            // SAFETY: list members are held slabs.
            unsafe { Slab::from_raw(old) }.set_prev(slab.addr());
        }
        self.head[list] = slab.addr();
        if list == LIST_FREE {
            self.nr_free_slabs += 1;
        }
    }

    pub(crate) fn list_del(&mut self, slab: Slab) {
        let (next, prev, list) = (slab.next(), slab.prev(), slab.list());
        if prev != 0 {
            // SAFETY: list members are held slabs.
            unsafe { Slab::from_raw(prev) }.set_next(next);
        } else {
            self.head[list] = next;
        }
        if next != 0 {
            // SAFETY: list members are held slabs.
            unsafe { Slab::from_raw(next) }.set_prev(prev);
        }
        if list == LIST_FREE {
            self.nr_free_slabs -= 1;
        }
    }

    /// Moves `slab` to the list its in-use count calls for.
    pub(crate) fn relist(&mut self, cfg: &CacheCfg, slab: Slab) {
        let inuse = slab.inuse();
        let want = if inuse == 0 {
            LIST_FREE
        } else if inuse >= cfg.num {
            LIST_FULL
        } else {
            LIST_PARTIAL
        };
        if slab.list() != want {
            self.list_del(slab);
            self.list_add(slab, want);
        }
    }
}
