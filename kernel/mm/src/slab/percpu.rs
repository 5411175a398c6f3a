//! Per-CPU object caches, Linux SLAB's `struct array_cache`, with Linux SLUB's lockless
//! fast path.
//!
//! Each CPU keeps a stack of free object pointers. Allocation pops, free pushes; only when
//! the stack is empty (refill) or full (flush) does a CPU take the cache's node lock and
//! move `batchcount` objects at once.
//!
//! The fast path is one compare-exchange on the array's `state` word, as SLUB's
//! `this_cpu_cmpxchg` of its freelist and transaction id: the word holds the number of
//! objects (`avail`), a `BUSY` bit and a transaction id that every change increments. A
//! pop reads the word and the top entry, then swaps in `avail - 1` and the next id; a push
//! writes the entry above the top, then swaps in `avail + 1`. Interrupts stay enabled:
//! an interrupt handler that allocates or frees on this CPU between the read and the swap
//! changes the id, the interrupted swap fails and the interrupted call takes the slow path
//! (the id, not `avail`, is compared, so a pop and a push in the handler that leave
//! `avail` as it was still fail it: no ABA).
//!
//! Everything else (refill, flush, drains, statistics, validation) holds the array: it
//! sets `BUSY` with a compare-exchange ([`CpuArray::try_lock`]; [`CpuArray::lock`]
//! spins, never in an interrupt handler) and clears it with a new id. A fast path that
//! finds `BUSY` set (an interrupt came while the code it interrupted held the array, or
//! another CPU is draining it) goes to the slab lists under the node lock instead, as
//! before: it never waits. A holder on another CPU (a drain) only reads the entries
//! below `avail` and moves them down, so the entry a stale fast push of the owner writes
//! (at the old `avail`, just before its swap fails) is never one the holder uses.
//!
//! The fast path keeps no counters of its own: the allocations and frees it served are
//! derived from the id (which counts fast operations plus holds) and `avail` (whose change
//! by fast operations is frees minus allocations), see [`ArrayStats`].

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

use super::raw;

/// Capacity of an array cache (the largest `limit`, Linux SLAB's 120 for small objects).
pub const AC_MAX: usize = 120;
/// Entry slots: a power of two at least [`AC_MAX`], so that an index below `limit` needs
/// no bounds test.
const AC_SLOTS: usize = 128;
const _: () = assert!(AC_SLOTS.is_power_of_two() && AC_MAX <= AC_SLOTS);

/// `state`: `avail` in the low 7 bits; `OFF`, set whenever `BUSY` or `PARKED` is (so the
/// fast path reads the low byte as at least 128, beyond every entry and limit); `BUSY`;
/// `PARKED`, which stays set for a cache with debugging, whose every allocation and free
/// must take the slow path with its checks (as SLUB's debug caches do); then the
/// transaction id.
const AVAIL_MASK: u64 = 0x7f;
const OFF: u64 = 0x80;
const BUSY: u64 = 0x100;
const PARKED: u64 = 0x200;
const FAST_MASK: u64 = AVAIL_MASK | OFF;
const TID_SHIFT: u32 = 10;
const TID_ONE: u64 = 1 << TID_SHIFT;
const _: () = assert!(AVAIL_MASK as usize >= AC_MAX);
// One cache line of header, then the entries: the size the array had behind its lock.
const _: () = assert!(core::mem::size_of::<CpuArray>() == 64 + AC_SLOTS * 8);

/// A CPU's stack of free objects of one cache.
#[repr(C, align(64))]
pub struct CpuArray {
    /// `avail | OFF | BUSY | PARKED | tid << TID_SHIFT`.
    state: AtomicU64,
    /// Flush when `avail` reaches this.
    limit: AtomicU32,
    /// Objects moved per refill or flush.
    batchcount: AtomicU32,
    /// Allocations that needed a refill.
    allocmiss: AtomicU64,
    /// Frees that needed a flush.
    freemiss: AtomicU64,
    /// Holds so far (each took one transaction id).
    holds: AtomicU64,
    /// Change of `avail` by holders so far (wrapping).
    held_delta: AtomicU64,
    /// Allocations and frees served by holders from the array (the slow paths' hits).
    held_allochit: AtomicU64,
    held_freehit: AtomicU64,
    /// Free object addresses; the top of the stack is the most recently freed (cache hot).
    entry: [AtomicUsize; AC_SLOTS],
}

