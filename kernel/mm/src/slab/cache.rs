//! One slab cache (`struct kmem_cache`): layout, slabs, node lists and per-CPU arrays.
//!
//! A slab is `2^order` naturally aligned pages: a 64-byte header, then `num` slots of
//! `stride` bytes. The header holds the list links, the hardened freelist head and the
//! in-use count; the owner word of every page of the slab holds `PageOwner::Slab` of the
//! cache, so an object address leads to its cache (owner word) and its slab (round the
//! physical address down to the slab size).
//!
//! Locks: a CPU's array lock, then the node lock; the configuration lock is a leaf.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};

use crate::sync::SpinLock as Mutex;

use super::debug::{
    SlabError, SlabErrorKind, SlabFix, SlabReporter, POISON_END, POISON_FREE, POISON_INUSE, SLUB_RED_ACTIVE,
    SLUB_RED_INACTIVE,
};
use super::owner::PageOwner;
use super::percpu::{tunables_for, ArrayCache};
use super::raw;
use super::{NR_CPUS, SLAB_MAX_ORDER};
use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::gfp::Gfp;
use crate::page_source::PageSource;

/// An object constructor, run once on each object when its slab is created (SLUB
/// semantics: objects must be freed back in their constructed state).
///
/// # Safety
/// Called with a pointer to `object_size` writable bytes owned by the cache.
pub type Ctor = unsafe fn(obj: *mut u8);

/// Cache creation flags (Linux's `SLAB_*` values).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SlabFlags(pub u32);

impl SlabFlags {
    /// No flags.
    pub const NONE: SlabFlags = SlabFlags(0);
    /// Check frees for validity (`SLAB_CONSISTENCY_CHECKS`).
    pub const CONSISTENCY_CHECKS: SlabFlags = SlabFlags(0x100);
    /// Red zones around objects (`SLAB_RED_ZONE`).
    pub const RED_ZONE: SlabFlags = SlabFlags(0x400);
    /// Poison free and fresh objects (`SLAB_POISON`).
    pub const POISON: SlabFlags = SlabFlags(0x800);
    /// Align objects to cache lines (`SLAB_HWCACHE_ALIGN`).
    pub const HWCACHE_ALIGN: SlabFlags = SlabFlags(0x2000);
    /// Everything the runtime debug switch turns on (`slub_debug=FZP`).
    pub const DEBUG: SlabFlags = SlabFlags(0x100 | 0x400 | 0x800);

    /// Whether any flag of `o` is set.
    pub const fn intersects(self, o: SlabFlags) -> bool {
        self.0 & o.0 != 0
    }
    /// The union.
    pub const fn union(self, o: SlabFlags) -> SlabFlags {
        SlabFlags(self.0 | o.0)
    }
}

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

/// The header at the start of every slab (Linux's `struct slab`, kept in the slab itself
/// rather than in the page descriptor). Read and written field by field through [`Slab`].
#[repr(C)]
struct SlabHeader {
    /// `SLAB_MAGIC ^ address`: set while the slab belongs to a cache.
    magic: usize,
    /// Node list links (addresses of the neighbouring slabs' headers, 0 for none).
    next: usize,
    prev: usize,
    /// Hardened pointer to the first free object (see [`CacheCfg::encode`]).
    freelist: usize,
    /// Objects handed out.
    inuse: usize,
    /// Which node list the slab is on (`LIST_*`).
    list: usize,
    /// Physical address of the slab, for the free.
    pa: usize,
    _reserved: usize,
}

pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<SlabHeader>();
// Objects start 64 bytes in (a cache line); the header's words are 8-aligned.
const _: () = assert!(HEADER_SIZE == 64 && core::mem::align_of::<SlabHeader>() <= 8);
const SLAB_MAGIC: usize = 0x51ab_c0de_5eed_f00d_u64 as usize;

const LIST_PARTIAL: usize = 0;
const LIST_FULL: usize = 1;
const LIST_FREE: usize = 2;

/// A slab, named by the address of its header.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slab(usize);

impl Slab {
    /// # Safety
    /// `va` must be the linear-map address of a slab's first page, held by the cache for
    /// as long as the value is used.
    unsafe fn from_raw(va: usize) -> Slab {
        Slab(va)
    }
    #[inline(always)]
    fn get(self, off: usize) -> usize {
        // SAFETY: a `Slab` only exists for a held slab (`from_raw`), whose first
        // `HEADER_SIZE` bytes are a `SlabHeader`; `off` is the offset of one of its fields.
        unsafe { raw::read_word(self.0 + off) }
    }
    #[inline(always)]
    fn set(self, off: usize, v: usize) {
        // SAFETY: as in `get`; header fields are written under the node lock.
        unsafe { raw::write_word(self.0 + off, v) }
    }
    /// Address of the `freelist` field (the hardened pointer's storage address).
    #[inline(always)]
    fn freelist_at(self) -> usize {
        self.0 + core::mem::offset_of!(SlabHeader, freelist)
    }
}

