//! Boot heap: a small `linked_list_allocator` heap so `alloc` works from the first line
//! of Rust. It serves until kmalloc takes over.

use linked_list_allocator::LockedHeap;

const BOOT_HEAP_SIZE: usize = 256 * 1024;

#[repr(align(4096))]
struct HeapArea([u8; BOOT_HEAP_SIZE]);

static mut BOOT_HEAP: HeapArea = HeapArea([0; BOOT_HEAP_SIZE]);

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Hands the boot heap to the allocator. Call once, before any allocation.
pub fn init() {
    // SAFETY: called once at boot on one CPU; BOOT_HEAP is used only by the allocator.
    unsafe {
        let start = core::ptr::addr_of_mut!(BOOT_HEAP.0) as *mut u8;
        ALLOCATOR.lock().init(start, BOOT_HEAP_SIZE);
    }
}
