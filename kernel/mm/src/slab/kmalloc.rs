//! The cache registry and `kmalloc`/`kfree`/`ksize`/`krealloc`, plus the helpers behind the
//! kernel's `#[global_allocator]`.
//!
//! A [`SlabAllocator`] is a fixed array of [`MAX_CACHES`] cache slots and can be a `static`:
//! `static SLAB: SlabAllocator<'static> = SlabAllocator::new();` then, once the page
//! allocator runs, `SLAB.init(&BUDDY, &REPORTER, MAX_PAGE_ORDER, debug, seed)` with
//! `&'static (dyn PageSource + Sync)` and `&'static dyn SlabReporter`.
//!
//! Sizes up to [`KMALLOC_MAX_CACHE_SIZE`] are served by the `kmalloc-*` caches (class
//! chosen like Linux's `kmalloc_index`); larger ones by one compound block of
//! `2^ceil(log2(pages))` pages whose head page owner word records the order.
//!
//! Alignment rule: every kmalloc object is 8-aligned, and objects of the power-of-two
//! classes are aligned to their class size (up to `PAGE_SIZE << SLAB_MAX_ORDER`, and
//! compound blocks to their size as far as the linear map preserves physical alignment).
//! So a `Layout` is served by rounding its size up to its alignment; for the two
//! non-power-of-two classes (96, 192) an alignment above 8 moves the request to the next
//! power of two ([`SlabAllocator::alloc_layout`]).

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use spin::{Mutex, Once};

use super::cache::{CacheId, CacheStats, Env, KmemCache, LayoutError};
use super::error::{SlabError, SlabErrorKind, SlabFix, SlabReporter};
use super::flags::{Ctor, SlabFlags};
use super::layout::build_cfg;
use super::virt_to_slab::VirtToSlab;
use super::{raw, KMALLOC_MAX_CACHE_SIZE, MAX_CACHES};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::cpu::CpuId;
use crate::gfp::Gfp;
use crate::owner::PageOwner;
use crate::page_alloc::MemMap;
use crate::page_source::PageSource;

/// What `kmalloc(0)` returns: a distinct non-null pointer that faults if dereferenced and
/// that `kfree` ignores (Linux's `ZERO_SIZE_PTR`).
pub const ZERO_SIZE_PTR: usize = 16;

/// Names and sizes of the kmalloc caches, in registry order.
pub const KMALLOC_NAMES: [(&str, usize); 13] = [
    ("kmalloc-8", 8),
    ("kmalloc-16", 16),
    ("kmalloc-32", 32),
    ("kmalloc-64", 64),
    ("kmalloc-96", 96),
    ("kmalloc-128", 128),
    ("kmalloc-192", 192),
    ("kmalloc-256", 256),
    ("kmalloc-512", 512),
    ("kmalloc-1k", 1024),
    ("kmalloc-2k", 2048),
    ("kmalloc-4k", 4096),
    ("kmalloc-8k", 8192),
];

/// Class of sizes 1..=192 by `(size - 1) / 8`, like Linux's `size_index[]`.
const SIZE_INDEX: [u8; 24] = [
    0, 1, 2, 2, 3, 3, 3, 3, // 8 16 32 32 64 64 64 64
    4, 4, 4, 4, 5, 5, 5, 5, // 96 x4, 128 x4
    6, 6, 6, 6, 6, 6, 6, 6, // 192 x8
];

/// [`kmalloc_index`] of every size 1..=8192 by `(size - 1) / 8` (a class boundary is
/// always a multiple of 8): one load on the fast path, folded away for a constant size.
const KMALLOC_CLASS: [u8; KMALLOC_MAX_CACHE_SIZE / 8] = {
    let mut t = [0u8; KMALLOC_MAX_CACHE_SIZE / 8];
    let mut i = 0;
    while i < t.len() {
        t[i] = kmalloc_index(i * 8 + 8) as u8;
        i += 1;
    }
    t
};

