//! The slab allocator and `kmalloc`: the kernel heap.
//!
//! Objects of one size live in a *cache* ([`cache::KmemCache`], Linux's `struct kmem_cache`).
//! A cache carves *slabs* (blocks of `2^order` pages taken from a
//! [`PageSource`](crate::page_source::PageSource)) into equal objects. The design follows
//! Linux's SLAB allocator for the hot path and SLUB for debugging:
//!
//! - every CPU has an `array_cache` of free object pointers ([`percpu`]): allocation and
//!   free touch only that array, with one compare-exchange and without masking
//!   interrupts (a held array sends the request to the slabs instead); the array is
//!   refilled from, and flushed in batches to, the cache's node: its shared array
//!   (`shared`, Linux SLAB's `n->shared`, eight batches) first, then its lists
//!   (partial, full, free slabs);
//! - the slab header sits at the start of the slab; the owner word of every page of a slab
//!   names the cache, so `kfree` finds the cache of any object from its address alone
//!   (its fast path reads the word straight from the page descriptor, Linux's
//!   `virt_to_slab`, once the allocator knows the descriptor array:
//!   [`SlabAllocator::set_mem_map`]);
//! - free objects inside a slab are chained by hardened free pointers
//!   (`SLAB_FREELIST_HARDENED`): stored XORed with a per-cache secret and their own address,
//!   and checked to land on an object boundary of the same slab before being followed;
//! - debug mode ([`debug`]) adds SLUB's red zones and poisoning and refuses double frees,
//!   invalid frees and use of corrupted objects, reporting each through a [`SlabReporter`].
//!
//! [`kmalloc::SlabAllocator`] holds a fixed registry of caches (no heap: it *is* the heap),
//! creates the `kmalloc-8` ... `kmalloc-8k` caches at init and sends larger requests to the
//! page source as compound blocks. [`slabinfo`] prints `/proc/slabinfo` (version 2.1).

pub mod cache;
pub mod debug;
pub mod error;
pub mod failslab;
pub mod flags;
#[cfg(any(test, feature = "test-support"))]
pub mod fuzz;
mod header;
#[cfg(any(test, feature = "test-support"))]
pub mod host;
pub mod kmalloc;
mod layout;
mod node;
pub mod percpu;
mod raw;
mod shared;
pub mod slabinfo;
mod slabs;
mod virt_to_slab;

pub use cache::CacheId;
pub use error::{FixLine, SlabError, SlabErrorKind, SlabFix, SlabReporter};
pub use flags::{Ctor, SlabFlags};
pub use kmalloc::{SlabAllocator, SlabCreateError, KMALLOC_NAMES, ZERO_SIZE_PTR};

pub use crate::page_alloc::MAX_PAGE_ORDER;
pub use crate::NR_CPUS;
/// Size of the cache registry.
pub const MAX_CACHES: usize = 64;

// A slab page's owner word holds every registry index and every page order.
const _: () = assert!(MAX_CACHES as u64 <= crate::owner::SLAB_LOW_LIMIT);
const _: () = assert!((MAX_PAGE_ORDER as u64) < crate::owner::SLAB_LOW_LIMIT);
/// Largest slab order (64 KiB slabs), like SLUB's `slub_max_order` (3) plus one so that
/// `kmalloc-8k` wastes little with an on-slab header.
pub const SLAB_MAX_ORDER: u32 = 4;
/// The largest kmalloc object served from a cache; larger requests become compound blocks.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 8192;

// The facts tied together: the largest kmalloc cache is the last of `KMALLOC_NAMES`, one of
// its objects fits a slab of the largest slab order after the header, and slabs are blocks
// the buddy allocator can hand out.
const _: () = assert!(KMALLOC_NAMES[KMALLOC_NAMES.len() - 1].1 == KMALLOC_MAX_CACHE_SIZE);
const _: () = assert!(KMALLOC_MAX_CACHE_SIZE + header::HEADER_SIZE <= crate::addr::PAGE_SIZE << SLAB_MAX_ORDER);
const _: () = assert!(SLAB_MAX_ORDER <= MAX_PAGE_ORDER);
