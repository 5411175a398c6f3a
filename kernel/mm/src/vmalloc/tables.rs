//! Page-table pages for the vmalloc and ioremap ranges, taken from the page allocator and
//! counted (meminfo's `PageTables`).

use crate::addr::PhysAddr;
use crate::gfp::Gfp;
use crate::page_source::PageSource;
use crate::pgtable::TableAlloc;

/// A [`TableAlloc`] over a [`PageSource`] that keeps `count` up to date.
pub struct SourceTables<'a> {
    /// Where table pages come from and go back to.
    pub pages: &'a dyn PageSource,
    /// Flags for table pages (the library zeroes them itself).
    pub gfp: Gfp,
    /// Table pages currently held.
    pub count: &'a mut usize,
}

impl TableAlloc for SourceTables<'_> {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pa = self.pages.alloc_pages(self.gfp, 0)?;
        *self.count += 1;
        Some(pa)
    }
    fn free_table(&mut self, pa: PhysAddr) {
        self.pages.free_pages(pa, 0);
        *self.count = self.count.saturating_sub(1);
    }
}
