//! The kernel's memory map (Linux's `asm/memory.h`): the TTBR1 virtual address layout
//! (39-bit VA, 4 KiB granule), where the image is loaded and linked, the per-CPU stack
//! slots, and the MAIR attribute indices the descriptors refer to.

use crate::page_def::PAGE_SIZE;
use crate::NR_CPUS;

/// Number of VA bits translated by TTBR1 (T1SZ = 64 - 39 = 25).
pub const VA_BITS: u32 = 39;
/// TCR_EL1.T1SZ for [`VA_BITS`].
pub const T1SZ: u32 = 64 - VA_BITS;
/// Lowest kernel VA (bottom of the TTBR1 range).
pub const KERNEL_VA_BASE: u64 = !0u64 << VA_BITS;

/// Linear map of RAM: phys 0 is at this VA.
pub const PAGE_OFFSET: u64 = 0xFFFF_FF80_0000_0000;
/// Largest linear map (4 GiB).
pub const LINEAR_MAP_SIZE: u64 = 4 << 30;
/// First VA of the vmalloc range.
pub const VMALLOC_START: u64 = 0xFFFF_FFA0_0000_0000;
/// End (exclusive) of the vmalloc range (64 GiB).
pub const VMALLOC_END: u64 = 0xFFFF_FFB0_0000_0000;
/// First VA of the ioremap range.
pub const IOREMAP_START: u64 = 0xFFFF_FFB0_0000_0000;
/// End (exclusive) of the ioremap range (1 GiB).
pub const IOREMAP_END: u64 = 0xFFFF_FFB0_4000_0000;
/// Kernel image: VA = KIMAGE_VADDR + phys (`linker/kernel.ld` links it there and asserts
/// its copy against the value `boot/src/entry.S` exports from here).
pub const KIMAGE_VADDR: u64 = 0xFFFF_FFC0_0000_0000;
/// Physical address the firmware loads a 64-bit kernel image at and jumps to (Linux's
/// historical arm64 `TEXT_OFFSET`); the chainloader puts the kernels it receives there.
pub const TEXT_OFFSET: u64 = 0x80000;
/// Per-CPU stack region.
pub const STACKS_START: u64 = 0xFFFF_FFD0_0000_0000;
/// Size of one stack slot: a guard page below a 60 KiB stack. Slots are aligned to their
/// size, so `vectors.S` finds the slot of a stack pointer with a mask.
pub const STACK_SLOT_SIZE: u64 = 64 << 10;
/// Unmapped guard at the bottom of each stack slot: an overflow faults.
pub const STACK_GUARD_SIZE: u64 = 4 << 10;

/// MAIR_EL1 index of Normal write-back, inner-shareable RAM.
pub const MT_NORMAL: u64 = 0;
/// MAIR_EL1 index of Device-nGnRE.
pub const MT_DEVICE_NGNRE: u64 = 1;
/// MAIR_EL1 index of Normal non-cacheable.
pub const MT_NORMAL_NC: u64 = 2;
/// MAIR_EL1 value matching the indices above (`boot` asserts its typed value against it).
pub const MAIR_EL1_VALUE: u64 = 0xff | (0x04 << 8) | (0x44 << 16);

/// Index of the 1 GiB level-1 entry of TTBR1 that maps `va` (`entry.S`'s early tables).
pub const fn ttbr1_l1_index(va: u64) -> u64 {
    (va - KERNEL_VA_BASE) >> 30
}

// The regions lie inside TTBR1, do not overlap, and are placed as entry.S and the
// page-table code expect.
const _: () = {
    assert!(T1SZ == 64 - VA_BITS);
    assert!(PAGE_OFFSET == KERNEL_VA_BASE, "entry.S maps the linear map at TTBR1 L1[0]");
    assert!(PAGE_OFFSET + LINEAR_MAP_SIZE <= VMALLOC_START);
    assert!(VMALLOC_START < VMALLOC_END && VMALLOC_END <= IOREMAP_START);
    assert!(IOREMAP_START < IOREMAP_END && IOREMAP_END <= KIMAGE_VADDR);
    assert!(KIMAGE_VADDR.is_multiple_of(1 << 30), "entry.S maps the image with one 1 GiB L1 entry");
    assert!(KIMAGE_VADDR < STACKS_START);
    assert!(STACKS_START.is_multiple_of(STACK_SLOT_SIZE), "stack slots are aligned to their size");
    assert!(STACKS_START.checked_add(NR_CPUS as u64 * STACK_SLOT_SIZE).is_some(), "the stacks fit in TTBR1");
    assert!(STACK_SLOT_SIZE.is_power_of_two() && STACK_GUARD_SIZE < STACK_SLOT_SIZE);
    assert!(STACK_GUARD_SIZE == PAGE_SIZE as u64, "the guard is one page");
    assert!(TEXT_OFFSET.is_multiple_of(PAGE_SIZE as u64));
    assert!(MT_NORMAL < 8 && MT_DEVICE_NGNRE < 8 && MT_NORMAL_NC < 8, "AttrIndx is 3 bits");
    assert!((MAIR_EL1_VALUE >> (8 * MT_NORMAL)) & 0xff == 0xff, "MT_NORMAL: write-back RA/WA");
    assert!((MAIR_EL1_VALUE >> (8 * MT_DEVICE_NGNRE)) & 0xff == 0x04, "MT_DEVICE_NGNRE: Device-nGnRE");
    assert!((MAIR_EL1_VALUE >> (8 * MT_NORMAL_NC)) & 0xff == 0x44, "MT_NORMAL_NC: non-cacheable");
};
