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
//! [`PageAllocator::nr_free_pages`] and MemFree, but not in the zone's `free_pages`
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
pub mod memmap;
pub mod migrate;
pub mod migratetype;
pub mod page;
pub mod pcp;
pub mod report;
pub mod source;
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

use crate::addr::{Pfn, PAGE_SIZE};
use crate::cpu::CpuId;
use crate::gfp::Gfp;

pub use check::PageCensus;
pub use cma::{Cma, CmaAllocStats, CmaError, CmaStats};
pub use compaction::{extfrag_index, extfrag_indices, fragmentation_index, CompactResult, Compactor};
pub use contig::Evacuation;
pub use error::{AllocFailure, FreeError};
pub use fail::FailPageAlloc;
pub use init::InitError;
pub use migrate::{
    BlockMove, MigrateBatch, MigrateCtx, MigrateError, MigrateEvents, MigrateMode, Migrator, MovableKind, MovableOps,
    MovableOwner, RegisterError, MAX_MOVABLE_KINDS, MIGRATE_BATCH,
};
pub use migratetype::{gfp_migratetype, MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_TYPES};
pub use page::{mem_map_overhead, MemMap, Page};
pub use pcp::{PerCpuPages, NR_CPUS, PCP_MAX_ORDER};
pub use source::BuddyPageSource;
pub use watermark::{AllocFlags, Watermarks, Wmark};
pub use zone::Zone;

use page::PageState;
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

/// A zone's numbers for reports and `/proc/zoneinfo`-like output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ZoneStats {
    /// Which zone.
    pub zone: ZoneType,
    /// First pfn of the span.
    pub start_pfn: u64,
    /// Pages spanned.
    pub spanned_pages: u64,
    /// Pages of RAM in the span.
    pub present_pages: u64,
    /// Pages handed to the allocator.
    pub managed_pages: u64,
    /// Pages on the buddy lists.
    pub free_pages: u64,
    /// Pages on the per-CPU lists.
    pub pcp_pages: u64,
    /// Pages in HighAtomic-reserved pageblocks.
    pub reserved_highatomic: u64,
    /// The watermarks.
    pub wmarks: Watermarks,
    /// Pages kept back from requests that may use a higher zone.
    pub lowmem_reserve: u64,
}

/// The page allocator's event counters, in pages, summed over CPUs when read (Linux's
/// `vm_event_states`; `/proc/vmstat` prints them).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VmEvents {
    /// Pages allocated, per zone (`pgalloc_dma`, `pgalloc_normal`).
    pub pgalloc: [u64; MAX_NR_ZONES],
    /// Pages freed (`pgfree`).
    pub pgfree: u64,
}

/// One CPU's pageset in one zone, as `/proc/zoneinfo` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PagesetStats {
    /// Pages on the CPU's lists.
    pub count: u64,
    /// Drain mark.
    pub high: u64,
    /// Refill and drain batch.
    pub batch: u64,
}

/// The two numbers of `/proc/meminfo` the allocator owns, in pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MemInfo {
    /// MemTotal: managed pages.
    pub total_pages: u64,
    /// MemFree: buddy plus per-CPU pages.
    pub free_pages: u64,
}

impl MemInfo {
    /// MemTotal in kB.
    pub const fn total_kb(&self) -> u64 {
        self.total_pages * (PAGE_SIZE as u64 / 1024)
    }
    /// MemFree in kB.
    pub const fn free_kb(&self) -> u64 {
        self.free_pages * (PAGE_SIZE as u64 / 1024)
    }
}

/// The page allocator. Construct with [`PageAllocator::new`] (a `const fn`, so it can be a
/// `static`), then call [`PageAllocator::init`] once on the boot CPU.
#[derive(Debug)]
pub struct PageAllocator {
    mem_map: spin::Once<MemMap>,
    initializing: AtomicBool,
    zones: [crate::sync::SpinLock<Zone>; MAX_NR_ZONES],
    meta: [ZoneMeta; MAX_NR_ZONES],
    pcp: [[PerCpuPages; MAX_NR_ZONES]; NR_CPUS],
    min_free_kbytes: AtomicU64,
    failures: AtomicU64,
    /// Fault injection knobs (`fail_page_alloc`).
    pub fail: FailPageAlloc,
    movable: migrate::MovableRegistry,
    migrate: migrate::MigrateStats,
    defer: compaction::CompactDefer,
}

impl Default for PageAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// The head of the live allocation holding `pfn`, a page with flags 0 (not a head, not a
/// compound tail); `None` if `pfn` lies in a free block or in no block. Blocks are
/// naturally aligned and disjoint, so the head is the first `pfn` rounded down to `2^o`
/// (`o` = 1, 2, ...) that heads a block of order at least `o`.
fn alloc_head_of(mm: &MemMap, pfn: u64) -> Option<&'static Page> {
    for o in 1..=MAX_PAGE_ORDER {
        let c = pfn & !((1u64 << o) - 1);
        if c == pfn {
            continue;
        }
        let h = mm.pfn_to_page(c)?;
        let s = h.state();
        if s.block_order().is_some_and(|bo| bo >= o) {
            return matches!(s, PageState::Head { .. }).then_some(h);
        }
    }
    None
}

