//! The peer allocators behind the [`PageAlloc`] and [`ByteAlloc`] adapters, each over its
//! own [`Arena`] where it needs memory (the host's malloc brings its own).
//!
//! Byte allocations use `Layout::from_size_align(size, 8)`: the alignment every kmalloc
//! object has at least (kmalloc aligns power-of-two sizes to their size, for free).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

use buddy_system_allocator::{FrameAllocator, Heap as BsaHeap};
use linked_list_allocator::Heap as LlaHeap;
use talc::{ErrOnOom, Span, Talc};

use crate::arena::Arena;
use crate::pages::PageAlloc;
use crate::small::ByteAlloc;

const PAGE: usize = 4096;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("byte layout")
}

/// buddy_system_allocator's `FrameAllocator`: page frames as numbers, no memory touched.
pub struct BsaFrames {
    fa: FrameAllocator<33>,
}

impl BsaFrames {
    /// Frames `0..nr_pages`.
    pub fn new(nr_pages: usize) -> Self {
        let mut fa = FrameAllocator::<33>::new();
        fa.add_frame(0, nr_pages);
        BsaFrames { fa }
    }
}

impl PageAlloc for BsaFrames {
    fn name(&self) -> &'static str {
        "bsa-frame"
    }
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> Option<u64> {
        self.fa.alloc(1 << order).map(|f| f as u64)
    }
    #[inline(always)]
    fn free(&mut self, frame: u64, order: u32) {
        self.fa.dealloc(frame as usize, 1 << order);
    }
}

/// buddy_system_allocator's byte-level `Heap` asked for naturally aligned page blocks.
pub struct BsaHeapPages {
    heap: BsaHeap<33>,
    _arena: Arena,
}

impl BsaHeapPages {
    /// A heap over an arena of `nr_pages` pages.
    pub fn new(nr_pages: usize) -> Self {
        let arena = Arena::new(nr_pages * PAGE);
        let mut heap = BsaHeap::<33>::empty();
        // SAFETY: the arena is valid, unused memory that lives as long as the heap.
        unsafe { heap.init(arena.base() as usize, arena.size()) };
        BsaHeapPages { heap, _arena: arena }
    }
}

impl PageAlloc for BsaHeapPages {
    fn name(&self) -> &'static str {
        "bsa-heap"
    }
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> Option<u64> {
        let sz = PAGE << order;
        let l = Layout::from_size_align(sz, sz).ok()?;
        self.heap.alloc(l).ok().map(|p| p.as_ptr() as u64 / PAGE as u64)
    }
    #[inline(always)]
    fn free(&mut self, frame: u64, order: u32) {
        let sz = PAGE << order;
        let l = Layout::from_size_align(sz, sz).expect("page layout");
        let p = NonNull::new((frame as usize * PAGE) as *mut u8).expect("null frame");
        self.heap.dealloc(p, l);
    }
}

/// talc over an arena.
pub struct TalcAlloc {
    talc: Talc<ErrOnOom>,
    arena: Arena,
}

impl TalcAlloc {
    /// A talc heap claiming a `bytes` arena.
    pub fn new(bytes: usize) -> Self {
        let arena = Arena::new(bytes);
        let mut talc = Talc::new(ErrOnOom);
        // SAFETY: the arena is valid, unused memory that lives as long as the allocator.
        unsafe { talc.claim(Span::from_base_size(arena.base(), arena.size())) }.expect("talc claim");
        TalcAlloc { talc, arena }
    }
}

impl ByteAlloc for TalcAlloc {
    fn name(&self) -> &'static str {
        "talc"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: non-zero size (callers never ask for 0 bytes).
        unsafe { self.talc.malloc(layout(size)) }.map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller passes a live allocation of `size` bytes from this heap.
        unsafe { self.talc.free(NonNull::new_unchecked(p), layout(size)) }
    }
    fn arena(&self) -> Option<&Arena> {
        Some(&self.arena)
    }
}

/// buddy_system_allocator's `Heap` (power-of-two buddy over bytes).
pub struct BsaBytes {
    heap: BsaHeap<33>,
    arena: Arena,
}

impl BsaBytes {
    /// A heap over a `bytes` arena.
    pub fn new(bytes: usize) -> Self {
        let arena = Arena::new(bytes);
        let mut heap = BsaHeap::<33>::empty();
        // SAFETY: the arena is valid, unused memory that lives as long as the heap.
        unsafe { heap.init(arena.base() as usize, arena.size()) };
        BsaBytes { heap, arena }
    }
}

impl ByteAlloc for BsaBytes {
    fn name(&self) -> &'static str {
        "bsa-heap"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        self.heap.alloc(layout(size)).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller passes a live, non-null allocation from this heap.
        let p = unsafe { NonNull::new_unchecked(p) };
        self.heap.dealloc(p, layout(size));
    }
    fn in_use(&self) -> Option<usize> {
        Some(self.heap.stats_alloc_user())
    }
    fn arena(&self) -> Option<&Arena> {
        Some(&self.arena)
    }
}

/// linked_list_allocator's `Heap` (first fit over a sorted free list).
pub struct LlaBytes {
    heap: LlaHeap,
    arena: Arena,
}

impl LlaBytes {
    /// A heap over a `bytes` arena.
    pub fn new(bytes: usize) -> Self {
        let arena = Arena::new(bytes);
        let mut heap = LlaHeap::empty();
        // SAFETY: the arena is valid, unused memory that lives as long as the heap.
        unsafe { heap.init(arena.base(), arena.size()) };
        LlaBytes { heap, arena }
    }
}

impl ByteAlloc for LlaBytes {
    fn name(&self) -> &'static str {
        "linked-list"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        self.heap.allocate_first_fit(layout(size)).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller passes a live allocation of `size` bytes from this heap.
        unsafe { self.heap.deallocate(NonNull::new_unchecked(p), layout(size)) }
    }
    fn in_use(&self) -> Option<usize> {
        Some(self.heap.used())
    }
    fn arena(&self) -> Option<&Arena> {
        Some(&self.arena)
    }
}

/// The host's malloc (`std::alloc::System`, glibc on Linux).
#[derive(Default)]
pub struct HostMalloc;

impl ByteAlloc for HostMalloc {
    fn name(&self) -> &'static str {
        "host-malloc"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: non-zero size (callers never ask for 0 bytes).
        unsafe { System.alloc(layout(size)) }
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller passes a live allocation of `size` bytes from `System`.
        unsafe { System.dealloc(p, layout(size)) }
    }
}
