//! Memory-management core of the kernel, free of hardware so that it builds and is tested
//! on the host as well as on the Raspberry Pi.
//!
//! The kernel (`kernel/`) wraps these pieces with the hardware edge: the linear map, locks
//! with interrupts masked, TLB instructions and the real page frames. Here everything goes
//! through small traits ([`page_source::PageSource`], the page-table memory accessor), so the
//! host tests can run the very same code over simulated RAM.
//!
//! - [`addr`]: physical and virtual addresses as distinct types, page arithmetic.
//! - [`debug`]: page_owner and the stack depot (who holds this memory).
//! - [`cpu`]: [`cpu::CpuId`], a CPU number checked against [`NR_CPUS`] once.
//! - [`gfp`]: the GFP allocation flags (`GFP_KERNEL`, `GFP_ATOMIC`, ...).
//! - [`fault_inject`]: Linux's fault-injection knobs, shared by `fail_page_alloc` and `fail_slab`.
//! - [`page_source`]: how the slab and vmalloc layers ask for page frames.
//! - [`memblock`]: the early boot allocator over fixed region arrays.
//! - [`page_alloc`]: the buddy page allocator (zones, per-CPU lists, reports).
//! - [`pgtable`]: AArch64 page tables (heap-free) and the kernel's address-space layout.
//! - [`vmalloc`]: vmap areas, vmalloc/vfree, vmap, ioremap, /proc/vmallocinfo.
//! - [`slab`]: the slab allocator and `kmalloc`, the kernel heap.
//! - [`sync`]: the spin lock the allocators share between CPUs and interrupt handlers
//!   (interrupts masked while held: `spin_lock_irqsave` by type).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod addr;
pub mod cpu;
pub mod debug;
pub mod fault_inject;
pub mod gfp;
pub mod memblock;
pub mod owner;
pub mod page_alloc;
pub mod page_source;
pub mod pgtable;
pub mod slab;
pub mod sync;
pub mod vmalloc;

/// Number of CPUs the allocators keep per-CPU state for (the Pi 3's four Cortex-A53
/// cores), defined in the `consts` crate; `page_alloc` and `slab` re-export it.
pub use consts::NR_CPUS;