/// Linux's `kmalloc_index`: the kmalloc cache for `1 <= size <= 8192`.
#[inline(always)]
pub const fn kmalloc_index(size: usize) -> usize {
    if size <= 192 {
        SIZE_INDEX[(size - 1) >> 3] as usize
    } else {
        // 193..=256 -> 7 (kmalloc-256), ..., 4097..=8192 -> 12 (kmalloc-8k)
        (usize::BITS - (size - 1).leading_zeros()) as usize - 1
    }
}

/// Why `kmem_cache_create` failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlabCreateError {
    /// [`SlabAllocator::init`] has not run.
    NotInitialised,
    /// All [`MAX_CACHES`] slots are taken.
    RegistryFull,
    /// Zero size or an alignment that is not a power of two.
    BadArgs,
    /// Objects too large for a slab.
    TooLarge,
}

/// Why `kmem_cache_destroy` was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlabDestroyError {
    /// Objects are still allocated.
    Busy {
        /// Cache name.
        name: &'static str,
        /// Live objects.
        active: usize,
    },
    /// No such cache (or a kmalloc cache, which cannot be destroyed).
    BadCache,
}

impl core::fmt::Display for SlabDestroyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SlabDestroyError::Busy { name, active } => {
                write!(f, "kmem_cache_destroy {}: Slab cache still has objects ({} active)", name, active)
            }
            SlabDestroyError::BadCache => f.write_str("kmem_cache_destroy: no such cache"),
        }
    }
}

struct Ctx<'a> {
    ps: &'a (dyn PageSource + Sync),
    rep: &'a dyn SlabReporter,
    max_order: u32,
    debug: bool,
    seed: u64,
}

/// The kernel heap: a registry of caches over a page source.
///
/// Every call names the CPU it runs on (`cpu`): CPU `c`'s per-CPU arrays are only pushed
/// and popped by code running as `c`, which an interrupt handler on `c` may interrupt
/// (the arrays are made for that, with interrupts enabled); other CPUs only hold them to
/// drain them or read their counters. Two threads must not pass the same `cpu` at the
/// same time (a host test gives each thread a CPU of its own).
///
/// The kernel glue, with the buddy allocator as page source (here simulated RAM) and the
/// heap as `#[global_allocator]`:
///
/// ```
/// use core::alloc::{GlobalAlloc, Layout};
/// use mm::cpu::CpuId;
/// use mm::gfp::GFP_KERNEL;
/// use mm::slab::{debug::NullReporter, host::HostPages, SlabAllocator, MAX_PAGE_ORDER};
///
/// static SLAB: SlabAllocator<'static> = SlabAllocator::new();
///
/// struct KernelHeap;
/// fn this_cpu() -> CpuId {
///     CpuId::BOOT // MPIDR_EL1.Aff0, checked by CpuId::new, in the kernel
/// }
/// unsafe impl GlobalAlloc for KernelHeap {
///     unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
///         SLAB.alloc_layout(layout, GFP_KERNEL, this_cpu())
///     }
///     unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
///         // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with `layout`.
///         unsafe { SLAB.dealloc_layout(ptr, layout, this_cpu()) }
///     }
///     unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
///         // SAFETY: as above.
///         unsafe { SLAB.realloc_layout(ptr, layout, new_size, GFP_KERNEL, this_cpu()) }
///     }
/// }
///
/// let ram: &'static HostPages = Box::leak(Box::new(HostPages::new(10)));
/// SLAB.init(ram, &NullReporter, MAX_PAGE_ORDER, false, 0x1234);
/// let layout = Layout::from_size_align(100, 64).unwrap();
/// // SAFETY: non-zero layout, freed with the same layout.
/// unsafe {
///     let p = KernelHeap.alloc(layout);
///     assert_eq!(p as usize % 64, 0);
///     KernelHeap.dealloc(p, layout);
/// }
/// let p = SLAB.kmalloc(100, GFP_KERNEL, CpuId::BOOT).unwrap();
/// assert_eq!(SLAB.ksize(p.as_ptr()), 128);
/// // SAFETY: a live kmalloc object, not used afterwards.
/// unsafe { SLAB.kfree(p.as_ptr(), CpuId::of(1)) };
/// let mut info = String::new();
/// mm::slab::slabinfo::slabinfo(&SLAB, &mut info).unwrap();
/// assert!(info.contains("kmalloc-128"));
/// ```
pub struct SlabAllocator<'a> {
    ctx: Once<Ctx<'a>>,
    caches: [KmemCache; MAX_CACHES],
    /// Serialises cache creation and destruction.
    registry: Mutex<()>,
    /// Pages held by large (compound) kmalloc blocks.
    large_pages: AtomicUsize,
    /// Fault injection (`fail_slab`) for every allocation from a cache.
    pub fail: super::failslab::FailSlab,
    /// `virt_to_slab` for `kfree`'s fast path.
    v2s: VirtToSlab,
}

