//! The buddy allocator bound to its collaborators once, at init: [`BuddyPageSource`] is
//! the one place that knows which CPU is running, how to zero memory (`__GFP_ZERO` needs
//! the bytes), and how to report an allocation failure or a refused free. The kernel's
//! page API and the slab and vmalloc layers (through [`PageSource`]) all allocate through
//! it, so the zero-and-report policy exists once.
//!
//! The hardware-facing parts stay with the caller as plain function pointers.

use super::{want_init_on_alloc, AllocFailure, FreeError, PageAllocator};
use crate::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SHIFT};
use crate::cpu::CpuId;
use crate::gfp::Gfp;
use crate::owner;
use crate::page_source::PageSource;

/// The buddy allocator seen as a [`PageSource`], with its collaborators bound.
#[derive(Clone, Copy, Debug)]
pub struct BuddyPageSource<'a> {
    /// The allocator.
    pub alloc: &'a PageAllocator,
    /// `virt = phys + linear_offset` (wrapping) for every frame of `mem_map`.
    pub linear_offset: u64,
    /// The running CPU.
    pub cpu: fn() -> CpuId,
    /// Zeroes `len` bytes at a linear-map address (for `__GFP_ZERO`).
    pub zero: fn(VirtAddr, usize),
    /// Called for a failed allocation that should be reported (not `__GFP_NOWARN`).
    pub on_failure: fn(&AllocFailure),
    /// Called for a refused free (the allocator is unchanged) by [`PageSource::free_pages`].
    pub on_bad_free: fn(&FreeError),
    /// Called with every block given out (`pfn`, order, mask): page_owner's record.
    pub on_alloc: fn(Pfn, u32, Gfp),
    /// Called with every block freed (`pfn`, order): after the free for one block (a
    /// refused free leaves the record as it was), before it for a batch.
    pub on_free: fn(Pfn, u32),
}

/// For [`BuddyPageSource::on_alloc`] when nothing records allocations.
pub fn no_alloc_hook(_: Pfn, _: u32, _: Gfp) {}

/// For [`BuddyPageSource::on_free`] when nothing records frees.
pub fn no_free_hook(_: Pfn, _: u32) {}

impl BuddyPageSource<'_> {
    /// Allocates `2^order` pages on the running CPU, zeroed for `__GFP_ZERO`; a failure
    /// is reported (unless `__GFP_NOWARN`) and returned.
    #[inline(always)]
    pub fn alloc(&self, gfp: Gfp, order: u32) -> Result<Pfn, AllocFailure> {
        match self.alloc.alloc_pages(gfp, order, (self.cpu)()) {
            Ok(pfn) => {
                (self.on_alloc)(pfn, order, gfp);
                if want_init_on_alloc(gfp) {
                    (self.zero)(self.phys_to_virt(pfn.phys()), 1usize << (order + PAGE_SHIFT));
                }
                Ok(pfn)
            }
            Err(e) => {
                if e.should_warn() {
                    (self.on_failure)(&e);
                }
                Err(e)
            }
        }
    }
    /// Frees a block on the running CPU; a refused free is returned, not reported (the
    /// caller names itself in the report, as the kernel's `free_pages` does).
    #[inline(always)]
    pub fn free(&self, pfn: Pfn, order: u32) -> Result<(), FreeError> {
        self.alloc.free_pages(pfn, order, (self.cpu)()).inspect(|()| (self.on_free)(pfn, order))
    }
}

