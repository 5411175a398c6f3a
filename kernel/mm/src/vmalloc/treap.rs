//! The trees behind [`super::area::VmapAreas`] (Linux keeps `vmap_area`s in rbtrees):
//! nodes live in an arena and are named by `u32` index, and each node holds its own links
//! in two trees, by start and by (size, start), so the trees never allocate. Random
//! priorities (treaps) keep the expected depth O(log n).
//!
//! The arena is a directory of chunks of [`CHUNK`] slots, each chunk one heap block
//! got fallibly ([`Arena::reserve`]) before anything is changed. A freed slot goes on its
//! chunk's free list, threaded through the slots themselves, and a chunk whose slots are
//! all free is given back to the heap: giving a node back never allocates and never fails.
//! The few nodes that outlive a burst of areas can be left spread over the burst's chunks;
//! [`Arena::shrink`] moves them into older chunks and gives the burst's chunks back.

use alloc::vec::Vec;

use super::vm_area::VmArea;

/// Index of a node in the [`Arena`]; [`NIL`] for none.
pub(super) type Idx = u32;
/// No node (an empty tree, a missing child).
pub(super) const NIL: Idx = Idx::MAX;

/// One busy area or one free range, with its links in the trees (Linux's `vmap_area`).
/// A free range uses `area.start` and `area.size` for its start and length.
#[derive(Clone, Copy)]
pub(super) struct VmapNode {
    pub(super) area: VmArea,
    prio: u32,
    /// Links in the busy tree (busy areas) or the free-by-start tree (free ranges); in a
    /// free slot, `by_addr[0]` is the next free slot.
    by_addr: [Idx; 2],
    /// Links in the free-by-size tree (free ranges only).
    by_size: [Idx; 2],
}

/// `v.push(x)` if `v` has room, else `Err(x)`: never allocates, and links no infallible
/// allocation path into the image (`Vec::push_within_capacity` is not stable).
fn push_within_capacity<T>(v: &mut Vec<T>, x: T) -> Result<(), T> {
    let len = v.len();
    if len == v.capacity() {
        return Err(x);
    }
    // SAFETY: `len < capacity`: the slot at `len` is allocated and uninitialised; once it
    // is written, the first `len + 1` elements are initialised.
    unsafe {
        v.as_mut_ptr().add(len).write(x);
        v.set_len(len + 1);
    }
    Ok(())
}

const L: usize = 0;
const R: usize = 1;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    Addr,
    Size,
}

/// Slots per chunk (a chunk of 32 nodes is 3 KiB).
pub(super) const CHUNK_SHIFT: u32 = 5;
/// Slots per chunk.
pub(super) const CHUNK: usize = 1 << CHUNK_SHIFT;
const SLOT_MASK: Idx = CHUNK as Idx - 1;
/// Directory entries made room for at the first chunk, so a directory that stays under
/// this many chunks is one lasting heap block.
const DIR_INITIAL: usize = 16;

/// [`CHUNK`] slots from one heap block, and its place on the list of chunks with room.
struct Chunk {
    /// Capacity [`CHUNK`]; the slots used so far (free ones included).
    nodes: Vec<VmapNode>,
    /// First free slot among `nodes` (linked through `by_addr[0]`), or [`NIL`].
    free: Idx,
    /// Slots holding a node.
    used: usize,
    /// Neighbours on the list of chunks with room, or [`NIL`].
    prev: Idx,
    next: Idx,
    /// When the chunk was made ([`Arena::shrink`] gives the youngest back first).
    born: u64,
}

/// A directory entry: a chunk, or an empty entry on the list of empty entries.
enum Entry {
    Live(Chunk),
    Empty(Idx),
}

/// The nodes of one [`super::area::VmapAreas`], by index (chunk number and slot).
pub(super) struct Arena {
    dir: Vec<Entry>,
    /// First empty directory entry, or [`NIL`].
    empty: Idx,
    /// First chunk with a free slot, or [`NIL`].
    partial: Idx,
    /// Free slots in the live chunks.
    spare: usize,
    /// Chunks made so far (the next chunk's `born`).
    born: u64,
}

impl Arena {
    /// An empty arena (no allocation; usable in a `static`).
    pub(super) const fn new() -> Self {
        Self { dir: Vec::new(), empty: NIL, partial: NIL, spare: 0, born: 0 }
    }