/// The counters of an array, for slabinfo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArrayStats {
    /// Objects in the array.
    pub avail: usize,
    /// Its limit.
    pub limit: usize,
    /// Its batch.
    pub batchcount: usize,
    /// Allocations served from the array.
    pub allochit: u64,
    /// Allocations that needed a refill.
    pub allocmiss: u64,
    /// Frees that fit in the array.
    pub freehit: u64,
    /// Frees that needed a flush.
    pub freemiss: u64,
}

impl CpuArray {
    /// An empty array with no capacity (set by `set_tunables`).
    pub const fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            limit: AtomicU32::new(0),
            batchcount: AtomicU32::new(0),
            allocmiss: AtomicU64::new(0),
            freemiss: AtomicU64::new(0),
            holds: AtomicU64::new(0),
            held_delta: AtomicU64::new(0),
            held_allochit: AtomicU64::new(0),
            held_freehit: AtomicU64::new(0),
            entry: [const { AtomicUsize::new(0) }; AC_SLOTS],
        }
    }

    /// The fast pop: the hottest object, or `None` if the array is empty, held or parked,
    /// or an interrupt or another CPU changed it meanwhile (the caller takes the slow
    /// path).
    #[inline(always)]
    pub(crate) fn pop_fast(&self) -> Option<usize> {
        let w = self.state.load(Acquire);
        // Empty wraps below 0, OFF reads as 128 or more: all miss the entries.
        let top = ((w & FAST_MASK) as usize).wrapping_sub(1);
        if top >= AC_MAX {
            return None;
        }
        let obj = self.entry[top].load(Relaxed);
        #[cfg(test)]
        irq::window();
        self.state.compare_exchange(w, (w - 1).wrapping_add(TID_ONE), AcqRel, Relaxed).ok()?;
        Some(obj)
    }

    /// The fast push: `false` if the array is at its limit, held or parked, or an
    /// interrupt or another CPU changed it meanwhile (the caller takes the slow path).
    #[inline(always)]
    pub(crate) fn push_fast(&self, obj: usize) -> bool {
        let w = self.state.load(Acquire);
        let n = (w & FAST_MASK) as usize;
        if n >= self.limit.load(Relaxed) as usize {
            return false;
        }
        // Above the top: nobody reads it until the swap below publishes it.
        self.entry[n & (AC_SLOTS - 1)].store(obj, Relaxed);
        #[cfg(test)]
        irq::window();
        self.state.compare_exchange(w, (w + 1).wrapping_add(TID_ONE), Release, Relaxed).is_ok()
    }

    /// Holds the array, or `None` if it is held (by code this call interrupted, or by
    /// another CPU) or changed under the attempt.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<ArrayGuard<'_>> {
        let w = self.state.load(Relaxed);
        if w & BUSY != 0 {
            return None;
        }
        self.state.compare_exchange(w, w | BUSY | OFF, Acquire, Relaxed).ok()?;
        let avail = (w & AVAIL_MASK) as usize;
        Some(ArrayGuard {
            a: self,
            tid: w >> TID_SHIFT,
            parked: if w & PARKED != 0 { PARKED | OFF } else { 0 },
            avail,
            start: avail,
        })
    }

    /// Holds the array, waiting while another holder has it (never call from an
    /// interrupt handler: the holder may be the code it interrupted).
    pub(crate) fn lock(&self) -> ArrayGuard<'_> {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            core::hint::spin_loop();
        }
    }
}

impl Default for CpuArray {
    fn default() -> Self {
        Self::new()
    }
}

/// A held array (the slow paths' view): plain stack operations, published when dropped.
pub(crate) struct ArrayGuard<'a> {
    a: &'a CpuArray,
    tid: u64,
    parked: u64,
    avail: usize,
    start: usize,
}

