//! The kernel's virtual address-space layout (TTBR1, 39-bit VA, 4 KiB granule) and the
//! MAIR attribute indices the descriptors refer to: the constants are defined (and their
//! relations asserted) in the `consts` crate, re-exported here; the address helpers
//! (`__va`/`__pa`-style conversions, range tests) are mm's.

pub use consts::memory::{
    IOREMAP_END, IOREMAP_START, KERNEL_VA_BASE, KIMAGE_VADDR, LINEAR_MAP_SIZE, MAIR_EL1_VALUE, MT_DEVICE_NGNRE,
    MT_NORMAL, MT_NORMAL_NC, PAGE_OFFSET, STACKS_START, STACK_GUARD_SIZE, STACK_SLOT_SIZE, T1SZ, VA_BITS, VMALLOC_END,
    VMALLOC_START,
};

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