    fn chunk(&self, c: Idx) -> &Chunk {
        match &self.dir[c as usize] {
            Entry::Live(ch) => ch,
            Entry::Empty(_) => panic!("vmap node in a freed chunk"),
        }
    }

    fn chunk_mut(&mut self, c: Idx) -> &mut Chunk {
        match &mut self.dir[c as usize] {
            Entry::Live(ch) => ch,
            Entry::Empty(_) => panic!("vmap node in a freed chunk"),
        }
    }

    /// Puts chunk `c` first on the list of chunks with room.
    fn link_partial(&mut self, c: Idx) {
        let head = self.partial;
        if head != NIL {
            self.chunk_mut(head).prev = c;
        }
        let ch = self.chunk_mut(c);
        (ch.prev, ch.next) = (NIL, head);
        self.partial = c;
    }

    /// Takes chunk `c` off the list of chunks with room.
    fn unlink_partial(&mut self, c: Idx) {
        let (prev, next) = {
            let ch = self.chunk_mut(c);
            let pn = (ch.prev, ch.next);
            (ch.prev, ch.next) = (NIL, NIL);
            pn
        };
        if prev != NIL {
            self.chunk_mut(prev).next = next;
        } else {
            self.partial = next;
        }
        if next != NIL {
            self.chunk_mut(next).prev = prev;
        }
    }

    /// Makes room for `n` more nodes, so the next `n` [`Self::take`]s do not allocate;
    /// `false` (nothing changed but room made for fewer) if the heap has no room or the
    /// indices would run out.
    pub(super) fn reserve(&mut self, n: usize) -> bool {
        while self.spare < n {
            let mut nodes = Vec::new();
            if nodes.try_reserve_exact(CHUNK).is_err() {
                return false;
            }
            let chunk = Chunk { nodes, free: NIL, used: 0, prev: NIL, next: NIL, born: self.born };
            self.born += 1;
            let c = if self.empty != NIL {
                let c = self.empty;
                let Entry::Empty(next) = self.dir[c as usize] else { unreachable!("a live chunk on the empty list") };
                self.empty = next;
                self.dir[c as usize] = Entry::Live(chunk);
                c
            } else {
                if self.dir.len() >= (NIL >> CHUNK_SHIFT) as usize {
                    return false;
                }
                if self.dir.len() == self.dir.capacity() && self.dir.try_reserve(DIR_INITIAL).is_err() {
                    return false;
                }
                if push_within_capacity(&mut self.dir, Entry::Live(chunk)).is_err() {
                    return false;
                }
                (self.dir.len() - 1) as Idx
            };
            self.link_partial(c);
            self.spare += CHUNK;
        }
        true
    }

    /// A node for `area` with priority `prio`, in no tree, from room made by
    /// [`Self::reserve`].
    ///
    /// # Panics
    ///
    /// Without that room.
    pub(super) fn take(&mut self, area: VmArea, prio: u32) -> Idx {
        let c = self.partial;
        assert!(c != NIL, "vmap node taken without reserve");
        self.take_in(c, VmapNode { area, prio, by_addr: [NIL; 2], by_size: [NIL; 2] })
    }

    /// `node` (links and all) in a free slot of chunk `c`, which has room.
    fn take_in(&mut self, c: Idx, node: VmapNode) -> Idx {
        let ch = self.chunk_mut(c);
        let i = if ch.free != NIL {
            let i = ch.free;
            let slot = &mut ch.nodes[(i & SLOT_MASK) as usize];
            ch.free = slot.by_addr[L];
            *slot = node;
            i
        } else {
            if push_within_capacity(&mut ch.nodes, node).is_err() {
                unreachable!("a chunk with room has capacity");
            }
            (c << CHUNK_SHIFT) | (ch.nodes.len() - 1) as Idx
        };
        ch.used += 1;
        let full = ch.used == CHUNK;
        self.spare -= 1;
        if full {
            self.unlink_partial(c);
        }
        i
    }

    /// Gives node `i` (in no tree) back; its chunk goes back to the heap when it holds no
    /// other node. Never allocates.
    pub(super) fn give(&mut self, i: Idx) {
        let c = i >> CHUNK_SHIFT;
        let ch = self.chunk_mut(c);
        let was_full = ch.used == CHUNK;
        ch.used -= 1;
        let empty = ch.used == 0;
        let slot = &mut ch.nodes[(i & SLOT_MASK) as usize];
        (slot.by_addr, slot.by_size) = ([ch.free, NIL], [NIL; 2]);
        ch.free = i;
        self.spare += 1;
        if was_full {
            self.link_partial(c);
        }
        if empty {
            self.release_chunk(c);
        }
    }

