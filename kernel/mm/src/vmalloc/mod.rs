//! vmalloc: virtually contiguous kernel memory built from single pages, plus vmap and
//! ioremap, over the kernel page tables.
//!
//! - [`area`]: the vmap area allocator (best fit in O(log n), guard pages, freed ring);
//! - [`state`]: [`Vmalloc`], the allocator proper (`vmalloc`, `vfree`, `vmap`, `ioremap`);
//! - [`space`]: [`VmSpace`], the state and its page table under one lock order (a type);
//! - [`info`]: `/proc/vmallocinfo` and fault-report lookups;
//! - [`migrate`]: moving a `__GFP_MOVABLE` vmalloc's pages (compaction, CMA);
//! - [`tables`]: page-table pages from the page allocator, counted;
//! - [`error`]: errors printed like Linux's reports.

pub mod area;
pub mod error;
pub mod info;
pub mod migrate;
pub mod movable;
pub mod space;
pub mod state;
pub mod tables;
mod treap;
pub mod vm_area;

pub use area::{AreaError, VmArea, VmKind, VmapAreas, GUARD_SIZE};
pub use error::{VmError, VmallocError, VmallocFail};
pub use info::VmHit;
pub use movable::{movable_owner, movable_va, VMALLOC_MOVABLE};
pub use space::{VmGuard, VmSpace};
pub use state::Vmalloc;
