//! Host memory for the allocators to manage: one lazily zeroed allocation, aligned by hand
//! (a large `Layout` alignment would make the host allocator touch every byte up front).

use std::alloc::{alloc_zeroed, dealloc, Layout};

/// Alignment of every arena: 16 MiB, so that a naturally aligned physical block of up to
/// 4096 pages is naturally aligned in the arena too (slabs find their head by masking).
pub const ARENA_ALIGN: usize = 16 << 20;

/// `size` bytes of zeroed host memory aligned to [`ARENA_ALIGN`], freed on drop.
#[derive(Debug)]
pub struct Arena {
    raw: *mut u8,
    base: *mut u8,
    size: usize,
    layout: Layout,
}

// SAFETY: the arena is plain memory; whoever carves it synchronises its own accesses.
unsafe impl Send for Arena {}
// SAFETY: as above; `Arena` itself only hands out its base address.
unsafe impl Sync for Arena {}

impl Arena {
    /// A new arena of `size` bytes (`size > 0`).
    pub fn new(size: usize) -> Self {
        assert!(size > 0, "empty arena");
        let layout = Layout::from_size_align(size + ARENA_ALIGN, 16).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        assert!(!raw.is_null(), "arena allocation of {size} bytes failed");
        let base = raw.wrapping_add((ARENA_ALIGN - raw as usize % ARENA_ALIGN) % ARENA_ALIGN);
        Arena { raw, base, size, layout }
    }

    /// First byte (aligned to [`ARENA_ALIGN`]).
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Usable bytes from [`Self::base`].
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether `[p, p + len)` lies inside the arena.
    pub fn contains(&self, p: *const u8, len: usize) -> bool {
        let (b, p) = (self.base as usize, p as usize);
        p >= b && p + len <= b + self.size
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.raw, self.layout) };
    }
}
