//! Per-CPU page lists (Linux's `per_cpu_pages`): blocks of orders 0..=3 cached per CPU and
//! zone, moved to and from the zone in batches of `batch` and drained when `count >= high`.
//!
//! Ownership, Linux's local lock made per-CPU: CPU `c`'s lists are read and written only
//! by code running on CPU `c`, inside a [`LocalPcp`]. Taking one is a plain store to the
//! lists' `busy` word (only this CPU ever writes it, so no atomic read-modify-write and no
//! lock word shared with other CPUs), with compiler fences so the list accesses stay
//! inside; interrupts stay enabled. An interrupt handler on the same CPU that finds the
//! lists busy does not wait (it would wait for ever): it takes the separate path, the
//! zone's free lists under the zone lock, as Linux does when `pcp_spin_trylock` fails.
//! Frees of pages allocated on another CPU go onto the freeing CPU's own lists (Linux's
//! `free_unref_page`); other CPUs' lists are only ever drained by their owner (the
//! kernel asks with an IPI), except for CPUs that are not allocating (offline, or every
//! CPU quiet: init, tests).
//!
//! The fields are atomics used only with `Relaxed` loads and stores, which compile to
//! plain loads and stores; they make the shared `static` `Sync` without `unsafe` and let
//! other CPUs read the counters for reports.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use super::migratetype::MIGRATE_PCPTYPES;
use super::page::{MemMap, Page, NIL};
use core::sync::atomic::{compiler_fence, AtomicBool, Ordering::SeqCst};

pub use crate::NR_CPUS;

/// Highest order cached on the per-CPU lists (as Linux 5.13+: orders up to
/// `PAGE_ALLOC_COSTLY_ORDER`).
pub const PCP_MAX_ORDER: u32 = 3;
const PCP_ORDERS: usize = PCP_MAX_ORDER as usize + 1;
/// Room for the lists of one order: [`MIGRATE_PCPTYPES`] rounded up to a power of two,
/// so that a list number from a page's info word indexes them with a mask, no bounds
/// check (the spare list stays empty).
const PCP_LIST_SLOTS: usize = MIGRATE_PCPTYPES.next_power_of_two();

/// `1 << order` for a per-CPU order, computed once per fast path and shared by its
/// watermark test, list count and event counter. One form on every target: the host's
/// instruction counts stand for the kernel's code (a table measured 5 instructions fewer
/// per pair on x86-64 and 4 more on AArch64). Shifted as a 32-bit value and widened:
/// LLVM rewrites `count - (1 << order)` of a 64-bit shift as `count + (-1 << order)`,
/// a second shift of its own, where the widened one is subtracted as it is (two
/// instructions fewer per allocation on AArch64).
#[inline(always)]
pub(crate) const fn pcp_pages(order: u32) -> u64 {
    (1u32 << order) as u64
}

/// [`PerCpuPages::pop_page`]'s head `idx` outside `mem_map` (`len` descriptors) and not
/// the list end: a corrupt list, which panics as the bounds check did.
#[cold]
#[inline(never)]
fn corrupt_list(idx: u32, len: usize) -> ! {
    panic!("per-CPU list head {idx} outside mem_map ({len} pages)")
}

/// `a += n` by its only writer: a plain load and store, no atomic read-modify-write.
/// Returns the new value (a relaxed load is not forwarded from the store before it, so a
/// caller that needs the value again keeps this one).
#[inline(always)]
fn add(a: &AtomicU64, n: u64) -> u64 {
    let v = a.load(Relaxed).wrapping_add(n);
    a.store(v, Relaxed);
    v
}
/// `a -= n`, the same way.
#[inline(always)]
fn sub(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_sub(n), Relaxed);
}

/// One CPU's cached blocks for one zone: singly linked LIFO lists per order and
/// migratetype (hot pages are reused first), through the descriptors' `next` word, and
/// the CPU's page event counters for the zone (Linux's per-CPU `vm_event_states`,
/// summed over CPUs when read).
///
/// Aligned to the Pi's 64-byte cache line so that no two CPUs' lists share one (the
/// size rounds up to 128 bytes, and indexing by zone is a shift).
#[derive(Debug)]
#[repr(align(64))]
pub struct PerCpuPages {
    count: AtomicU64,
    high: AtomicU64,
    /// The count at which a free drains: `high`, or 0 while a drain is pending, so that
    /// the free path's one compare catches both. Written by an interrupt asking for a
    /// drain ([`Self::set_drain_pending`]) and by the holder taking the request
    /// ([`Self::take_drain_request`]), never by the fast paths.
    drain_at: AtomicU64,
    batch: AtomicU64,
    lists: [[AtomicU32; PCP_LIST_SLOTS]; PCP_ORDERS],
    pgalloc: AtomicU64,
    pgfree: AtomicU64,
    /// Held by a [`LocalPcp`] (written only by the owning CPU).
    busy: AtomicBool,
    /// A drain was asked for while the lists were busy; the owner drains at its next
    /// free or slow-path allocation.
    drain_pending: AtomicBool,
}

