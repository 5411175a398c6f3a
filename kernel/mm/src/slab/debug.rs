//! SLUB-style debugging: poison values, red zones, and the error reports.
//!
//! With debugging on, each object slot is laid out as
//! `[left red zone | object | right red zone | free pointer]` (SLUB keeps the free pointer
//! outside the object so that poison covers every object byte). The red zones hold
//! [`SLUB_RED_ACTIVE`] while the object is allocated and [`SLUB_RED_INACTIVE`] while it is
//! free, which is how a double free is recognised without any per-object state.
//! A free object is filled with [`POISON_FREE`] ending in [`POISON_END`]; on reallocation
//! the poison is checked (write after free) and replaced by [`POISON_INUSE`].
//!
//! Every detected error is handed to the [`SlabReporter`] with what was done about it
//! ([`SlabFix`]), and nothing is left damaged: a free object whose poison or red zones
//! were overwritten (a write after free) gets them restored and stays free; an object
//! freed with an overwritten red zone has it restored and is freed; a double or invalid
//! free is refused and changes nothing. Only a corrupted freelist pointer cannot be
//! repaired: the rest of that freelist is isolated.

use super::cache::{Env, KmemCache};
pub use super::error::{FixLine, NullReporter, SlabError, SlabErrorKind, SlabFix, SlabReporter};
use super::header::{Slab, SLAB_MAGIC};
use super::layout::CacheCfg;
use super::node::{LIST_FREE, LIST_PARTIAL};
use super::raw;
use crate::gfp::Gfp;

/// Byte of a free object (`POISON_FREE`).
pub const POISON_FREE: u8 = 0x6b;
/// Byte of an allocated object the caller has not initialised (`POISON_INUSE`).
pub const POISON_INUSE: u8 = 0x5a;
/// Last byte of a free object's poison (`POISON_END`).
pub const POISON_END: u8 = 0xa5;
/// Red zone of an allocated object (`SLUB_RED_ACTIVE`).
pub const SLUB_RED_ACTIVE: u8 = 0xcc;
/// Red zone of a free object (`SLUB_RED_INACTIVE`).
pub const SLUB_RED_INACTIVE: u8 = 0xbb;

// ---- The cache side of debugging: checks on the way out of and back into a cache, and
// `validate_slab_cache`. ----

impl KmemCache {
    /// Checks an object leaving the cache and prepares it; `false` if it was found
    /// damaged (written after free): its poison and red zones are then restored and it
    /// goes back to its slab, free, so every count stays exact, and the caller takes
    /// another object.
    ///
    /// # Safety
    /// `obj` must be a free object of this cache (just taken off a per-CPU array).
    pub(crate) unsafe fn debug_alloc(&self, env: Env<'_>, cfg: &CacheCfg, obj: usize, gfp: Gfp) -> bool {
        // SAFETY: forwarded contract.
        if let Some(kind) = unsafe { check_free_object(cfg, obj) } {
            let slab = self.slab_of(env, cfg, obj).map_or(0, |s| s.addr());
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
    pub(crate) unsafe fn debug_free(&self, env: Env<'_>, cfg: &CacheCfg, obj: usize) -> bool {
        let Some(slab) = self.slab_of(env, cfg, obj) else {
            self.report(env, SlabErrorKind::NotSlabObject, obj, 0, SlabFix::Refused);
            return false;
        };
        if slab.magic() != SLAB_MAGIC ^ slab.addr() || cfg.obj_index(slab, obj).is_none() {
            self.report(env, SlabErrorKind::InvalidPointer, obj, slab.addr(), SlabFix::Refused);
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
                self.report(env, kind, obj, slab.addr(), SlabFix::Refused);
                return false;
            }
            // An overflow by the owner: the red zones are restored (below, with the
            // poison) and the free goes ahead, so nothing stays damaged or lost.
            self.report(env, kind, obj, slab.addr(), SlabFix::RestoredAndFreed);
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
            for obj in (0..ac.avail()).map(|i| ac.entry(i)) {
                // SAFETY: objects in a per-CPU array are free objects of this cache.
                if let Some(kind) = unsafe { check_free_object(&cfg, obj) } {
                    let slab = self.slab_of(env, &cfg, obj).map_or(0, |s| s.addr());
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
                        report(SlabErrorKind::FreepointerCorrupt { fp: obj }, at, slab.addr(), SlabFix::Isolated);
                        break;
                    }
                    // SAFETY: `obj` was validated as an object of this slab on its freelist.
                    if let Some(kind) = unsafe { check_free_object(&cfg, obj) } {
                        report(kind, obj, slab.addr(), SlabFix::RestoredFree);
                        // SAFETY: a free object on a freelist of a slab we hold, under the
                        // node lock; its free pointer (outside the object) is untouched.
                        unsafe { init_free_debug(&cfg, obj) };
                    }
                    at = cfg.fp_addr(obj);
                    // SAFETY: the free pointer of a validated free object.
                    obj = cfg.encode(unsafe { raw::read_word(at) }, at);
                    steps += 1;
                }
                if obj != 0 && steps == cfg.num {
                    // More free objects than the slab holds: the list runs in a cycle
                    // (Linux's "Freechain corrupt"). The walk stops here; refill cuts it.
                    report(SlabErrorKind::FreepointerCorrupt { fp: obj }, at, slab.addr(), SlabFix::Isolated);
                }
            }
        }
        node.errors += found as u64;
        found
    }
}

/// The error a free object shows, if any: red zones not inactive, poison overwritten.
///
/// # Safety
/// `obj` must be a free object of a slab held by the cache described by `cfg`.
pub(crate) unsafe fn check_free_object(cfg: &CacheCfg, obj: usize) -> Option<SlabErrorKind> {
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
pub(crate) unsafe fn init_free_debug(cfg: &CacheCfg, obj: usize) {
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
