//! The buddy page allocator: zones of naturally aligned `2^order`-page blocks on
//! per-migratetype free lists, per-CPU lists for orders 0..=3, Linux watermarks, and
//! checks that refuse bad frees instead of corrupting the lists.
//!
//! It never allocates from the heap (it runs before one exists): the page descriptors
//! (`mem_map`) are supplied by the caller, and everything else is fixed-size state inside
//! [`PageAllocator`], which can be a `static` shared by the four CPUs.
//!
//! Locking: each zone's free lists sit in a `crate::sync::SpinLock<Zone>`; each CPU has its
//! own [`PerCpuPages`] per zone, used only by that CPU with its interrupts masked (Linux's
//! local lock, see [`pcp`]). The fast path (orders 0..=3) masks interrupts and touches only
//! this CPU's lists: no lock and no atomic read-modify-write; refills and drains take the
//! zone lock inside it (order: this CPU's lists, then zone).
//!
//! Accounting choice (as Linux): pages on per-CPU lists are free memory, so they count in
//! [`VmStat::nr_free_pages`] and MemFree, but not in the zone's `free_pages`
//! (`NR_FREE_PAGES`), in watermark checks or in `buddyinfo`, which show buddy lists only.

mod alloc;
mod bulk;
pub mod cma;
pub mod compaction;
pub mod contig;
pub mod error;
pub mod fail;
mod free;
pub mod free_area;
#[cfg(any(test, feature = "test-support"))]
pub mod fuzz;
mod mem_map_cell;
pub mod memmap;
pub mod migrate;
pub mod migratetype;
pub mod page;
pub mod pcp;
pub mod report;
pub mod source;
pub mod vmstat;
pub mod watermark;
pub mod zone;

mod check;
#[cfg(test)]
mod cma_tests;
#[cfg(test)]
mod compaction_tests;
mod init;
#[cfg(test)]
mod migrate_tests;
#[cfg(test)]
mod tests;
mod zone_meta;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::addr::Pfn;
use crate::cpu::CpuId;
use crate::gfp::Gfp;

pub use check::{check_invariants, PageCensus};
pub use cma::{Cma, CmaAllocStats, CmaError, CmaStats};
pub use compaction::{extfrag_index, extfrag_indices, fragmentation_index, CompactResult, Compactor};
pub use contig::Evacuation;
pub use error::{AllocFailure, FreeError};
pub use fail::FailPageAlloc;
pub use init::InitError;
pub use mem_map_cell::MemMapCell;
pub use migrate::{
    BlockMove, MigrateBatch, MigrateCtx, MigrateError, MigrateEvents, MigrateMode, Migrator, MovableKind, MovableOps,
    MovableOwner, MovableRegistry, RegisterError, MAX_MOVABLE_KINDS, MIGRATE_BATCH,
};
pub use migratetype::{gfp_migratetype, MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_TYPES};
pub use page::{mem_map_overhead, MemMap, Page};
pub use pcp::{PerCpuPages, NR_CPUS, PCP_MAX_ORDER};
pub use source::BuddyPageSource;
pub use vmstat::{MemInfo, PagesetStats, VmEvents, VmStat, ZoneStats};
pub use watermark::{AllocFlags, Watermarks, Wmark};
pub use zone::Zone;

use pcp::LocalPcp;
use zone_meta::{ZoneGuard, ZoneMeta};

