//! The kernel's virtual address-space layout (TTBR1, 39-bit VA, 4 KiB granule) and the
//! MAIR attribute indices the descriptors refer to.

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
/// Kernel image: VA = KIMAGE_VADDR + phys.
pub const KIMAGE_VADDR: u64 = 0xFFFF_FFC0_0000_0000;
/// Per-CPU stack region.
pub const STACKS_START: u64 = 0xFFFF_FFD0_0000_0000;
/// Size of one per-CPU stack slot; its lowest [`STACK_GUARD_SIZE`] bytes stay unmapped.
pub const STACK_SLOT_SIZE: u64 = 64 << 10;
/// Unmapped guard at the bottom of each stack slot.
pub const STACK_GUARD_SIZE: u64 = 4 << 10;

/// MAIR_EL1 index of Normal write-back, inner-shareable RAM.
pub const MT_NORMAL: u64 = 0;
/// MAIR_EL1 index of Device-nGnRE.
pub const MT_DEVICE_NGNRE: u64 = 1;
/// MAIR_EL1 index of Normal non-cacheable.
pub const MT_NORMAL_NC: u64 = 2;
/// MAIR_EL1 value matching the indices above.
pub const MAIR_EL1_VALUE: u64 = 0xff | (0x04 << 8) | (0x44 << 16);

/// VA of a physical address in the linear map.
pub const fn phys_to_linear(pa: u64) -> u64 {
    PAGE_OFFSET + pa
}

impl crate::addr::PhysAddr {
    /// The address's VA in the linear map (Linux's `__va`); every RAM address has one
    /// (RAM lies below [`LINEAR_MAP_SIZE`]).
    pub const fn linear_va(self) -> crate::addr::VirtAddr {
        crate::addr::VirtAddr::new(phys_to_linear(self.as_u64()))
    }
}

impl crate::addr::VirtAddr {
    /// Whether the address lies in the linear map range.
    pub const fn is_linear(self) -> bool {
        self.as_u64() >= PAGE_OFFSET && self.as_u64() - PAGE_OFFSET < LINEAR_MAP_SIZE
    }
    /// The physical address of a linear-map VA (Linux's `__pa`); `None` outside the
    /// linear map range.
    pub const fn linear_pa(self) -> Option<crate::addr::PhysAddr> {
        if self.is_linear() {
            Some(crate::addr::PhysAddr::new(self.as_u64() - PAGE_OFFSET))
        } else {
            None
        }
    }
}

/// VA of a physical address inside the kernel image mapping.
pub const fn phys_to_kimage(pa: u64) -> u64 {
    KIMAGE_VADDR + pa
}

/// Whether `va` lies in the vmalloc range.
pub const fn is_vmalloc_addr(va: u64) -> bool {
    va >= VMALLOC_START && va < VMALLOC_END
}

/// Whether `va` lies in the ioremap range.
pub const fn is_ioremap_addr(va: u64) -> bool {
    va >= IOREMAP_START && va < IOREMAP_END
}

/// Base VA of CPU `cpu`'s stack slot (the guard page is its lowest page).
pub const fn stack_slot(cpu: u64) -> u64 {
    STACKS_START + cpu * STACK_SLOT_SIZE
}

// The regions must not overlap: checked at compile time.
const _: () = {
    assert!(PAGE_OFFSET + LINEAR_MAP_SIZE <= VMALLOC_START);
    assert!(VMALLOC_END <= IOREMAP_START);
    assert!(IOREMAP_END <= KIMAGE_VADDR);
    assert!(KIMAGE_VADDR < STACKS_START);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_inside_ttbr1_and_disjoint() {
        assert_eq!(KERNEL_VA_BASE, 0xFFFF_FF80_0000_0000);
        assert_eq!(PAGE_OFFSET, KERNEL_VA_BASE);
        use crate::addr::{PhysAddr, VirtAddr};
        let pa = PhysAddr::new(0x3b40_0123);
        assert_eq!(pa.linear_va(), VirtAddr::new(PAGE_OFFSET + 0x3b40_0123));
        assert_eq!(pa.linear_va().linear_pa(), Some(pa));
        assert_eq!(VirtAddr::new(PAGE_OFFSET - 1).linear_pa(), None);
        assert_eq!(VirtAddr::new(PAGE_OFFSET + LINEAR_MAP_SIZE).linear_pa(), None);
        assert_eq!(
            VirtAddr::new(PAGE_OFFSET + LINEAR_MAP_SIZE - 1).linear_pa(),
            Some(PhysAddr::new(LINEAR_MAP_SIZE - 1))
        );
        assert_eq!(VMALLOC_END - VMALLOC_START, 64 << 30);
        assert_eq!(T1SZ, 25);
        assert!(is_vmalloc_addr(VMALLOC_START) && !is_vmalloc_addr(VMALLOC_END));
        assert!(is_ioremap_addr(IOREMAP_START) && !is_ioremap_addr(IOREMAP_END));
    }
}
