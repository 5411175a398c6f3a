//! A [`PageSource`] over host memory for tests and fuzzing: one big zeroed allocation
//! carved by a small buddy allocator, a per-page owner-word array, and fault injection.
//!
//! Physical addresses are `HOST_PHYS_BASE + index * PAGE_SIZE`, so blocks are naturally
//! aligned physically; the virtual arena is aligned to 64 KiB (the largest slab), as the
//! kernel's linear map is.

use alloc::alloc::{alloc_zeroed, dealloc};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use spin::Mutex;

use crate::addr::{PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::Gfp;
use crate::page_source::PageSource;

/// Alignment of the virtual arena: the largest slab.
const ARENA_ALIGN: usize = PAGE_SIZE << crate::slab::SLAB_MAX_ORDER;

/// Physical address of the first arena page.
pub const HOST_PHYS_BASE: u64 = 0x4000_0000;

struct Inner {
    /// Free block start indices per order.
    free: Vec<Vec<usize>>,
    /// Order + 1 of the allocated block starting at each page, 0 otherwise.
    alloc_order: Vec<u8>,
    /// Allocation calls so far.
    calls: usize,
    /// Fail the allocation call with this number (1-based), if set.
    fail_at: Option<usize>,
    /// Fail every call after this many, if set.
    fail_after: Option<usize>,
}

/// Simulated RAM of `2^order` pages.
pub struct HostPages {
    raw: *mut u8,
    base: *mut u8,
    layout: Layout,
    pages: usize,
    max_order: u32,
    inner: Mutex<Inner>,
    owner: Vec<AtomicU64>,
    in_use: AtomicUsize,
}

// SAFETY: the raw arena pointer is only used to compute addresses; all bookkeeping is
// behind the mutex or atomics.
unsafe impl Send for HostPages {}
// SAFETY: as above.
unsafe impl Sync for HostPages {}

impl HostPages {
    /// An arena of `2^order` pages (one free block of that order).
    pub fn new(order: u32) -> Self {
        let pages = 1usize << order;
        // Over-allocate with a small alignment and align by hand: that stays a lazily
        // zeroed `calloc` (a large alignment would make the host allocator memset it all).
        let layout = Layout::from_size_align(pages * PAGE_SIZE + ARENA_ALIGN, 16).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        assert!(!raw.is_null(), "host arena allocation failed");
        let base = raw.wrapping_add((ARENA_ALIGN - raw as usize % ARENA_ALIGN) % ARENA_ALIGN);
        let mut free: Vec<Vec<usize>> = (0..=order).map(|_| Vec::new()).collect();
        free[order as usize].push(0);
        HostPages {
            raw,
            base,
            layout,
            pages,
            max_order: order,
            inner: Mutex::new(Inner {
                free,
                alloc_order: alloc::vec![0; pages],
                calls: 0,
                fail_at: None,
                fail_after: None,
            }),
            owner: (0..pages).map(|_| AtomicU64::new(0)).collect(),
            in_use: AtomicUsize::new(0),
        }
    }

    /// Makes the `n`-th allocation from now fail (1 = the next one).
    pub fn fail_nth(&self, n: usize) {
        let mut i = self.inner.lock();
        i.fail_at = Some(i.calls + n);
    }

    /// Makes every allocation after the next `n` fail (`None` to stop).
    pub fn fail_after(&self, n: Option<usize>) {
        let mut i = self.inner.lock();
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

    fn index(&self, pa: PhysAddr) -> usize {
        ((pa.as_u64() - HOST_PHYS_BASE) >> PAGE_SHIFT) as usize
    }
}

impl Drop for HostPages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.raw, self.layout) };
    }
}

impl PageSource for HostPages {
    fn alloc_pages(&self, _gfp: Gfp, order: u32) -> Option<PhysAddr> {
        let mut i = self.inner.lock();
        i.calls += 1;
        if i.fail_at == Some(i.calls) || i.fail_after.is_some_and(|n| i.calls > n) {
            return None;
        }
        if order > self.max_order {
            return None;
        }
        let k = (order..=self.max_order).find(|&k| !i.free[k as usize].is_empty())?;
        let start = i.free[k as usize].pop()?;
        for o in (order..k).rev() {
            i.free[o as usize].push(start + (1 << o));
        }
        i.alloc_order[start] = order as u8 + 1;
        drop(i);
        self.in_use.fetch_add(1 << order, Relaxed);
        Some(PhysAddr::new(HOST_PHYS_BASE + (start * PAGE_SIZE) as u64))
    }

    fn free_pages(&self, pa: PhysAddr, order: u32) {
        let mut idx = self.index(pa);
        let mut i = self.inner.lock();
        assert_eq!(i.alloc_order[idx], order as u8 + 1, "free_pages({:?}, {}) of a block not allocated so", pa, order);
        i.alloc_order[idx] = 0;
        for p in idx..idx + (1 << order) {
            self.owner[p].store(0, Relaxed);
        }
        let mut o = order;
        while o < self.max_order {
            let buddy = idx ^ (1 << o);
            let Some(pos) = i.free[o as usize].iter().position(|&b| b == buddy) else {
                break;
            };
            i.free[o as usize].swap_remove(pos);
            idx &= !(1 << o);
            o += 1;
        }
        i.free[o as usize].push(idx);
        drop(i);
        self.in_use.fetch_sub(1 << order, Relaxed);
    }

    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr {
        VirtAddr::new(self.base as u64 + (pa.as_u64() - HOST_PHYS_BASE))
    }

    fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        let off = va.as_u64().checked_sub(self.base as u64)?;
        (off < (self.pages * PAGE_SIZE) as u64).then(|| PhysAddr::new(HOST_PHYS_BASE + off))
    }

    fn set_page_owner(&self, pa: PhysAddr, word: u64) {
        self.owner[self.index(pa)].store(word, Relaxed);
    }

    fn page_owner(&self, pa: PhysAddr) -> u64 {
        self.owner[self.index(pa)].load(Relaxed)
    }

    fn virt_page_owner(&self, va: VirtAddr) -> Option<u64> {
        let off = va.as_u64().checked_sub(self.base as u64)?;
        Some(self.owner.get((off >> PAGE_SHIFT) as usize)?.load(Relaxed))
    }
}