/// Largest order, inclusive: blocks of up to `2^16` pages = 256 MiB.
///
/// 256 MiB is the largest naturally aligned free block a Pi 3 can have: its ARM RAM is
/// under 1 GiB and the kernel image sits in the low 512 MiB, so no 512 MiB-aligned
/// 512 MiB range is ever wholly free. The cost of the extra orders (Linux uses 0..=10) is
/// small: 17 free areas of 4 list heads per zone, and a merge loop of at most 16 steps.
/// They let the kernel hand out very large contiguous buffers (e.g. for a framebuffer).
pub const MAX_PAGE_ORDER: u32 = 16;
/// Number of orders (`0..=MAX_PAGE_ORDER`).
pub const NR_ORDERS: usize = MAX_PAGE_ORDER as usize + 1;
/// Linux's `pageblock_order` (2 MiB): the unit whose migratetype is tracked.
pub const PAGEBLOCK_ORDER: u32 = 9;
/// Pages per pageblock.
pub const PAGEBLOCK_NR_PAGES: u64 = 1 << PAGEBLOCK_ORDER;

/// Linux's `want_init_on_alloc`: whether the caller must zero the block (`__GFP_ZERO`);
/// the kernel layer does it through the linear map.
pub const fn want_init_on_alloc(gfp: Gfp) -> bool {
    gfp.contains(Gfp::GFP_ZERO)
}

/// The page allocator. Construct with [`PageAllocator::new`] (a `const fn`, so it can be a
/// `static`), then call [`PageAllocator::init`] once on the boot CPU.
#[derive(Debug)]
pub struct PageAllocator {
    mem_map: MemMapCell,
    initializing: AtomicBool,
    zones: [crate::sync::SpinLock<Zone>; MAX_NR_ZONES],
    meta: [ZoneMeta; MAX_NR_ZONES],
    pcp: [[PerCpuPages; MAX_NR_ZONES]; NR_CPUS],
    min_free_kbytes: AtomicU64,
    failures: AtomicU64,
    /// Fault injection knobs (`fail_page_alloc`).
    pub fail: FailPageAlloc,
    /// The operations that move each kind of movable block ([`MovableRegistry::register`]).
    pub movable_ops: MovableRegistry,
    migrate: migrate::MigrateStats,
    defer: compaction::CompactDefer,
}

impl Default for PageAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl PageAllocator {
    /// An uninitialised allocator (every request fails with `NotInitialized`).
    pub const fn new() -> PageAllocator {
        PageAllocator {
            mem_map: MemMapCell::new(),
            initializing: AtomicBool::new(false),
            zones: [
                crate::sync::SpinLock::new(Zone::new(ZoneType::Dma)),
                crate::sync::SpinLock::new(Zone::new(ZoneType::Normal)),
            ],
            meta: [const { ZoneMeta::new() }; MAX_NR_ZONES],
            pcp: [const { [const { PerCpuPages::new() }; MAX_NR_ZONES] }; NR_CPUS],
            min_free_kbytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fail: FailPageAlloc::new(),
            movable_ops: MovableRegistry::new(),
            migrate: migrate::MigrateStats::new(),
            defer: compaction::CompactDefer::new(),
        }
    }

