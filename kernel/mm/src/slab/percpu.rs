//! Per-CPU object caches, Linux SLAB's `struct array_cache`.
//!
//! Each CPU keeps a stack of free object pointers. Allocation pops, free pushes; only when
//! the stack is empty (refill) or full (flush) does a CPU take the cache's node lock and
//! move `batchcount` objects at once.
//!
//! The array sits behind a [`CpuArray`] lock that allocation and free only ever *try*, with
//! interrupts left as they are (Linux SLUB's fast path uses one `this_cpu_cmpxchg` with
//! interrupts enabled for the same reason: masking costs more than the work). Whoever finds
//! the array busy does not wait: an interrupt handler that allocates while the code it
//! interrupted holds this CPU's array, or a CPU racing a remote drain, takes one object
//! from (or gives it back to) the slabs under the node lock instead. So the fast path is one
//! try-lock (an acquire exchange), the pop or push, and a release store; it never masks
//! interrupts and never spins. Only drains, statistics and validation outside interrupt
//! context wait for an array (`lock`), and its holder never waits for anything but the
//! node lock, which masks interrupts while held.

/// A CPU's array cache behind its lock: `try_lock` on the allocation and free paths,
/// `lock` (spinning, never in an interrupt handler) for drains and statistics.
pub(crate) type CpuArray = spin::mutex::SpinMutex<ArrayCache, crate::sync::CpuRelax>;

/// Capacity of an array cache (the largest `limit`, Linux SLAB's 120 for small objects).
pub const AC_MAX: usize = 120;

/// A CPU's stack of free objects of one cache.
#[repr(C, align(64))]
pub struct ArrayCache {
    /// Number of valid entries.
    pub(crate) avail: usize,
    /// Flush when `avail` reaches this.
    pub(crate) limit: usize,
    /// Objects moved per refill or flush.
    pub(crate) batchcount: usize,
    /// Allocations served from the array.
    pub(crate) allochit: u64,
    /// Allocations that needed a refill.
    pub(crate) allocmiss: u64,
    /// Frees that fit in the array.
    pub(crate) freehit: u64,
    /// Frees that needed a flush.
    pub(crate) freemiss: u64,
    /// Free object addresses; the top of the stack is the most recently freed (cache hot).
    pub(crate) entry: [usize; AC_MAX],
}

impl ArrayCache {
    /// An empty array with no capacity (set by `set_tunables`).
    pub const fn new() -> Self {
        Self {
            avail: 0,
            limit: 0,
            batchcount: 0,
            allochit: 0,
            allocmiss: 0,
            freehit: 0,
            freemiss: 0,
            entry: [0; AC_MAX],
        }
    }

    /// Sets `limit` and `batchcount` (clamped to the capacity).
    pub(crate) fn set_tunables(&mut self, limit: usize, batchcount: usize) {
        self.limit = limit.clamp(1, AC_MAX);
        self.batchcount = batchcount.clamp(1, self.limit);
    }

    /// Pops the hottest object.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<usize> {
        if self.avail == 0 {
            return None;
        }
        self.avail -= 1;
        Some(self.entry[self.avail])
    }

    /// Pushes an object; the caller has made room.
    #[inline(always)]
    pub(crate) fn push(&mut self, obj: usize) {
        self.entry[self.avail] = obj;
        self.avail += 1;
    }

    /// Removes the `n` oldest entries (bottom of the stack), once they have been handed
    /// back to their slabs.
    pub(crate) fn drop_oldest(&mut self, n: usize) {
        let n = n.min(self.avail);
        self.entry.copy_within(n..self.avail, 0);
        self.avail -= n;
    }
}

impl Default for ArrayCache {
    fn default() -> Self {
        Self::new()
    }
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