    /// Gives chunk `c`, which holds no node, back to the heap.
    fn release_chunk(&mut self, c: Idx) {
        self.unlink_partial(c);
        self.dir[c as usize] = Entry::Empty(self.empty);
        self.empty = c;
        self.spare -= CHUNK;
    }

    /// Gives the youngest chunks back while the free slots would fill a chunk: each one's
    /// nodes move into free slots of older chunks and are relinked in the trees of `roots`
    /// that hold them (a node is found in a tree by its key). Afterwards the arena holds
    /// as many chunks as its nodes need, and the oldest: the chunks of the nodes that
    /// outlive a burst of areas are the ones they had before it, however the burst's
    /// frees were spread (a free gives back only a chunk it empties). Returns the chunks
    /// given back. Never allocates.
    pub(super) fn shrink(&mut self, roots: &mut [(&mut Idx, Tree)]) -> usize {
        let mut given = 0;
        while self.spare >= CHUNK {
            let youngest = self.dir.iter().enumerate().filter_map(|(c, e)| match e {
                Entry::Live(ch) => Some((ch.born, c as Idx)),
                Entry::Empty(_) => None,
            });
            let Some((_, v)) = youngest.max() else { break };
            // The slots of `v` holding a node: every slot made, less those on its free list.
            let ch = self.chunk(v);
            let mut held = (1u64 << ch.nodes.len()) - 1;
            let mut f = ch.free;
            while f != NIL {
                held &= !(1 << (f & SLOT_MASK));
                f = ch.nodes[(f & SLOT_MASK) as usize].by_addr[L];
            }
            while held != 0 {
                let from = (v << CHUNK_SHIFT) | held.trailing_zeros();
                held &= held - 1;
                // Another chunk with room: the others' free slots hold `v`'s nodes, as
                // `v`'s own free slots are fewer than `spare`.
                let mut c = self.partial;
                while c == v {
                    c = self.chunk(c).next;
                }
                let to = self.take_in(c, *self.get(from));
                for (root, t) in roots.iter_mut() {
                    self.relink(root, from, to, *t);
                }
                self.give(from);
            }
            if self.chunk_held(v) {
                self.release_chunk(v);
            }
            given += 1;
        }
        given
    }

    /// Whether chunk `c` is still live (a chunk whose last node was given goes back).
    fn chunk_held(&self, c: Idx) -> bool {
        matches!(self.dir[c as usize], Entry::Live(_))
    }

    /// Where node `from` hangs in the tree under `root` (searched by its key), `to` hangs
    /// instead; a tree that does not hold `from` is left alone.
    fn relink(&mut self, root: &mut Idx, from: Idx, to: Idx, t: Tree) {
        if *root == from {
            *root = to;
            return;
        }
        let k = self.key(from, t);
        let mut cur = *root;
        while cur != NIL {
            let side = if k < self.key(cur, t) { L } else { R };
            let child = self.links(cur, t)[side];
            if child == from {
                self.links_mut(cur, t)[side] = to;
                return;
            }
            cur = child;
        }
    }

    /// Node `i`.
    pub(super) fn get(&self, i: Idx) -> &VmapNode {
        &self.chunk(i >> CHUNK_SHIFT).nodes[(i & SLOT_MASK) as usize]
    }

    /// Node `i`, to change its area (while it is in no tree whose key would change).
    pub(super) fn get_mut(&mut self, i: Idx) -> &mut VmapNode {
        &mut self.chunk_mut(i >> CHUNK_SHIFT).nodes[(i & SLOT_MASK) as usize]
    }

    /// When each live chunk was made, oldest first.
    #[cfg(test)]
    pub(super) fn borns(&self) -> Vec<u64> {
        let mut b: Vec<u64> =
            self.dir.iter().filter_map(|e| if let Entry::Live(c) = e { Some(c.born) } else { None }).collect();
        b.sort_unstable();
        b
    }

    /// Slots in use (nodes in the trees), chunks held, and chunks holding no node.
    #[cfg(test)]
    pub(super) fn usage(&self) -> (usize, usize, usize) {
        let live = self.dir.iter().filter_map(|e| if let Entry::Live(c) = e { Some(c.used) } else { None });
        live.fold((0, 0, 0), |(u, n, e), used| (u + used, n + 1, e + usize::from(used == 0)))
    }

