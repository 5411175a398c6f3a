//! vmalloc and ioremap of the running kernel: the `mm` crate's vmap areas over the
//! kernel page table, with 2 MiB blocks from the buddy allocator for large areas and
//! pages in bulk for the rest.

use super::mmu::KernelTlb;
use super::page_alloc::{PAGES, PAGE_SOURCE};
use crate::{pr_err, pr_info, printk};
use mm::addr::{PhysAddr, VirtAddr};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::pgtable::LinearPhysMemory;
use mm::vmalloc::{VmError, VmSpace, Vmalloc, VmallocError};

/// vmap areas of the vmalloc and ioremap ranges and the kernel page table: the table's
/// lock is only reachable through the areas guard (`VMALLOC.lock().with_pt(..)`), which
/// is the lock order.
pub static VMALLOC: VmSpace<LinearPhysMemory, KernelTlb> = VmSpace::new(Vmalloc::new());

/// Runs `f` with the kernel page table, reached (as always) through the vmalloc areas
/// lock.
pub fn with_kernel_pt<R>(f: impl FnOnce(&mut super::mmu::KernelPageTable) -> R) -> R {
    VMALLOC.lock().with_pt(|_, pt| f(pt)).expect("kernel page table used before paging_init")
}

/// Runs `f` with the vmalloc state and the kernel page table, locked in order.
fn with_vm<R>(f: impl FnOnce(&mut Vmalloc, &mut super::mmu::KernelPageTable) -> R) -> R {
    VMALLOC.lock().with_pt(f).expect("vmalloc used before paging_init")
}

/// Maps the peripherals through ioremap, moves the drivers there and switches TTBR0
/// off: from now on nothing uses boot/'s identity map, and low addresses fault.
pub fn init() {
    let base = ioremap(
        PhysAddr::new(board::mmio::PERIPHERAL_PHYS as u64),
        board::mmio::PERIPHERAL_SIZE,
        "bcm2835_peripherals",
    )
    .unwrap_or_else(|e| panic!("ioremap of the peripherals failed: {e}"));
    board::mmio::set_peripheral_base(base.as_usize());
    boot::mmu::disable_ttbr0();
    if crate::cmdline::flag(crate::platform::cmdline(), "nohugevmalloc") {
        VMALLOC.lock().set_allow_huge(false);
        pr_info!("vmalloc: huge mappings off (nohugevmalloc): 4 KiB pages only");
    }
    // Like Linux's vmalloc_init: build the vmalloc range's lasting state (the vmap-area
    // tree and the range's upper page table) now, so later use only adds and removes
    // what each area needs (and the sweep's leak check counts exactly that).
    match vmalloc(mm::addr::PAGE_SIZE, "vmalloc_init") {
        Ok(va) => {
            let _ = vfree(va);
        }
        Err(e) => panic!("vmalloc_init: {e}"),
    }
    pr_info!(
        "ioremap: peripherals {:#x}-{:#x} at {:#x}; TTBR0 disabled",
        board::mmio::PERIPHERAL_PHYS,
        board::mmio::PERIPHERAL_PHYS + board::mmio::PERIPHERAL_SIZE - 1,
        base.as_u64()
    );
}

/// Linux's `ioremap_wc`: Normal non-cacheable memory (a framebuffer: writes may be
/// gathered, never cached), never executable, in the ioremap range.
pub fn ioremap_wc(pa: PhysAddr, size: usize, caller: &'static str) -> Result<VirtAddr, VmError> {
    with_vm(|vm, pt| vm.ioremap_prot(pa, size as u64, caller, mm::pgtable::desc::Prot::KERNEL_RW_NC, &PAGE_SOURCE, pt))
}

/// Linux's `ioremap`: device memory (nGnRE, never executable) in the ioremap range.
pub fn ioremap(pa: PhysAddr, size: usize, caller: &'static str) -> Result<VirtAddr, VmError> {
    with_vm(|vm, pt| vm.ioremap(pa, size as u64, caller, &PAGE_SOURCE, pt))
}