/// A CPU's own per-CPU lists, held (the local lock): see the module documentation.
pub(crate) struct LocalPcp<'a> {
    pcp: &'a PerCpuPages,
}

impl<'a> LocalPcp<'a> {
    /// Takes the lists `pcp`, or `None` if code on this CPU that this one interrupted
    /// holds them (the caller then takes the zone path).
    ///
    /// The caller runs on the CPU owning `pcp`, or on a CPU standing in for one that is
    /// not allocating (offline, or all quiet).
    #[inline(always)]
    pub(crate) fn try_new(pcp: &'a PerCpuPages) -> Option<Self> {
        if pcp.busy.load(Relaxed) {
            return None;
        }
        pcp.busy.store(true, Relaxed);
        // An interrupt handler on this CPU sees `busy` before any list access below.
        compiler_fence(SeqCst);
        Some(LocalPcp { pcp })
    }
}

impl Drop for LocalPcp<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Every list access above is done before an interrupt handler can see `!busy`.
        compiler_fence(SeqCst);
        self.pcp.busy.store(false, Relaxed);
    }
}

impl core::ops::Deref for LocalPcp<'_> {
    type Target = PerCpuPages;
    #[inline(always)]
    fn deref(&self) -> &PerCpuPages {
        self.pcp
    }
}

