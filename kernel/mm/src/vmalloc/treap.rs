//! The trees behind [`super::area::VmapAreas`] (Linux keeps `vmap_area`s in rbtrees):
//! nodes live in an arena and are named by `u32` index, and each node holds its own links
//! in two trees, by start and by (size, start), so the trees never allocate. Random
//! priorities (treaps) keep the expected depth O(log n).
//!
//! The arena is a `Vec` of slots grown fallibly ([`Arena::reserve`]) before anything is
//! changed; a freed slot goes on a free list threaded through the slots themselves, so
//! giving a node back never allocates and never fails.

use alloc::vec::Vec;

use super::vm_area::VmArea;

/// Index of a node in the [`Arena`]; [`NIL`] for none.
pub(super) type Idx = u32;
/// No node (an empty tree, a missing child).
pub(super) const NIL: Idx = Idx::MAX;

/// One busy area or one free range, with its links in the trees (Linux's `vmap_area`).
/// A free range uses `area.start` and `area.size` for its start and length.
pub(super) struct VmapNode {
    pub(super) area: VmArea,
    prio: u32,
    /// Links in the busy tree (busy areas) or the free-by-start tree (free ranges); in a
    /// free slot, `by_addr[0]` is the next free slot.
    by_addr: [Idx; 2],
    /// Links in the free-by-size tree (free ranges only).
    by_size: [Idx; 2],
}

const L: usize = 0;
const R: usize = 1;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    Addr,
    Size,
}

/// The nodes of one [`super::area::VmapAreas`], by index, and the list of free slots.
pub(super) struct Arena {
    nodes: Vec<VmapNode>,
    /// First free slot (linked through `by_addr[0]`), or [`NIL`].
    free: Idx,
    nr_free: usize,
}

impl Arena {
    /// An empty arena (no allocation; usable in a `static`).
    pub(super) const fn new() -> Self {
        Self { nodes: Vec::new(), free: NIL, nr_free: 0 }
    }

    /// Makes room for `n` more nodes, so the next `n` [`Self::take`]s do not allocate;
    /// `false` (nothing changed) if the heap has no room or the indices would run out.
    pub(super) fn reserve(&mut self, n: usize) -> bool {
        let spare = self.nr_free + (self.nodes.capacity() - self.nodes.len());
        if spare >= n {
            return true;
        }
        let more = n - self.nr_free;
        if self.nodes.len() + more > NIL as usize {
            return false;
        }
        self.nodes.try_reserve(more).is_ok()
    }

    /// A node for `area` with priority `prio`, in no tree. Needs room made by
    /// [`Self::reserve`] (else it may allocate, infallibly).
    pub(super) fn take(&mut self, area: VmArea, prio: u32) -> Idx {
        let node = VmapNode { area, prio, by_addr: [NIL; 2], by_size: [NIL; 2] };
        if self.free != NIL {
            let i = self.free;
            self.free = self.nodes[i as usize].by_addr[L];
            self.nr_free -= 1;
            self.nodes[i as usize] = node;
            return i;
        }
        debug_assert!(self.nodes.len() < self.nodes.capacity(), "take without reserve");
        self.nodes.push(node);
        (self.nodes.len() - 1) as Idx
    }

    /// Gives node `i` (in no tree) back. Never allocates.
    pub(super) fn give(&mut self, i: Idx) {
        let n = &mut self.nodes[i as usize];
        n.by_addr = [self.free, NIL];
        n.by_size = [NIL; 2];
        self.free = i;
        self.nr_free += 1;
    }

    /// Node `i`.
    pub(super) fn get(&self, i: Idx) -> &VmapNode {
        &self.nodes[i as usize]
    }

    /// Node `i`, to change its area (while it is in no tree whose key would change).
    pub(super) fn get_mut(&mut self, i: Idx) -> &mut VmapNode {
        &mut self.nodes[i as usize]
    }

    /// Slots in use (nodes in the trees).
    #[cfg(test)]
    pub(super) fn nr_used(&self) -> usize {
        self.nodes.len() - self.nr_free
    }

    /// The key of node `n` in tree `t`: the start, or (length, start) for best fit.
    fn key(&self, n: Idx, t: Tree) -> (u64, u64) {
        let a = &self.nodes[n as usize].area;
        match t {
            Tree::Addr => (a.start.as_u64(), 0),
            Tree::Size => (a.size, a.start.as_u64()),
        }
    }