impl ArrayGuard<'_> {
    /// Objects in the array.
    #[inline]
    pub(crate) fn avail(&self) -> usize {
        self.avail
    }
    /// Flush when `avail` reaches this.
    #[inline]
    pub(crate) fn limit(&self) -> usize {
        self.a.limit.load(Relaxed) as usize
    }
    /// Objects moved per refill or flush.
    #[inline]
    pub(crate) fn batchcount(&self) -> usize {
        self.a.batchcount.load(Relaxed) as usize
    }
    /// The `i`th entry from the bottom (`i < avail`).
    #[inline]
    pub(crate) fn entry(&self, i: usize) -> usize {
        self.a.entry[i & (AC_SLOTS - 1)].load(Relaxed)
    }

    /// Pops the hottest object.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<usize> {
        let top = self.avail.checked_sub(1)?;
        self.avail = top;
        Some(self.entry(top))
    }

    /// Pushes an object; the caller has made room (`avail < limit`).
    #[inline]
    pub(crate) fn push(&mut self, obj: usize) {
        debug_assert!(self.avail < AC_MAX);
        self.a.entry[self.avail & (AC_SLOTS - 1)].store(obj, Relaxed);
        self.avail += 1;
    }

    /// The free slots above the top, up to `limit`: a refill writes objects there, then
    /// publishes them with [`Self::grow`].
    #[inline]
    pub(crate) fn room(&self) -> &[AtomicUsize] {
        let limit = self.limit().min(AC_MAX);
        &self.a.entry[self.avail.min(limit)..limit]
    }

    /// Counts the first `n` slots of [`Self::room`] as pushed.
    #[inline]
    pub(crate) fn grow(&mut self, n: usize) {
        debug_assert!(self.avail + n <= self.limit());
        self.avail += n;
    }

    /// The `n` oldest entries (bottom of the stack), at most `avail`.
    #[inline]
    pub(crate) fn oldest(&self, n: usize) -> &[AtomicUsize] {
        &self.a.entry[..n.min(self.avail)]
    }

    /// Removes the `n` oldest entries (bottom of the stack), once they have been handed
    /// back to their slabs: the rest moves down with one copy.
    pub(crate) fn drop_oldest(&mut self, n: usize) {
        let n = n.min(self.avail);
        let base = self.a.entry.as_ptr() as usize;
        // SAFETY: `n <= avail <= AC_MAX`, so both ranges lie inside `entry`, whose
        // `AtomicUsize`s have `usize`'s layout; the holder owns every entry below `avail`
        // (a stale fast push writes only at `avail` itself, which the copy does not touch).
        unsafe { raw::move_words(base + n * core::mem::size_of::<AtomicUsize>(), base, self.avail - n) };
        self.avail -= n;
    }

    /// Sets `limit` and `batchcount` (clamped to the capacity).
    pub(crate) fn set_tunables(&mut self, limit: usize, batchcount: usize) {
        let limit = limit.clamp(1, AC_MAX);
        self.a.limit.store(limit as u32, Relaxed);
        self.a.batchcount.store(batchcount.clamp(1, limit) as u32, Relaxed);
    }

    /// Empties the array and its counters (a cache slot being made live; nobody else uses
    /// it); `parked` for a cache with debugging (no fast path).
    pub(crate) fn reset(&mut self, parked: bool) {
        self.parked = if parked { PARKED | OFF } else { 0 };
        self.avail = 0;
        self.start = 0;
        for c in [&self.a.allocmiss, &self.a.freemiss, &self.a.held_allochit, &self.a.held_freehit] {
            c.store(0, Relaxed);
        }
        // The fast operations are counted from here: the id and the holders' share restart.
        self.tid = u64::MAX;
        self.a.holds.store(u64::MAX, Relaxed);
        self.a.held_delta.store(0, Relaxed);
    }

    /// Counts an allocation served from the array by a holder.
    pub(crate) fn count_allochit(&mut self) {
        add(&self.a.held_allochit, 1)
    }
    /// Counts an allocation that needed a refill.
    pub(crate) fn count_allocmiss(&mut self) {
        add(&self.a.allocmiss, 1)
    }
    /// Counts a free kept by the array by a holder.
    pub(crate) fn count_freehit(&mut self) {
        add(&self.a.held_freehit, 1)
    }
    /// Counts a free that needed a flush.
    pub(crate) fn count_freemiss(&mut self) {
        add(&self.a.freemiss, 1)
    }

    /// The counters (fast operations derived from the id and `avail`).
    pub(crate) fn stats(&self) -> ArrayStats {
        let a = self.a;
        // Every id came from a fast operation or a hold; this hold's is not counted yet.
        let fast_ops = self.tid.wrapping_sub(a.holds.load(Relaxed));
        // Frees minus allocations by fast operations: the change of `avail` (from 0 at the
        // reset to `start` when this hold began) not made by earlier holders.
        let delta = (self.start as u64).wrapping_sub(a.held_delta.load(Relaxed));
        let fast_allocs = fast_ops.wrapping_sub(delta) / 2;
        let fast_frees = fast_ops.wrapping_add(delta) / 2;
        ArrayStats {
            avail: self.avail,
            limit: self.limit(),
            batchcount: self.batchcount(),
            allochit: fast_allocs.wrapping_add(a.held_allochit.load(Relaxed)),
            allocmiss: a.allocmiss.load(Relaxed),
            freehit: fast_frees.wrapping_add(a.held_freehit.load(Relaxed)),
            freemiss: a.freemiss.load(Relaxed),
        }
    }
}

