//! One slab cache (`struct kmem_cache`): the allocation and free paths over its per-CPU
//! arrays, its shared array and its node lists, growing and releasing slabs. Its parts
//! live next door: the layout in `layout`, the slab header in `header`, the node lists in
//! `node`, the shared array (under the node lock) in `shared`, and every SLUB debugging
//! check in [`super::debug`].
//!
//! A slab is `2^order` naturally aligned pages: a 64-byte header, then `num` slots of
//! `stride` bytes. The header holds the list links, the hardened freelist head and the
//! in-use count; the owner word of every page of the slab holds `PageOwner::Slab` of the
//! cache, so an object address leads to its cache (owner word) and its slab (round the
//! physical address down to the slab size).
//!
//! Locks: a CPU's array (held by the slow paths, never by the lockless fast path), then
//! the node lock; the configuration lock is a leaf. The array is only ever *tried* on
//! the allocation and free paths, without masking
//! interrupts (see [`super::percpu`]); only drains and statistics outside interrupt
//! context wait for it.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};

use crate::sync::SpinLock as Mutex;

use super::error::{SlabError, SlabErrorKind, SlabFix, SlabReporter};
pub use super::flags::{Ctor, SlabFlags};
use super::header::Slab;
use super::layout::CacheCfg;
pub use super::layout::LayoutError;
use super::node::{Node, LIST_FREE, LIST_PARTIAL};
use super::percpu::{tunables_for, ArrayGuard, CpuArray};
use super::raw;
use super::shared::{shared_factor, SharedArray};
use super::NR_CPUS;
use crate::cpu::CpuId;
use crate::gfp::Gfp;
use crate::page_source::PageSource;

/// Handle of a cache in a [`SlabAllocator`](super::SlabAllocator)'s registry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct CacheId(pub(crate) u8);

impl CacheId {
    /// Slot number in the registry.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Empty slabs a cache keeps beyond which it returns them to the page source.
pub const FREE_SLAB_RESERVE: usize = 2;

/// Where a cache gets pages and sends error reports.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) ps: &'a (dyn PageSource + Sync),
    pub(crate) rep: &'a dyn SlabReporter,
}

/// Counters of one cache, for slabinfo and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Cache name.
    pub name: &'static str,
    /// Slot size including metadata.
    pub size: usize,
    /// Objects per slab.
    pub objperslab: usize,
    /// Pages per slab.
    pub pagesperslab: usize,
    /// Per-CPU array limit.
    pub limit: usize,
    /// Per-CPU refill/flush batch.
    pub batchcount: usize,
    /// Batches the shared array holds (Linux's `shared` tunable; 0: no shared array).
    pub sharedfactor: usize,
    /// Objects not free in slabs (per-CPU and shared cached ones count as active, as in
    /// Linux SLAB).
    pub active_objs: usize,
    /// All object slots.
    pub num_objs: usize,
    /// Slabs with at least one object in use.
    pub active_slabs: usize,
    /// All slabs.
    pub num_slabs: usize,
    /// Objects sitting in per-CPU arrays.
    pub cpu_cached: usize,
    /// Objects sitting in the shared array (slabinfo's `sharedavail`).
    pub shared_avail: usize,
    /// Pages holding the shared array's entries (0 or 1).
    pub shared_pages: usize,
    /// Allocations served by a per-CPU array.
    pub allochit: u64,
    /// Allocations that refilled a per-CPU array.
    pub allocmiss: u64,
    /// Frees kept by a per-CPU array.
    pub freehit: u64,
    /// Frees that flushed a per-CPU array.
    pub freemiss: u64,
    /// Errors reported.
    pub errors: u64,
    /// Objects quarantined after corruption.
    pub quarantined: usize,
}

const STATE_FREE: u32 = 0;
const STATE_LIVE: u32 = 1;

