//! [`Allocation`]: an owning handle for memory taken at the kernel boundary (the
//! console's `alloc`, `stress`), freed when the handle is dropped.
//!
//! The one `unsafe` call of freeing (`kfree`) and the volatile accesses to the memory
//! live here, so the commands that hold allocations need no `unsafe` of their own.

use super::{page_alloc, slab, vmalloc};
use mm::addr::{Pfn, VirtAddr, PAGE_SIZE};
use mm::gfp::Gfp;
use mm::page_alloc::MigrateError;
use mm::vmalloc::VmallocError;

/// Memory from one of the kernel's allocators, owned: dropping it frees it, once.
#[derive(Debug)]
pub enum Allocation {
    /// `2^order` pages from the buddy allocator, at their linear-map address.
    Pages {
        /// Linear-map address of the first page.
        addr: VirtAddr,
        /// Buddy order.
        order: u32,
    },
    /// A kmalloc object (`size` bytes asked for; 0 gives ZERO_SIZE_PTR).
    Kmalloc {
        /// The object (or ZERO_SIZE_PTR).
        addr: VirtAddr,
        /// Bytes asked for.
        size: usize,
    },
    /// A vmalloc area of `size` bytes.
    Vmalloc {
        /// Start of the area.
        addr: VirtAddr,
        /// Bytes asked for.
        size: usize,
    },
    /// `pages` contiguous pages of the CMA area (`cma_alloc`), at their linear-map address.
    Cma {
        /// Linear-map address of the first page.
        addr: VirtAddr,
        /// Pages.
        pages: usize,
    },
}

impl Allocation {
    /// Linux's `__get_free_pages(gfp, order)`.
    pub fn pages(gfp: Gfp, order: u32) -> Option<Self> {
        page_alloc::__get_free_pages(gfp, order).map(|addr| Allocation::Pages { addr, order })
    }

    /// Linux's `kmalloc(size, gfp)`.
    pub fn kmalloc(size: usize, gfp: Gfp) -> Option<Self> {
        slab::kmalloc(size, gfp).map(|p| Allocation::Kmalloc { addr: VirtAddr::new(p.as_ptr() as u64), size })
    }

    /// Linux's `__vmalloc(size, gfp)`, recorded under `caller` in vmallocinfo.
    pub fn vmalloc(size: usize, gfp: Gfp, caller: &'static str) -> Result<Self, VmallocError> {
        vmalloc::__vmalloc(size, gfp, caller).map(|addr| Allocation::Vmalloc { addr, size })
    }

    /// Linux's `cma_alloc(cma, pages, align_order)` (see [`super::migrate::cma_alloc`]).
    pub fn cma(
        pages: usize,
        align_order: u32,
    ) -> Result<(Self, mm::page_alloc::CmaAllocStats), mm::page_alloc::CmaError> {
        super::migrate::cma_alloc(pages as u64, align_order)
            .map(|(pfn, st)| (Allocation::Cma { addr: super::phys_to_virt(pfn.phys()), pages }, st))
    }

    /// Where the memory starts.
    pub fn addr(&self) -> VirtAddr {
        match *self {
            Allocation::Pages { addr, .. }
            | Allocation::Kmalloc { addr, .. }
            | Allocation::Vmalloc { addr, .. }
            | Allocation::Cma { addr, .. } => addr,
        }
    }

    /// Usable bytes asked for (a page block's whole size).
    pub fn len(&self) -> usize {
        match *self {
            Allocation::Pages { order, .. } => PAGE_SIZE << order,
            Allocation::Kmalloc { size, .. } | Allocation::Vmalloc { size, .. } => size,
            Allocation::Cma { pages, .. } => PAGE_SIZE * pages,
        }
    }

    /// Whether no bytes were asked for (`kmalloc 0`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `byte` to the first and the last byte (nothing for an empty allocation).
    pub fn mark_ends(&self, byte: u8) {
        if self.is_empty() {
            return;
        }
        let p = self.addr().as_mut_ptr::<u8>();
        // SAFETY: this handle owns at least len() bytes at p until it is dropped.
        unsafe {
            p.write_volatile(byte);
            p.add(self.len() - 1).write_volatile(byte);
        }
    }

    /// Whether the first and last byte still hold `byte` (true for an empty allocation).
    pub fn ends_are(&self, byte: u8) -> bool {
        if self.is_empty() {
            return true;
        }
        let p = self.addr().as_ptr::<u8>();
        // SAFETY: this handle owns at least len() bytes at p until it is dropped.
        unsafe { p.read_volatile() == byte && p.add(self.len() - 1).read_volatile() == byte }
    }
}

impl Allocation {
    /// Adds 1 to the `i`-th 64-bit word (a plain load and store, as a CPU's own counter
    /// would be: a store lost to a migration would show as a missing count).
    pub fn bump_word(&self, i: usize) {
        assert!((i + 1) * 8 <= self.len());
        let p = self.addr().as_mut_ptr::<u64>();
        // SAFETY: this handle owns at least len() bytes at p (checked above) until dropped.
        unsafe { p.add(i).write_volatile(p.add(i).read_volatile() + 1) }
    }

    /// The `i`-th 64-bit word.
    pub fn word(&self, i: usize) -> u64 {
        assert!((i + 1) * 8 <= self.len());
        // SAFETY: as in `bump_word`.
        unsafe { self.addr().as_ptr::<u64>().add(i).read_volatile() }
    }

    /// Page migration of a page block: if this handle holds the `2^order` pages at `old`,
    /// copies them to `new` (a block of the same order the migration allocated) and holds
    /// `new` from now on; the caller frees `old`. Anything else is refused unchanged.
    pub fn migrate(&mut self, old: Pfn, new: Pfn, order: u32) -> Result<(), MigrateError> {
        match self {
            Allocation::Pages { addr, order: o } if *o == order && *addr == super::phys_to_virt(old.phys()) => {
                super::migrate::copy_block(old, new, order);
                *addr = super::phys_to_virt(new.phys());
                Ok(())
            }
            _ => Err(MigrateError::Gone),
        }
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        match *self {
            // A refused free has already been reported by the allocator.
            Allocation::Pages { addr, order } => {
                let _ = page_alloc::free_pages(addr, order);
            }
            // SAFETY: the pointer came from kmalloc and this handle, its only owner, is
            // dropped once.
            Allocation::Kmalloc { addr, .. } => unsafe { slab::kfree(addr.as_mut_ptr()) },
            Allocation::Vmalloc { addr, .. } => {
                let _ = vmalloc::vfree(addr);
            }
            Allocation::Cma { addr, pages } => super::migrate::cma_release(addr, pages),
        }
    }
}
