//! The slab itself: a `2^order`-page block whose first 64 bytes are a [`SlabHeader`]
//! (Linux's `struct slab`, kept in the slab rather than in the page descriptor), named by
//! the address of that header ([`Slab`]).

use super::raw;

/// The header at the start of every slab (Linux's `struct slab`, kept in the slab itself
/// rather than in the page descriptor). Read and written field by field through [`Slab`].
#[repr(C)]
pub(crate) struct SlabHeader {
    /// `SLAB_MAGIC ^ address`: set while the slab belongs to a cache.
    magic: usize,
    /// Node list links (addresses of the neighbouring slabs' headers, 0 for none).
    next: usize,
    prev: usize,
    /// Hardened pointer to the first free object (see `CacheCfg::encode`).
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
pub(crate) const SLAB_MAGIC: usize = 0x51ab_c0de_5eed_f00d_u64 as usize;

/// A slab, named by the address of its header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slab(pub(crate) usize);

impl Slab {
    /// # Safety
    /// `va` must be the linear-map address of a slab's first page, held by the cache for
    /// as long as the value is used.
    pub(crate) unsafe fn from_raw(va: usize) -> Slab {
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
    pub(crate) fn freelist_at(self) -> usize {
        self.0 + core::mem::offset_of!(SlabHeader, freelist)
    }
}

/// Typed accessors of the header fields: `slab.inuse()`, `slab.set_inuse(v)`, ...
macro_rules! header_fields {
    ($($field:ident $set:ident),*) => {
        impl Slab {
            $(
                #[inline(always)]
                pub(crate) fn $field(self) -> usize {
                    self.get(core::mem::offset_of!(SlabHeader, $field))
                }
                #[inline(always)]
                pub(crate) fn $set(self, v: usize) {
                    self.set(core::mem::offset_of!(SlabHeader, $field), v)
                }
            )*
        }
    };
}
header_fields!(magic set_magic, next set_next, prev set_prev, freelist set_freelist, inuse set_inuse, list set_list, pa set_pa);