/// One cache. Lives in a registry slot; all state is behind locks or atomics so that the
/// registry can be a `static`.
pub struct KmemCache {
    state: AtomicU32,
    /// Hot copy of `cfg.debug`, read without the configuration lock.
    debug: AtomicBool,
    /// Hot copy of `cfg.object_size`.
    object_size: AtomicUsize,
    /// Every slab grown since activation starts at a virtual address aligned to the slab
    /// size, so the slab of an object is its address rounded down (no page-source calls).
    /// Cleared by `grow` before an unaligned slab's objects can be handed out.
    pub(super) va_aligned: AtomicBool,
    cfg: Mutex<CacheCfg>,
    pub(super) cpu: [CpuArray; NR_CPUS],
    pub(super) node: Mutex<Node>,
}

impl Default for KmemCache {
    fn default() -> Self {
        Self::new()
    }
}

impl KmemCache {
    /// An unused registry slot.
    pub const fn new() -> Self {
        KmemCache {
            state: AtomicU32::new(STATE_FREE),
            debug: AtomicBool::new(false),
            object_size: AtomicUsize::new(0),
            va_aligned: AtomicBool::new(true),
            cfg: Mutex::new(CacheCfg::EMPTY),
            cpu: [const { CpuArray::new() }; NR_CPUS],
            node: Mutex::new(Node::new()),
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.state.load(Relaxed) == STATE_LIVE
    }

    pub(crate) fn cfg(&self) -> CacheCfg {
        *self.cfg.lock()
    }

    pub(crate) fn name(&self) -> &'static str {
        self.cfg.lock().name
    }

    /// Usable size of each object (`ksize` of a slab object).
    #[inline]
    pub(crate) fn object_size(&self) -> usize {
        self.object_size.load(Relaxed)
    }

    /// Makes a free slot live with `cfg` (the registry lock is held).
    pub(crate) fn activate(&self, cfg: CacheCfg) {
        let (limit, batch) = tunables_for(cfg.stride);
        for ac in &self.cpu {
            let mut ac = ac.lock();
            ac.reset(cfg.debug);
            ac.set_tunables(limit, batch);
        }
        let mut node = Node::new();
        node.shared = SharedArray::new(shared_factor(cfg.stride, cfg.debug), batch);
        *self.node.lock() = node;
        self.debug.store(cfg.debug, Relaxed);
        self.object_size.store(cfg.object_size, Relaxed);
        self.va_aligned.store(true, Relaxed);
        *self.cfg.lock() = cfg;
        self.state.store(STATE_LIVE, Relaxed);
    }

    pub(super) fn report(&self, env: Env<'_>, kind: SlabErrorKind, object: usize, slab: usize, fix: SlabFix) {
        self.node.lock().errors += 1;
        env.rep.report(&SlabError { kind, cache: self.name(), object, slab, fix });
    }

    /// Refills a per-CPU array with up to `batchcount` objects, from the shared array
    /// first (Linux's `transfer_objects`), then from the slabs (none if no slab could be
    /// had: the caller's pop then finds the array empty).
    fn refill(&self, env: Env<'_>, ac: &mut ArrayGuard<'_>, gfp: Gfp) {
        let cfg = self.cfg();
        let want = ac.batchcount().min(ac.limit());
        let mut node = self.node.lock();
        let room = want.saturating_sub(ac.avail());
        let taken = node.shared.take(&ac.room()[..room]);
        ac.grow(taken);
        while ac.avail() < want {
            let slab = if node.head[LIST_PARTIAL] != 0 {
                node.head[LIST_PARTIAL]
            } else if node.head[LIST_FREE] != 0 {
                node.head[LIST_FREE]
            } else if ac.avail() > 0 {
                // Like Linux's cache_alloc_refill: grow only when nothing could be had,
                // not to top up a batch (a failed grow would then be a failure nobody
                // sees, and memory would be taken that nobody asked for).
                break;
            } else {
                // The second slab brings the shared array's page (see `super::shared`).
                let share = node.nr_slabs > 0 && node.shared.wants_page();
                drop(node);
                let new = self.grow(env, &cfg, gfp);
                let page = if share && new.is_some() { self.shared_page(env, gfp) } else { None };
                node = self.node.lock();
                if let Some((va, pa)) = page {
                    if !node.shared.install(va, pa) {
                        env.ps.free_pages(pa, 0);
                    }
                }
                let Some(slab) = new else { break };
                node.nr_slabs += 1;
                node.free_objects += cfg.num;
                node.list_add(slab, LIST_FREE);
                slab.addr()
            };
            // SAFETY: list heads are held slabs.
            let slab = unsafe { Slab::from_raw(slab) };
            let room = want - ac.avail();
            let taken = self.slab_pop_into(env, &cfg, &mut node, slab, &ac.room()[..room]);
            ac.grow(taken);
            node.relist(&cfg, slab);
        }
    }

