//! The slab itself: a `2^order`-page block whose first 64 bytes are a [`SlabHeader`]
//! (Linux's `struct slab`, kept in the slab rather than in the page descriptor), named by
//! a pointer to that header ([`Slab`]). All pointer work on a slab header is in this file.

use core::ptr::NonNull;

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

/// A slab, named by a pointer to its header (private: only [`Slab::from_raw`], under its
/// safety contract, makes one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slab(NonNull<SlabHeader>);

impl Slab {
    /// # Safety
    /// `va` must be the linear-map address of a slab's first page (never 0), held by the
    /// cache for as long as the value is used.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(va: usize) -> Slab {
        // SAFETY: the caller passes a slab's address, which is not 0.
        Slab(unsafe { NonNull::new_unchecked(va as *mut SlabHeader) })
    }
    /// The slab's (and its header's) address.
    #[inline(always)]
    pub(crate) fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }
    /// Address of the `freelist` field (the hardened pointer's storage address).
    #[inline(always)]
    pub(crate) fn freelist_at(self) -> usize {
        // SAFETY: `addr_of_mut!` computes the field's address without reading it; the
        // header is a held slab's (`from_raw`).
        unsafe { core::ptr::addr_of_mut!((*self.0.as_ptr()).freelist) as usize }
    }
}

/// Typed accessors of the header fields: `slab.inuse()`, `slab.set_inuse(v)`, ...
macro_rules! header_fields {
    ($($field:ident $set:ident),*) => {
        impl Slab {
            $(
                #[inline(always)]
                pub(crate) fn $field(self) -> usize {
                    // SAFETY: a `Slab` only exists for a held slab (`from_raw`), whose
                    // first `HEADER_SIZE` bytes are a `SlabHeader`.
                    unsafe { core::ptr::addr_of!((*self.0.as_ptr()).$field).read() }
                }
                #[inline(always)]
                pub(crate) fn $set(self, v: usize) {
                    // SAFETY: as above; header fields are written under the node lock.
                    unsafe { core::ptr::addr_of_mut!((*self.0.as_ptr()).$field).write(v) }
                }
            )*
        }
    };
}
header_fields!(magic set_magic, next set_next, prev set_prev, freelist set_freelist, inuse set_inuse, list set_list, pa set_pa);