/// Typed accessors of the header fields: `slab.inuse()`, `slab.set_inuse(v)`, ...
macro_rules! header_fields {
    ($($field:ident $set:ident),*) => {
        impl Slab {
            $(
                #[inline(always)]
                fn $field(self) -> usize {
                    self.get(core::mem::offset_of!(SlabHeader, $field))
                }
                #[inline(always)]
                fn $set(self, v: usize) {
                    self.set(core::mem::offset_of!(SlabHeader, $field), v)
                }
            )*
        }
    };
}
header_fields!(magic set_magic, next set_next, prev set_prev, freelist set_freelist, inuse set_inuse, list set_list, pa set_pa);

/// The fixed layout and identity of a cache, set at creation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheCfg {
    pub(crate) name: &'static str,
    pub(crate) index: usize,
    /// Bytes the user may use (`object_size`).
    pub(crate) object_size: usize,
    pub(crate) align: usize,
    /// Slot size including red zones and an outside free pointer (SLUB's `size`).
    pub(crate) stride: usize,
    /// Offset of the object in its slot (the left red zone).
    obj_offset: usize,
    /// Offset of the free pointer in the slot.
    fp_offset: usize,
    /// Offset of the first slot in the slab.
    first: usize,
    pub(crate) order: u32,
    /// Objects per slab.
    pub(crate) num: usize,
    /// `ceil(2^32 / stride)`: object index by multiplication (no division on any path).
    recip: u64,
    debug: bool,
    poison: bool,
    ctor: Option<Ctor>,
    secret: usize,
}

impl CacheCfg {
    const EMPTY: CacheCfg = CacheCfg {
        name: "",
        index: 0,
        object_size: 0,
        align: 8,
        stride: 8,
        obj_offset: 0,
        fp_offset: 0,
        first: HEADER_SIZE,
        order: 0,
        num: 0,
        recip: 0,
        debug: false,
        poison: false,
        ctor: None,
        secret: 0,
    };

    fn slab_bytes(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// Index of the object at `obj` in `slab`, if `obj` is exactly an object start.
    fn obj_index(&self, slab: Slab, obj: usize) -> Option<usize> {
        let off = obj.wrapping_sub(slab.0 + self.first + self.obj_offset);
        if off >= self.num * self.stride {
            return None;
        }
        let idx = ((off as u64 * self.recip) >> 32) as usize;
        (idx * self.stride == off).then_some(idx)
    }

    fn obj_at(&self, slab: Slab, idx: usize) -> usize {
        slab.0 + self.first + idx * self.stride + self.obj_offset
    }

    fn fp_addr(&self, obj: usize) -> usize {
        obj - self.obj_offset + self.fp_offset
    }

    /// Hardened encoding of a free pointer stored at `at` (SLAB_FREELIST_HARDENED).
    fn encode(&self, ptr: usize, at: usize) -> usize {
        ptr ^ self.secret ^ at.swap_bytes()
    }

    /// An encoded pointer stored at `from`, re-encoded for storage at `to`: equal to
    /// `encode(encode(v, from), to)` without applying the secret twice.
    fn reencode(&self, v: usize, from: usize, to: usize) -> usize {
        v ^ from.swap_bytes() ^ to.swap_bytes()
    }

    /// The right red zone: from the end of the object to the free pointer.
    fn rz_right(&self, obj: usize) -> (usize, usize) {
        (obj + self.object_size, self.fp_offset - self.obj_offset - self.object_size)
    }
}

/// Why a layout cannot be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LayoutError {
    /// Alignment not a power of two, or zero object size.
    BadArgs,
    /// Objects too large for a slab.
    TooLarge,
}

/// Linux's `calculate_order`: the smallest slab order whose waste is under a fraction of
/// the slab, relaxing the fraction and the minimum object count until one fits.
pub(crate) fn calculate_order(stride: usize, first: usize) -> Option<(u32, usize)> {
    for (fraction, min_objects) in [(16, 8), (16, 4), (8, 2), (4, 1)] {
        for order in 0..=SLAB_MAX_ORDER {
            let slab = PAGE_SIZE << order;
            if first >= slab {
                continue;
            }
            let num = (slab - first) / stride;
            let waste = slab - first - num * stride;
            if num >= min_objects && waste * fraction <= slab {
                return Some((order, num));
            }
        }
    }
    (0..=SLAB_MAX_ORDER + 6).find_map(|order| {
        let slab = PAGE_SIZE << order;
        (slab > first && (slab - first) / stride >= 1).then(|| (order, (slab - first) / stride))
    })
}