    /// Locks zone `zi`; the guard publishes its counters when dropped.
    fn lock_zone(&self, zi: usize) -> ZoneGuard<'_> {
        ZoneGuard { zone: self.zones[zi].lock(), meta: &self.meta[zi] }
    }

    /// This CPU's lists for zone `zi` (the local lock); `None` if code on this CPU that
    /// the caller interrupted holds them, and the caller takes the zone path.
    #[inline(always)]
    pub(super) fn try_local_pcp(&self, cpu: CpuId, zi: usize) -> Option<LocalPcp<'_>> {
        LocalPcp::try_new(&self.pcp[cpu.index()][zi & (MAX_NR_ZONES - 1)])
    }

    /// The descriptor array, once initialised.
    pub fn mem_map(&self) -> Option<MemMap> {
        self.mem_map.get()
    }
    /// Linux's `pfn_to_page`.
    pub fn pfn_to_page(&self, pfn: Pfn) -> Option<&'static Page> {
        self.mem_map.get()?.pfn_to_page(pfn.0)
    }
    /// Linux's `page_to_pfn`.
    pub fn page_to_pfn(&self, page: &Page) -> Option<Pfn> {
        self.mem_map.get()?.page_to_pfn(page).map(Pfn)
    }

    /// Linux's `min_free_kbytes` sysctl: recomputes every zone's watermarks (and the DMA
    /// zone's `lowmem_reserve`, `managed(Normal) / 256`).
    pub fn set_min_free_kbytes(&self, kbytes: u64) {
        self.min_free_kbytes.store(kbytes, Relaxed);
        let lowmem: u64 = self.meta.iter().map(|m| m.managed.load(Relaxed)).sum();
        for m in &self.meta {
            let w = watermark::zone_watermarks(kbytes, m.managed.load(Relaxed), lowmem);
            m.min.store(w.min, Relaxed);
            m.low.store(w.low, Relaxed);
            m.high.store(w.high, Relaxed);
        }
        // Republish under each zone lock: the fast path's cached check follows `low`.
        (0..MAX_NR_ZONES).for_each(|zi| drop(self.lock_zone(zi)));
        let normal = self.meta[ZoneType::Normal.index()].managed.load(Relaxed);
        self.meta[ZoneType::Dma.index()].lowmem_reserve.store(normal / 256, Relaxed);
    }
    /// The current `min_free_kbytes`.
    pub fn min_free_kbytes(&self) -> u64 {
        self.min_free_kbytes.load(Relaxed)
    }
    /// Sets every per-CPU list's `high` and `batch` (Linux's `percpu_pagelist_fraction`
    /// knob, simplified), draining lists above the new `high`: only while no other CPU
    /// allocates (boot, tests), since it drains other CPUs' lists (see [`pcp`]).
    pub fn set_pcp_high_batch(&self, high: u64, batch: u64) {
        let Some(mm) = self.mem_map.get() else { return };
        let mm = &mm;
        for cpu in CpuId::all() {
            for zi in 0..MAX_NR_ZONES {
                self.pcp[cpu.index()][zi].set_high_batch(high, batch);
                let Some(p) = self.try_local_pcp(cpu, zi) else { continue };
                if p.count() > high {
                    let n = p.count() - high;
                    self.free_pcppages_bulk(mm, zi, &p, n);
                }
            }
        }
    }

    /// The highest zone a request may use (Linux's `gfp_zone`); `__GFP_DMA` without a DMA
    /// zone means Normal, as in a kernel built without `CONFIG_ZONE_DMA`.
    fn highest_zone(&self, gfp: Gfp) -> usize {
        let z = ZoneType::from_gfp(gfp).index();
        if z == ZoneType::Dma.index() && self.meta[z].managed.load(Relaxed) == 0 {
            ZoneType::Normal.index()
        } else {
            z
        }
    }

    /// Returns one CPU's cached pages to the buddy lists (Linux's `drain_local_pages`).
    ///
    /// Runs on `cpu` itself, or for a CPU that is not allocating (offline, or every CPU
    /// quiet): the lists belong to their CPU (see [`pcp`]). The kernel drains online
    /// CPUs with a function-call IPI; if that interrupt finds the lists busy, the drain
    /// is left to the owner's next free. Returns whether any block went back.
    pub fn drain_cpu(&self, cpu: CpuId) -> bool {
        let Some(mm) = self.mem_map.get() else { return false };
        let mm = &mm;
        let mut drained = false;
        for zi in 0..MAX_NR_ZONES {
            match self.try_local_pcp(cpu, zi) {
                Some(p) => {
                    drained |= p.count() > 0;
                    self.free_pcppages_bulk(mm, zi, &p, p.count());
                }
                None => self.pcp[cpu.index()][zi].set_drain_pending(true),
            }
        }
        drained
    }
    /// Drains every CPU's lists (Linux's `drain_all_pages`) from this CPU: only while no
    /// other CPU allocates (init, tests); the kernel drains online CPUs by IPI.
    pub fn drain_all(&self) {
        for cpu in CpuId::all() {
            self.drain_cpu(cpu);
        }
    }
}
