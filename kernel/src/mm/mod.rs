//! The kernel's memory manager: the `mm` crate's allocators bound to the hardware.
//!
//! Boot order ([`init`]): memblock from the mailbox's ARM memory with the reserved
//! ranges, the kernel's own page tables (W^X image, linear map, guard page under the boot
//! stack), the buddy allocator with every remaining page, kmalloc as the global
//! allocator, then ioremap of the peripherals and TTBR0 switched off, so NULL and low
//! addresses fault from then on.
//!
//! Locking: every allocator lock is an `mm::sync::SpinLock`, which masks this CPU's
//! interrupts while held (spin_lock_irqsave by type), so an interrupt handler may
//! allocate with GFP_ATOMIC without finding a lock held by the code it interrupted.
//! Lock order where two are taken: the vmalloc areas, then the kernel page table; the
//! second is only reachable through the first's guard (`mm::vmalloc::VmSpace`).

pub mod allocation;
pub mod fail_dump;
pub mod fault;
pub mod heap;
pub mod kfence;
pub mod kmemleak;
pub mod memblock;
pub mod memmap;
pub mod migrate;
pub mod mmu;
pub mod page_alloc;
pub mod page_owner;
pub mod slab;
pub mod slab_hooks;
pub mod vmalloc;

use crate::percpu::{online_mask, smp_processor_id};
use crate::pr_info;
use mm::addr::{PhysAddr, VirtAddr};
use mm::cpu::CpuId;
use mm::pgtable::layout::PAGE_OFFSET;

/// Linux's `__va`: the linear-map address of a physical address (RAM is mapped at
/// `PAGE_OFFSET` for the kernel's whole life): mm's [`PhysAddr::linear_va`], which
/// `platform.rs`, below this layer, calls directly.
pub const fn phys_to_virt(pa: PhysAddr) -> VirtAddr {
    pa.linear_va()
}

/// Linux's `__pa` for linear-map addresses. The caller checks that `va` is one; an
/// address below `PAGE_OFFSET` wraps to a meaningless value.
pub const fn virt_to_phys(va: VirtAddr) -> PhysAddr {
    PhysAddr::new(va.as_u64().wrapping_sub(PAGE_OFFSET))
}

/// Free pages with every cache given back: per-CPU page lists drained, the vmap node
/// chunks the areas no longer need and the empty slabs returned, so that the count does
/// not depend on what happens to be cached (the sweep's and stress's leak checks).
pub fn settled_free_pages() -> u64 {
    drain_all_cpu_caches();
    // The vmap nodes first: the node chunks it gives back are slab objects.
    vmalloc::shrink_nodes();
    slab::SLAB.shrink_all();
    // The empty slabs went to this CPU's page lists.
    page_alloc::PAGES.drain_cpu(smp_processor_id());
    page_alloc::PAGES.snapshot().nr_free_pages()
}

fn drain_local(_: usize) {
    let cpu = smp_processor_id();
    slab::SLAB.drain_cpu(cpu);
    page_alloc::PAGES.drain_cpu(cpu);
}

/// Linux's `drain_all_pages` with the slab's per-CPU arrays: every online CPU drains
/// its own per-CPU lists, the others in a function-call IPI; the lists of CPUs that
/// are not online (nobody uses them) are drained from here. The page lists belong to
/// their CPU (no lock), so an online CPU that did not answer the IPI keeps its lists.
pub fn drain_all_cpu_caches() {
    let me = smp_processor_id();
    let online = online_mask();
    let ran = crate::smp_call::smp_call_function_many(online, drain_local, 0, true);
    drain_local(0);
    for cpu in CpuId::all().filter(|&c| c != me && ran & (1 << c.index()) == 0) {
        slab::SLAB.drain_cpu(cpu);
        if online & (1 << cpu.index()) == 0 {
            page_alloc::PAGES.drain_cpu(cpu);
        }
    }
}

/// Brings up all of memory management. `dtb` is the loader's x0.
pub fn init(dtb: u64) {
    let mut mb = memblock::setup(dtb);
    // From here on the kernel page table lives in the vmalloc space, under its lock order.
    vmalloc::VMALLOC.install(mmu::paging_init(&mut mb));
    page_alloc::init(&mut mb);
    memblock::print_memory_line(&mb);
    slab::init(crate::cmdline::flag(crate::platform::cmdline(), "slub_debug"));
    heap::switch_to_kmalloc();
    let slab_static = core::ptr::addr_of!(slab::SLAB) as usize;
    kmemleak::init([kfence::metadata_range(), (slab_static, slab_static + core::mem::size_of_val(&slab::SLAB))]);
    vmalloc::init();
    migrate::init();
    fault::init();
    kfence::init(&slab::SLAB.fail.attr);
    mmu::print_layout();
    pr_info!("mm: buddy, slab and vmalloc ready; NULL and low addresses now fault (TTBR0 off)");
}