    /// A page for the shared array's entries (no lock held): `(linear-map address, PA)`.
    fn shared_page(&self, env: Env<'_>, gfp: Gfp) -> Option<(usize, crate::addr::PhysAddr)> {
        let gfp = gfp.without(Gfp::GFP_ZERO).without(Gfp::GFP_COMP) | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY;
        let pa = env.ps.alloc_pages(gfp, 0)?;
        Some((env.ps.phys_to_virt(pa).as_usize(), pa))
    }

    /// Moves the `n` oldest objects of a per-CPU array to the shared array while it has
    /// room (`share`: a full array's flush, Linux's `cache_flusharray`), the rest to their
    /// slabs (every one of them for a drain).
    fn flush(&self, env: Env<'_>, ac: &mut ArrayGuard<'_>, n: usize, share: bool) {
        let cfg = self.cfg();
        let objs = ac.oldest(n);
        let n = objs.len();
        let mut node = self.node.lock();
        let objs = if share { &objs[node.shared.put(objs)..] } else { objs };
        self.slab_push_run(env, &cfg, &mut node, objs);
        drop(node);
        ac.drop_oldest(n);
    }

    /// One object straight from the slabs, for when this CPU's array is busy (an interrupt
    /// came while the code it interrupted held the array, or another CPU is draining it).
    fn alloc_direct(&self, env: Env<'_>, gfp: Gfp) -> Option<usize> {
        let cfg = self.cfg();
        let mut node = self.node.lock();
        loop {
            let head = if node.head[LIST_PARTIAL] != 0 { node.head[LIST_PARTIAL] } else { node.head[LIST_FREE] };
            let slab = if head != 0 {
                // SAFETY: list heads are held slabs.
                unsafe { Slab::from_raw(head) }
            } else {
                drop(node);
                let slab = self.grow(env, &cfg, gfp)?;
                node = self.node.lock();
                node.nr_slabs += 1;
                node.free_objects += cfg.num;
                node.list_add(slab, LIST_FREE);
                slab
            };
            let obj = self.slab_pop(env, &cfg, &mut node, slab);
            node.relist(&cfg, slab);
            if obj.is_some() {
                return obj;
            }
            // A corrupt freelist isolated the slab: try the next one.
        }
    }

    /// `kmem_cache_alloc`: an object, or `None` when the page source is exhausted.
    ///
    /// The fast path pops this CPU's array with one compare-exchange: no lock, no
    /// interrupt masking (an interrupt that allocates on this CPU meanwhile makes the
    /// exchange fail, and a held array sends it to the slabs, [`Self::alloc_direct`]), no
    /// configuration copy, no debug work (a debug cache's arrays are parked). Everything
    /// else is out of line in [`Self::alloc_slow`].
    #[inline(always)]
    pub(crate) fn alloc(&self, env: &Env<'_>, gfp: Gfp, cpu: CpuId) -> Option<usize> {
        match self.alloc_fast(gfp, cpu) {
            Some(obj) => Some(obj),
            None => self.alloc_slow(env, gfp, cpu),
        }
    }

    /// The fast path alone: an object off this CPU's array, or `None` when the array is
    /// empty or busy, debugging is on (the arrays are parked) or the object must be zeroed
    /// (the caller then takes [`Self::alloc_slow`]). Needs no page source: kmalloc calls it
    /// before anything else.
    #[inline(always)]
    pub(crate) fn alloc_fast(&self, gfp: Gfp, cpu: CpuId) -> Option<usize> {
        if gfp.contains(Gfp::GFP_ZERO) {
            return None;
        }
        self.cpu[cpu.index()].pop_fast()
    }