impl Default for SlabAllocator<'_> {
    fn default() -> Self {
        Self::new()
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: a cheap per-cache secret from the seed.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl<'a> SlabAllocator<'a> {
    /// An uninitialised allocator (usable in a `static`).
    pub const fn new() -> Self {
        SlabAllocator {
            ctx: Once::new(),
            caches: [const { KmemCache::new() }; MAX_CACHES],
            registry: Mutex::new(()),
            large_pages: AtomicUsize::new(0),
            fail: super::failslab::FailSlab::new(),
            v2s: VirtToSlab::new(),
        }
    }

    /// Connects the page source and reporter and creates the kmalloc caches. `max_order` is
    /// the page allocator's largest order (bounds kmalloc); `debug` turns on red zones and
    /// poisoning for every cache (`slub_debug`); `seed` feeds the freelist secrets.
    /// A second call is ignored.
    pub fn init(
        &self,
        ps: &'a (dyn PageSource + Sync),
        rep: &'a dyn SlabReporter,
        max_order: u32,
        debug: bool,
        seed: u64,
    ) {
        let mut first = false;
        self.ctx.call_once(|| {
            first = true;
            Ctx { ps, rep, max_order, debug, seed }
        });
        if !first {
            return;
        }
        for (name, size) in KMALLOC_NAMES {
            let align = if size.is_power_of_two() { size } else { 8 };
            let r = self.kmem_cache_create(name, size, align, SlabFlags::NONE, None);
            debug_assert!(r.is_ok(), "kmalloc cache {} failed", name);
        }
    }

    /// Gives `kfree`'s fast path the page source's descriptor array `mm` (whose frames
    /// are at `phys + linear_offset` in the linear map): it then reads an object's cache
    /// from its page's owner word by arithmetic (Linux's `virt_to_slab`). Without it every
    /// `kfree` asks the page source (correct, slower). Call once, after [`Self::init`],
    /// with the descriptors of the pages the page source hands out.
    pub fn set_mem_map(&self, mm: MemMap, linear_offset: u64) {
        self.v2s.set(mm, linear_offset);
    }

    #[inline(always)]
    fn ctx(&self) -> Option<&Ctx<'a>> {
        self.ctx.get()
    }

    /// What a cache's slow paths work with: the page source and the reporter.
    #[inline(always)]
    fn env<'s>(&'s self, ctx: &Ctx<'a>) -> Env<'s> {
        Env { ps: ctx.ps, rep: ctx.rep }
    }

    /// Whether debug mode is on.
    pub fn debug(&self) -> bool {
        self.ctx().is_some_and(|c| c.debug)
    }

    /// `kmem_cache_create`: a cache of `size`-byte objects aligned to `align` (at least 8).
    /// With debug mode on, [`SlabFlags::DEBUG`] is added.
    pub fn kmem_cache_create(
        &self,
        name: &'static str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<Ctor>,
    ) -> Result<CacheId, SlabCreateError> {
        let ctx = self.ctx().ok_or(SlabCreateError::NotInitialised)?;
        let flags = if ctx.debug { flags.union(SlabFlags::DEBUG) } else { flags };
        let _guard = self.registry.lock();
        let index = self.caches.iter().position(|c| !c.is_live()).ok_or(SlabCreateError::RegistryFull)?;
        // The slot's address tells the caches apart (and this allocator from another).
        let secret = mix(ctx.seed ^ (&self.caches[index] as *const _ as u64)) as usize;
        let cfg = build_cfg(name, index, size, align, flags, ctor, secret).map_err(|e| match e {
            LayoutError::BadArgs => SlabCreateError::BadArgs,
            LayoutError::TooLarge => SlabCreateError::TooLarge,
        })?;
        self.caches[index].activate(cfg);
        Ok(CacheId(index as u8))
    }

    fn live(&self, id: CacheId) -> Option<(&KmemCache, &Ctx<'a>)> {
        let c = self.caches.get(id.index())?;
        Some((c, self.ctx()?)).filter(|(c, _)| c.is_live())
    }

    /// `kmem_cache_alloc`.
    #[inline]
    pub fn kmem_cache_alloc(&self, id: CacheId, gfp: Gfp, cpu: CpuId) -> Option<NonNull<u8>> {
        let (c, ctx) = self.live(id)?;
        if self.fail.should_fail(gfp) {
            ctx.rep.fault_injected(gfp);
            return None;
        }
        NonNull::new(c.alloc(&self.env(ctx), gfp, cpu)? as *mut u8)
    }

    /// `kmem_cache_free`. An object of another cache is reported (`Wrong slab cache`) and
    /// refused.
    ///
    /// # Safety
    /// Unless debug mode is on, `obj` must be a live object of `id` not used afterwards.
    pub unsafe fn kmem_cache_free(&self, id: CacheId, obj: NonNull<u8>, cpu: CpuId) {
        let Some((c, ctx)) = self.live(id) else {
            return;
        };
        let a = obj.as_ptr() as usize;
        match self.owner(ctx, a) {
            Some(PageOwner::Slab(i)) if i == id.index() => {
                // SAFETY: the page is one of this cache's slabs; the rest is the caller's.
                unsafe { c.free(&self.env(ctx), a, cpu) }
            }
            Some(PageOwner::Slab(i)) => {
                let other = self.caches.get(i).map_or("?", |o| o.name());
                self.report_outside(ctx, SlabErrorKind::WrongCache { other }, c.name(), a);
            }
            _ => self.report_outside(ctx, SlabErrorKind::NotSlabObject, c.name(), a),
        }
    }

    /// `kmem_cache_shrink`: pages given back.
    pub fn kmem_cache_shrink(&self, id: CacheId) -> usize {
        self.live(id).map_or(0, |(c, ctx)| c.shrink(self.env(ctx)))
    }

    /// `kmem_cache_destroy`: refused while objects are live. kmalloc caches stay.
    pub fn kmem_cache_destroy(&self, id: CacheId) -> Result<(), SlabDestroyError> {
        let (c, ctx) = self.live(id).ok_or(SlabDestroyError::BadCache)?;
        if id.index() < KMALLOC_NAMES.len() {
            return Err(SlabDestroyError::BadCache);
        }
        let _guard = self.registry.lock();
        c.destroy(self.env(ctx)).map_err(|active| SlabDestroyError::Busy { name: c.name(), active })
    }

    /// `validate_slab_cache`: checks the free objects of `id` (debug mode); problems found.
    pub fn kmem_cache_validate(&self, id: CacheId) -> usize {
        self.live(id).map_or(0, |(c, ctx)| c.validate(self.env(ctx)))
    }

    /// [`Self::kmem_cache_validate`] for every cache.
    pub fn validate_all(&self) -> usize {
        let Some(ctx) = self.ctx() else { return 0 };
        self.caches.iter().filter(|c| c.is_live()).map(|c| c.validate(self.env(ctx))).sum()
    }

    /// Counters of one cache.
    pub fn cache_stats(&self, id: CacheId) -> Option<CacheStats> {
        self.live(id).map(|(c, _)| c.stats())
    }

    /// Counters of every live cache, in registry order.
    pub fn for_each_cache(&self, mut f: impl FnMut(CacheId, &CacheStats)) {
        for (i, c) in self.caches.iter().enumerate() {
            if c.is_live() {
                f(CacheId(i as u8), &c.stats());
            }
        }
    }

    /// The id of the kmalloc cache serving `size` bytes (1..=8192).
    pub fn kmalloc_cache(&self, size: usize) -> Option<CacheId> {
        (1..=KMALLOC_MAX_CACHE_SIZE).contains(&size).then(|| CacheId(kmalloc_index(size) as u8))
    }

    #[inline]
    fn owner(&self, ctx: &Ctx<'a>, a: usize) -> Option<PageOwner> {
        ctx.ps.virt_page_owner(VirtAddr::new(a as u64)).map(PageOwner::decode)
    }

    #[cold]
    fn report_outside(&self, ctx: &Ctx<'a>, kind: SlabErrorKind, cache: &'static str, object: usize) {
        ctx.rep.report(&SlabError { kind, cache, object, slab: 0, fix: SlabFix::Refused });
    }

    /// `kmalloc`: `size` bytes, or [`ZERO_SIZE_PTR`] for 0, or `None` when memory is short
    /// or `size` exceeds the largest page block.
    ///
    /// The fast path takes the cache from a table by size (a constant when `size` is),
    /// checks the fault-injection knobs and pops this CPU's array; everything else (size 0,
    /// large blocks, an empty or busy array, debugging, `__GFP_ZERO`, an injected failure)
    /// is out of line.
    #[inline]
    pub fn kmalloc(&self, size: usize, gfp: Gfp, cpu: CpuId) -> Option<NonNull<u8>> {
        let i = size.wrapping_sub(1);
        if i < KMALLOC_MAX_CACHE_SIZE && !self.fail.attr.armed() {
            if let Some(obj) = self.caches[KMALLOC_CLASS[i >> 3] as usize].alloc_fast(gfp, cpu) {
                return NonNull::new(obj as *mut u8);
            }
        }
        self.kmalloc_slow(size, gfp, cpu)
    }

    /// [`Self::kmalloc`] past its fast path.
    #[inline(never)]
    fn kmalloc_slow(&self, size: usize, gfp: Gfp, cpu: CpuId) -> Option<NonNull<u8>> {
        if size == 0 {
            return NonNull::new(ZERO_SIZE_PTR as *mut u8);
        }
        let ctx = self.ctx()?;
        if size <= KMALLOC_MAX_CACHE_SIZE {
            if self.fail.should_fail(gfp) {
                ctx.rep.fault_injected(gfp);
                return None;
            }
            let obj = self.caches[kmalloc_index(size)].alloc(&self.env(ctx), gfp, cpu)?;
            return NonNull::new(obj as *mut u8);
        }
        self.kmalloc_large(ctx, size, gfp)
    }

    #[inline(never)]
    fn kmalloc_large(&self, ctx: &Ctx<'a>, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        let pages = crate::addr::pages_for(size)?;
        let order = pages.next_power_of_two().trailing_zeros();
        if order > ctx.max_order || order as usize + PAGE_SHIFT as usize >= usize::BITS as usize {
            return None;
        }
        let pa = ctx.ps.alloc_pages(gfp.without(Gfp::GFP_ZERO) | Gfp::GFP_COMP, order)?;
        ctx.ps.set_page_owner(pa, PageOwner::Large(order).encode());
        self.large_pages.fetch_add(1 << order, Relaxed);
        let va = ctx.ps.phys_to_virt(pa).as_usize();
        if gfp.contains(Gfp::GFP_ZERO) {
            // SAFETY: the block was just allocated for us.
            unsafe { raw::fill(va, PAGE_SIZE << order, 0) };
        }
        NonNull::new(va as *mut u8)
    }

    /// `kzalloc`: zeroed `kmalloc`.
    pub fn kzalloc(&self, size: usize, gfp: Gfp, cpu: CpuId) -> Option<NonNull<u8>> {
        self.kmalloc(size, gfp | Gfp::GFP_ZERO, cpu)
    }

    /// `ksize`: usable bytes of a kmalloc object (0 for null, [`ZERO_SIZE_PTR`] and
    /// pointers kmalloc did not return).
    pub fn ksize(&self, ptr: *const u8) -> usize {
        let a = ptr as usize;
        let Some(ctx) = self.ctx() else { return 0 };
        // Null and ZERO_SIZE_PTR lie in no page the page source handed out: no owner.
        match self.owner(ctx, a) {
            Some(PageOwner::Slab(i)) => self.caches.get(i).map_or(0, |c| c.object_size()),
            Some(PageOwner::Large(order)) if a.is_multiple_of(PAGE_SIZE) => PAGE_SIZE << order,
            _ => 0,
        }
    }

    /// `kfree`: frees a kmalloc object or compound block; null and [`ZERO_SIZE_PTR`] are
    /// ignored. A pointer into no slab page nor at a block start is reported and ignored.
    ///
    /// # Safety
    /// Unless debug mode is on, `ptr` must come from this allocator's `kmalloc` family and
    /// not be used afterwards. (With debug mode on, misuse is detected and refused as long as
    /// the memory has not been reused.)
    #[inline]
    pub unsafe fn kfree(&self, ptr: *mut u8, cpu: CpuId) {
        // SAFETY: forwarded contract.
        if unsafe { self.kfree_fast(ptr, cpu) } {
            return;
        }
        // SAFETY: forwarded contract.
        unsafe { self.kfree_slow(ptr, cpu) }
    }

    /// [`Self::kfree`]'s first part: true if `ptr` was a slab object of the linear map,
    /// found from its page descriptor (`virt_to_slab`) and freed, onto this CPU's array
    /// or, when the array is full, busy or parked (debugging), through its cache's slow
    /// path without a second lookup; false (nothing done) for anything else, which then
    /// goes to [`Self::kfree_slow`]. For a caller with a check of its own between the two
    /// (the kernel's KFENCE pool, outside the linear map, so never taken here).
    ///
    /// # Safety
    /// As for [`Self::kfree`].
    #[inline(always)]
    pub unsafe fn kfree_fast(&self, ptr: *mut u8, cpu: CpuId) -> bool {
        // The page's owner word names the cache, whose array takes it (a debug cache's
        // array is parked and sends it on with the rest).
        let a = ptr as usize;
        match self.v2s.cache_of(a) {
            Some(i) => {
                if !self.caches[i].free_fast(a, cpu) {
                    // SAFETY: forwarded contract; the owner word names cache `i`.
                    unsafe { self.kfree_cache_slow(i, a, cpu) };
                }
                true
            }
            None => false,
        }
    }

    /// A slab object whose cache the fast path found but whose array is full, busy or
    /// parked: the cache's slow path, without looking the cache up again.
    ///
    /// # Safety
    /// As for [`Self::kfree`]; `a` is an object of cache `i`.
    #[inline(never)]
    unsafe fn kfree_cache_slow(&self, i: usize, a: usize, cpu: CpuId) {
        let Some(ctx) = self.ctx() else { return };
        // SAFETY: forwarded contract.
        unsafe { self.caches[i].free_slow(&self.env(ctx), a, cpu) }
    }

    /// [`Self::kfree`] past [`Self::kfree_fast`]: null, [`ZERO_SIZE_PTR`], a slab object
    /// before the allocator knows the descriptor array (`set_mem_map`), a large block, a
    /// pointer kmalloc did not return.
    ///
    /// # Safety
    /// As for [`Self::kfree`].
    #[inline(never)]
    pub unsafe fn kfree_slow(&self, ptr: *mut u8, cpu: CpuId) {
        let a = ptr as usize;
        if a <= ZERO_SIZE_PTR {
            return;
        }
        let Some(ctx) = self.ctx() else { return };
        // One page-owner lookup; everything but a slab object is out of line (and gets the
        // raw word, so that the fast path builds nothing for it).
        let word = ctx.ps.virt_page_owner(VirtAddr::new(a as u64));
        match word.map(PageOwner::decode) {
            Some(PageOwner::Slab(i)) if i < MAX_CACHES => {
                // SAFETY: the owner word names the cache; the object is the caller's.
                unsafe { self.caches[i].free(&self.env(ctx), a, cpu) }
            }
            // SAFETY: forwarded contract.
            _ => unsafe { self.kfree_other(ctx, a, word) },
        }
    }

    /// `kfree` of anything but a slab object: a large block (by its owner word), or a
    /// pointer kmalloc did not return (reported and ignored).
    ///
    /// # Safety
    /// As for [`Self::kfree`].
    #[inline(never)]
    unsafe fn kfree_other(&self, ctx: &Ctx<'a>, a: usize, word: Option<u64>) {
        match word.map(PageOwner::decode) {
            Some(PageOwner::Large(order)) if a.is_multiple_of(PAGE_SIZE) => {
                let Some(pa) = ctx.ps.virt_to_phys(VirtAddr::new(a as u64)) else {
                    return self.report_outside(ctx, SlabErrorKind::NotSlabObject, "kmalloc", a);
                };
                ctx.ps.set_page_owner(pa, PageOwner::Other.encode());
                self.large_pages.fetch_sub(1 << order, Relaxed);
                ctx.ps.free_pages(PhysAddr::new(pa.as_u64()), order);
            }
            _ => self.report_outside(ctx, SlabErrorKind::NotSlabObject, "kmalloc", a),
        }
    }

    /// `krealloc`: resizes, keeping the first `min(old usable size, new_size)` bytes. A null
    /// `ptr` allocates; `new_size == 0` frees and returns [`ZERO_SIZE_PTR`]. On failure the
    /// old object is untouched and `None` returned.
    ///
    /// # Safety
    /// As for [`Self::kfree`] on `ptr`.
    pub unsafe fn krealloc(&self, ptr: *mut u8, new_size: usize, gfp: Gfp, cpu: CpuId) -> Option<NonNull<u8>> {
        if ptr as usize <= ZERO_SIZE_PTR {
            return self.kmalloc(new_size, gfp, cpu);
        }
        if new_size == 0 {
            // SAFETY: forwarded contract.
            unsafe { self.kfree(ptr, cpu) };
            return NonNull::new(ZERO_SIZE_PTR as *mut u8);
        }
        let old = self.ksize(ptr);
        if old == 0 {
            // Not ours: let kfree's checks report it, and refuse.
            // SAFETY: forwarded contract (kfree only reports a foreign pointer).
            unsafe { self.kfree(ptr, cpu) };
            return None;
        }
        // Same object when it still fits and would not fit a smaller class (Linux keeps it
        // whenever it fits; we also give back large blocks that could halve).
        if new_size <= old && (old <= KMALLOC_MAX_CACHE_SIZE || new_size > old / 2) {
            return NonNull::new(ptr);
        }
        let new = self.kmalloc(new_size, gfp.without(Gfp::GFP_ZERO), cpu)?;
        // SAFETY: both objects are live, distinct, and at least `min(old, new_size)` long.
        unsafe { raw::copy(ptr as usize, new.as_ptr() as usize, old.min(new_size)) };
        // SAFETY: forwarded contract.
        unsafe { self.kfree(ptr, cpu) };
        Some(new)
    }

    /// Returns every CPU-cached object of `cpu` to the slabs.
    pub fn drain_cpu(&self, cpu: CpuId) {
        let Some(ctx) = self.ctx() else { return };
        for c in self.caches.iter().filter(|c| c.is_live()) {
            c.drain_cpu(self.env(ctx), cpu);
        }
    }

    /// [`Self::drain_cpu`] for every CPU, then every cache's shared array (Linux's
    /// `drain_cpu_caches`): every cached object is back in its slab.
    pub fn drain_all(&self) {
        for cpu in CpuId::all() {
            self.drain_cpu(cpu);
        }
        let Some(ctx) = self.ctx() else { return };
        for c in self.caches.iter().filter(|c| c.is_live()) {
            c.drain_shared(self.env(ctx));
        }
    }

    /// Drains and shrinks every cache; pages given back.
    pub fn shrink_all(&self) -> usize {
        let Some(ctx) = self.ctx() else { return 0 };
        self.caches.iter().filter(|c| c.is_live()).map(|c| c.shrink(self.env(ctx))).sum()
    }

    /// Bytes in slab pages (meminfo's `Slab:`).
    pub fn slab_bytes(&self) -> usize {
        let mut total = 0;
        self.for_each_cache(|_, s| total += (s.num_slabs * s.pagesperslab + s.shared_pages) * PAGE_SIZE);
        total
    }

    /// Bytes in large kmalloc blocks (not counted in `Slab:`, as in Linux).
    pub fn large_bytes(&self) -> usize {
        self.large_pages.load(Relaxed) * PAGE_SIZE
    }

    /// Size the global allocator asks kmalloc for, given the alignment rule.
    pub fn layout_size(layout: Layout) -> usize {
        let size = layout.size().max(layout.align()).max(1);
        if layout.align() > 8
            && size <= KMALLOC_MAX_CACHE_SIZE
            && !KMALLOC_NAMES[kmalloc_index(size)].1.is_power_of_two()
        {
            size.next_power_of_two()
        } else {
            size
        }
    }

    /// `GlobalAlloc::alloc`: null on failure.
    pub fn alloc_layout(&self, layout: Layout, gfp: Gfp, cpu: CpuId) -> *mut u8 {
        let Some(p) = self.kmalloc(Self::layout_size(layout), gfp, cpu) else {
            return core::ptr::null_mut();
        };
        if !(p.as_ptr() as usize).is_multiple_of(layout.align()) {
            // Only possible for a compound block whose virtual address lost the physical
            // alignment; give it back rather than break the contract.
            // SAFETY: just allocated, never handed out.
            unsafe { self.kfree(p.as_ptr(), cpu) };
            return core::ptr::null_mut();
        }
        p.as_ptr()
    }

    /// `GlobalAlloc::dealloc`.
    ///
    /// # Safety
    /// `ptr` must come from [`Self::alloc_layout`]/[`Self::realloc_layout`] on this allocator.
    pub unsafe fn dealloc_layout(&self, ptr: *mut u8, _layout: Layout, cpu: CpuId) {
        // SAFETY: forwarded contract.
        unsafe { self.kfree(ptr, cpu) }
    }

    /// `GlobalAlloc::realloc`: null on failure (the old block then stays valid).
    ///
    /// # Safety
    /// As for [`Self::dealloc_layout`]; `layout` is the block's current layout.
    pub unsafe fn realloc_layout(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        gfp: Gfp,
        cpu: CpuId,
    ) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        let want = Self::layout_size(new_layout);
        if self.ksize(ptr) >= want && (ptr as usize).is_multiple_of(layout.align()) {
            return ptr;
        }
        let new = self.alloc_layout(new_layout, gfp, cpu);
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct; `layout.size()` bytes are valid in
            // the old one and the copy length fits both.
            unsafe { raw::copy(ptr as usize, new as usize, layout.size().min(new_size)) };
            // SAFETY: forwarded contract.
            unsafe { self.kfree(ptr, cpu) };
        }
        new
    }
}

#[cfg(test)]
#[path = "kmalloc_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod fastpath_tests;
