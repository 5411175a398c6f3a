//! The page size (Linux's `asm/page-def.h`): the 4 KiB translation granule.

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Size of a page in bytes.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