    /// `kfree`'s fast path, for an object of a cache without debugging (the slab map
    /// says so): onto this CPU's array if it is free and below its limit. `false`: the
    /// caller takes [`Self::free`]'s path.
    #[inline(always)]
    pub(crate) fn free_fast(&self, obj: usize, cpu: CpuId) -> bool {
        self.cpu[cpu.index()].push_fast(obj)
    }

    /// The allocation path for an empty or busy array: refill from the slabs (growing if
    /// needed), or one object straight from them.
    #[inline(never)]
    fn alloc_slow(&self, env: &Env<'_>, gfp: Gfp, cpu: CpuId) -> Option<usize> {
        let obj = match self.cpu[cpu.index()].try_lock() {
            Some(mut ac) => match ac.pop() {
                Some(obj) => {
                    ac.count_allochit();
                    obj
                }
                None => {
                    ac.count_allocmiss();
                    self.refill(*env, &mut ac, gfp);
                    ac.pop()?
                }
            },
            None => self.alloc_direct(*env, gfp)?,
        };
        self.alloc_finish(env, gfp, cpu, obj)
    }

    /// Debug checks (which may quarantine `obj` and take another) and `__GFP_ZERO`.
    #[inline(never)]
    fn alloc_finish(&self, env: &Env<'_>, gfp: Gfp, cpu: CpuId, mut obj: usize) -> Option<usize> {
        loop {
            if self.debug.load(Relaxed) {
                let cfg = self.cfg();
                // SAFETY: `obj` came off a per-CPU array or a slab: a free object of this cache.
                if !unsafe { self.debug_alloc(*env, &cfg, obj, gfp) } {
                    // Quarantined: take the next one.
                    obj = match self.cpu[cpu.index()].try_lock() {
                        Some(mut ac) => match ac.pop() {
                            Some(o) => o,
                            None => {
                                ac.count_allocmiss();
                                self.refill(*env, &mut ac, gfp);
                                ac.pop()?
                            }
                        },
                        None => self.alloc_direct(*env, gfp)?,
                    };
                    continue;
                }
            } else if gfp.contains(Gfp::GFP_ZERO) {
                // SAFETY: the object is ours now and `object_size` bytes long.
                unsafe { raw::fill(obj, self.object_size(), 0) };
            }
            return Some(obj);
        }
    }

    /// `kmem_cache_free` of an object whose page owner word names this cache.
    ///
    /// The fast path mirrors [`Self::alloc`]: one compare-exchange pushes; a full, busy
    /// or parked array (debugging: the checks) is out of line.
    ///
    /// # Safety
    /// Unless debugging is on, `obj` must be a live object of this cache, unused afterwards.
    #[inline(always)]
    pub(crate) unsafe fn free(&self, env: &Env<'_>, obj: usize, cpu: CpuId) {
        if self.cpu[cpu.index()].push_fast(obj) {
            return;
        }
        // SAFETY: forwarded contract.
        unsafe { self.free_slow(env, obj, cpu) }
    }

    /// The free path with debugging on, or for a full or busy array: flush a batch of it
    /// (to the shared array while it has room, else to the slabs), or give the object
    /// straight back to its slab. `kfree` comes here straight from its fast path when
    /// that found the cache.
    ///
    /// # Safety
    /// As for [`Self::free`].
    #[inline(never)]
    pub(crate) unsafe fn free_slow(&self, env: &Env<'_>, obj: usize, cpu: CpuId) {
        if self.debug.load(Relaxed) {
            let cfg = self.cfg();
            // SAFETY: the owner word says `obj` is in one of our slabs; `debug_free`
            // validates it before touching the object.
            if !unsafe { self.debug_free(*env, &cfg, obj) } {
                return;
            }
        }
        match self.cpu[cpu.index()].try_lock() {
            Some(mut ac) => {
                if ac.avail() >= ac.limit() {
                    ac.count_freemiss();
                    let n = ac.batchcount();
                    self.flush(*env, &mut ac, n, true);
                } else {
                    ac.count_freehit();
                }
                ac.push(obj);
            }
            None => {
                let cfg = self.cfg();
                let mut node = self.node.lock();
                self.slab_push(*env, &cfg, &mut node, obj);
            }
        }
    }

