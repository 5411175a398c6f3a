//! kmalloc-sized workloads: alloc+free pairs of one size, batches allocated then freed in a
//! random order, and a live set of random sizes where each step replaces a random object.

use mm::cpu::CpuId;
use mm::gfp::GFP_KERNEL;
use mm::slab::SlabAllocator;

use crate::arena::Arena;
use crate::rng::XorShift;

/// Smallest size of the random mix.
pub const MIX_MIN: usize = 8;
/// Largest size of the random mix.
pub const MIX_MAX: usize = 4096;
/// Object size of the batch workload.
pub const BATCH_SIZE: usize = 64;

/// A byte allocator as the workloads see it.
pub trait ByteAlloc {
    /// The benchmark function id.
    fn name(&self) -> &'static str;
    /// `size` (> 0) bytes aligned to at least 8, or null.
    fn alloc(&mut self, size: usize) -> *mut u8;
    /// Gives back an allocation.
    ///
    /// # Safety
    ///
    /// `p` must come from [`Self::alloc`] of this allocator with the same `size`, and not
    /// have been freed since.
    unsafe fn free(&mut self, p: *mut u8, size: usize);
    /// Bytes the allocator counts as in use, if it keeps such a count.
    fn in_use(&self) -> Option<usize> {
        None
    }
    /// The memory it carves, if it has its own arena.
    fn arena(&self) -> Option<&Arena> {
        None
    }
}

/// Our kmalloc (slab, debug off) over our buddy allocator, on CPU 0.
pub struct OurKmalloc {
    slab: &'static SlabAllocator<'static>,
    arena: &'static Arena,
}

impl OurKmalloc {
    /// kmalloc over `bytes` of memory managed by our page allocator.
    pub fn new(bytes: usize) -> Self {
        let (slab, arena) = crate::ours::slab(bytes / mm::addr::PAGE_SIZE);
        OurKmalloc { slab, arena }
    }

    /// The slab allocator (for validation).
    pub fn slab(&self) -> &'static SlabAllocator<'static> {
        self.slab
    }
}

impl ByteAlloc for OurKmalloc {
    fn name(&self) -> &'static str {
        "ours-kmalloc"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        self.slab.kmalloc(size, GFP_KERNEL, CpuId::BOOT).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        // SAFETY: the caller passes a live kmalloc object.
        unsafe { self.slab.kfree(p, CpuId::BOOT) }
    }
    fn arena(&self) -> Option<&Arena> {
        Some(self.arena)
    }
}

/// One alloc+free pair of `size` bytes; returns the address it got.
#[inline]
pub fn pair<A: ByteAlloc + ?Sized>(a: &mut A, size: usize) -> usize {
    let p = a.alloc(size);
    assert!(!p.is_null(), "{}: allocation of {size} failed", a.name());
    // SAFETY: just allocated with this size.
    unsafe { a.free(std::hint::black_box(p), size) };
    p as usize
}

/// A batch of `n` allocations of [`BATCH_SIZE`] bytes freed in a fixed random order.
pub struct Batch {
    order: Vec<usize>,
    ptrs: Vec<*mut u8>,
}

impl Batch {
    /// A batch of `n` with a permutation from `seed`.
    pub fn new(n: usize, seed: u64) -> Self {
        Batch { order: XorShift::new(seed).permutation(n), ptrs: Vec::with_capacity(n) }
    }

    /// Objects per batch.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Allocates the batch, calls `check` on the live pointers, frees them in the random
    /// order; returns the sum of the addresses.
    #[inline]
    pub fn run_with<A: ByteAlloc + ?Sized>(&mut self, a: &mut A, check: impl FnOnce(&[*mut u8])) -> usize {
        self.ptrs.clear();
        let mut sum = 0usize;
        for _ in 0..self.order.len() {
            let p = a.alloc(BATCH_SIZE);
            assert!(!p.is_null(), "{}: batch allocation failed", a.name());
            sum = sum.wrapping_add(p as usize);
            self.ptrs.push(p);
        }
        check(&self.ptrs);
        for &i in &self.order {
            // SAFETY: every pointer is live and freed once (the order is a permutation).
            unsafe { a.free(self.ptrs[i], BATCH_SIZE) };
        }
        sum
    }

    /// [`Self::run_with`] without a check.
    #[inline]
    pub fn run<A: ByteAlloc + ?Sized>(&mut self, a: &mut A) -> usize {
        self.run_with(a, |_| {})
    }
}

/// The random-size live set: `n` objects of sizes in `MIX_MIN..=MIX_MAX`.
pub struct Mix {
    rng: XorShift,
    /// Live objects: (pointer, size).
    pub live: Vec<(*mut u8, usize)>,
}

impl Mix {
    /// Allocates `n` objects of random sizes from `a`.
    pub fn fill<A: ByteAlloc + ?Sized>(a: &mut A, n: usize, seed: u64) -> Self {
        let mut m = Mix { rng: XorShift::new(seed), live: Vec::with_capacity(n) };
        for _ in 0..n {
            let s = m.rng.range(MIX_MIN, MIX_MAX);
            let p = a.alloc(s);
            assert!(!p.is_null(), "{}: mix fill failed", a.name());
            m.live.push((p, s));
        }
        m
    }

    /// Frees a random live object and allocates one of a random size in its place.
    #[inline]
    pub fn step<A: ByteAlloc + ?Sized>(&mut self, a: &mut A) -> usize {
        let i = self.rng.below(self.live.len());
        let (p, s) = self.live[i];
        // SAFETY: live object of size `s`, replaced below.
        unsafe { a.free(p, s) };
        let s = self.rng.range(MIX_MIN, MIX_MAX);
        let p = a.alloc(s);
        assert!(!p.is_null(), "{}: mix step failed", a.name());
        self.live[i] = (p, s);
        p as usize
    }

    /// Frees every live object.
    pub fn drain<A: ByteAlloc + ?Sized>(&mut self, a: &mut A) {
        for (p, s) in self.live.drain(..) {
            // SAFETY: live object of size `s`, freed once.
            unsafe { a.free(p, s) };
        }
    }
}

/// Whether the `(pointer, size)` ranges are non-null, 8-aligned and pairwise disjoint.
pub fn disjoint(objs: &[(*mut u8, usize)]) -> bool {
    let mut v: Vec<(usize, usize)> = objs.iter().map(|&(p, s)| (p as usize, p as usize + s)).collect();
    v.sort_unstable();
    v.iter().all(|&(p, _)| p != 0 && p % 8 == 0) && v.windows(2).all(|w| w[0].1 <= w[1].0)
}