impl PageAllocator {
    /// An uninitialised allocator (every request fails with `NotInitialized`).
    pub const fn new() -> PageAllocator {
        PageAllocator {
            mem_map: spin::Once::new(),
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
            movable: migrate::MovableRegistry::new(),
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
        self.mem_map.get().copied()
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

    /// Stores the owner word of an allocated page (for a `PageSource` implementation);
    /// false (nothing stored) if the page is free (a free block's head or a page inside a
    /// free block), reserved or outside `mem_map`. On a tail page it also marks the
    /// allocation's head so that the free clears the tails' owner words.
    pub fn set_page_owner(&self, pfn: Pfn, word: u64) -> bool {
        let Some(mm) = self.mem_map.get() else { return false };
        let Some(p) = mm.pfn_to_page(pfn.0) else { return false };
        let s = p.state();
        if !s.may_own() {
            return false;
        }
        if s == PageState::Unmarked {
            // A tail of a non-compound block (compound heads clear their tails anyway).
            let Some(head) = alloc_head_of(mm, pfn.0) else { return false };
            head.mark_tail_owner();
        }
        p.set_owner(word);
        true
    }
    /// The owner word of an allocated page; 0 for a free, reserved or unknown page.
    pub fn page_owner(&self, pfn: Pfn) -> u64 {
        match self.pfn_to_page(pfn) {
            Some(p) if p.state().may_own() => p.owner(),
            _ => 0,
        }
    }
    /// [`Self::page_owner`] with one lookup that also tells whether `pfn` is in `mem_map`:
    /// `None` outside it, `Some(0)` for a free or reserved page.
    pub fn try_page_owner(&self, pfn: Pfn) -> Option<u64> {
        let p = self.pfn_to_page(pfn)?;
        Some(if p.state().may_own() { p.owner() } else { 0 })
    }

    /// Free pages on the buddy lists of every zone (Linux's `NR_FREE_PAGES`).
    pub fn nr_free_buddy_pages(&self) -> u64 {
        self.meta.iter().map(|m| m.free.load(Relaxed)).sum()
    }
    /// Pages on per-CPU lists, all CPUs and zones.
    pub fn nr_pcp_pages(&self) -> u64 {
        self.pcp.iter().flatten().map(PerCpuPages::count).sum()
    }
    /// All free pages: buddy lists plus per-CPU lists.
    pub fn nr_free_pages(&self) -> u64 {
        self.nr_free_buddy_pages() + self.nr_pcp_pages()
    }
    /// Pages handed to the allocator (Linux's `totalram_pages`).
    pub fn nr_managed_pages(&self) -> u64 {
        self.meta.iter().map(|m| m.managed.load(Relaxed)).sum()
    }
    /// Allocation failures so far (injected ones included).
    pub fn nr_failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }
    /// MemTotal and MemFree for `/proc/meminfo`.
    pub fn meminfo(&self) -> MemInfo {
        MemInfo { total_pages: self.nr_managed_pages(), free_pages: self.nr_free_pages() }
    }
    /// One zone's numbers.
    pub fn zone_stats(&self, zone: ZoneType) -> ZoneStats {
        let m = &self.meta[zone.index()];
        let start = m.start_pfn.load(Relaxed);
        ZoneStats {
            zone,
            start_pfn: start,
            spanned_pages: m.end_pfn.load(Relaxed) - start,
            present_pages: m.present.load(Relaxed),
            managed_pages: m.managed.load(Relaxed),
            free_pages: m.free.load(Relaxed),
            pcp_pages: self.pcp.iter().map(|c| c[zone.index()].count()).sum(),
            reserved_highatomic: m.reserved_highatomic.load(Relaxed),
            wmarks: m.wmarks(),
            lowmem_reserve: m.lowmem_reserve.load(Relaxed),
        }
    }
    /// The event counters (Linux's `all_vm_events`): each CPU's own counters plus those
    /// of interrupts that found their CPU's lists busy, read without stopping anyone.
    pub fn vm_events(&self) -> VmEvents {
        let mut e = VmEvents::default();
        for (zi, m) in self.meta.iter().enumerate() {
            e.pgalloc[zi] = m.pgalloc.load(Relaxed) + self.pcp.iter().map(|c| c[zi].pgalloc()).sum::<u64>();
            e.pgfree += m.pgfree.load(Relaxed) + self.pcp.iter().map(|c| c[zi].pgfree()).sum::<u64>();
        }
        e
    }
    /// CPU `cpu`'s pageset in `zone` (read from any CPU: each number is a single load).
    pub fn pageset(&self, cpu: CpuId, zone: ZoneType) -> PagesetStats {
        let p = &self.pcp[cpu.index()][zone.index()];
        PagesetStats { count: p.count(), high: p.high(), batch: p.batch() }
    }
    /// Calls `f(zone, pfn, order, migratetype)` for every block on a buddy list.
    pub fn for_each_free_block(&self, mut f: impl FnMut(ZoneType, u64, u32, MigrateType)) {
        for zi in 0..MAX_NR_ZONES {
            let z = self.lock_zone(zi);
            let ty = z.ty;
            z.for_each_free_block(&mut |p, o, m| f(ty, p, o, m));
        }
    }
}