    fn links(&self, n: Idx, t: Tree) -> [Idx; 2] {
        let n = &self.nodes[n as usize];
        match t {
            Tree::Addr => n.by_addr,
            Tree::Size => n.by_size,
        }
    }

    fn links_mut(&mut self, n: Idx, t: Tree) -> &mut [Idx; 2] {
        let n = &mut self.nodes[n as usize];
        match t {
            Tree::Addr => &mut n.by_addr,
            Tree::Size => &mut n.by_size,
        }
    }

    /// Treap insert of `n` (links cleared) under `root`; returns the new root.
    pub(super) fn insert(&mut self, root: Idx, n: Idx, t: Tree) -> Idx {
        if root == NIL {
            return n;
        }
        let side = if self.key(n, t) < self.key(root, t) { L } else { R };
        let child = self.insert(self.links(root, t)[side], n, t);
        self.links_mut(root, t)[side] = child;
        if self.nodes[child as usize].prio > self.nodes[root as usize].prio {
            // Rotate the child up.
            self.links_mut(root, t)[side] = self.links(child, t)[1 - side];
            self.links_mut(child, t)[1 - side] = root;
            return child;
        }
        root
    }

    /// Joins two treaps whose keys are all ordered (`a` before `b`); returns the root.
    fn merge(&mut self, a: Idx, b: Idx, t: Tree) -> Idx {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let r = self.merge(self.links(a, t)[R], b, t);
            self.links_mut(a, t)[R] = r;
            a
        } else {
            let l = self.merge(a, self.links(b, t)[L], t);
            self.links_mut(b, t)[L] = l;
            b
        }
    }

    /// Treap removal of node `n` (which must be in the tree under `root`); returns the
    /// new root and leaves `n`'s links in `t` cleared.
    pub(super) fn remove(&mut self, root: Idx, n: Idx, t: Tree) -> Idx {
        if root == NIL {
            return NIL;
        }
        if root == n {
            let [l, r] = self.links(n, t);
            *self.links_mut(n, t) = [NIL; 2];
            return self.merge(l, r, t);
        }
        let side = if self.key(n, t) < self.key(root, t) { L } else { R };
        let c = self.remove(self.links(root, t)[side], n, t);
        self.links_mut(root, t)[side] = c;
        root
    }

    /// The node with the largest key `<= k` under `cur`, or [`NIL`].
    pub(super) fn floor(&self, mut cur: Idx, k: (u64, u64), t: Tree) -> Idx {
        let mut best = NIL;
        while cur != NIL {
            if self.key(cur, t) <= k {
                best = cur;
                cur = self.links(cur, t)[R];
            } else {
                cur = self.links(cur, t)[L];
            }
        }
        best
    }

    /// The node with the smallest key `>= k` under `cur`, or [`NIL`].
    pub(super) fn ceil(&self, mut cur: Idx, k: (u64, u64), t: Tree) -> Idx {
        let mut best = NIL;
        while cur != NIL {
            if self.key(cur, t) >= k {
                best = cur;
                cur = self.links(cur, t)[L];
            } else {
                cur = self.links(cur, t)[R];
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    //! The arena trees against a model: random inserts and removals of free ranges in
    //! both trees, compared after every step with `BTreeMap`s by start and by
    //! (length, start): order, floor/ceil lookups, best-fit gap search, the treap's heap
    //! order, and slot reuse (the arena never holds more slots than its peak).

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::addr::VirtAddr;
    use crate::vmalloc::vm_area::VmKind;

    fn range(s: u64, len: u64) -> VmArea {
        VmArea {
            start: VirtAddr::new(s),
            size: len,
            caller: "",
            nr_pages: 0,
            kind: VmKind::Vmalloc,
            phys_addr: None,
            huge: 0,
        }
    }

    /// Checks the tree under `root` is ordered by key and heap-ordered by priority,
    /// and returns its nodes in order.
    fn walk(a: &Arena, root: Idx, t: Tree, out: &mut Vec<Idx>) {
        if root == NIL {
            return;
        }
        let [l, r] = a.links(root, t);
        for c in [l, r] {
            if c != NIL {
                assert!(a.get(c).prio <= a.get(root).prio, "heap order");
            }
        }
        walk(a, l, t, out);
        if let Some(&p) = out.last() {
            assert!(a.key(p, t) < a.key(root, t), "key order");
        }
        out.push(root);
        walk(a, r, t, out);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Insert a range at slot `start` (in 4 KiB units) of length `len` units, if free.
        Insert(u16, u8, u32),
        /// Remove the `i`-th live range.
        Remove(usize),
        /// Best fit for `len` units; floor and ceil around `start`.
        Find(u8, u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u16>(), 1..32u8, any::<u32>()).prop_map(|(s, l, p)| Op::Insert(s, l, p)),
            2 => any::<usize>().prop_map(Op::Remove),
            2 => (1..40u8, any::<u16>()).prop_map(|(l, s)| Op::Find(l, s)),
        ]
    }

    const K: u64 = 4096;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn arena_trees_match_a_model(ops in prop::collection::vec(op(), 1..200)) {
            let mut a = Arena::new();
            let (mut by_addr, mut by_size) = (NIL, NIL);
            // start -> (len, node)
            let mut model: BTreeMap<u64, (u64, Idx)> = BTreeMap::new();
            let mut sizes: BTreeSet<(u64, u64)> = BTreeSet::new();
            let mut peak = 0;
            for op in ops {
                match op {
                    Op::Insert(s, l, prio) => {
                        let (s, len) = (u64::from(s) * K, u64::from(l) * K);
                        // Ranges do not overlap (free ranges never do).
                        let clash = model.range(..s + len).next_back().is_some_and(|(&ps, &(pl, _))| ps + pl > s);
                        if clash {
                            continue;
                        }
                        prop_assert!(a.reserve(1));
                        let n = a.take(range(s, len), prio);
                        by_addr = a.insert(by_addr, n, Tree::Addr);
                        by_size = a.insert(by_size, n, Tree::Size);
                        model.insert(s, (len, n));
                        sizes.insert((len, s));
                    }
                    Op::Remove(i) => {
                        if model.is_empty() {
                            continue;
                        }
                        let s = *model.keys().nth(i % model.len()).unwrap();
                        let (len, n) = model.remove(&s).unwrap();
                        sizes.remove(&(len, s));
                        by_addr = a.remove(by_addr, n, Tree::Addr);
                        by_size = a.remove(by_size, n, Tree::Size);
                        a.give(n);
                    }
                    Op::Find(l, s) => {
                        let (need, at) = (u64::from(l) * K, u64::from(s) * K);
                        let fit = a.ceil(by_size, (need, 0), Tree::Size);
                        let want = sizes.range((need, 0)..).next().map(|&(_, s)| s);
                        prop_assert_eq!((fit != NIL).then(|| a.get(fit).area.start.as_u64()), want, "best fit");
                        let fl = a.floor(by_addr, (at, 0), Tree::Addr);
                        let want = model.range(..=at).next_back().map(|(&s, _)| s);
                        prop_assert_eq!((fl != NIL).then(|| a.get(fl).area.start.as_u64()), want, "floor");
                        let ce = a.ceil(by_addr, (at, 0), Tree::Addr);
                        let want = model.range(at..).next().map(|(&s, _)| s);
                        prop_assert_eq!((ce != NIL).then(|| a.get(ce).area.start.as_u64()), want, "ceil");
                    }
                }
                peak = peak.max(model.len());
                let mut got = Vec::new();
                walk(&a, by_addr, Tree::Addr, &mut got);
                let starts: Vec<u64> = got.iter().map(|&n| a.get(n).area.start.as_u64()).collect();
                prop_assert_eq!(starts, model.keys().copied().collect::<Vec<_>>());
                let mut got = Vec::new();
                walk(&a, by_size, Tree::Size, &mut got);
                let keys: Vec<(u64, u64)> = got.iter().map(|&n| a.key(n, Tree::Size)).collect();
                prop_assert_eq!(keys, sizes.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(a.nr_used(), model.len());
                prop_assert!(a.nodes.len() <= peak, "a freed slot was not reused");
            }
        }
    }

    #[test]
    fn reserve_is_all_or_nothing_and_give_never_allocates() {
        let mut a = Arena::new();
        assert!(a.reserve(3));
        let cap = a.nodes.capacity();
        let v: Vec<Idx> = (0..3).map(|i| a.take(range(i * K, K), i as u32)).collect();
        assert_eq!(a.nodes.capacity(), cap, "take after reserve does not grow");
        for &n in &v {
            a.give(n);
        }
        assert!(a.reserve(3), "three free slots");
        assert_eq!(a.nodes.capacity(), cap);
        let again: Vec<Idx> = (0..3).map(|i| a.take(range(i * K, K), 0)).collect();
        let mut sorted = again.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2], "freed slots reused");
        assert_eq!(a.nodes.len(), 3);
    }
}