impl PerCpuPages {
    /// Empty lists (batch 1, high 0 until the zone size is known).
    pub const fn new() -> PerCpuPages {
        PerCpuPages {
            count: AtomicU64::new(0),
            high: AtomicU64::new(0),
            drain_at: AtomicU64::new(0),
            batch: AtomicU64::new(1),
            lists: [const { [const { AtomicU32::new(NIL) }; PCP_LIST_SLOTS] }; PCP_ORDERS],
            pgalloc: AtomicU64::new(0),
            pgfree: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            drain_pending: AtomicBool::new(false),
        }
    }
    /// Pages (not blocks) on the lists.
    #[inline(always)]
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
    /// Drain a batch when `count` reaches this.
    #[inline(always)]
    pub fn high(&self) -> u64 {
        self.high.load(Relaxed)
    }
    /// Pages moved per refill or drain.
    #[inline(always)]
    pub fn batch(&self) -> u64 {
        self.batch.load(Relaxed)
    }
    /// Pages this CPU allocated from the zone (Linux's `pgalloc_<zone>` event).
    pub fn pgalloc(&self) -> u64 {
        self.pgalloc.load(Relaxed)
    }
    /// Pages this CPU freed into the zone (Linux's `pgfree` event).
    pub fn pgfree(&self) -> u64 {
        self.pgfree.load(Relaxed)
    }
    /// Whether a drain was asked for while the lists were busy.
    #[inline(always)]
    pub(crate) fn drain_pending(&self) -> bool {
        self.drain_pending.load(Relaxed)
    }
    /// Asks the owner for a drain (`true`; an interrupt on the owner CPU that found the
    /// lists busy): the flag, then `drain_at` 0, so the owner's next free (or slow-path
    /// allocation) drains. `false` withdraws a request (only the owner, lists held).
    pub(crate) fn set_drain_pending(&self, v: bool) {
        self.drain_pending.store(v, Relaxed);
        self.drain_at.store(if v { 0 } else { self.high() }, Relaxed);
    }
    /// Takes a pending drain request, if any (the owner, lists held: a [`LocalPcp`]): `drain_at` back to
    /// `high` first, then the flag read (and cleared only if set). An interrupt that asks
    /// again in between leaves `drain_at` 0 (the next free looks again) or sets the flag
    /// before this drain, which then answers it: no request is lost.
    pub(crate) fn take_drain_request(&self) -> bool {
        self.drain_at.store(self.high(), Relaxed);
        if !self.drain_pending() {
            return false;
        }
        self.drain_pending.store(false, Relaxed);
        true
    }
    /// Whether the lists are at `high` or a drain is pending (one compare): the free
    /// path's cue for [`PageAllocator::pcp_overflow`](super::PageAllocator).
    #[inline(always)]
    pub(crate) fn must_drain(&self) -> bool {
        self.must_drain_at(self.count())
    }
    /// [`Self::must_drain`] with the count the caller already has (the one
    /// [`Self::push_page`] returned).
    #[inline(always)]
    pub(crate) fn must_drain_at(&self, count: u64) -> bool {
        count >= self.drain_at.load(Relaxed)
    }
    /// Sets `high` and `batch` (single stores: the owner sees them at its next operation).
    pub(crate) fn set_high_batch(&self, high: u64, batch: u64) {
        self.high.store(high, Relaxed);
        self.batch.store(batch.max(1), Relaxed);
        self.drain_at.store(if self.drain_pending() { 0 } else { high }, Relaxed);
    }
    /// Counts an allocation of `n` pages (the owner, lists held).
    #[inline(always)]
    pub(crate) fn count_alloc(&self, n: u64) {
        add(&self.pgalloc, n);
    }
    /// Counts a free of `n` pages (the owner, lists held).
    #[inline(always)]
    pub(crate) fn count_free(&self, n: u64) {
        add(&self.pgfree, n);
    }
    #[inline(always)]
    pub(crate) fn push(&self, mm: &MemMap, idx: u32, order: u32, list: usize) {
        self.push_page(mm.at(idx), idx, order, list);
    }
    /// [`Self::push`] of a descriptor the caller already holds (`p` is `mem_map[idx]`);
    /// returns the new [`Self::count`].
    #[inline(always)]
    pub(crate) fn push_page(&self, p: &Page, idx: u32, order: u32, list: usize) -> u64 {
        let head = &self.lists[order as usize & (PCP_ORDERS - 1)][list & (PCP_LIST_SLOTS - 1)];
        p.set_next(head.load(Relaxed));
        p.set_prev(0);
        head.store(idx, Relaxed);
        add(&self.count, pcp_pages(order))
    }
    /// Pops a block of `order` off list `list`: its index, `None` if the list is empty.
    /// The list end is tested first: [`Self::pop_any`] finds most lists empty, where the
    /// bounds compare of [`Self::pop_page`] would be a second test.
    #[inline(always)]
    pub(crate) fn pop(&self, mm: &MemMap, order: u32, list: usize) -> Option<u32> {
        let head = &self.lists[order as usize & (PCP_ORDERS - 1)][list & (PCP_LIST_SLOTS - 1)];
        let idx = head.load(Relaxed);
        if idx == NIL {
            return None;
        }
        let p = mm.at(idx);
        head.store(p.next(), Relaxed);
        p.set_next(0);
        sub(&self.count, pcp_pages(order));
        Some(idx)
    }
    /// [`Self::pop`] returning the descriptor too.
    ///
    /// One compare for the empty list and the bounds check: [`NIL`] is above every
    /// index, so both fail `idx < len`, and the branch taken then tells them apart (an
    /// index out of range is a corrupt list and still panics, out of line).
    #[inline(always)]
    pub(crate) fn pop_page(&self, mm: &MemMap, order: u32, list: usize) -> Option<(u32, &'static Page)> {
        let head = &self.lists[order as usize & (PCP_ORDERS - 1)][list & (PCP_LIST_SLOTS - 1)];
        let idx = head.load(Relaxed);
        let Some(p) = mm.pages.get(idx as usize) else {
            if idx == NIL {
                return None;
            }
            corrupt_list(idx, mm.pages.len())
        };
        head.store(p.next(), Relaxed);
        p.set_next(0);
        sub(&self.count, pcp_pages(order));
        Some((idx, p))
    }
    /// Pops a block from the lists in turn, one block per non-empty list per round,
    /// starting at `*next` (Linux's round-robin in `free_pcppages_bulk`); returns it with
    /// its order. A drain thus takes from every list: blocks parked on a list nothing
    /// allocates from (left by frees of another migratetype) cannot keep `count` at
    /// `high` while the list in use is emptied and refilled on every operation, which made
    /// order-0 alloc+free 100 times slower after the fragmentation lab.
    pub(crate) fn pop_any(&self, mm: &MemMap, next: &mut usize) -> Option<(u32, u32)> {
        const N: usize = MIGRATE_PCPTYPES * PCP_ORDERS;
        for k in 0..N {
            let l = (*next + k) % N;
            let order = (l / MIGRATE_PCPTYPES) as u32;
            if let Some(i) = self.pop(mm, order, l % MIGRATE_PCPTYPES) {
                *next = (l + 1) % N;
                return Some((i, order));
            }
        }
        None
    }
    pub(crate) fn lists_head(&self, order: u32, list: usize) -> u32 {
        self.lists[order as usize][list].load(Relaxed)
    }
}

impl Default for PerCpuPages {
    fn default() -> Self {
        Self::new()
    }
}

