//! A cache's slabs: growing one from the page source (Linux's `allocate_slab`),
//! releasing an empty one (`discard_slab`), and moving objects between a slab's
//! freelist and the node lists that sort slabs into full, partial and free. The
//! per-CPU fast path ([`super::cache`]) comes here only to refill or flush its array.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::cache::{Env, KmemCache, FREE_SLAB_RESERVE};
use super::debug::init_free_debug;
use super::error::{SlabError, SlabErrorKind, SlabFix};
use super::header::{Slab, SLAB_MAGIC};
use super::layout::CacheCfg;
use super::node::{Node, LIST_FREE};
use super::raw;
use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::gfp::Gfp;
use crate::owner::PageOwner;

impl KmemCache {
    /// The slab holding `obj` (the caller knows `obj` is in one of this cache's pages).
    pub(super) fn slab_of(&self, env: Env<'_>, cfg: &CacheCfg, obj: usize) -> Option<Slab> {
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
    pub(super) fn grow(&self, env: Env<'_>, cfg: &CacheCfg, gfp: Gfp) -> Option<Slab> {
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

    pub(super) fn release_slab(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, slab: Slab) {
        node.list_del(slab);
        node.nr_slabs -= 1;
        node.free_objects -= cfg.num;
        let pa = crate::addr::PhysAddr::new(slab.pa() as u64);
        slab.set_magic(0);
        // The page allocator clears the owner word of every page it takes back (Linux's
        // free_pages_prepare), so the pages stop naming this cache.
        env.ps.free_pages(pa, cfg.order);
    }

    /// Pops objects off a slab's freelist into `out` (as many as fit and the slab has),
    /// validating each hardened pointer; the slab header and node counters are written
    /// once. Returns how many were taken. A pointer that does not land on an object of this
    /// slab, a freelist that ends while the slab still counts free objects (a cut list) or
    /// one that goes on past them abandons the rest: the slab is treated as full for good,
    /// and the error is reported (a bad list is never walked again, so a partial slab
    /// cannot spin its callers).
    #[inline]
    pub(super) fn slab_pop_into(
        &self,
        env: Env<'_>,
        cfg: &CacheCfg,
        node: &mut Node,
        slab: Slab,
        out: &[AtomicUsize],
    ) -> usize {
        let head_at = slab.freelist_at();
        let inuse = slab.inuse();
        let free = cfg.num.saturating_sub(inuse);
        let want = out.len().min(free);
        let first = cfg.encode(slab.freelist(), head_at);
        let out = &out[..want];
        let (taken, obj, bad) = if cfg.stride.is_power_of_two() {
            walk_freelist::<true>(cfg, slab, first, out)
        } else {
            walk_freelist::<false>(cfg, slab, first, out)
        };
        if bad || (taken == free && obj != 0) {
            let lost = free - taken;
            node.free_objects -= free;
            node.quarantined += lost;
            slab.set_inuse(cfg.num);
            slab.set_freelist(cfg.encode(0, head_at));
            node.errors += 1;
            env.rep.report(&SlabError {
                kind: SlabErrorKind::FreepointerCorrupt { fp: obj },
                cache: cfg.name,
                object: head_at,
                slab: slab.addr(),
                fix: SlabFix::Isolated,
            });
            return taken;
        }
        slab.set_freelist(cfg.encode(obj, head_at));
        slab.set_inuse(inuse + taken);
        node.free_objects -= taken;
        taken
    }

    /// Pops one object off a slab's freelist, validating the hardened pointer.
    #[inline]
    pub(super) fn slab_pop(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, slab: Slab) -> Option<usize> {
        let got = [AtomicUsize::new(0)];
        (self.slab_pop_into(env, cfg, node, slab, &got) == 1).then(|| got[0].load(Relaxed))
    }

    /// Returns an object to its slab; releases a slab beyond the empty-slab reserve.
    #[inline]
    pub(super) fn slab_push(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, obj: usize) {
        if let Some(slab) = self.slab_of(env, cfg, obj) {
            self.slab_push_to(env, cfg, node, slab, obj);
        }
    }

    /// [`Self::slab_push`] to a slab already found.
    #[inline(always)]
    pub(super) fn slab_push_to(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, slab: Slab, obj: usize) {
        node.free_objects += 1;
        if Self::link_free(cfg, slab, obj) {
            self.slab_changed_list(env, cfg, node, slab);
        }
    }

    /// Returns a run of objects (entries of a per-CPU or the shared array) to their slabs.
    #[inline(always)]
    pub(super) fn slab_push_run(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, objs: &[AtomicUsize]) {
        if self.va_aligned.load(Relaxed) {
            self.slab_push_aligned(env, cfg, node, objs);
        } else {
            for obj in objs.iter().map(|e| e.load(Relaxed)) {
                self.slab_push(env, cfg, node, obj);
            }
        }
    }

    /// Returns a run of objects (a per-CPU array's oldest entries) to their slabs, each
    /// found by rounding its address down (the cache's slabs are `va_aligned`).
    fn slab_push_aligned(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, objs: &[AtomicUsize]) {
        let mask = !(cfg.slab_bytes() - 1);
        // Counted up front: a slab released on the way takes its `num` off a count that
        // already holds its objects.
        node.free_objects += objs.len();
        for obj in objs.iter().map(|e| e.load(Relaxed)) {
            // SAFETY: every slab of this cache is naturally aligned in the linear map
            // (`va_aligned`) and `obj`, a free object of this cache, lies inside one.
            let slab = unsafe { Slab::from_raw(obj & mask) };
            if Self::link_free(cfg, slab, obj) {
                self.slab_changed_list(env, cfg, node, slab);
            }
        }
    }

    /// Pushes `obj` on its slab's freelist and counts it free there; `true` when the slab
    /// must change lists (it stopped being full or became empty).
    #[inline(always)]
    fn link_free(cfg: &CacheCfg, slab: Slab, obj: usize) -> bool {
        let head_at = slab.freelist_at();
        let at = cfg.fp_addr(obj);
        // SAFETY: `obj` is a free object of this slab (it came from a per-CPU array).
        unsafe { raw::write_word(at, cfg.reencode(slab.freelist(), head_at, at)) };
        slab.set_freelist(cfg.encode(obj, head_at));
        let inuse = slab.inuse() - 1;
        slab.set_inuse(inuse);
        // `inuse` is 0 or `num - 1` (one compare: 0 wraps to the top).
        inuse.wrapping_sub(1) >= cfg.num.wrapping_sub(2)
    }

    /// Moves a slab whose in-use count just left "full" or reached 0 to its list, and
    /// releases an empty slab beyond the reserve (only then can the free list have grown).
    #[inline(never)]
    fn slab_changed_list(&self, env: Env<'_>, cfg: &CacheCfg, node: &mut Node, slab: Slab) {
        node.relist(cfg, slab);
        if node.nr_free_slabs > FREE_SLAB_RESERVE {
            // SAFETY: the free list is non-empty, its head is a held slab.
            let victim = unsafe { Slab::from_raw(node.head[LIST_FREE]) };
            self.release_slab(env, cfg, node, victim);
        }
    }
}

/// Follows a slab's freelist from `obj` (decoded), validating each pointer, into `out`:
/// `(taken, the next pointer, whether a bad one stopped the walk)`. `POW2`: the stride is a
/// power of two, so an object start is a masked test (else by reciprocal).
#[inline(always)]
fn walk_freelist<const POW2: bool>(
    cfg: &CacheCfg,
    slab: Slab,
    mut obj: usize,
    out: &[AtomicUsize],
) -> (usize, usize, bool) {
    // The slot arithmetic hoisted: an object is `base + i * stride` for `i < num`.
    let base = cfg.obj_at(slab, 0);
    let span = cfg.num * cfg.stride;
    let mut taken = 0;
    for slot in out {
        // 0 and every address outside the slab wrap to at least `span`.
        let off = obj.wrapping_sub(base);
        if off >= span || !(if POW2 { off & (cfg.stride - 1) == 0 } else { cfg.on_boundary(off) }) {
            return (taken, obj, true);
        }
        slot.store(obj, Relaxed);
        taken += 1;
        let at = cfg.fp_addr(obj);
        // SAFETY: `obj` was validated as an object of this slab; its free pointer is ours.
        obj = cfg.encode(unsafe { raw::read_word(at) }, at);
    }
    (taken, obj, false)
}
