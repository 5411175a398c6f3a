//! The kernel's memory manager: the `mm` crate's allocators bound to the hardware.
//!
//! Boot order ([`init`]): memblock from the mailbox's ARM memory with the reserved
//! ranges, the kernel's own page tables (W^X image, linear map, guard page under the boot
//! stack), the buddy allocator with every remaining page, kmalloc as the global
//! allocator, then ioremap of the peripherals and TTBR0 switched off, so NULL and low
//! addresses fault from then on.
//!
//! Locking: the kernel runs with interrupts masked (it has no interrupt handlers), so
//! the allocators' spin locks can never be re-entered from an exception path. Lock
//! order where two are taken: `VMALLOC`, then `KERNEL_PT`.

pub mod fault;
pub mod heap;
pub mod memblock;
pub mod mmu;
pub mod page_alloc;
pub mod slab;
pub mod vmalloc;

use crate::pr_info;

/// Free pages with every cache given back: per-CPU page lists drained and empty slabs
/// returned, so that the count does not depend on what happens to be cached (the
/// sweep's and stress's leak checks).
pub fn settled_free_pages() -> u64 {
    slab::SLAB.drain_all();
    slab::SLAB.shrink_all();
    page_alloc::PAGES.drain_all();
    page_alloc::PAGES.nr_free_pages()
}

/// Brings up all of memory management. `dtb` is the loader's x0.
pub fn init(dtb: u64) {
    let mut mb = memblock::setup(dtb);
    mmu::paging_init(&mut mb);
    page_alloc::init(&mut mb);
    memblock::print_memory_line(&mb);
    slab::init(crate::cmdline::flag(crate::platform::cmdline(), "slub_debug"));
    heap::switch_to_kmalloc();
    vmalloc::init();
    fault::init();
    mmu::print_layout();
    pr_info!("mm: buddy, slab and vmalloc ready; NULL and low addresses now fault (TTBR0 off)");
}
