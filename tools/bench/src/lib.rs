//! Host benchmarks of the `mm` allocators against peer allocators.
//!
//! The workload code lives here so that the criterion benches (`benches/allocators.rs`)
//! and the smoke test (`tests/smoke.rs`, run by `cargo test --workspace`) share it:
//!
//! - [`rng`]: a tiny deterministic xorshift generator.
//! - [`arena`]: page-aligned host memory the allocators carve.
//! - [`ours`]: our buddy allocator, its `PageSource` and the slab/kmalloc layer over host memory.
//! - [`peers`]: the peer allocators (talc, buddy_system_allocator, linked_list_allocator,
//!   the host's malloc) behind small adapters.
//! - [`pages`]: page-allocation workloads (alloc+free pairs, random mixed orders).
//! - [`small`]: kmalloc-sized workloads (pairs, batches, a random-size live set).
//! - [`interleaved`]: ratios measured with the allocators taking turns in short bursts
//!   (the `spread` binary), robust to a change in the machine's load.
//! - [`vmalloc`]: vmalloc+vfree against the floor of one order-0 allocation plus one
//!   page-table write per page.
//!
//! Benchmark ids are `group = workload`, `function = allocator name`; the `ratios` binary
//! turns criterion's estimates into a peer/ours table. [`OURS`] prefixes our allocators.

pub mod arena;
pub mod interleaved;
pub mod ours;
pub mod pages;
pub mod peers;
pub mod rng;
pub mod small;
pub mod vmalloc;

/// Prefix of the names of our allocators (every other name is a peer or a floor).
pub const OURS: &str = "ours";
