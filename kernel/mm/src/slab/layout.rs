//! A cache's layout, fixed at creation ([`CacheCfg`]): slot stride, red zones, free-pointer
//! offset, slab order and object count (Linux's `calculate_sizes` / `calculate_order`),
//! and the slot arithmetic the fast path uses (object index by reciprocal, hardened
//! free pointers).

use super::flags::{Ctor, SlabFlags};
use super::header::{Slab, HEADER_SIZE};
use super::SLAB_MAX_ORDER;
use crate::addr::PAGE_SIZE;

/// The fixed layout and identity of a cache, set at creation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheCfg {
    pub(crate) name: &'static str,
    pub(crate) index: usize,
    /// Bytes the user may use (`object_size`).
    pub(crate) object_size: usize,
    /// Slot size including red zones and an outside free pointer (SLUB's `size`).
    pub(crate) stride: usize,
    /// Offset of the object in its slot (the left red zone).
    pub(crate) obj_offset: usize,
    /// Offset of the free pointer in the slot.
    pub(crate) fp_offset: usize,
    /// Offset of the first slot in the slab.
    pub(crate) first: usize,
    pub(crate) order: u32,
    /// Objects per slab.
    pub(crate) num: usize,
    /// `ceil(2^32 / stride)`: object index by multiplication (no division on any path).
    pub(crate) recip: u64,
    pub(crate) debug: bool,
    pub(crate) poison: bool,
    pub(crate) ctor: Option<Ctor>,
    pub(crate) secret: usize,
}

impl CacheCfg {
    pub(crate) const EMPTY: CacheCfg = CacheCfg {
        name: "",
        index: 0,
        object_size: 0,
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

    pub(crate) fn slab_bytes(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// Index of the object at `obj` in `slab`, if `obj` is exactly an object start.
    pub(crate) fn obj_index(&self, slab: Slab, obj: usize) -> Option<usize> {
        let off = obj.wrapping_sub(slab.addr() + self.first + self.obj_offset);
        if off >= self.num * self.stride {
            return None;
        }
        let idx = ((off as u64 * self.recip) >> 32) as usize;
        (idx * self.stride == off).then_some(idx)
    }

    /// Whether an offset below `num * stride` from the first object is an object start.
    #[inline(always)]
    pub(crate) fn on_boundary(&self, off: usize) -> bool {
        (((off as u64 * self.recip) >> 32) as usize) * self.stride == off
    }

    pub(crate) fn obj_at(&self, slab: Slab, idx: usize) -> usize {
        slab.addr() + self.first + idx * self.stride + self.obj_offset
    }

    #[inline(always)]
    pub(crate) fn fp_addr(&self, obj: usize) -> usize {
        // One add once the difference is hoisted (the free pointer may precede the object
        // only in theory: wrapping keeps that correct too).
        obj.wrapping_add(self.fp_offset.wrapping_sub(self.obj_offset))
    }

    /// Hardened encoding of a free pointer stored at `at` (SLAB_FREELIST_HARDENED).
    pub(crate) fn encode(&self, ptr: usize, at: usize) -> usize {
        ptr ^ self.secret ^ at.swap_bytes()
    }

    /// An encoded pointer stored at `from`, re-encoded for storage at `to`: equal to
    /// `encode(encode(v, from), to)` without applying the secret twice.
    pub(crate) fn reencode(&self, v: usize, from: usize, to: usize) -> usize {
        v ^ from.swap_bytes() ^ to.swap_bytes()
    }

    /// The right red zone: from the end of the object to the free pointer.
    pub(crate) fn rz_right(&self, obj: usize) -> (usize, usize) {
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

pub(crate) fn align_up(v: usize, a: usize) -> usize {
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
        // Eight objects wasting at most 1/16 first: 700 bytes need order 1, 3000 bytes order 4.
        assert_eq!(calculate_order(700, 64), Some((1, 11)));
        assert_eq!(calculate_order(3000, 64), Some((4, 21)));
        // Above the largest slab order: the smallest order that holds one object.
        assert_eq!(calculate_order(65_520, 64), Some((5, 1)));
        assert_eq!(calculate_order(131_040, 64), Some((6, 2)));
    }

    #[test]
    fn layouts() {
        let c = build_cfg("x", 9, 64, 64, SlabFlags::NONE, None, 0).unwrap();
        assert_eq!((c.stride, c.obj_offset, c.fp_offset, c.first), (64, 0, 0, 64));
        let d = build_cfg("x", 9, 60, 8, SlabFlags::DEBUG, None, 0).unwrap();
        // [8 red zone | 60 object | 12 red zone | 8 free pointer]
        assert_eq!((d.obj_offset, d.rz_right(1000), d.fp_offset, d.stride), (8, (1060, 12), 80, 88));
        assert!(d.poison);
        // Any one of the debug flags (as `slub_debug=F`, `=Z` or `=P` asks) gives the
        // whole debug layout; only `P` poisons.
        for one in [SlabFlags::CONSISTENCY_CHECKS, SlabFlags::RED_ZONE, SlabFlags::POISON] {
            let e = build_cfg("x", 9, 60, 8, one, None, 0).unwrap();
            let poison = one == SlabFlags::POISON;
            assert_eq!((e.obj_offset, e.fp_offset, e.stride, e.poison), (8, 80, 88, poison), "{one:?}");
        }
        let k = build_cfg("x", 9, 24, 8, SlabFlags::DEBUG, Some(dummy_ctor), 0).unwrap();
        assert!(!k.poison, "no poisoning with a constructor");
        // With a constructor the free pointer follows the object, so it never clobbers it.
        let k = build_cfg("x", 9, 24, 8, SlabFlags::NONE, Some(dummy_ctor), 0).unwrap();
        assert_eq!((k.obj_offset, k.fp_offset, k.stride), (0, 24, 32));
        // SLAB_HWCACHE_ALIGN: a cache line for objects above half of one.
        for (size, stride) in [(24, 24), (32, 32), (40, 64)] {
            let h = build_cfg("x", 9, size, 8, SlabFlags::HWCACHE_ALIGN, None, 0).unwrap();
            assert_eq!(h.stride, stride, "{size} bytes");
        }
        // The largest slab bounds the size and the alignment, both inclusive.
        let max = PAGE_SIZE << SLAB_MAX_ORDER;
        assert!(build_cfg("x", 9, max, 8, SlabFlags::NONE, None, 0).is_ok());
        assert!(build_cfg("x", 9, 8, max, SlabFlags::NONE, None, 0).is_ok());
        assert_eq!(build_cfg("x", 9, max + 8, 8, SlabFlags::NONE, None, 0).unwrap_err(), LayoutError::TooLarge);
        assert_eq!(build_cfg("x", 9, 8, 2 * max, SlabFlags::NONE, None, 0).unwrap_err(), LayoutError::BadArgs);
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