    /// Returns every object of `cpu`'s array to the slabs. An array in use at this moment
    /// (by the code this drain interrupted, when it runs in an interrupt, or by another
    /// CPU) is left alone: waiting for it could wait for ever.
    pub(crate) fn drain_cpu(&self, env: Env<'_>, cpu: CpuId) {
        if let Some(mut ac) = self.cpu[cpu.index()].try_lock() {
            self.flush_all(env, &mut ac);
        }
    }

    /// Returns every object of `cpu`'s array to the slabs, waiting for the array if it is
    /// in use (never from an interrupt handler).
    fn drain_cpu_wait(&self, env: Env<'_>, cpu: CpuId) {
        self.flush_all(env, &mut self.cpu[cpu.index()].lock());
    }

    /// Returns every object of a held array to the slabs (an empty one takes no lock).
    fn flush_all(&self, env: Env<'_>, ac: &mut ArrayGuard<'_>) {
        let n = ac.avail();
        if n > 0 {
            self.flush(env, ac, n, false);
        }
    }

    /// Returns every object of the shared array to the slabs (Linux's `drain_cpu_caches`
    /// ends so), keeping its page.
    pub(crate) fn drain_shared(&self, env: Env<'_>) {
        let cfg = self.cfg();
        self.drain_shared_locked(env, &cfg, &mut self.node.lock());
    }

    /// [`Self::drain_shared`] with the node lock held.
    fn drain_shared_locked(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node) {
        let buf = [const { AtomicUsize::new(0) }; 64];
        loop {
            let n = node.shared.take(&buf);
            if n == 0 {
                break;
            }
            self.slab_push_run(env, cfg, node, &buf[..n]);
        }
    }

    /// `kmem_cache_shrink`: drains the per-CPU arrays and the shared array and frees
    /// every empty slab and the shared array's page. Returns the number of pages given
    /// back.
    pub(crate) fn shrink(&self, env: Env<'_>) -> usize {
        for cpu in CpuId::all() {
            self.drain_cpu_wait(env, cpu);
        }
        let cfg = self.cfg();
        let mut node = self.node.lock();
        self.drain_shared_locked(env, &cfg, &mut node);
        let mut pages = 0;
        if let Some(pa) = node.shared.release() {
            env.ps.free_pages(pa, 0);
            pages += 1;
        }
        while node.head[LIST_FREE] != 0 {
            // SAFETY: list heads are held slabs.
            let slab = unsafe { Slab::from_raw(node.head[LIST_FREE]) };
            self.release_slab(env, &cfg, &mut node, slab);
            pages += 1 << cfg.order;
        }
        pages
    }

    /// `kmem_cache_destroy`: refused with the number of live objects if any remain.
    pub(crate) fn destroy(&self, env: Env<'_>) -> Result<(), usize> {
        self.shrink(env);
        let cfg = self.cfg();
        let node = self.node.lock();
        if node.nr_slabs > 0 {
            return Err(node.nr_slabs * cfg.num - node.free_objects);
        }
        self.state.store(STATE_FREE, Relaxed);
        Ok(())
    }

    /// Counters for slabinfo.
    pub(crate) fn stats(&self) -> CacheStats {
        let cfg = self.cfg();
        let mut s = CacheStats {
            name: cfg.name,
            size: cfg.stride,
            objperslab: cfg.num,
            pagesperslab: 1 << cfg.order,
            ..CacheStats::default()
        };
        for ac in &self.cpu {
            let ac = ac.lock().stats();
            s.limit = ac.limit;
            s.batchcount = ac.batchcount;
            s.cpu_cached += ac.avail;
            s.allochit += ac.allochit;
            s.allocmiss += ac.allocmiss;
            s.freehit += ac.freehit;
            s.freemiss += ac.freemiss;
        }
        let node = self.node.lock();
        s.num_slabs = node.nr_slabs;
        s.active_slabs = node.nr_slabs - node.nr_free_slabs;
        s.num_objs = node.nr_slabs * cfg.num;
        s.active_objs = s.num_objs - node.free_objects;
        s.errors = node.errors;
        s.sharedfactor = node.shared.factor();
        s.shared_avail = node.shared.avail();
        s.shared_pages = usize::from(node.shared.has_page());
        s.quarantined = node.quarantined;
        s
    }
}