fn align_up(v: usize, a: usize) -> usize {
    (v + a - 1) & !(a - 1)
}

/// Builds the layout of a cache.
pub(crate) fn build_cfg(
    name: &'static str,
    index: usize,
    size: usize,
    align: usize,
    flags: SlabFlags,
    ctor: Option<Ctor>,
    secret: usize,
) -> Result<CacheCfg, LayoutError> {
    if size == 0 || !align.is_power_of_two() || align > PAGE_SIZE << SLAB_MAX_ORDER {
        return Err(LayoutError::BadArgs);
    }
    if size > PAGE_SIZE << SLAB_MAX_ORDER {
        return Err(LayoutError::TooLarge);
    }
    let mut align = align.max(8);
    if flags.intersects(SlabFlags::HWCACHE_ALIGN) && size > 32 {
        align = align.max(64);
    }
    let debug = flags.intersects(SlabFlags::DEBUG);
    let size8 = align_up(size, 8);
    let (obj_offset, fp_offset, stride) = if debug {
        // [left red zone | object | right red zone (>= 8 bytes) | free pointer]
        let lrz = align_up(8, align);
        let fp = lrz + size8 + 8;
        (lrz, fp, align_up(fp + 8, align))
    } else if ctor.is_some() {
        // The free pointer must not clobber constructed state: keep it after the object.
        (0, size8, align_up(size8 + 8, align))
    } else {
        (0, 0, align_up(size8.max(8), align))
    };
    let first = align_up(HEADER_SIZE, align);
    let (order, num) = calculate_order(stride, first).ok_or(LayoutError::TooLarge)?;
    Ok(CacheCfg {
        name,
        index,
        object_size: size,
        align,
        stride,
        obj_offset,
        fp_offset,
        first,
        order,
        num,
        recip: (1u64 << 32) / stride as u64 + 1,
        debug,
        poison: debug && flags.intersects(SlabFlags::POISON) && ctor.is_none(),
        ctor,
        secret,
    })
}

/// Where a cache gets pages and sends error reports.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) ps: &'a (dyn PageSource + Sync),
    pub(crate) rep: &'a dyn SlabReporter,
}

/// The cache's slab lists and counters (Linux's `kmem_cache_node`).
struct Node {
    head: [usize; 3],
    nr_slabs: usize,
    nr_free_slabs: usize,
    /// Free objects inside slabs (not counting per-CPU arrays).
    free_objects: usize,
    slabs_created: u64,
    slabs_freed: u64,
    /// Objects withheld because they were found corrupted.
    quarantined: usize,
    errors: u64,
}

impl Node {
    const fn new() -> Self {
        Node {
            head: [0; 3],
            nr_slabs: 0,
            nr_free_slabs: 0,
            free_objects: 0,
            slabs_created: 0,
            slabs_freed: 0,
            quarantined: 0,
            errors: 0,
        }
    }

    fn list_add(&mut self, slab: Slab, list: usize) {
        let old = self.head[list];
        slab.set_next(old);
        slab.set_prev(0);
        slab.set_list(list);
        if old != 0 {
            // SAFETY: list members are held slabs.
            unsafe { Slab::from_raw(old) }.set_prev(slab.0);
        }
        self.head[list] = slab.0;
        if list == LIST_FREE {
            self.nr_free_slabs += 1;
        }
    }

    fn list_del(&mut self, slab: Slab) {
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
    fn relist(&mut self, cfg: &CacheCfg, slab: Slab) {
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

/// Counters of one cache, for slabinfo and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Cache name.
    pub name: &'static str,
    /// Usable bytes per object.
    pub object_size: usize,
    /// Slot size including metadata.
    pub size: usize,
    /// Object alignment.
    pub align: usize,
    /// Objects per slab.
    pub objperslab: usize,
    /// Pages per slab.
    pub pagesperslab: usize,
    /// Per-CPU array limit.
    pub limit: usize,
    /// Per-CPU refill/flush batch.
    pub batchcount: usize,
    /// Objects not free in slabs (per-CPU cached ones count as active, as in Linux SLAB).
    pub active_objs: usize,
    /// All object slots.
    pub num_objs: usize,
    /// Slabs with at least one object in use.
    pub active_slabs: usize,
    /// All slabs.
    pub num_slabs: usize,
    /// Objects sitting in per-CPU arrays.
    pub cpu_cached: usize,
    /// Allocations served by a per-CPU array.
    pub allochit: u64,
    /// Allocations that refilled a per-CPU array.
    pub allocmiss: u64,
    /// Frees kept by a per-CPU array.
    pub freehit: u64,
    /// Frees that flushed a per-CPU array.
    pub freemiss: u64,
    /// Slabs allocated from the page source.
    pub slabs_created: u64,
    /// Slabs returned to the page source.
    pub slabs_freed: u64,
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
    va_aligned: AtomicBool,
    cfg: Mutex<CacheCfg>,
    cpu: [Mutex<ArrayCache>; NR_CPUS],
    node: Mutex<Node>,
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
            cpu: [const { Mutex::new(ArrayCache::new()) }; NR_CPUS],
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
            *ac = ArrayCache::new();
            ac.set_tunables(limit, batch);
        }
        *self.node.lock() = Node::new();
        self.debug.store(cfg.debug, Relaxed);
        self.object_size.store(cfg.object_size, Relaxed);
        self.va_aligned.store(true, Relaxed);
        *self.cfg.lock() = cfg;
        self.state.store(STATE_LIVE, Relaxed);
    }

