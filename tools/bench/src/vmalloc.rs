//! vmalloc+vfree over our page allocator and a kernel page table in host memory, against
//! "the floor": for each page, one order-0 allocation from the same `PageSource`, one
//! descriptor write into a table page, and the page's free.

use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::GFP_KERNEL;
use mm::page_alloc::BuddyPageSource;
use mm::page_source::PageSource;
use mm::pgtable::{Desc, LinearPhysMemory, PageTable, PhysMemory, Prot, PtConfig, TlbMaint};
use mm::vmalloc::tables::SourceTables;
use mm::vmalloc::Vmalloc;

use crate::arena::Arena;

/// No TLB to maintain on the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTlb;

impl TlbMaint for NoTlb {
    fn flush_va(&self, _va: VirtAddr) {}
    fn flush_all(&self) {}
    fn sync(&self) {}
}

/// Our vmalloc with its page source, page table and a table page for the floor.
pub struct VmBench {
    src: &'static BuddyPageSource<'static>,
    arena: &'static Arena,
    mem: LinearPhysMemory,
    pt: PageTable<LinearPhysMemory, NoTlb>,
    vm: Vmalloc,
    table: PhysAddr,
    pages: Vec<PhysAddr>,
}

impl VmBench {
    /// Over `nr_pages` frames of host memory.
    pub fn new(nr_pages: usize) -> Self {
        let (src, arena) = crate::ours::buddy_source(nr_pages);
        // SAFETY: every table comes from `src`, whose frames live in the (leaked) arena at
        // `pa + linear_offset`; nothing else references them while the table is in use.
        let mem = unsafe { LinearPhysMemory::new(src.linear_offset) };
        let mut count = 0;
        let mut tables = SourceTables { pages: src, gfp: GFP_KERNEL, count: &mut count };
        let pt = PageTable::create(&mut tables, PtConfig::KERNEL_39, mem, NoTlb).expect("root table");
        let table = src.alloc_pages(GFP_KERNEL, 0).expect("floor table");
        VmBench { src, arena, mem, pt, vm: Vmalloc::new(), table, pages: Vec::new() }
    }

    /// The page source (for counters and translation checks).
    pub fn source(&self) -> &'static BuddyPageSource<'static> {
        self.src
    }

    /// The host memory behind the page source.
    pub fn arena(&self) -> &'static Arena {
        self.arena
    }

    /// vmalloc of `bytes` then vfree; `check` sees the area (and the page table) while it
    /// is mapped. Returns the area's address.
    #[inline]
    pub fn vmalloc_with(
        &mut self,
        bytes: usize,
        check: impl FnOnce(VirtAddr, &PageTable<LinearPhysMemory, NoTlb>),
    ) -> VirtAddr {
        let va = self.vm.vmalloc(bytes, GFP_KERNEL, "bench", self.src, &mut self.pt).expect("vmalloc failed");
        check(va, &self.pt);
        self.vm.vfree(va, self.src, &mut self.pt).expect("vfree");
        va
    }

    /// [`Self::vmalloc_with`] without a check.
    #[inline]
    pub fn vmalloc(&mut self, bytes: usize) -> VirtAddr {
        self.vmalloc_with(bytes, |_, _| {})
    }

    /// vmalloc of `bytes` with `__GFP_MOVABLE` (order-0 pages only, each tagged with its
    /// owner for migration: the path of a vmalloc when no larger block is free), then
    /// vfree.
    #[inline]
    pub fn vmalloc_movable(&mut self, bytes: usize) -> VirtAddr {
        let gfp = GFP_KERNEL | mm::gfp::Gfp::GFP_MOVABLE;
        let va = self.vm.vmalloc(bytes, gfp, "bench", self.src, &mut self.pt).expect("vmalloc failed");
        self.vm.vfree(va, self.src, &mut self.pt).expect("vfree");
        va
    }

    /// The floor for `bytes`: per page, an order-0 allocation and one descriptor write;
    /// then every page freed. Returns the sum of the page addresses.
    #[inline]
    pub fn floor(&mut self, bytes: usize) -> u64 {
        let n = bytes.div_ceil(PAGE_SIZE);
        self.pages.clear();
        let mut sum = 0u64;
        for i in 0..n {
            let pa = self.src.alloc_pages(GFP_KERNEL, 0).expect("floor allocation");
            self.mem.write_entry(self.table, i % 512, Desc::leaf(pa.as_u64(), Prot::KERNEL_RW, 3).0);
            sum = sum.wrapping_add(pa.as_u64());
            self.pages.push(pa);
        }
        for &pa in &self.pages {
            self.src.free_pages(pa, 0);
        }
        sum
    }
}
