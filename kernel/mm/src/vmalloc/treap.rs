//! The intrusive treaps behind [`super::area::VmapAreas`] (Linux keeps `vmap_area`s in
//! rbtrees): each node holds its own links in two trees, by start and by (size, start),
//! so the trees never allocate. Random priorities keep the expected depth O(log n).

use alloc::alloc::{dealloc as heap_dealloc, Layout};
use core::ptr::null_mut;

use super::vm_area::VmArea;

/// One busy area or one free range, with its links in the trees (Linux's `vmap_area`).
/// A free range uses `area.start` and `area.size` for its start and length.
pub(super) struct VmapNode {
    pub(super) area: VmArea,
    pub(super) prio: u32,
    /// Links in the busy tree (busy areas) or the free-by-start tree (free ranges).
    pub(super) by_addr: [*mut VmapNode; 2],
    /// Links in the free-by-size tree (free ranges only).
    pub(super) by_size: [*mut VmapNode; 2],
}

const L: usize = 0;
const R: usize = 1;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    Addr,
    Size,
}

/// The key of a node in a tree: the start, or (length, start) for best fit.
///
/// # Safety
/// `n` must be a live node.
unsafe fn key(n: *mut VmapNode, t: Tree) -> (u64, u64) {
    // SAFETY: the caller's contract.
    let a = unsafe { &(*n).area };
    match t {
        Tree::Addr => (a.start.as_u64(), 0),
        Tree::Size => (a.size, a.start.as_u64()),
    }
}

/// The links of `n` in tree `t`.
///
/// # Safety
/// `n` must be a live node not otherwise borrowed.
unsafe fn links<'a>(n: *mut VmapNode, t: Tree) -> &'a mut [*mut VmapNode; 2] {
    // SAFETY: the caller's contract.
    unsafe {
        match t {
            Tree::Addr => &mut (*n).by_addr,
            Tree::Size => &mut (*n).by_size,
        }
    }
}

/// Treap insert of `n` (links cleared) under `*root`.
///
/// # Safety
/// Every node reachable from `*root` and `n` must be live and owned by the caller.
pub(super) unsafe fn insert(root: &mut *mut VmapNode, n: *mut VmapNode, t: Tree) {
    let r = *root;
    if r.is_null() {
        *root = n;
        return;
    }
    // SAFETY: (whole block) live nodes per the contract.
    unsafe {
        let side = if key(n, t) < key(r, t) { L } else { R };
        insert(&mut links(r, t)[side], n, t);
        let child = links(r, t)[side];
        if (*child).prio > (*r).prio {
            // Rotate the child up.
            links(r, t)[side] = links(child, t)[1 - side];
            links(child, t)[1 - side] = r;
            *root = child;
        }
    }
}

/// Joins two treaps whose keys are all ordered (`a` before `b`).
///
/// # Safety
/// As for [`insert`].
pub(super) unsafe fn merge(a: *mut VmapNode, b: *mut VmapNode, t: Tree) -> *mut VmapNode {
    if a.is_null() {
        return b;
    }
    if b.is_null() {
        return a;
    }
    // SAFETY: live nodes per the contract.
    unsafe {
        if (*a).prio > (*b).prio {
            links(a, t)[R] = merge(links(a, t)[R], b, t);
            a
        } else {
            links(b, t)[L] = merge(a, links(b, t)[L], t);
            b
        }
    }
}

/// Treap removal of node `n` (which must be in the tree).
///
/// # Safety
/// As for [`insert`], and `n` must be in the tree under `*root`.
pub(super) unsafe fn remove(root: &mut *mut VmapNode, n: *mut VmapNode, t: Tree) {
    let r = *root;
    if r.is_null() {
        return;
    }
    // SAFETY: live nodes per the contract.
    unsafe {
        if r == n {
            let l = links(n, t);
            *root = merge(l[L], l[R], t);
            *l = [null_mut(); 2];
            return;
        }
        let side = if key(n, t) < key(r, t) { L } else { R };
        remove(&mut links(r, t)[side], n, t);
    }
}

/// The node with the largest key `<= k`, or null.
///
/// # Safety
/// As for [`insert`].
pub(super) unsafe fn floor(mut cur: *mut VmapNode, k: (u64, u64), t: Tree) -> *mut VmapNode {
    let mut best = null_mut();
    while !cur.is_null() {
        // SAFETY: live nodes per the contract.
        unsafe {
            if key(cur, t) <= k {
                best = cur;
                cur = links(cur, t)[R];
            } else {
                cur = links(cur, t)[L];
            }
        }
    }
    best
}

/// The node with the smallest key `>= k`, or null.
///
/// # Safety
/// As for [`insert`].
pub(super) unsafe fn ceil(mut cur: *mut VmapNode, k: (u64, u64), t: Tree) -> *mut VmapNode {
    let mut best = null_mut();
    while !cur.is_null() {
        // SAFETY: live nodes per the contract.
        unsafe {
            if key(cur, t) >= k {
                best = cur;
                cur = links(cur, t)[L];
            } else {
                cur = links(cur, t)[R];
            }
        }
    }
    best
}

/// Frees every node of an address tree.
///
/// # Safety
/// The nodes must be owned by the caller and not used afterwards.
pub(super) unsafe fn free_tree(n: *mut VmapNode) {
    if n.is_null() {
        return;
    }
    // SAFETY: owned nodes, each freed once (an address tree holds each node once).
    unsafe {
        free_tree((*n).by_addr[L]);
        free_tree((*n).by_addr[R]);
        heap_dealloc(n.cast(), Layout::new::<VmapNode>());
    }
}