/// Linux's `zone_batchsize`: about a quarter of a per-mille of the zone, at most 1 MiB
/// worth, rounded to `2^n - 1` to avoid cache aliasing; `high = 6 * batch`.
pub const fn zone_batchsize(managed_pages: u64) -> (u64, u64) {
    let mut batch = managed_pages / 1024;
    if batch * crate::addr::PAGE_SIZE as u64 > 1024 * 1024 {
        batch = (1024 * 1024) / crate::addr::PAGE_SIZE as u64;
    }
    batch /= 4;
    if batch < 1 {
        batch = 1;
    }
    let x = batch + batch / 2;
    let pow = 1u64 << (63 - x.leading_zeros());
    let batch = pow - 1;
    let high = 6 * batch;
    (high, if batch < 1 { 1 } else { batch })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drain request makes the next free drain whatever the count, survives a change
    /// of `high`, and is taken exactly once; without one, the free drains at `high`.
    #[test]
    fn drain_request_and_high() {
        let p = PerCpuPages::new();
        p.set_high_batch(8, 2);
        assert!(!p.must_drain(), "empty, below high");
        add(&p.count, 8);
        assert!(p.must_drain(), "at high");
        sub(&p.count, 7);
        assert!(!p.must_drain() && !p.take_drain_request());
        p.set_drain_pending(true);
        assert!(p.must_drain() && p.drain_pending(), "a request drains below high");
        p.set_high_batch(16, 2);
        assert!(p.must_drain(), "a new high keeps the request");
        assert!(p.take_drain_request());
        assert!(!p.must_drain() && !p.drain_pending());
        assert!(!p.take_drain_request(), "taken once");
        add(&p.count, 15);
        assert!(p.must_drain(), "the new high");
        // A request arriving after the holder restored `drain_at` but before it looked at
        // the flag: still seen by this take.
        p.set_drain_pending(true);
        assert!(p.take_drain_request());
        // A request withdrawn by its holder leaves the mark at high.
        p.set_drain_pending(true);
        p.set_drain_pending(false);
        sub(&p.count, 1);
        assert!(!p.must_drain());
    }

    /// The pop's one compare: an empty list gives `None`, a pushed block comes back with
    /// its descriptor, and a head outside `mem_map` (a corrupt list) panics rather than
    /// passing for empty.
    #[test]
    fn pop_empty_pushed_and_corrupt() {
        let pages: &'static [Page] = Box::leak((0..8).map(|_| Page::new()).collect());
        let mm = MemMap { base_pfn: 0x100, pages };
        let p = PerCpuPages::new();
        assert!(p.pop_page(&mm, 0, 1).is_none(), "empty");
        assert_eq!(p.push_page(&pages[5], 5, 1, 1), 2, "the new count, in pages");
        let (idx, page) = p.pop_page(&mm, 1, 1).expect("the pushed block");
        assert_eq!((idx, core::ptr::eq(page, &pages[5]), p.count()), (5, true, 0));
        assert!(p.pop_page(&mm, 1, 1).is_none(), "empty again");
        // Each order and list its own: a block pushed on one comes off that one only.
        for o in 0..PCP_ORDERS as u32 {
            for l in 0..MIGRATE_PCPTYPES {
                let i = (o as usize * MIGRATE_PCPTYPES + l) % pages.len();
                p.push_page(&pages[i], i as u32, o, l);
                for (o2, l2) in (0..PCP_ORDERS as u32).flat_map(|o2| (0..MIGRATE_PCPTYPES).map(move |l2| (o2, l2))) {
                    if (o2, l2) != (o, l) {
                        assert!(
                            p.pop_page(&mm, o2, l2).is_none() && p.pop(&mm, o2, l2).is_none(),
                            "{o2}/{l2} after {o}/{l}"
                        );
                    }
                }
                assert_eq!(p.pop_page(&mm, o, l).map(|(idx, _)| idx), Some(i as u32), "order {o} list {l}");
            }
        }
        assert_eq!(p.count(), 0);
        p.lists[2][0].store(8, Relaxed);
        let corrupt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.pop_page(&mm, 2, 0).is_some()));
        assert!(corrupt.is_err(), "a head one past the map is a corrupt list");
    }

    #[test]
    fn linux_batch() {
        // 1 GiB zone: batch 63, high 378 (what a Pi shows in /proc/zoneinfo).
        assert_eq!(zone_batchsize(262_144), (378, 63));
        assert_eq!(zone_batchsize(16_384), (18, 3));
        assert_eq!(zone_batchsize(100), (0, 1));
        // Above 1 GiB the batch is capped at 1 MiB of pages (256), so a 4 GiB zone gets
        // the same batch as 1 GiB, not 255.
        assert_eq!(zone_batchsize(1 << 20), (378, 63));
        assert_eq!(zone_batchsize(262_144 + 1024), (378, 63));
    }
}
