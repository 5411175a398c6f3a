//! The host page source for tests, fuzzing and the host benchmarks: the real buddy
//! allocator ([`PageAllocator`], through the kernel's own [`BuddyPageSource`] binding)
//! over one zeroed host allocation, with the fault injection the tests use.
//!
//! Physical addresses are `HOST_PHYS_BASE + index * PAGE_SIZE`, so blocks are naturally
//! aligned physically; the virtual arena is aligned to 64 KiB (the largest slab), as the
//! kernel's linear map is. The slab tests use it directly; the page-table and vmalloc
//! tests' simulated RAM (`tests/common`) draws its frames from it. All of it is test
//! scaffolding: built for `cfg(test)` or the `test-support` feature only.

// Host threads play CPUs (below): a thread-local needs std, which every host build has.
extern crate std;

use alloc::alloc::{alloc_zeroed, dealloc};
use alloc::boxed::Box;
use core::alloc::Layout;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use spin::Mutex;

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use crate::cpu::CpuId;
use crate::gfp::Gfp;
use crate::page_alloc::{BuddyPageSource, MemMap, Page, PageAllocator};
use crate::page_source::PageSource;

/// The CPU this host thread plays for the page allocator: each thread takes the next CPU
/// number at its first call, so concurrent test threads (up to [`crate::NR_CPUS`]) use
/// per-CPU page lists of their own, as CPUs do in the kernel. (All of them on CPU 0, as
/// before, raced on CPU 0's lists, which only their owner may touch.)
fn host_cpu() -> CpuId {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static CPU: CpuId = CpuId::of(NEXT.fetch_add(1, Relaxed) % crate::NR_CPUS);
    }
    CPU.with(|c| *c)
}

/// Alignment of the virtual arena: the largest slab.
const ARENA_ALIGN: usize = PAGE_SIZE << crate::slab::SLAB_MAX_ORDER;

/// Physical address of the first arena page.
pub const HOST_PHYS_BASE: u64 = 0x4000_0000;

/// Which allocation calls fail (counted from 1 over every `alloc_pages` call).
#[derive(Default)]
struct Inject {
    calls: usize,
    /// Fail the call with this number, if set.
    fail_at: Option<usize>,
    /// Fail every call after this many, if set.
    fail_after: Option<usize>,
}

/// Simulated RAM of `pages` page frames under the buddy allocator.
pub struct HostPages {
    // Field order is drop order: the allocator refers to `map` and goes first.
    buddy: Box<PageAllocator>,
    map: Box<[Page]>,
    raw: *mut u8,
    base: *mut u8,
    layout: Layout,
    pages: usize,
    inject: Mutex<Inject>,
    in_use: AtomicUsize,
}

// SAFETY: the raw arena pointers are only used to compute addresses and to zero blocks
// the allocator handed out; the allocator and the injection state synchronise
// themselves.
unsafe impl Send for HostPages {}
// SAFETY: as above.
unsafe impl Sync for HostPages {}

fn zero(va: VirtAddr, len: usize) {
    // SAFETY: `va` is the arena address of a block the allocator just handed out, `len`
    // bytes long (BuddyPageSource zeroes exactly the block).
    unsafe { core::ptr::write_bytes(va.as_mut_ptr::<u8>(), 0, len) };
}

impl HostPages {
    /// An arena of `2^order` pages.
    pub fn new(order: u32) -> Self {
        Self::with_pages(1 << order)
    }

    /// An arena of `pages` pages (the buddy allocator takes it as maximal naturally
    /// aligned blocks).
    pub fn with_pages(pages: usize) -> Self {
        assert!(pages > 0, "an empty arena");
        // Over-allocate with a small alignment and align by hand: that stays a lazily
        // zeroed `calloc` (a large alignment would make the host allocator memset it all).
        let layout = Layout::from_size_align(pages * PAGE_SIZE + ARENA_ALIGN, 16).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        assert!(!raw.is_null(), "host arena allocation failed");
        let base = raw.wrapping_add((ARENA_ALIGN - raw as usize % ARENA_ALIGN) % ARENA_ALIGN);
        let map: Box<[Page]> = (0..pages).map(|_| Page::new()).collect();
        // SAFETY: `map` lives in this struct, on the heap (it never moves), and the
        // allocator that keeps this reference is dropped before it (field order), so the
        // reference never outlives the descriptors.
        let descs: &'static [Page] = unsafe { &*(&*map as *const [Page]) };
        let buddy = Box::new(PageAllocator::new());
        let ram = (PhysAddr::new(HOST_PHYS_BASE), (pages * PAGE_SIZE) as u64);
        buddy.init(descs, PhysAddr::new(HOST_PHYS_BASE).pfn(), PhysAddr::new(0), [ram], [ram]).expect("host buddy");
        // Every page may be handed out (the tests exhaust the arena); single pages come
        // from the free lists one at a time, in address order.
        buddy.set_min_free_kbytes(0);
        buddy.set_pcp_high_batch(0, 1);
        HostPages {
            buddy,
            map,
            raw,
            base,
            layout,
            pages,
            inject: Mutex::new(Inject::default()),
            in_use: AtomicUsize::new(0),
        }
    }

    /// Makes the `n`-th allocation from now fail (1 = the next one).
    pub fn fail_nth(&self, n: usize) {
        let mut i = self.inject.lock();
        i.fail_at = Some(i.calls + n);
    }

