//! Our allocators set up over host memory: the buddy [`PageAllocator`] (with or without its
//! per-CPU lists), a [`BuddyPageSource`] whose linear map is an [`Arena`], and the slab
//! allocator (kmalloc) on top of it.
//!
//! Everything is leaked on purpose: the `mm` types borrow each other for `'static`, as in
//! the kernel, and a benchmark process builds only a handful of them.

use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::cpu::CpuId;
use mm::page_alloc::{BuddyPageSource, Page, PageAllocator, MAX_PAGE_ORDER};
use mm::slab::debug::NullReporter;
use mm::slab::SlabAllocator;

use crate::arena::Arena;

/// Physical address of the first simulated page frame (256 MiB, so blocks of every order
/// up to 2^16 pages are naturally aligned).
pub const PHYS_BASE: u64 = 0x1000_0000;

static NULL_REPORTER: NullReporter = NullReporter;

/// A page allocator managing `nr_pages` frames from [`PHYS_BASE`], all free, with no
/// watermark reserve (`min_free_kbytes = 0`) so the whole range is usable.
///
/// With `pcp == false` the per-CPU lists are turned off (`high = 0`, `batch = 1`): every
/// order-0..=3 request then goes to the zone's free lists and back, the "zone path".
pub fn page_allocator(nr_pages: usize, pcp: bool) -> &'static PageAllocator {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..nr_pages).map(|_| Page::new()).collect());
    let ram = (PhysAddr::new(PHYS_BASE), (nr_pages * PAGE_SIZE) as u64);
    a.init(map, PhysAddr::new(PHYS_BASE).pfn(), PhysAddr::new(0), [ram], [ram]).expect("page allocator init");
    a.set_min_free_kbytes(0);
    if !pcp {
        a.set_pcp_high_batch(0, 1);
    }
    a
}

/// Our page allocator as a `PageSource` whose frames are real host memory: the linear map
/// is an arena of `nr_pages` pages. Returns the source and the (leaked) arena.
pub fn buddy_source(nr_pages: usize) -> (&'static BuddyPageSource<'static>, &'static Arena) {
    let arena: &'static Arena = Box::leak(Box::new(Arena::new(nr_pages * PAGE_SIZE)));
    let alloc = page_allocator(nr_pages, true);
    let src = Box::leak(Box::new(BuddyPageSource {
        alloc,
        linear_offset: (arena.base() as u64).wrapping_sub(PHYS_BASE),
        cpu: || CpuId::BOOT,
        zero: |va: VirtAddr, len| {
            // SAFETY: the page allocator hands out frames of the arena only, and the source
            // maps them into the arena: `len` bytes at `va` are a block just allocated.
            unsafe { core::ptr::write_bytes(va.as_u64() as usize as *mut u8, 0, len) }
        },
        on_failure: |_| {},
        on_bad_free: |e| panic!("bad free: {e:?}"),
        on_alloc: mm::page_alloc::source::no_alloc_hook,
        on_free: mm::page_alloc::source::no_free_hook,
    }));
    (src, arena)
}

/// The slab allocator (kmalloc, debug off) over a fresh [`buddy_source`] of `nr_pages`.
pub fn slab(nr_pages: usize) -> (&'static SlabAllocator<'static>, &'static Arena) {
    let (src, arena) = buddy_source(nr_pages);
    let slab: &'static SlabAllocator<'static> = Box::leak(Box::default());
    slab.init(src, &NULL_REPORTER, MAX_PAGE_ORDER, false, 0x5eed);
    // As the kernel does: kfree reads the cache from the page descriptor.
    slab.set_mem_map(src.alloc.mem_map().expect("initialised"), src.linear_offset);
    (slab, arena)
}