    fn report(&self, env: Env<'_>, kind: SlabErrorKind, object: usize, slab: usize, fix: SlabFix) {
        self.node.lock().errors += 1;
        env.rep.report(&SlabError { kind, cache: self.name(), object, slab, fix });
    }

    /// The slab holding `obj` (the caller knows `obj` is in one of this cache's pages).
    fn slab_of(&self, env: Env<'_>, cfg: &CacheCfg, obj: usize) -> Option<Slab> {
        if self.va_aligned.load(Relaxed) {
            // SAFETY: every slab of this cache is naturally aligned in the linear map (see
            // `va_aligned`) and `obj` lies inside one, so rounding down finds its start.
            return Some(unsafe { Slab::from_raw(obj & !(cfg.slab_bytes() - 1)) });
        }
        let pa = env.ps.virt_to_phys(VirtAddr::new(obj as u64))?;
        let base = env.ps.phys_to_virt(pa.align_down(cfg.slab_bytes() as u64));
        // SAFETY: the owner word of `obj`'s page names this cache, so the naturally aligned
        // block around it is one of its slabs (checked again by the magic where it matters).
        Some(unsafe { Slab::from_raw(base.as_usize()) })
    }

    /// Allocates and formats a new slab (no lock held).
    fn grow(&self, env: Env<'_>, cfg: &CacheCfg, gfp: Gfp) -> Option<Slab> {
        let pa = env.ps.alloc_pages(gfp.without(Gfp::GFP_ZERO).without(Gfp::GFP_COMP), cfg.order)?;
        for i in 0..1u64 << cfg.order {
            env.ps.set_page_owner(pa.add(i * PAGE_SIZE as u64), PageOwner::Slab(cfg.index).encode());
        }
        let va = env.ps.phys_to_virt(pa).as_usize();
        if !va.is_multiple_of(cfg.slab_bytes()) {
            // Before any object of this slab exists (it is published under the node lock).
            self.va_aligned.store(false, Relaxed);
        }
        // SAFETY: the block was just allocated for this cache.
        let slab = unsafe { Slab::from_raw(va) };
        slab.set_magic(SLAB_MAGIC ^ va);
        slab.set_inuse(0);
        slab.set_pa(pa.as_usize());
        let mut next = 0;
        for i in (0..cfg.num).rev() {
            let obj = cfg.obj_at(slab, i);
            if cfg.debug {
                // SAFETY: `obj`'s slot lies inside the new slab.
                unsafe { init_free_debug(cfg, obj) };
            }
            if let Some(ctor) = cfg.ctor {
                // SAFETY: the object is `object_size` bytes inside the new slab.
                unsafe { ctor(obj as *mut u8) };
            }
            let at = cfg.fp_addr(obj);
            // SAFETY: the free pointer word lies inside the object's slot.
            unsafe { raw::write_word(at, cfg.encode(next, at)) };
            next = obj;
        }
        slab.set_freelist(cfg.encode(next, slab.freelist_at()));
        Some(slab)
    }

    fn release_slab(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, slab: Slab) {
        node.list_del(slab);
        node.nr_slabs -= 1;
        node.free_objects -= cfg.num;
        node.slabs_freed += 1;
        let pa = crate::addr::PhysAddr::new(slab.pa() as u64);
        slab.set_magic(0);
        for i in 0..1u64 << cfg.order {
            env.ps.set_page_owner(pa.add(i * PAGE_SIZE as u64), PageOwner::Other.encode());
        }
        env.ps.free_pages(pa, cfg.order);
    }

