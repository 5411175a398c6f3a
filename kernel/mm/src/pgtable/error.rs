//! Page-table errors: values, never panics.

use core::fmt;

use crate::addr::{PhysAddr, VirtAddr};

/// Why a page-table operation was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtError {
    /// A virtual address or size is not page aligned.
    UnalignedVirt(VirtAddr),
    /// A physical address is not page aligned.
    UnalignedPhys(PhysAddr),
    /// The size is zero or not a multiple of the page size.
    BadSize(u64),
    /// The range leaves the address space of this table.
    OutOfRange(VirtAddr),
    /// The physical range goes beyond 48 bits.
    PhysOutOfRange(PhysAddr),
    /// Part of the range is already mapped (nothing was replaced).
    Overlap(VirtAddr),
    /// Part of the range is not mapped (`protect`).
    NotMapped(VirtAddr),
    /// The table allocator ran dry (what the call had mapped was rolled back).
    NoTableMemory,
    /// The caller's page supplier gave up (`map_pages`; rolled back as well).
    NoPageMemory,
}

impl fmt::Display for PtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PtError::UnalignedVirt(va) => write!(f, "virtual address {va:#x} not page aligned"),
            PtError::UnalignedPhys(pa) => write!(f, "physical address {pa:#x} not page aligned"),
            PtError::BadSize(s) => write!(f, "bad size {s:#x}"),
            PtError::OutOfRange(va) => write!(f, "address {va:#x} outside the table's range"),
            PtError::PhysOutOfRange(pa) => write!(f, "physical address {pa:#x} beyond 48 bits"),
            PtError::Overlap(va) => write!(f, "{va:#x} is already mapped"),
            PtError::NotMapped(va) => write!(f, "{va:#x} is not mapped"),
            PtError::NoTableMemory => f.write_str("out of page-table pages"),
            PtError::NoPageMemory => f.write_str("out of pages"),
        }
    }
}