impl PageSource for BuddyPageSource<'_> {
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr> {
        self.alloc(gfp, order).ok().map(Pfn::phys)
    }
    fn free_pages(&self, pa: PhysAddr, order: u32) {
        if let Err(e) = self.free(pa.pfn(), order) {
            (self.on_bad_free)(&e);
        }
    }
    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr {
        VirtAddr::new(pa.as_u64().wrapping_add(self.linear_offset))
    }
    fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        let pa = PhysAddr::new(va.as_u64().wrapping_sub(self.linear_offset));
        self.alloc.pfn_to_page(pa.pfn()).map(|_| pa)
    }
    fn set_page_owner(&self, pa: PhysAddr, word: u64) {
        if let Some(mm) = self.alloc.mem_map.get() {
            owner::set_page_owner(&mm, pa.pfn(), word);
        }
    }
    fn page_owner(&self, pa: PhysAddr) -> u64 {
        self.alloc.mem_map.get().map_or(0, |mm| owner::page_owner(&mm, pa.pfn()))
    }
    fn virt_page_owner(&self, va: VirtAddr) -> Option<u64> {
        // The map first: the address arithmetic then folds in after its check (kfree's
        // path; one instruction fewer than the other order on x86-64).
        let mm = &self.alloc.mem_map.get()?;
        owner::try_page_owner(mm, PhysAddr::new(va.as_u64().wrapping_sub(self.linear_offset)).pfn())
    }
    /// One round: this CPU's list, then the zone under one lock
    /// ([`PageAllocator::alloc_pages_bulk_with`]); zeroed and reported as
    /// [`Self::alloc`] does.
    fn alloc_pages_bulk(&self, gfp: Gfp, out: &mut [PhysAddr]) -> usize {
        let mut n = 0;
        let r = self.alloc.alloc_pages_bulk_with(gfp, (self.cpu)(), out.len(), |pfn| {
            (self.on_alloc)(pfn, 0, gfp);
            out[n] = pfn.phys();
            n += 1;
        });
        if let Err(e) = r {
            if e.should_warn() {
                (self.on_failure)(&e);
            }
        }
        if want_init_on_alloc(gfp) {
            for &pa in &out[..n] {
                (self.zero)(self.phys_to_virt(pa), 1usize << PAGE_SHIFT);
            }
        }
        n
    }
    /// One round: onto this CPU's list, drained to the zone at most once
    /// ([`PageAllocator::free_pages_bulk`]); a refused page is reported as by
    /// [`PageSource::free_pages`].
    fn free_pages_bulk(&self, pages: &[PhysAddr]) {
        for pa in pages {
            (self.on_free)(pa.pfn(), 0);
        }
        self.alloc.free_pages_bulk(pages.iter().map(|pa| pa.pfn()), (self.cpu)(), |e| (self.on_bad_free)(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Pfn, PAGE_SIZE};
    use crate::gfp::{GFP_ATOMIC, GFP_KERNEL};
    use crate::page_alloc::{check_invariants, Page};
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// A buddy allocator over 64 pages at 1 MiB, without watermarks, for the life of the test.
    fn allocator_of_64_pages() -> &'static PageAllocator {
        let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
        let map: &'static [Page] = Box::leak((0..64).map(|_| Page::new()).collect());
        let ram = (PhysAddr::new(0x10_0000), 64 * PAGE_SIZE as u64);
        a.init(map, Pfn(0x100), PhysAddr::new(0), [ram], [ram]).unwrap();
        a.set_min_free_kbytes(0);
        a
    }

    static FAILS: AtomicUsize = AtomicUsize::new(0);
    static BAD: AtomicUsize = AtomicUsize::new(0);
    static ZEROED: AtomicUsize = AtomicUsize::new(0);
    /// Pages allocated (times 256) and freed through the hooks.
    static HOOKED: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn page_source_over_buddy() {
        let a = allocator_of_64_pages();
        let src = BuddyPageSource {
            alloc: a,
            linear_offset: 0xffff_0000_0000_0000,
            cpu: || CpuId::of(1),
            zero: |_, len| {
                ZEROED.fetch_add(len, Relaxed);
            },
            on_failure: |_| {
                FAILS.fetch_add(1, Relaxed);
            },
            on_bad_free: |_| {
                BAD.fetch_add(1, Relaxed);
            },
            on_alloc: |_, order, _| {
                HOOKED.fetch_add(1 << (order + 8), Relaxed);
            },
            on_free: |_, order| {
                HOOKED.fetch_add(1 << order, Relaxed);
            },
        };
        let pa = src.alloc_pages(GFP_KERNEL | Gfp::GFP_ZERO, 1).unwrap();
        assert_eq!(ZEROED.load(Relaxed), 2 * PAGE_SIZE);
        assert_eq!(HOOKED.load(Relaxed), 2 << 8, "page_owner's hook saw the order-1 block");
        let va = src.phys_to_virt(pa);
        assert_eq!(va.as_u64(), 0xffff_0000_0000_0000 + pa.as_u64());
        assert_eq!(src.virt_to_phys(va), Some(pa));
        assert_eq!(src.virt_to_phys(VirtAddr::new(0x1234)), None);
        src.set_page_owner(pa, 42);
        assert_eq!(src.page_owner(pa), 42);
        assert_eq!(src.virt_page_owner(va), Some(42));
        assert_eq!(src.virt_page_owner(VirtAddr::new(va.as_u64() + PAGE_SIZE as u64 + 8)), Some(0));
        assert_eq!(src.virt_page_owner(VirtAddr::new(0x1234)), None);
        assert!(src.alloc_pages(GFP_ATOMIC, 7).is_none());
        assert!(src.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 7).is_none());
        assert_eq!(FAILS.load(Relaxed), 1);
        src.free_pages(pa, 1);
        src.free_pages(pa, 1);
        assert_eq!(BAD.load(Relaxed), 1);
        // The checked free returns the refusal and leaves the report to its caller. (The
        // failed order-7 requests drained this CPU's lists, so the freed block merged with
        // its buddy: no longer a free block of its own, it is "not allocated".)
        assert!(matches!(src.free(pa.pfn(), 1), Err(FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. })));
        assert_eq!(BAD.load(Relaxed), 1);
        assert_eq!(
            src.alloc(GFP_ATOMIC | Gfp::GFP_NOWARN, 7),
            Err(AllocFailure::NoMemory { order: 7, gfp: GFP_ATOMIC | Gfp::GFP_NOWARN })
        );
        assert_eq!(FAILS.load(Relaxed), 1);
    }

    static BULK_ZEROED: AtomicUsize = AtomicUsize::new(0);
    static BULK_BAD: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn bulk_through_the_page_source() {
        let a = allocator_of_64_pages();
        let src = BuddyPageSource {
            alloc: a,
            linear_offset: 0,
            cpu: || CpuId::of(3),
            zero: |_, len| {
                BULK_ZEROED.fetch_add(len, Relaxed);
            },
            on_failure: |_| {},
            on_bad_free: |_| {
                BULK_BAD.fetch_add(1, Relaxed);
            },
            on_alloc: no_alloc_hook,
            on_free: no_free_hook,
        };
        let mut out = [PhysAddr::new(0); 10];
        assert_eq!(src.alloc_pages_bulk(GFP_KERNEL | Gfp::GFP_ZERO, &mut out), 10);
        assert_eq!(BULK_ZEROED.load(Relaxed), 10 * PAGE_SIZE);
        assert_eq!(a.snapshot().nr_free_pages(), 54);
        for pa in out {
            src.set_page_owner(pa, 7);
            assert_eq!(src.page_owner(pa), 7);
        }
        src.free_pages_bulk(&out);
        assert_eq!(a.snapshot().nr_free_pages(), 64);
        assert_eq!(BULK_BAD.load(Relaxed), 0);
        src.free_pages_bulk(&out[..2]);
        assert_eq!(BULK_BAD.load(Relaxed), 2, "double frees refused and reported");
        check_invariants(a).unwrap();
    }
}