    /// Pops one object off a slab's freelist, validating the hardened pointer.
    #[inline]
    fn slab_pop(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, slab: Slab) -> Option<usize> {
        let head_at = slab.freelist_at();
        let obj = cfg.encode(slab.freelist(), head_at);
        if obj == 0 {
            return None;
        }
        if cfg.obj_index(slab, obj).is_none() {
            // Abandon the rest of the freelist: the slab is treated as full for good.
            let lost = cfg.num - slab.inuse();
            node.free_objects -= lost;
            node.quarantined += lost;
            slab.set_inuse(cfg.num);
            slab.set_freelist(cfg.encode(0, head_at));
            node.errors += 1;
            env.rep.report(&SlabError {
                kind: SlabErrorKind::FreepointerCorrupt { fp: obj },
                cache: cfg.name,
                object: head_at,
                slab: slab.0,
                fix: SlabFix::Isolated,
            });
            return None;
        }
        let at = cfg.fp_addr(obj);
        // SAFETY: `obj` was validated as an object of this slab; its free pointer is ours.
        let next = cfg.encode(unsafe { raw::read_word(at) }, at);
        slab.set_freelist(cfg.encode(next, head_at));
        slab.set_inuse(slab.inuse() + 1);
        node.free_objects -= 1;
        Some(obj)
    }

    /// Returns an object to its slab; releases a slab beyond the empty-slab reserve.
    #[inline]
    fn slab_push(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, obj: usize) {
        let Some(slab) = self.slab_of(env, cfg, obj) else {
            return;
        };
        let head_at = slab.freelist_at();
        let at = cfg.fp_addr(obj);
        // SAFETY: `obj` is a free object of this slab (it came from a per-CPU array).
        unsafe { raw::write_word(at, cfg.reencode(slab.freelist(), head_at, at)) };
        slab.set_freelist(cfg.encode(obj, head_at));
        slab.set_inuse(slab.inuse() - 1);
        node.free_objects += 1;
        node.relist(cfg, slab);
        if node.nr_free_slabs > FREE_SLAB_RESERVE {
            // SAFETY: the free list is non-empty, its head is a held slab.
            let victim = unsafe { Slab::from_raw(node.head[LIST_FREE]) };
            self.release_slab(env, cfg, node, victim);
        }
    }

    /// Refills a per-CPU array with up to `batchcount` objects. `false` if none could be had.
    fn refill(&self, env: Env<'_>, ac: &mut ArrayCache, gfp: Gfp) -> bool {
        let cfg = self.cfg();
        let want = ac.batchcount.min(ac.limit);
        let mut node = self.node.lock();
        while ac.avail < want {
            let slab = if node.head[LIST_PARTIAL] != 0 {
                node.head[LIST_PARTIAL]
            } else if node.head[LIST_FREE] != 0 {
                node.head[LIST_FREE]
            } else if ac.avail > 0 {
                // Like Linux's cache_alloc_refill: grow only when nothing could be had,
                // not to top up a batch (a failed grow would then be a failure nobody
                // sees, and memory would be taken that nobody asked for).
                break;
            } else {
                drop(node);
                let new = self.grow(env, &cfg, gfp);
                node = self.node.lock();
                let Some(slab) = new else { break };
                node.nr_slabs += 1;
                node.free_objects += cfg.num;
                node.slabs_created += 1;
                node.list_add(slab, LIST_FREE);
                slab.0
            };
            // SAFETY: list heads are held slabs.
            let slab = unsafe { Slab::from_raw(slab) };
            while ac.avail < want {
                match self.slab_pop(env, &cfg, &mut node, slab) {
                    Some(obj) => ac.push(obj),
                    None => break,
                }
            }
            node.relist(&cfg, slab);
        }
        ac.avail > 0
    }

    /// Returns the `n` oldest objects of a per-CPU array to their slabs.
    fn flush(&self, env: Env<'_>, ac: &mut ArrayCache, n: usize) {
        let cfg = self.cfg();
        let mut node = self.node.lock();
        ac.take_oldest(n, |obj| self.slab_push(env, &cfg, &mut node, obj));
    }