/// Linux's `iounmap`.
pub fn iounmap(va: VirtAddr) -> Result<(), VmError> {
    with_vm(|vm, pt| vm.iounmap(va, &PAGE_SOURCE, pt))
}

/// Linux's `__vmalloc`: `size` bytes of virtually contiguous memory from single pages.
/// A failure unwinds completely and is reported (unless `__GFP_NOWARN`) with the
/// Mem-Info block; the kernel carries on.
pub fn __vmalloc(size: usize, gfp: Gfp, caller: &'static str) -> Result<VirtAddr, VmallocError> {
    // The per-page failures are summed up in one vmalloc report, as in Linux.
    let r = with_vm(|vm, pt| vm.vmalloc(size, gfp | Gfp::GFP_NOWARN, caller, &PAGE_SOURCE, pt));
    r.map_err(|mut e| {
        e.gfp = gfp;
        if !gfp.contains(Gfp::GFP_NOWARN) {
            printk::with_console(|w| {
                use core::fmt::Write;
                let _ = writeln!(w, "{e}");
                let _ = mm::page_alloc::report::show_free_areas(&PAGES, w);
            });
        }
        e
    })
}

/// Linux's `vmalloc` (GFP_KERNEL).
pub fn vmalloc(size: usize, caller: &'static str) -> Result<VirtAddr, VmallocError> {
    __vmalloc(size, GFP_KERNEL, caller)
}

/// Linux's `vzalloc`.
pub fn vzalloc(size: usize, caller: &'static str) -> Result<VirtAddr, VmallocError> {
    __vmalloc(size, GFP_KERNEL | Gfp::GFP_ZERO, caller)
}

/// Linux's `vfree`: refuses (with a message) an address that is not a live area.
pub fn vfree(va: VirtAddr) -> Result<(), VmError> {
    with_vm(|vm, pt| vm.vfree(va, &PAGE_SOURCE, pt)).inspect_err(|e| pr_err!("WARNING: {e}"))
}

/// Linux's `vmap`: maps the caller's pages contiguously (they stay the caller's).
pub fn vmap(pages: &[PhysAddr], prot: mm::pgtable::Prot, caller: &'static str) -> Result<VirtAddr, VmError> {
    with_vm(|vm, pt| vm.vmap(pages, prot, caller, &PAGE_SOURCE, pt))
}

/// Linux's `vunmap`: removes a `vmap` mapping (the pages are not freed).
pub fn vunmap(va: VirtAddr) -> Result<(), VmError> {
    with_vm(|vm, pt| vm.vunmap(va, &PAGE_SOURCE, pt))
}

/// Linux's `vmalloc_to_page`, as a physical address.
pub fn vmalloc_to_page(va: VirtAddr) -> Option<PhysAddr> {
    VMALLOC.lock().with_pt(|vm, pt| vm.vmalloc_to_page(va, pt)).flatten()
}

/// Linux's `is_vmalloc_addr`.
pub fn is_vmalloc_addr(va: VirtAddr) -> bool {
    mm::pgtable::layout::is_vmalloc_addr(va.as_u64())
}

/// 2 MiB blocks mapping live vmalloc areas.
pub fn nr_huge_blocks() -> usize {
    VMALLOC.lock().nr_huge_blocks()
}

/// Gives back the vmap node chunks the areas no longer need (see
/// [`mm::vmalloc::VmapAreas::shrink_nodes`]); returns the chunks given back.
pub fn shrink_nodes() -> usize {
    VMALLOC.lock().shrink_nodes()
}

/// Pages mapped by vmalloc and page-table pages of the vmalloc/ioremap ranges.
pub fn usage() -> (usize, usize) {
    let vm = VMALLOC.lock();
    (vm.nr_vmalloc_pages(), vm.nr_table_pages())
}
