//! vmalloc: virtually contiguous kernel memory built from single pages, plus vmap and
//! ioremap, over the kernel page tables.
//!
//! - [`area`]: the vmap area allocator (best fit in O(log n), guard pages, freed ring);
//! - [`state`]: [`Vmalloc`], the allocator proper (`vmalloc`, `vfree`, `vmap`, `ioremap`);
//! - [`info`]: `/proc/vmallocinfo` and fault-report lookups;
//! - [`tables`]: page-table pages from the page allocator, counted;
//! - [`error`]: errors printed like Linux's reports.

pub mod area;
pub mod error;
pub mod info;
pub mod state;
pub mod tables;

pub use area::{AreaError, VmArea, VmKind, VmapAreas, GUARD_SIZE};
pub use error::{VmError, VmallocError, VmallocFail};
pub use info::VmHit;
pub use state::Vmalloc;
