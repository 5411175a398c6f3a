//! Memory debugging that answers "who holds this memory", free of hardware so the host
//! tests run the same code: [`stack_depot`] (call traces stored once), [`page_owner`]
//! (who allocated and last freed each page), [`kfence`] (the sampling pool's slot
//! bookkeeping) and [`kmemleak`] (the object table and its mark-and-scan). The kernel
//! (`kernel/src/mm/debug/`) captures the traces and binds them to the allocators.

pub mod kfence;
pub mod kmemleak;
pub mod page_owner;
pub mod stack_depot;