    /// The depth of tree `t` under `root` (0 for an empty tree).
    #[cfg(test)]
    pub(super) fn depth(&self, root: Idx, t: Tree) -> usize {
        if root == NIL {
            return 0;
        }
        let [l, r] = self.links(root, t);
        1 + self.depth(l, t).max(self.depth(r, t))
    }

    /// The key of node `n` in tree `t`: the start, or (length, start) for best fit.
    fn key(&self, n: Idx, t: Tree) -> (u64, u64) {
        let a = &self.get(n).area;
        match t {
            Tree::Addr => (a.start.as_u64(), 0),
            Tree::Size => (a.size, a.start.as_u64()),
        }
    }

    fn links(&self, n: Idx, t: Tree) -> [Idx; 2] {
        let n = self.get(n);
        match t {
            Tree::Addr => n.by_addr,
            Tree::Size => n.by_size,
        }
    }

    fn links_mut(&mut self, n: Idx, t: Tree) -> &mut [Idx; 2] {
        let n = self.get_mut(n);
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
        if self.get(child).prio > self.get(root).prio {
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
        if self.get(a).prio > self.get(b).prio {
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

    fn range(s: u64, len: u64) -> VmArea {
        VmArea::free_range(s, len)
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
        /// Give back the chunks the nodes no longer need.
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u16>(), 1..32u8, any::<u32>()).prop_map(|(s, l, p)| Op::Insert(s, l, p)),
            2 => any::<usize>().prop_map(Op::Remove),
            2 => (1..40u8, any::<u16>()).prop_map(|(l, s)| Op::Find(l, s)),
            1 => Just(Op::Shrink),
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
                    Op::Shrink => {
                        let before = a.borns();
                        let given = a.shrink(&mut [(&mut by_addr, Tree::Addr), (&mut by_size, Tree::Size)]);
                        let (used, chunks, _) = a.usage();
                        prop_assert_eq!(chunks, used.div_ceil(CHUNK), "as many chunks as the nodes need");
                        prop_assert_eq!(given, before.len() - chunks);
                        prop_assert_eq!(a.borns(), before[..chunks].to_vec(), "the oldest chunks kept");
                        // The nodes moved: their new indices, from the tree by start.
                        let mut got = Vec::new();
                        walk(&a, by_addr, Tree::Addr, &mut got);
                        for n in got {
                            model.get_mut(&a.get(n).area.start.as_u64()).unwrap().1 = n;
                        }
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
                let (used, chunks, empty) = a.usage();
                prop_assert_eq!(used, model.len());
                prop_assert_eq!(empty, 0, "an empty chunk was kept");
                prop_assert!(chunks <= peak.div_ceil(CHUNK).max(model.len()), "a freed slot was not reused");
            }
        }
    }

    #[test]
    fn slots_are_reused_and_empty_chunks_given_back() {
        let mut a = Arena::new();
        assert!(a.reserve(CHUNK + 1));
        assert_eq!(a.usage(), (0, 2, 2), "room made, nothing taken");
        let v: Vec<Idx> = (0..CHUNK as u64 + 1).map(|i| a.take(range(i * K, K), i as u32)).collect();
        assert!(a.reserve(CHUNK - 1), "room left in the second chunk");
        assert_eq!(a.usage(), (CHUNK + 1, 2, 0));
        a.give(v[3]);
        assert_eq!(a.take(range(0, K), 0), v[3], "the freed slot is used again");
        a.give(v[CHUNK]);
        assert_eq!(a.usage(), (CHUNK, 1, 0), "the emptied chunk went back");
        for &n in &v[..CHUNK] {
            a.give(n);
        }
        assert_eq!((a.usage(), a.spare), ((0, 0, 0), 0));
        assert!(a.reserve(1));
        let n = a.take(range(0, K), 0);
        assert_eq!(n >> CHUNK_SHIFT, 1, "an empty directory entry reused");
        a.give(n);
        // Room made and never taken is given back by a shrink.
        assert!(a.reserve(CHUNK + 1));
        assert_eq!(a.usage(), (0, 2, 2));
        assert_eq!(a.borns(), [3, 4], "chunks are dated in the order they were made");
        assert_eq!(a.shrink(&mut []), 2);
        assert_eq!((a.usage(), a.spare), ((0, 0, 0), 0));
    }
}
