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

use core::fmt;

use super::cache::{Env, KmemCache};
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

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabErrorKind {
    /// The object was freed twice (its red zone says it is already free).
    DoubleFree,
    /// A red zone byte was overwritten (`first` is its address, `value` what was found).
    RedzoneOverwritten {
        /// Address of the first bad byte.
        first: usize,
        /// Value found there.
        value: u8,
        /// Value expected.
        expected: u8,
    },
    /// A free object's poison was overwritten: a write after free.
    PoisonOverwritten {
        /// Address of the first bad byte.
        first: usize,
        /// Value found there.
        value: u8,
        /// Value expected.
        expected: u8,
    },
    /// The pointer lies in a slab but not at the start of an object.
    InvalidPointer,
    /// The pointer is not in a slab page nor at the start of a kmalloc compound block.
    NotSlabObject,
    /// `kmem_cache_free` on one cache of an object of another (`other`).
    WrongCache {
        /// The cache the object really belongs to.
        other: &'static str,
    },
    /// A decoded free pointer is outside its slab or off an object boundary; the rest of
    /// that freelist is abandoned.
    FreepointerCorrupt {
        /// The decoded pointer.
        fp: usize,
    },
}

/// What the slab layer did about an error (Linux's `FIX <cache>: ...` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabFix {
    /// The free was refused: nothing changed (double free, invalid pointer, wrong cache).
    Refused,
    /// A free object's poison and red zones were restored; it stays free.
    RestoredFree,
    /// An object's red zones were restored and the free went ahead.
    RestoredAndFreed,
    /// The rest of a slab's freelist was isolated (its objects are never handed out).
    Isolated,
}

/// One detected error, with enough context for a Linux-like report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabError {
    /// What went wrong.
    pub kind: SlabErrorKind,
    /// Name of the cache (`kmalloc` when the pointer is in no cache).
    pub cache: &'static str,
    /// The object (or the bad pointer).
    pub object: usize,
    /// Start of the slab holding it (0 when unknown).
    pub slab: usize,
    /// What was done about it.
    pub fix: SlabFix,
}

/// `FIX kmalloc-64: Restoring Poison and Redzone of the free object 0x...; it stays free`.
pub struct FixLine<'a>(pub &'a SlabError);

impl fmt::Display for FixLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "FIX {}: ", e.cache)?;
        match e.fix {
            SlabFix::Refused => {
                write!(f, "Object at {:#x} not freed (the free was refused, nothing changed)", e.object)
            }
            SlabFix::RestoredFree => {
                write!(f, "Restoring Poison and Redzone of the free object {:#x}; it stays free", e.object)
            }
            SlabFix::RestoredAndFreed => write!(f, "Restoring Redzone of {:#x}; object freed", e.object),
            SlabFix::Isolated => write!(f, "Isolating the rest of the freelist of slab {:#x}", e.slab),
        }
    }
}

impl SlabError {
    /// Linux's one-line reason, as printed after `BUG <cache> (Not tainted): `.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            SlabErrorKind::DoubleFree => "Object already free",
            SlabErrorKind::RedzoneOverwritten { .. } => "Redzone overwritten",
            SlabErrorKind::PoisonOverwritten { .. } => "Poison overwritten",
            SlabErrorKind::InvalidPointer => "Invalid object pointer",
            SlabErrorKind::NotSlabObject => "Invalid free of a non-slab pointer",
            SlabErrorKind::WrongCache { .. } => "Wrong slab cache",
            SlabErrorKind::FreepointerCorrupt { .. } => "Freepointer corrupt",
        }
    }
}

/// The Linux-like report block (without the call trace, which the kernel appends).
impl fmt::Display for SlabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "=============================================================================")?;
        writeln!(f, "BUG {} (Not tainted): {}", self.cache, self.reason())?;
        writeln!(f, "-----------------------------------------------------------------------------")?;
        writeln!(f)?;
        match self.kind {
            SlabErrorKind::RedzoneOverwritten { first, value, expected }
            | SlabErrorKind::PoisonOverwritten { first, value, expected } => writeln!(
                f,
                "INFO: {:#x}-{:#x} @offset={}. First byte {:#x} instead of {:#x}",
                first,
                first,
                first.wrapping_sub(self.slab),
                value,
                expected
            )?,
            SlabErrorKind::WrongCache { other } => writeln!(f, "INFO: {} but object is from {}", self.cache, other)?,
            SlabErrorKind::FreepointerCorrupt { fp } => writeln!(f, "INFO: Freepointer {:#x}", fp)?,
            _ => {}
        }
        if self.slab != 0 {
            writeln!(f, "INFO: Slab {:#x}", self.slab)?;
            write!(f, "INFO: Object {:#x} @offset={}", self.object, self.object.wrapping_sub(self.slab))
        } else {
            write!(f, "INFO: Object {:#x}", self.object)
        }
    }
}

/// Where detected errors go. The kernel prints them (plus a call trace); tests record them.
pub trait SlabReporter: Sync {
    /// Reports one error; the slab layer has already refused the operation.
    fn report(&self, err: &SlabError);

    /// An allocation with flags `gfp` failed because `failslab` injected the failure (the
    /// kernel prints Linux's `FAULT_INJECTION` report); nothing by default.
    fn fault_injected(&self, _gfp: crate::gfp::Gfp) {}
}

/// A reporter that drops reports (for callers that only care that the operation is refused).
pub struct NullReporter;

impl SlabReporter for NullReporter {
    fn report(&self, _err: &SlabError) {}
}

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
    pub(crate) unsafe fn debug_free(&self, env: Env<'_>, cfg: &CacheCfg, obj: usize) -> bool {
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
