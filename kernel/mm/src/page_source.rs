//! How the layers above the buddy allocator (slab, vmalloc) obtain page frames.
//!
//! The kernel implements [`PageSource`] with its buddy allocator and linear map; the host
//! tests implement it over simulated RAM, with fault injection.

use crate::addr::{PhysAddr, VirtAddr};
use crate::gfp::Gfp;

/// A supplier of naturally aligned blocks of `2^order` page frames.
///
/// Every block has a kernel virtual address in the linear map, through which its bytes
/// are read and written, and a per-page owner word (Linux keeps the same in `struct page`)
/// in which the slab layer records which cache a page belongs to.
pub trait PageSource {
    /// Allocates `2^order` contiguous, naturally aligned pages; `None` when memory is short
    /// (a failure report is the source's business, unless `gfp` has `__GFP_NOWARN`).
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr>;
    /// Gives back a block obtained from [`Self::alloc_pages`] with the same order.
    fn free_pages(&self, pa: PhysAddr, order: u32);
    /// The block's address in the linear map.
    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr;
    /// Inverse of [`Self::phys_to_virt`]; `None` for an address outside the linear map.
    fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr>;
    /// Stores the owner word of the page holding `pa` (meaningful while the page is allocated).
    fn set_page_owner(&self, pa: PhysAddr, word: u64);
    /// The owner word of the page holding `pa`, 0 if never set since it was allocated.
    fn page_owner(&self, pa: PhysAddr) -> u64;
    /// The owner word of the page holding the linear-map address `va` (`None` outside the
    /// linear map): [`Self::virt_to_phys`] then [`Self::page_owner`] in one call, which a
    /// source can override to look the page up once (the `kfree` fast path).
    #[inline]
    fn virt_page_owner(&self, va: VirtAddr) -> Option<u64> {
        self.virt_to_phys(va).map(|pa| self.page_owner(pa))
    }
    /// Allocates up to `out.len()` single pages (order 0) in one round, as Linux's
    /// `alloc_pages_bulk`, and returns how many it stored at the front of `out`. The
    /// default takes them one at a time; a source overrides it to take its lock once.
    fn alloc_pages_bulk(&self, gfp: Gfp, out: &mut [PhysAddr]) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            match self.alloc_pages(gfp, 0) {
                Some(pa) => {
                    *slot = pa;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
    /// Gives back single pages (order 0) in one round where the source can.
    fn free_pages_bulk(&self, pages: &[PhysAddr]) {
        for &pa in pages {
            self.free_pages(pa, 0);
        }
    }
}