    /// `kmem_cache_alloc`: an object, or `None` when the page source is exhausted.
    #[inline]
    pub(crate) fn alloc(&self, env: Env<'_>, gfp: Gfp, cpu: usize) -> Option<usize> {
        loop {
            let obj = {
                let mut ac = self.cpu[cpu % NR_CPUS].lock();
                match ac.pop() {
                    Some(obj) => {
                        ac.allochit += 1;
                        obj
                    }
                    None => {
                        ac.allocmiss += 1;
                        if !self.refill(env, &mut ac, gfp) {
                            return None;
                        }
                        ac.pop()?
                    }
                }
            };
            if self.debug.load(Relaxed) {
                let cfg = self.cfg();
                // SAFETY: `obj` came off a per-CPU array: a free object of this cache.
                if !unsafe { self.debug_alloc(env, &cfg, obj, gfp) } {
                    continue; // quarantined: try the next one
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
    /// # Safety
    /// Unless debugging is on, `obj` must be a live object of this cache, unused afterwards.
    #[inline]
    pub(crate) unsafe fn free(&self, env: Env<'_>, obj: usize, cpu: usize) {
        if self.debug.load(Relaxed) {
            let cfg = self.cfg();
            // SAFETY: the owner word says `obj` is in one of our slabs; `debug_free`
            // validates it before touching the object.
            if !unsafe { self.debug_free(env, &cfg, obj) } {
                return;
            }
        }
        let mut ac = self.cpu[cpu % NR_CPUS].lock();
        if ac.avail >= ac.limit {
            ac.freemiss += 1;
            let n = ac.batchcount;
            self.flush(env, &mut ac, n);
        } else {
            ac.freehit += 1;
        }
        ac.push(obj);
    }

    /// Checks an object leaving the cache and prepares it; `false` if it was found
    /// damaged (written after free): its poison and red zones are then restored and it
    /// goes back to its slab, free, so every count stays exact, and the caller takes
    /// another object.
    ///
    /// # Safety
    /// `obj` must be a free object of this cache (just taken off a per-CPU array).
    unsafe fn debug_alloc(&self, env: Env<'_>, cfg: &CacheCfg, obj: usize, gfp: Gfp) -> bool {
        // SAFETY: forwarded contract.
        if let Some(kind) = unsafe { check_free_object(cfg, obj) } {
            let slab = self.slab_of(env, cfg, obj).map_or(0, |s| s.0);
            self.report(env, kind, obj, slab, SlabFix::RestoredFree);
            // SAFETY: the object is free and ours (off the per-CPU array).
            unsafe { init_free_debug(cfg, obj) };
            let mut node = self.node.lock();
            self.slab_push(env, cfg, &mut node, obj);
            return false;
        }
        let slot = obj - cfg.obj_offset;
        let (rz, rzlen) = cfg.rz_right(obj);
        // SAFETY: the slot of a free object belongs to the cache; the object is now the
        // caller's.
        unsafe {
            raw::fill(slot, cfg.obj_offset, SLUB_RED_ACTIVE);
            raw::fill(rz, rzlen, SLUB_RED_ACTIVE);
            if gfp.contains(Gfp::GFP_ZERO) {
                raw::fill(obj, cfg.object_size, 0);
            } else if cfg.poison {
                raw::fill(obj, cfg.object_size, POISON_INUSE);
            }
        }
        true
    }

    /// SLUB's `free_consistency_checks` plus poisoning; `false` if the free is refused.
    ///
    /// # Safety
    /// `obj` must lie in a slab page of this cache.
    unsafe fn debug_free(&self, env: Env<'_>, cfg: &CacheCfg, obj: usize) -> bool {
        let Some(slab) = self.slab_of(env, cfg, obj) else {
            self.report(env, SlabErrorKind::NotSlabObject, obj, 0, SlabFix::Refused);
            return false;
        };
        if slab.magic() != SLAB_MAGIC ^ slab.0 || cfg.obj_index(slab, obj).is_none() {
            self.report(env, SlabErrorKind::InvalidPointer, obj, slab.0, SlabFix::Refused);
            return false;
        }
        let slot = obj - cfg.obj_offset;
        let (rz, rzlen) = cfg.rz_right(obj);
        // SAFETY: `obj` is an object start of one of our slabs.
        let (l, r) = unsafe {
            (
                raw::first_mismatch(slot, cfg.obj_offset, SLUB_RED_ACTIVE),
                raw::first_mismatch(rz, rzlen, SLUB_RED_ACTIVE),
            )
        };
        if l.is_some() || r.is_some() {
            // SAFETY: as above.
            let all_inactive = unsafe {
                raw::first_mismatch(slot, cfg.obj_offset, SLUB_RED_INACTIVE).is_none()
                    && raw::first_mismatch(rz, rzlen, SLUB_RED_INACTIVE).is_none()
            };
            let kind = if all_inactive {
                SlabErrorKind::DoubleFree
            } else {
                let (first, value) = l.map(|(i, v)| (slot + i, v)).or(r.map(|(i, v)| (rz + i, v))).unwrap_or((obj, 0));
                SlabErrorKind::RedzoneOverwritten { first, value, expected: SLUB_RED_ACTIVE }
            };
            if all_inactive {
                self.report(env, kind, obj, slab.0, SlabFix::Refused);
                return false;
            }
            // An overflow by the owner: the red zones are restored (below, with the
            // poison) and the free goes ahead, so nothing stays damaged or lost.
            self.report(env, kind, obj, slab.0, SlabFix::RestoredAndFreed);
        }
        // SAFETY: the object is being freed by its owner.
        unsafe { init_free_debug(cfg, obj) };
        true
    }

    /// SLUB's `validate_slab_cache`: checks every free object (per-CPU arrays and slab
    /// freelists) for red zone and poison damage and every freelist for corruption,
    /// reporting each problem. A damaged free object gets its poison and red zones
    /// restored (Linux's `restore_bytes`) and stays free; a corrupted freelist pointer is
    /// reported (and isolated when the freelist is next used).
    /// Returns the number of problems; 0 without debugging.
    pub(crate) fn validate(&self, env: Env<'_>) -> usize {
        let cfg = self.cfg();
        if !cfg.debug {
            return 0;
        }
        let mut found = 0;
        let mut report = |kind, object, slab, fix| {
            found += 1;
            env.rep.report(&SlabError { kind, cache: cfg.name, object, slab, fix });
        };
        for ac in &self.cpu {
            let ac = ac.lock();
            for &obj in &ac.entry[..ac.avail] {
                // SAFETY: objects in a per-CPU array are free objects of this cache.
                if let Some(kind) = unsafe { check_free_object(&cfg, obj) } {
                    let slab = self.slab_of(env, &cfg, obj).map_or(0, |s| s.0);
                    report(kind, obj, slab, SlabFix::RestoredFree);
                    // SAFETY: a free object of this cache, held by the locked array.
                    unsafe { init_free_debug(&cfg, obj) };
                }
            }
        }
        let mut node = self.node.lock();
        for list in [LIST_PARTIAL, LIST_FREE] {
            let mut next = node.head[list];
            while next != 0 {
                // SAFETY: list members are held slabs.
                let slab = unsafe { Slab::from_raw(next) };
                next = slab.next();
                let mut at = slab.freelist_at();
                let mut obj = cfg.encode(slab.freelist(), at);
                let mut steps = 0;
                while obj != 0 && steps < cfg.num {
                    if cfg.obj_index(slab, obj).is_none() {
                        report(SlabErrorKind::FreepointerCorrupt { fp: obj }, at, slab.0, SlabFix::Isolated);
                        break;
                    }
                    // SAFETY: `obj` was validated as an object of this slab on its freelist.
                    if let Some(kind) = unsafe { check_free_object(&cfg, obj) } {
                        report(kind, obj, slab.0, SlabFix::RestoredFree);
                        // SAFETY: a free object on a freelist of a slab we hold, under the
                        // node lock; its free pointer (outside the object) is untouched.
                        unsafe { init_free_debug(&cfg, obj) };
                    }
                    at = cfg.fp_addr(obj);
                    // SAFETY: the free pointer of a validated free object.
                    obj = cfg.encode(unsafe { raw::read_word(at) }, at);
                    steps += 1;
                }
            }
        }
        node.errors += found as u64;
        found
    }

    /// Returns every object of `cpu`'s array to the slabs.
    pub(crate) fn drain_cpu(&self, env: Env<'_>, cpu: usize) {
        let mut ac = self.cpu[cpu % NR_CPUS].lock();
        let n = ac.avail;
        if n > 0 {
            self.flush(env, &mut ac, n);
        }
    }

    /// `kmem_cache_shrink`: drains the per-CPU arrays and frees every empty slab.
    /// Returns the number of pages given back.
    pub(crate) fn shrink(&self, env: Env<'_>) -> usize {
        for cpu in 0..NR_CPUS {
            self.drain_cpu(env, cpu);
        }
        let cfg = self.cfg();
        let mut node = self.node.lock();
        let mut pages = 0;
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
            object_size: cfg.object_size,
            size: cfg.stride,
            align: cfg.align,
            objperslab: cfg.num,
            pagesperslab: 1 << cfg.order,
            ..CacheStats::default()
        };
        for ac in &self.cpu {
            let ac = ac.lock();
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
        s.slabs_created = node.slabs_created;
        s.slabs_freed = node.slabs_freed;
        s.errors = node.errors;
        s.quarantined = node.quarantined;
        s
    }
}

/// The error a free object shows, if any: red zones not inactive, poison overwritten.
///
/// # Safety
/// `obj` must be a free object of a slab held by the cache described by `cfg`.
unsafe fn check_free_object(cfg: &CacheCfg, obj: usize) -> Option<SlabErrorKind> {
    let slot = obj - cfg.obj_offset;
    let (rz, rzlen) = cfg.rz_right(obj);
    // SAFETY: (whole function) the slot of a free object belongs to the cache.
    let bad_rz = unsafe {
        raw::first_mismatch(slot, cfg.obj_offset, SLUB_RED_INACTIVE)
            .map(|(i, v)| (slot + i, v))
            .or_else(|| raw::first_mismatch(rz, rzlen, SLUB_RED_INACTIVE).map(|(i, v)| (rz + i, v)))
    };
    if let Some((first, value)) = bad_rz {
        return Some(SlabErrorKind::RedzoneOverwritten { first, value, expected: SLUB_RED_INACTIVE });
    }
    if !cfg.poison {
        return None;
    }
    // SAFETY: as above.
    if let Some((i, value)) = unsafe { raw::first_mismatch(obj, cfg.object_size - 1, POISON_FREE) } {
        return Some(SlabErrorKind::PoisonOverwritten { first: obj + i, value, expected: POISON_FREE });
    }
    // SAFETY: as above.
    let last = unsafe { raw::read_byte(obj + cfg.object_size - 1) };
    (last != POISON_END).then_some(SlabErrorKind::PoisonOverwritten {
        first: obj + cfg.object_size - 1,
        value: last,
        expected: POISON_END,
    })
}

/// Marks a slot free: inactive red zones and free poison.
///
/// # Safety
/// `obj` must be an object of a slab held by the cache described by `cfg`.
unsafe fn init_free_debug(cfg: &CacheCfg, obj: usize) {
    let (rz, rzlen) = cfg.rz_right(obj);
    // SAFETY: the slot is the caller's.
    unsafe {
        raw::fill(obj - cfg.obj_offset, cfg.obj_offset, SLUB_RED_INACTIVE);
        raw::fill(rz, rzlen, SLUB_RED_INACTIVE);
        if cfg.poison {
            raw::fill(obj, cfg.object_size - 1, POISON_FREE);
            raw::fill(obj + cfg.object_size - 1, 1, POISON_END);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_calculate_order() {
        // (stride, first) -> (order, objects)
        assert_eq!(calculate_order(8, 64), Some((0, 504)));
        assert_eq!(calculate_order(192, 64), Some((0, 21)));
        assert_eq!(calculate_order(1024, 1024), Some((2, 15)));
        assert_eq!(calculate_order(4096, 4096), Some((4, 15)));
        assert_eq!(calculate_order(8192, 8192), Some((4, 7)));
        assert_eq!(calculate_order(100_000, 64), Some((5, 1)));
    }

    #[test]
    fn layouts() {
        let c = build_cfg("x", 9, 64, 64, SlabFlags::NONE, None, 0).unwrap();
        assert_eq!((c.stride, c.obj_offset, c.fp_offset, c.first), (64, 0, 0, 64));
        let d = build_cfg("x", 9, 60, 8, SlabFlags::DEBUG, None, 0).unwrap();
        // [8 red zone | 60 object | 12 red zone | 8 free pointer]
        assert_eq!((d.obj_offset, d.rz_right(1000), d.fp_offset, d.stride), (8, (1060, 12), 80, 88));
        assert!(d.poison);
        let k = build_cfg("x", 9, 24, 8, SlabFlags::DEBUG, Some(dummy_ctor), 0).unwrap();
        assert!(!k.poison, "no poisoning with a constructor");
        assert_eq!(build_cfg("x", 9, 0, 8, SlabFlags::NONE, None, 0).unwrap_err(), LayoutError::BadArgs);
        assert_eq!(build_cfg("x", 9, 8, 12, SlabFlags::NONE, None, 0).unwrap_err(), LayoutError::BadArgs);
        assert_eq!(build_cfg("x", 9, 1 << 20, 8, SlabFlags::NONE, None, 0).unwrap_err(), LayoutError::TooLarge);
    }

    /// # Safety
    /// Never called.
    unsafe fn dummy_ctor(_: *mut u8) {}

    #[test]
    fn object_index_by_reciprocal() {
        for stride in [8usize, 24, 88, 96, 192, 1032, 4096, 8200] {
            let c =
                CacheCfg { stride, num: 65536 / stride, recip: (1u64 << 32) / stride as u64 + 1, ..CacheCfg::EMPTY };
            // SAFETY: only address arithmetic; the slab is never touched.
            let slab = unsafe { Slab::from_raw(0x10_0000) };
            for i in 0..c.num {
                let obj = c.obj_at(slab, i);
                assert_eq!(c.obj_index(slab, obj), Some(i));
                assert_eq!(c.obj_index(slab, obj + 4), None);
            }
            assert_eq!(c.obj_index(slab, c.obj_at(slab, c.num)), None);
        }
    }

    #[test]
    fn hardened_pointers_depend_on_secret_and_location() {
        let c = CacheCfg { secret: 0xdead_beef_0bad_f00d, ..CacheCfg::EMPTY };
        let e = c.encode(0x1000, 0x2000);
        assert_ne!(e, 0x1000);
        assert_eq!(c.encode(e, 0x2000), 0x1000);
        assert_ne!(c.encode(e, 0x2008), 0x1000);
        assert_eq!(c.reencode(e, 0x2000, 0x3008), c.encode(0x1000, 0x3008));
    }
}
