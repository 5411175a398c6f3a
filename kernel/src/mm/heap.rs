//! The kernel's `#[global_allocator]` (Box, Vec, String...): every allocation goes through
//! kmalloc, and requests above the largest kmalloc cache through `kvmalloc` (contiguous
//! pages when they are free, vmalloc otherwise). Frees find their allocator from the
//! address. Nothing allocates before the slab allocator exists (boot code formats on the
//! stack); an allocation that early fails, and Rust reports it as a panic.

use super::slab::SLAB;
use super::vmalloc::{__vmalloc, is_vmalloc_addr, vfree};
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};
use mm::addr::{VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::slab::KMALLOC_MAX_CACHE_SIZE;

static SLAB_READY: AtomicBool = AtomicBool::new(false);

/// From now on, allocations are served (the slab allocator is ready).
pub fn switch_to_kmalloc() {
    SLAB_READY.store(true, Ordering::Release);
}

/// Linux's `kvmalloc`: kmalloc when it can be had without a report, else vmalloc.
pub fn kvmalloc(size: usize, gfp: Gfp) -> Option<VirtAddr> {
    let quiet = gfp | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY;
    if let Some(p) = SLAB.kmalloc(size, quiet, crate::percpu::smp_processor_id()) {
        return Some(VirtAddr::new(p.as_ptr() as u64));
    }
    __vmalloc(size, gfp, "kvmalloc").ok()
}

struct KernelAllocator;

// SAFETY: every path returns memory of at least `layout.size()` bytes aligned to
// `layout.align()` or null, and frees go back to the allocator that produced them.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !SLAB_READY.load(Ordering::Acquire) {
            return core::ptr::null_mut();
        }
        if layout.size() <= KMALLOC_MAX_CACHE_SIZE || layout.align() > PAGE_SIZE {
            return SLAB.alloc_layout(layout, GFP_KERNEL, crate::percpu::smp_processor_id());
        }
        kvmalloc(layout.size(), GFP_KERNEL).map_or(core::ptr::null_mut(), |v| v.as_mut_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let a = ptr as usize;
        if is_vmalloc_addr(VirtAddr::new(a as u64)) {
            let _ = vfree(VirtAddr::new(a as u64));
        } else {
            // SAFETY: the pointer came from kmalloc with this layout.
            unsafe { SLAB.dealloc_layout(ptr, layout, crate::percpu::smp_processor_id()) };
        }
    }
}

#[global_allocator]
static ALLOCATOR: KernelAllocator = KernelAllocator;
