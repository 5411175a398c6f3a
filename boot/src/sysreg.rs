//! The MMU's system-register values: MAIR_EL1, TCR_EL1 and SCTLR_EL1 as `entry.S`
//! programs them, built from the typed `aarch64-cpu` fields, and the early block and
//! table descriptors built from the descriptor bits in `consts::pgtable_hwdef`.
//!
//! `entry.S` takes every one of these values from here (`global_asm!` const operands in
//! `lib.rs`), so the assembler and the Rust page-table code cannot disagree.

use aarch64_cpu::registers::{MAIR_EL1, SCTLR_EL1, TCR_EL1};
use consts::memory::{MAIR_EL1_VALUE, MT_DEVICE_NGNRE, MT_NORMAL, MT_NORMAL_NC, T1SZ, VA_BITS};
use consts::pgtable_hwdef::{attrindx, PTE_AF, PTE_PXN, PTE_SHARED, PTE_TABLE_BIT, PTE_UXN, PTE_VALID};

/// MAIR_EL1: Normal write-back RA/WA at [`MT_NORMAL`], Device-nGnRE at
/// [`MT_DEVICE_NGNRE`], Normal non-cacheable at [`MT_NORMAL_NC`].
pub const MAIR: u64 = MAIR_EL1::Attr0_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr0_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr1_Device::nonGathering_nonReordering_EarlyWriteAck.value
    | MAIR_EL1::Attr2_Normal_Outer::NonCacheable.value
    | MAIR_EL1::Attr2_Normal_Inner::NonCacheable.value;

const _: () = assert!(MAIR == MAIR_EL1_VALUE, "boot's MAIR and the consts crate's attribute indices disagree");
const _: () = assert!(MT_NORMAL == 0 && MT_DEVICE_NGNRE == 1 && MT_NORMAL_NC == 2);

/// TCR_EL1 without IPS (entry.S fills it in from ID_AA64MMFR0_EL1.PARange): both halves
/// [`VA_BITS`]-bit, 4 KiB granules, write-back write-allocate walks, inner shareable.
pub const TCR: u64 = TCR_EL1::T0SZ.val(T1SZ as u64).value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::T1SZ.val(T1SZ as u64).value
    | TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::SH1::Inner.value
    | TCR_EL1::TG1::KiB_4.value;

const _: () = assert!(T1SZ == 64 - VA_BITS);

/// SCTLR_EL1 bits that are RES1 on ARMv8.0 (11, 20, 22, 23, 28, 29): little endian,
/// MMU and caches off.
pub const SCTLR_EL1_RES1: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);

/// SCTLR_EL1 with the MMU (M), data cache (C), stack alignment checks (SA, SA0) and
/// instruction cache (I) on.
pub const SCTLR_EL1_MMU_ON: u64 = SCTLR_EL1_RES1
    | SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value
    | SCTLR_EL1::I::Cacheable.value;

/// Early-map block descriptor for Normal memory: valid block, [`MT_NORMAL`], inner
/// shareable, access flag set.
pub const PMD_NORMAL: u64 = PTE_VALID | attrindx(MT_NORMAL) | PTE_SHARED | PTE_AF;

/// Early-map block descriptor for Device-nGnRE: valid block, [`MT_DEVICE_NGNRE`], access
/// flag set, never executable.
pub const PMD_DEVICE: u64 = PTE_VALID | attrindx(MT_DEVICE_NGNRE) | PTE_AF | PTE_PXN | PTE_UXN;

/// Table descriptor bits (levels 0-2).
pub const TABLE_DESC: u64 = PTE_VALID | PTE_TABLE_BIT;

#[cfg(test)]
mod tests {
    use super::*;

    // The values entry.S used as literals before they came from here.
    #[test]
    fn values_match_the_architecture_reference() {
        assert_eq!(MAIR, 0x4404ff);
        assert_eq!(TCR, 0xB519_3519);
        assert_eq!(SCTLR_EL1_RES1, 0x30d0_0800);
        assert_eq!(SCTLR_EL1_MMU_ON, 0x30d0_181d);
        assert_eq!(PMD_NORMAL, 0x701);
        assert_eq!(PMD_DEVICE, 0x0060_0000_0000_0405);
        assert_eq!(TABLE_DESC, 0x3);
    }
}