impl Drop for ArrayGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let a = self.a;
        add(&a.holds, 1);
        add(&a.held_delta, (self.avail as u64).wrapping_sub(self.start as u64));
        // A new id: a fast operation that read the word before the hold fails its swap.
        let tid = self.tid.wrapping_add(1);
        a.state.store((tid << TID_SHIFT) | self.parked | self.avail as u64, Release);
    }
}

/// `a += n` by the array's holder: a plain load and store.
#[inline(always)]
fn add(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed)
}

/// Linux SLAB's `enable_cpucache` choice of `limit` by object size (120 up to 256 bytes,
/// [`AC_MAX`]); `batchcount` is half of it, rounded up.
pub(crate) fn tunables_for(size: usize) -> (usize, usize) {
    let limit = if size > 4096 {
        8
    } else if size > 1024 {
        24
    } else if size > 256 {
        54
    } else {
        AC_MAX
    };
    (limit, limit.div_ceil(2))
}

/// An "interrupt" for the host tests: a closure armed on this thread runs once in the
/// window of the next fast operation, between its read of the array and its swap, as an
/// interrupt handler on the same CPU would.
#[cfg(test)]
pub(crate) mod irq {
    use std::cell::RefCell;

    type Handler = Box<dyn FnOnce()>;

    std::thread_local! {
        static ARMED: RefCell<Option<Handler>> = const { RefCell::new(None) };
    }

    /// Runs `f` in the window of this thread's next fast operation.
    pub(crate) fn arm(f: impl FnOnce() + 'static) {
        ARMED.with(|a| *a.borrow_mut() = Some(Box::new(f)));
    }

    /// Whether an armed handler has not run yet.
    pub(crate) fn pending() -> bool {
        ARMED.with(|a| a.borrow().is_some())
    }

    /// Drops a handler that has not run.
    pub(crate) fn disarm() {
        ARMED.with(|a| a.borrow_mut().take());
    }

    pub(super) fn window() {
        // Taken out first: the handler's own fast operations do not fire it again.
        if let Some(f) = ARMED.with(|a| a.borrow_mut().take()) {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux SLAB's `enable_cpucache` limits on both sides of each size boundary, and a
    /// batch of half the limit rounded up.
    #[test]
    fn tunables_follow_linux_slab_by_size() {
        let table: [(usize, usize); 8] =
            [(1, 120), (256, 120), (257, 54), (1024, 54), (1025, 24), (4096, 24), (4097, 8), (8192, 8)];
        for (size, limit) in table {
            assert_eq!(tunables_for(size), (limit, limit.div_ceil(2)), "size {size}");
        }
    }
}
