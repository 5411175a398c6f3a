//! AArch64 stage-1 descriptor bits, 4 KiB granule (Linux's `asm/pgtable-hwdef.h`):
//! shared by `mm::pgtable` (which builds the kernel's tables) and `boot`'s early tables.

/// Descriptor is valid.
pub const PTE_VALID: u64 = 1 << 0;
/// At levels 0-2: table descriptor (vs block); at level 3 it must be set for a page.
pub const PTE_TABLE_BIT: u64 = 1 << 1;
/// `AttrIndx[2:0]`: index into MAIR_EL1.
pub const PTE_ATTRINDX_MASK: u64 = 7 << 2;
/// `AP[1]`: EL0 access.
pub const PTE_USER: u64 = 1 << 6;
/// `AP[2]`: read-only.
pub const PTE_RDONLY: u64 = 1 << 7;
/// `SH[1:0]` = inner shareable.
pub const PTE_SHARED: u64 = 3 << 8;
/// Access flag (no AF faults wanted: always set on valid leaves).
pub const PTE_AF: u64 = 1 << 10;
/// Not global (ASID-tagged).
pub const PTE_NG: u64 = 1 << 11;
/// Privileged execute-never.
pub const PTE_PXN: u64 = 1 << 53;
/// Unprivileged execute-never.
pub const PTE_UXN: u64 = 1 << 54;
/// Output address bits `[47:12]`.
pub const PTE_ADDR_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// Encodes a MAIR index into AttrIndx.
pub const fn attrindx(mt: u64) -> u64 {
    (mt & 7) << 2
}

const _: () = {
    assert!(PTE_ADDR_MASK.trailing_zeros() == crate::page_def::PAGE_SHIFT, "output addresses are page frames");
    assert!(attrindx(7) == PTE_ATTRINDX_MASK);
};
