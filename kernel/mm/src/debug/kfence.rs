//! The bookkeeping of a KFENCE-style sampling pool (Linux's `mm/kfence/core.c`), free of
//! page tables so the host tests run it: which object slot is free, allocated or freed,
//! where in its page an object sits, and what a faulting address in the pool means.
//!
//! The pool's pages, from its base: an anchor page (always mapped, so the page table
//! under the pool never empties), a guard page, object 0's page, a guard page, object
//! 1's page, ..., a guard page, and a last anchor. Guard pages are never mapped; an
//! object's page is mapped only while the object is allocated. An object sits against
//! the left or the right guard page (the caller picks at random), so an overrun on
//! either side faults at once. A freed object's page is unmapped, so a use after free
//! faults too. When every slot is taken the allocation is not sampled: the caller
//! falls back to the slab ([`KfencePool::fallbacks`] counts it).

use crate::addr::PAGE_SIZE;

const PAGE: u64 = PAGE_SIZE as u64;

/// A slot's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Never used.
    Unused,
    /// Holds a live object.
    Allocated,
    /// Its object was freed (page unmapped); reusable.
    Freed,
    /// A fault was reported in it and its page left mapped: never used again.
    Retired,
}

/// One object slot's metadata (Linux's `struct kfence_metadata`).
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// State.
    pub state: SlotState,
    /// Object address (inside the slot's page).
    pub addr: u64,
    /// Object size in bytes.
    pub size: usize,
    /// Allocation trace handle, CPU and time (ms since boot).
    pub alloc: Track,
    /// Free trace handle, CPU and time (when freed).
    pub free: Track,
}

/// Who did it, where and when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Track {
    /// Stack depot handle.
    pub handle: u32,
    /// CPU.
    pub cpu: u32,
    /// Time, ns since boot.
    pub ts_ns: u64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        state: SlotState::Unused,
        addr: 0,
        size: 0,
        alloc: Track { handle: 0, cpu: 0, ts_ns: 0 },
        free: Track { handle: 0, cpu: 0, ts_ns: 0 },
    };
}

/// What a faulting pool address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// In a guard page, `bytes` left of (`right == false`) or right of the nearest
    /// object's bounds.
    OutOfBounds {
        /// The nearest object's slot.
        slot: usize,
        /// Past its end (else before its start).
        right: bool,
        /// Distance from the object's bounds (1 for the first byte past them).
        bytes: u64,
    },
    /// In a freed object's page.
    UseAfterFree {
        /// The slot.
        slot: usize,
    },
    /// In a guard page with no object on either side (or an unused slot's page).
    Unknown,
}

/// A free the pool refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// Not the address of an allocated object (or a second free).
    Invalid {
        /// The slot whose page it is in, if any.
        slot: Option<usize>,
    },
}

/// The pool's bookkeeping for `N` objects at `base` (page aligned, `2N + 3` pages).
pub struct KfencePool<const N: usize> {
    base: u64,
    slots: [Slot; N],
    next: usize,
    allocs: u64,
    frees: u64,
    fallbacks: u64,
}

impl<const N: usize> KfencePool<N> {
    /// Pages the pool spans.
    pub const PAGES: usize = 2 * N + 3;

    /// A pool at `base`, every slot unused.
    pub const fn new(base: u64) -> Self {
        KfencePool { base, slots: [Slot::EMPTY; N], next: 0, allocs: 0, frees: 0, fallbacks: 0 }
    }