    /// Makes every allocation after the next `n` fail (`None` to stop).
    pub fn fail_after(&self, n: Option<usize>) {
        let mut i = self.inject.lock();
        i.fail_after = n.map(|n| i.calls + n);
    }

    /// Pages currently allocated.
    pub fn pages_in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }

    /// Total pages.
    pub fn total_pages(&self) -> usize {
        self.pages
    }

    /// The buddy allocator underneath (for its statistics and invariant checks).
    pub fn buddy(&self) -> &PageAllocator {
        &self.buddy
    }

    /// The kernel's binding of the buddy allocator, over this arena: the thread's CPU, `__GFP_ZERO`
    /// honoured, a refused free is a test failure.
    /// The page descriptors and the linear map's offset, for
    /// [`SlabAllocator::set_mem_map`](crate::slab::SlabAllocator::set_mem_map).
    pub fn mem_map(&self) -> (MemMap, u64) {
        let src = self.source();
        (self.buddy.mem_map().expect("initialised"), src.linear_offset)
    }

    fn source(&self) -> BuddyPageSource<'_> {
        BuddyPageSource {
            alloc: &self.buddy,
            linear_offset: (self.base as u64).wrapping_sub(HOST_PHYS_BASE),
            cpu: host_cpu,
            zero,
            on_failure: |_| {},
            on_bad_free: |e| panic!("host pages: free refused: {e:?}"),
            on_alloc: crate::page_alloc::source::no_alloc_hook,
            on_free: crate::page_alloc::source::no_free_hook,
        }
    }
}

impl Drop for HostPages {
    fn drop(&mut self) {
        debug_assert_eq!(self.map.len(), self.pages);
        // SAFETY: allocated in `with_pages` with this layout; nothing refers to the arena
        // once its owner is dropped.
        unsafe { dealloc(self.raw, self.layout) };
    }
}

impl PageSource for HostPages {
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr> {
        {
            let mut i = self.inject.lock();
            i.calls += 1;
            if i.fail_at == Some(i.calls) || i.fail_after.is_some_and(|n| i.calls > n) {
                return None;
            }
        }
        let src = self.source();
        // The arena is all of a test's memory, with nothing to keep back: when the
        // watermarks refuse, retry as Linux does last (per-CPU lists drained, as
        // `drain_all_pages`; no watermarks, as `ALLOC_NO_WATERMARKS`), so that only a
        // truly empty arena fails.
        let pa = src.alloc_pages(gfp, order).or_else(|| {
            self.buddy.drain_cpu(host_cpu());
            src.alloc_pages(gfp.without(Gfp::GFP_DIRECT_RECLAIM) | Gfp::GFP_MEMALLOC, order)
        })?;
        self.in_use.fetch_add(1 << order, Relaxed);
        Some(pa)
    }

    fn free_pages(&self, pa: PhysAddr, order: u32) {
        self.source().free_pages(pa, order);
        self.in_use.fetch_sub(1 << order, Relaxed);
    }

    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr {
        self.source().phys_to_virt(pa)
    }

    fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        self.source().virt_to_phys(va)
    }

    fn set_page_owner(&self, pa: PhysAddr, word: u64) {
        self.source().set_page_owner(pa, word)
    }

    fn page_owner(&self, pa: PhysAddr) -> u64 {
        self.source().page_owner(pa)
    }

    fn virt_page_owner(&self, va: VirtAddr) -> Option<u64> {
        self.source().virt_page_owner(va)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::GFP_KERNEL;

    #[test]
    fn a_buddy_over_host_memory_with_fault_injection() {
        let p = HostPages::new(4);
        let a = p.alloc_pages(GFP_KERNEL, 0).unwrap();
        assert_eq!(a.as_u64(), HOST_PHYS_BASE, "pages come in address order");
        let b = p.alloc_pages(GFP_KERNEL, 2).unwrap();
        assert_eq!(b.as_u64() % (4 * PAGE_SIZE as u64), 0, "naturally aligned");
        assert_eq!(p.pages_in_use(), 5);
        let va = p.phys_to_virt(b);
        assert_eq!(va.as_u64() % (4 * PAGE_SIZE as u64), 0, "the arena is aligned too");
        assert_eq!(p.virt_to_phys(va), Some(b));
        p.set_page_owner(b, 7);
        assert_eq!(p.virt_page_owner(va), Some(7));
        p.fail_nth(2);
        assert!(p.alloc_pages(GFP_KERNEL, 0).is_some());
        assert!(p.alloc_pages(GFP_KERNEL, 0).is_none(), "the second call from fail_nth(2) fails");
        assert!(p.alloc_pages(GFP_KERNEL, 0).is_some());
        p.fail_after(Some(0));
        assert!(p.alloc_pages(GFP_KERNEL, 0).is_none());
        p.fail_after(None);
        p.free_pages(b, 2);
        assert_eq!(p.page_owner(b), 0, "a free clears the owner word");
        // Everything given back merges into one block again.
        for pa in
            [a, PhysAddr::new(HOST_PHYS_BASE + PAGE_SIZE as u64), PhysAddr::new(HOST_PHYS_BASE + 2 * PAGE_SIZE as u64)]
        {
            p.free_pages(pa, 0);
        }
        assert_eq!(p.pages_in_use(), 0);
        assert_eq!(p.alloc_pages(GFP_KERNEL, 4), Some(PhysAddr::new(HOST_PHYS_BASE)));
    }
}