    /// Whether `addr` is in the pool (its guard and object pages, anchors included).
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.base + Self::PAGES as u64 * PAGE
    }

    /// The page of object `slot`.
    pub fn slot_page(&self, slot: usize) -> u64 {
        self.base + (2 * slot as u64 + 2) * PAGE
    }

    /// A slot's metadata.
    pub fn slot(&self, slot: usize) -> &Slot {
        &self.slots[slot]
    }

    /// Sampled allocations, frees, and allocations not sampled because the pool was full.
    pub fn stats(&self) -> (u64, u64, u64) {
        (self.allocs, self.frees, self.fallbacks)
    }

    /// Slots allocated now.
    pub fn nr_allocated(&self) -> usize {
        self.slots.iter().filter(|s| s.state == SlotState::Allocated).count()
    }

    /// Takes a slot for `size` bytes aligned to `align` (a power of two), against the
    /// right guard page if `right`; `None` (counted) when the object does not fit a page
    /// or no slot is free. The caller maps [`Self::slot_page`] of the slot returned.
    pub fn alloc(&mut self, size: usize, align: usize, right: bool, track: Track) -> Option<(usize, u64)> {
        let align = align.max(1);
        if size == 0 || size > PAGE_SIZE || !align.is_power_of_two() || align > PAGE_SIZE {
            return None;
        }
        let Some(k) = (0..N)
            .map(|i| (self.next + i) % N.max(1))
            .find(|&i| matches!(self.slots.get(i).map(|s| s.state), Some(SlotState::Unused | SlotState::Freed)))
        else {
            self.fallbacks += 1;
            return None;
        };
        self.next = (k + 1) % N;
        let page = self.slot_page(k);
        let addr = if right { (page + PAGE - size as u64) & !(align as u64 - 1) } else { page };
        self.slots[k] = Slot { state: SlotState::Allocated, addr, size, alloc: track, free: Track::default() };
        self.allocs += 1;
        Some((k, addr))
    }

    /// Frees the object at `addr`: its slot, whose page the caller unmaps.
    pub fn free(&mut self, addr: u64, track: Track) -> Result<usize, FreeError> {
        let slot = self.object_slot(addr);
        match slot {
            Some(k) if self.slots[k].state == SlotState::Allocated && self.slots[k].addr == addr => {
                self.slots[k].state = SlotState::Freed;
                self.slots[k].free = track;
                self.frees += 1;
                Ok(k)
            }
            _ => Err(FreeError::Invalid { slot }),
        }
    }

    /// The slot whose object page holds `addr`.
    pub fn object_slot(&self, addr: u64) -> Option<usize> {
        if !self.contains(addr) {
            return None;
        }
        let p = (addr - self.base) / PAGE;
        (p >= 2 && p.is_multiple_of(2) && ((p - 2) / 2) < N as u64).then(|| ((p - 2) / 2) as usize)
    }

    /// The object's size, if `addr` is a live object's address.
    pub fn size_of(&self, addr: u64) -> Option<usize> {
        let k = self.object_slot(addr)?;
        let s = &self.slots[k];
        (s.state == SlotState::Allocated && s.addr == addr).then_some(s.size)
    }

    /// What a fault at `addr` (in the pool) hit.
    pub fn classify(&self, addr: u64) -> FaultKind {
        if let Some(k) = self.object_slot(addr) {
            return match self.slots[k].state {
                SlotState::Freed => FaultKind::UseAfterFree { slot: k },
                _ => FaultKind::Unknown,
            };
        }
        if !self.contains(addr) {
            return FaultKind::Unknown;
        }
        let p = (addr - self.base) / PAGE;
        // Guard page p (odd): object (p - 3) / 2 on its left, (p - 1) / 2 on its right.
        let used = |k: usize| self.slots[k].state != SlotState::Unused;
        let left = (p >= 3 && p % 2 == 1).then(|| ((p - 3) / 2) as usize).filter(|&k| k < N && used(k));
        let right = (p % 2 == 1).then(|| ((p - 1) / 2) as usize).filter(|&k| k < N && used(k));
        let past_left = left.map(|k| addr + 1 - (self.slots[k].addr + self.slots[k].size as u64));
        let before_right = right.map(|k| self.slots[k].addr - addr);
        match (left.zip(past_left), right.zip(before_right)) {
            (Some((k, d)), Some((_, e))) if d <= e => FaultKind::OutOfBounds { slot: k, right: true, bytes: d },
            (Some((k, d)), None) => FaultKind::OutOfBounds { slot: k, right: true, bytes: d },
            (_, Some((k, e))) => FaultKind::OutOfBounds { slot: k, right: false, bytes: e },
            (None, None) => FaultKind::Unknown,
        }
    }

    /// After a reported fault: the slot is not used again (its page stays mapped).
    pub fn retire(&mut self, slot: usize) {
        self.slots[slot].state = SlotState::Retired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_ffa0_0000_0000;

    fn t(h: u32) -> Track {
        Track { handle: h, cpu: 0, ts_ns: 1 }
    }

    #[test]
    fn objects_sit_against_the_chosen_guard_page() {
        let mut p = KfencePool::<4>::new(BASE);
        let (k, left) = p.alloc(40, 8, false, t(1)).unwrap();
        assert_eq!(left, p.slot_page(k));
        let (k2, right) = p.alloc(40, 8, true, t(2)).unwrap();
        assert_ne!(k, k2);
        assert_eq!(right, p.slot_page(k2) + 4096 - 40);
        // Alignment rounds the right-placed object down, never past the page end.
        let (k3, a) = p.alloc(37, 16, true, t(3)).unwrap();
        assert_eq!(a % 16, 0);
        assert!(a + 37 <= p.slot_page(k3) + 4096 && a + 37 + 16 > p.slot_page(k3) + 4096);
        // Guard pages between object pages: every object page is surrounded by guards.
        for k in 0..4 {
            assert_eq!(p.object_slot(p.slot_page(k)), Some(k));
            assert_eq!(p.object_slot(p.slot_page(k) - 1), None, "the page before is a guard");
            assert_eq!(p.object_slot(p.slot_page(k) + 4096), None, "the page after is a guard");
        }
        // One byte past the right-placed object: out of bounds by 1, right of it.
        assert_eq!(p.classify(right + 40), FaultKind::OutOfBounds { slot: k2, right: true, bytes: 1 });
        // One byte before the left-placed object.
        assert_eq!(p.classify(left - 1), FaultKind::OutOfBounds { slot: k, right: false, bytes: 1 });
        assert_eq!(p.size_of(right), Some(40));
        assert_eq!(p.size_of(right + 8), None);
    }

    #[test]
    fn free_unmaps_and_a_use_after_free_is_classified() {
        let mut p = KfencePool::<2>::new(BASE);
        let (k, a) = p.alloc(64, 8, false, t(1)).unwrap();
        assert_eq!(p.free(a + 8, t(2)), Err(FreeError::Invalid { slot: Some(k) }));
        assert_eq!(p.free(a, t(2)), Ok(k));
        assert_eq!(p.free(a, t(3)), Err(FreeError::Invalid { slot: Some(k) }), "double free");
        assert_eq!(p.classify(a + 16), FaultKind::UseAfterFree { slot: k });
        assert_eq!(p.slot(k).free, t(2));
        assert_eq!(p.stats(), (1, 1, 0));
    }

    #[test]
    fn an_exhausted_pool_falls_back_and_counts() {
        let mut p = KfencePool::<3>::new(BASE);
        let objs: Vec<_> = (0..3).map(|i| p.alloc(16, 8, i % 2 == 0, t(1)).unwrap()).collect();
        assert_eq!(p.nr_allocated(), 3);
        assert_eq!(p.alloc(16, 8, false, t(1)), None, "full: the caller uses the slab");
        assert_eq!(p.alloc(16, 8, true, t(1)), None);
        assert_eq!(p.stats().2, 2);
        assert_eq!(p.alloc(5000, 8, false, t(1)), None, "larger than a page: never sampled");
        assert_eq!(p.stats().2, 2, "too large is not a pool fallback");
        // A freed slot is reused; a retired one is not.
        p.free(objs[1].1, t(2)).unwrap();
        p.retire(objs[1].0);
        assert_eq!(p.alloc(16, 8, false, t(1)), None);
        p.free(objs[2].1, t(2)).unwrap();
        assert_eq!(p.alloc(16, 8, false, t(1)).map(|x| x.0), Some(objs[2].0));
    }
}
