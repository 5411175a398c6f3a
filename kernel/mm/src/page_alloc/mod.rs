//! The buddy page allocator: zones of naturally aligned `2^order`-page blocks on
//! per-migratetype free lists, per-CPU lists for orders 0..=3, Linux watermarks, and
//! checks that refuse bad frees instead of corrupting the lists.
//!
//! It never allocates from the heap (it runs before one exists): the page descriptors
//! (`mem_map`) are supplied by the caller, and everything else is fixed-size state inside
//! [`PageAllocator`], which can be a `static` shared by the four CPUs.
//!
//! Locking: each zone's free lists sit in a `crate::sync::SpinLock<Zone>`; each CPU has its own
//! `crate::sync::SpinLock<PerCpuPages>` per zone (uncontended). The fast path (orders 0..=3) takes only the
//! per-CPU lock; refills and drains take the zone lock inside it (order: pcp, then zone).
//! The kernel masks interrupts around calls.
//!
//! Accounting choice (as Linux): pages on per-CPU lists are free memory, so they count in
//! [`PageAllocator::nr_free_pages`] and MemFree, but not in the zone's `free_pages`
//! (`NR_FREE_PAGES`), in watermark checks or in `buddyinfo`, which show buddy lists only.

pub mod error;
pub mod fail;
pub mod free_area;
pub mod fuzz;
pub mod migratetype;
pub mod page;
pub mod pcp;
pub mod report;
pub mod source;
pub mod watermark;
pub mod zone;

#[cfg(test)]
mod tests;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::addr::{Pfn, PhysAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::Gfp;

pub use error::{AllocFailure, FreeError};
pub use fail::FailPageAlloc;
pub use migratetype::{gfp_migratetype, MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_TYPES};
pub use page::{mem_map_overhead, MemMap, Page};
pub use pcp::{PerCpuPages, NR_CPUS, PCP_MAX_ORDER};
pub use source::BuddyPageSource;
pub use watermark::{AllocFlags, Watermarks, Wmark};
pub use zone::Zone;

use page::PageState;

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

/// Per-zone numbers read without the zone lock (watermark fast path, reports).
#[derive(Debug)]
struct ZoneMeta {
    free: AtomicU64,
    reserved_highatomic: AtomicU64,
    managed: AtomicU64,
    present: AtomicU64,
    start_pfn: AtomicU64,
    end_pfn: AtomicU64,
    min: AtomicU64,
    low: AtomicU64,
    high: AtomicU64,
    /// Pages this zone keeps back from requests that could use a higher zone.
    lowmem_reserve: AtomicU64,
}

impl ZoneMeta {
    const fn new() -> ZoneMeta {
        ZoneMeta {
            free: AtomicU64::new(0),
            reserved_highatomic: AtomicU64::new(0),
            managed: AtomicU64::new(0),
            present: AtomicU64::new(0),
            start_pfn: AtomicU64::new(0),
            end_pfn: AtomicU64::new(0),
            min: AtomicU64::new(0),
            low: AtomicU64::new(0),
            high: AtomicU64::new(0),
            lowmem_reserve: AtomicU64::new(0),
        }
    }
    fn wmarks(&self) -> Watermarks {
        Watermarks { min: self.min.load(Relaxed), low: self.low.load(Relaxed), high: self.high.load(Relaxed) }
    }
    fn sync(&self, z: &Zone) {
        self.free.store(z.free_pages, Relaxed);
        self.reserved_highatomic.store(z.nr_reserved_highatomic, Relaxed);
    }
}

/// A held zone lock (from [`PageAllocator::lock_zone`]). Dropping it publishes the zone's
/// free and reserved-highatomic counts to its [`ZoneMeta`], which the lockless watermark
/// check reads, before the lock is released: no change under the lock can go unpublished.
struct ZoneGuard<'a> {
    zone: crate::sync::SpinLockGuard<'a, Zone>,
    meta: &'a ZoneMeta,
}

impl core::ops::Deref for ZoneGuard<'_> {
    type Target = Zone;
    fn deref(&self) -> &Zone {
        &self.zone
    }
}

impl core::ops::DerefMut for ZoneGuard<'_> {
    fn deref_mut(&mut self) -> &mut Zone {
        &mut self.zone
    }
}

impl Drop for ZoneGuard<'_> {
    fn drop(&mut self) {
        // Runs before the field `zone` drops, so still under the lock.
        self.meta.sync(&self.zone);
    }
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

/// Every page of `mem_map` by state (from [`PageAllocator::check_invariants`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PageCensus {
    /// Pages in blocks on buddy lists.
    pub buddy_free: u64,
    /// Pages on per-CPU lists.
    pub pcp_free: u64,
    /// Pages in live allocations.
    pub allocated: u64,
    /// Reserved pages.
    pub reserved: u64,
}

impl PageCensus {
    /// All pages counted.
    pub const fn total(&self) -> u64 {
        self.buddy_free + self.pcp_free + self.allocated + self.reserved
    }
}

/// `init` refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InitError {
    /// `init` already ran (or is running).
    AlreadyInitialized,
    /// `mem_map` is empty or has `u32::MAX` or more entries.
    BadMemMap,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::AlreadyInitialized => "page allocator already initialized",
            Self::BadMemMap => "mem_map empty or too large",
        })
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
    pcp: [[crate::sync::SpinLock<PerCpuPages>; MAX_NR_ZONES]; NR_CPUS],
    min_free_kbytes: AtomicU64,
    failures: AtomicU64,
    /// Fault injection knobs (`fail_page_alloc`).
    pub fail: FailPageAlloc,
}

impl Default for PageAllocator {
    fn default() -> Self {
        Self::new()
    }
}

type Refused = Result<(), FreeError>;

/// free_pages_prepare for the pages after the head: owner words and compound tails.
///
/// Only a block whose tails were touched needs the walk: compound tails are
/// [`PageState::Tail`] (head `compound`), and [`PageAllocator::set_page_owner`] on a tail
/// marks the head `tail_owner`. Every other tail already has flags 0 and owner 0, since the buddy and
/// per-CPU lists use only a block's head for links and clear them when they take it off
/// (`FreeArea::del`, `PerCpuPages::pop`), and `init` starts every page at owner 0.
fn clear_block(mm: &MemMap, idx: u32, order: u32, head: PageState) {
    let PageState::Head { compound, tail_owner, .. } = head else {
        return;
    };
    if !compound && !tail_owner {
        return;
    }
    let i = idx as usize;
    for p in &mm.pages[i + 1..i + (1usize << order)] {
        p.set_owner(0);
        if compound {
            p.set_state(PageState::Unmarked);
        }
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

/// Why a page in state `s` cannot be freed as a block of `order` (`Ok` if it can).
fn classify(pfn: u64, order: u32, s: PageState) -> Refused {
    match s {
        PageState::Head { order: o, .. } if o == order => Ok(()),
        PageState::Head { order: allocated, .. } => Err(FreeError::WrongOrder { pfn, order, allocated }),
        PageState::Buddy { .. } | PageState::Pcp { .. } => Err(FreeError::DoubleFree { pfn, order }),
        PageState::Reserved => Err(FreeError::Reserved { pfn }),
        PageState::Tail => Err(FreeError::TailPage { pfn }),
        PageState::Unmarked => Err(FreeError::NotAllocated { pfn, order }),
    }
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
            pcp: [const { [const { crate::sync::SpinLock::new(PerCpuPages::new()) }; MAX_NR_ZONES] }; NR_CPUS],
            min_free_kbytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fail: FailPageAlloc::new(),
        }
    }

    /// Locks zone `zi`; the guard publishes its counters when dropped.
    fn lock_zone(&self, zi: usize) -> ZoneGuard<'_> {
        ZoneGuard { zone: self.zones[zi].lock(), meta: &self.meta[zi] }
    }

    /// Sets the allocator up, like Linux's `free_area_init` + `memblock_free_all`.
    ///
    /// - `mem_map`: one blank descriptor per frame from `base_pfn` on (the kernel places
    ///   it with memblock; host tests leak a `Vec`).
    /// - `dma_limit`: frames below it form the DMA zone, the rest Normal; pass 0 for no
    ///   DMA zone (the Pi).
    /// - `memory`: RAM ranges `(base, size)`, disjoint; they give `present` pages.
    /// - `free`: ranges `(base, size)` to hand to the allocator (memory minus memblock
    ///   reservations); freed as maximal naturally aligned blocks. Overlaps are harmless;
    ///   parts outside `mem_map` are ignored. Every other frame stays reserved.
    pub fn init(
        &self,
        mem_map: &'static [Page],
        base_pfn: Pfn,
        dma_limit: PhysAddr,
        memory: impl IntoIterator<Item = (PhysAddr, u64)>,
        free: impl IntoIterator<Item = (PhysAddr, u64)>,
    ) -> Result<(), InitError> {
        if mem_map.is_empty() || mem_map.len() >= u32::MAX as usize {
            return Err(InitError::BadMemMap);
        }
        if self.initializing.swap(true, Relaxed) {
            return Err(InitError::AlreadyInitialized);
        }
        let mm = MemMap { pages: mem_map, base_pfn: base_pfn.0 };
        let base = base_pfn.0;
        let end = base + mem_map.len() as u64;
        let dma_end = dma_limit.pfn().0.clamp(base, end);
        let spans = [(base, dma_end), (dma_end, end)];
        let zone_of = |pfn: u64| {
            if pfn < dma_end {
                ZoneType::Dma
            } else {
                ZoneType::Normal
            }
        };
        for (i, p) in mem_map.iter().enumerate() {
            p.set_state(PageState::Reserved);
            p.set_owner(0);
            p.init_info(zone_of(base + i as u64), MigrateType::Movable);
        }
        // Page range of (base, size), clipped to mem_map.
        let clip = |(pa, size): (PhysAddr, u64)| {
            let s = pa.align_up(PAGE_SIZE as u64).pfn().0.max(base);
            let e = (pa.as_u64().saturating_add(size) >> PAGE_SHIFT).min(end);
            (s, e.max(s))
        };
        let mut present = [0u64; MAX_NR_ZONES];
        for r in memory {
            let (s, e) = clip(r);
            for (z, &(zs, ze)) in spans.iter().enumerate() {
                present[z] += e.min(ze).saturating_sub(s.max(zs));
            }
        }
        for r in free {
            let (s, e) = clip(r);
            for pfn in s..e {
                mm.at(mm.idx(pfn)).set_state(PageState::Unmarked);
            }
        }
        for (zi, &(zs, ze)) in spans.iter().enumerate() {
            let mut z = self.lock_zone(zi);
            z.mm = mm;
            z.start_pfn = zs;
            z.end_pfn = ze;
            let mut p = zs;
            while p < ze {
                if mm.at(mm.idx(p)).state() != PageState::Unmarked {
                    p += 1;
                    continue;
                }
                let mut e = p;
                while e < ze && mm.at(mm.idx(e)).state() == PageState::Unmarked {
                    e += 1;
                }
                // Maximal naturally aligned blocks, like __free_pages_memory.
                while p < e {
                    let order = MAX_PAGE_ORDER.min(p.trailing_zeros()).min(63 - (e - p).leading_zeros());
                    z.managed_pages += 1 << order;
                    let mt = z.pageblock_mt(p);
                    z.free_one(p, order, mt);
                    p += 1 << order;
                }
            }
            let m = &self.meta[zi];
            m.managed.store(z.managed_pages, Relaxed);
            m.present.store(present[zi], Relaxed);
            m.start_pfn.store(zs, Relaxed);
            m.end_pfn.store(ze, Relaxed);
        }
        let managed: u64 = self.meta.iter().map(|m| m.managed.load(Relaxed)).sum();
        self.set_min_free_kbytes(watermark::default_min_free_kbytes(managed * 4));
        for (zi, m) in self.meta.iter().enumerate() {
            let (high, batch) = pcp::zone_batchsize(m.managed.load(Relaxed));
            for cpu in &self.pcp {
                let mut p = cpu[zi].lock();
                p.high = high;
                p.batch = batch;
            }
        }
        self.mem_map.call_once(|| mm);
        Ok(())
    }

    /// [`Self::init`] from a memblock: its memory as present, its free ranges as free.
    pub fn init_from_memblock(
        &self,
        mem_map: &'static [Page],
        base_pfn: Pfn,
        dma_limit: PhysAddr,
        mb: &crate::memblock::Memblock,
    ) -> Result<(), InitError> {
        self.init(
            mem_map,
            base_pfn,
            dma_limit,
            mb.memory().iter().map(|r| (PhysAddr::new(r.base), r.size)),
            mb.free_ranges().map(|(s, e)| (PhysAddr::new(s), e - s)),
        )
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
        let normal = self.meta[ZoneType::Normal.index()].managed.load(Relaxed);
        self.meta[ZoneType::Dma.index()].lowmem_reserve.store(normal / 256, Relaxed);
    }
    /// The current `min_free_kbytes`.
    pub fn min_free_kbytes(&self) -> u64 {
        self.min_free_kbytes.load(Relaxed)
    }
    /// Sets every per-CPU list's `high` and `batch` (Linux's `percpu_pagelist_fraction`
    /// knob, simplified), draining lists above the new `high`.
    pub fn set_pcp_high_batch(&self, high: u64, batch: u64) {
        let Some(mm) = self.mem_map.get() else { return };
        for cpu in &self.pcp {
            for (zi, l) in cpu.iter().enumerate() {
                let mut p = l.lock();
                p.high = high;
                p.batch = batch.max(1);
                if p.count > high {
                    let n = p.count - high;
                    self.free_pcppages_bulk(mm, zi, &mut p, n);
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

    /// Allocates `2^order` naturally aligned pages (Linux's `__alloc_pages`). Never sleeps.
    ///
    /// Tries the low watermark first; requests that cannot sleep then retry against min
    /// (lowered for `__GFP_HIGH`/`__GFP_ATOMIC`); as a last resort a HighAtomic reserve is
    /// released. With `__GFP_COMP` the block is marked compound. The caller zeroes the
    /// block if [`want_init_on_alloc`] and prints [`report`] output unless
    /// [`AllocFailure::should_warn`] says not to.
    pub fn alloc_pages(&self, gfp: Gfp, order: u32, cpu: usize) -> Result<Pfn, AllocFailure> {
        let mm = self.mem_map.get().ok_or(AllocFailure::NotInitialized)?;
        if order > MAX_PAGE_ORDER {
            return Err(AllocFailure::OrderTooLarge { order, gfp });
        }
        if cpu >= NR_CPUS {
            return Err(AllocFailure::BadCpu(cpu));
        }
        if self.fail.should_fail(gfp, order) {
            self.failures.fetch_add(1, Relaxed);
            return Err(AllocFailure::Injected { order, gfp });
        }
        let mt = gfp_migratetype(gfp);
        let high_zone = self.highest_zone(gfp);
        let mut found = match self.rmqueue_pcp_fast(mm, order, mt, high_zone, cpu) {
            Some(pfn) => Some(pfn),
            None => self.get_page_from_freelist(mm, order, mt, high_zone, cpu, AllocFlags::LOW),
        };
        let slow = if gfp.may_sleep() { AllocFlags::LOW } else { AllocFlags::slowpath(gfp) };
        if found.is_none() && slow != AllocFlags::LOW {
            found = self.get_page_from_freelist(mm, order, mt, high_zone, cpu, slow);
        }
        if found.is_none() {
            // No reclaim to try: give back a HighAtomic reserve, as Linux does before OOM.
            for zi in (0..=high_zone).rev() {
                let mut z = self.lock_zone(zi);
                if z.unreserve_highatomic(mt) {
                    drop(z);
                    found = self.get_page_from_freelist(mm, order, mt, high_zone, cpu, slow);
                    break;
                }
            }
        }
        let Some(pfn) = found else {
            self.failures.fetch_add(1, Relaxed);
            return Err(AllocFailure::NoMemory { order, gfp });
        };
        // prep_new_page: the block is ours now; mark head (and compound tails).
        let idx = mm.idx(pfn);
        let comp = gfp.contains(Gfp::GFP_COMP) && order > 0;
        if comp {
            for i in 1..(1u32 << order) {
                mm.at(idx + i).set_state(PageState::Tail);
            }
        }
        let head = mm.at(idx);
        head.set_owner(0);
        head.set_state(PageState::Head { order, compound: comp, tail_owner: false });
        Ok(Pfn(pfn))
    }

    /// The common case of `get_page_from_freelist(.., AllocFlags::LOW)`, inlined: the first
    /// zone passes the low watermark (the same lockless check, written out for these
    /// flags as Linux's `zone_watermark_fast` does) and this CPU's list of the order has a
    /// block. Anything else (order above the pcp orders, an empty list, low memory, an
    /// empty zone, whose free count 0 fails the check) returns `None` and the caller takes
    /// the whole path, which checks again and refills.
    #[inline]
    fn rmqueue_pcp_fast(&self, mm: &MemMap, order: u32, mt: MigrateType, zi: usize, cpu: usize) -> Option<u64> {
        if order > PCP_MAX_ORDER {
            return None;
        }
        let meta = &self.meta[zi];
        // watermark_ok(free, order, low, AllocFlags::LOW, reserved_highatomic, 0): no
        // lowmem_reserve in the request's own highest zone.
        let need = meta.low.load(Relaxed) + meta.reserved_highatomic.load(Relaxed) + (1u64 << order) - 1;
        if meta.free.load(Relaxed) <= need {
            return None;
        }
        let mut pcp = self.pcp[cpu][zi].lock();
        let idx = pcp.pop(mm, order, mt.index())?;
        mm.at(idx).set_state(PageState::Unmarked);
        Some(mm.base_pfn + idx as u64)
    }

    fn get_page_from_freelist(
        &self,
        mm: &MemMap,
        order: u32,
        mt: MigrateType,
        high_zone: usize,
        cpu: usize,
        flags: AllocFlags,
    ) -> Option<u64> {
        for zi in (0..=high_zone).rev() {
            let meta = &self.meta[zi];
            if meta.managed.load(Relaxed) == 0 {
                continue;
            }
            let mark = meta.wmarks().get(flags.wmark);
            let reserve = if zi < high_zone { meta.lowmem_reserve.load(Relaxed) } else { 0 };
            if order <= PCP_MAX_ORDER {
                // Lockless check on the free count, as Linux's zone_watermark_fast; the
                // block itself comes from the pcp list or a refill, which fails if none.
                let free = meta.free.load(Relaxed);
                let ha = meta.reserved_highatomic.load(Relaxed);
                if !watermark::watermark_ok(free, order, mark, flags, ha, reserve, || true) {
                    continue;
                }
                if let Some(pfn) = self.rmqueue_pcplist(mm, zi, cpu, order, mt) {
                    if flags.harder && order > 0 {
                        let mut z = self.lock_zone(zi);
                        z.reserve_highatomic(pfn);
                    }
                    return Some(pfn);
                }
                continue;
            }
            let mut z = self.lock_zone(zi);
            let ok =
                watermark::watermark_ok(z.free_pages, order, mark, flags, z.nr_reserved_highatomic, reserve, || {
                    z.has_free_block(order, flags.harder)
                });
            if !ok {
                continue;
            }
            if let Some(pfn) = z.rmqueue(order, mt, flags.harder) {
                if flags.harder && order > 0 {
                    z.reserve_highatomic(pfn);
                }
                return Some(pfn);
            }
        }
        None
    }

    /// Allocation from this CPU's list, refilled with a batch from the zone
    /// (Linux's `rmqueue_pcplist` / `rmqueue_bulk`).
    fn rmqueue_pcplist(&self, mm: &MemMap, zi: usize, cpu: usize, order: u32, mt: MigrateType) -> Option<u64> {
        let mut pcp = self.pcp[cpu][zi].lock();
        let list = mt.index();
        if let Some(idx) = pcp.pop(mm, order, list) {
            mm.at(idx).set_state(PageState::Unmarked);
            return Some(mm.base_pfn + idx as u64);
        }
        let blocks = if order == 0 { pcp.batch.max(1) } else { (pcp.batch >> order).max(2) };
        let mut z = self.lock_zone(zi);
        for _ in 0..blocks {
            let Some(pfn) = z.rmqueue(order, mt, false) else {
                break;
            };
            let idx = mm.idx(pfn);
            mm.at(idx).set_state(PageState::Pcp { order, mt });
            pcp.push(mm, idx, order, list);
        }
        drop(z);
        let idx = pcp.pop(mm, order, list)?;
        mm.at(idx).set_state(PageState::Unmarked);
        Some(mm.base_pfn + idx as u64)
    }

    /// Frees a block from [`Self::alloc_pages`] (Linux's `__free_pages`), checking first
    /// that it is one: a bad request is refused and changes nothing.
    pub fn free_pages(&self, pfn: Pfn, order: u32, cpu: usize) -> Result<(), FreeError> {
        let mm = self.mem_map.get().ok_or(FreeError::NotInitialized)?;
        let pfn = pfn.0;
        if order > MAX_PAGE_ORDER {
            return Err(FreeError::OrderTooLarge { pfn, order });
        }
        if cpu >= NR_CPUS {
            return Err(FreeError::BadCpu(cpu));
        }
        let page = mm.pfn_to_page(pfn).ok_or(FreeError::OutsideMemMap { pfn })?;
        if pfn & ((1 << order) - 1) != 0 {
            return Err(FreeError::Unaligned { pfn, order });
        }
        let f = match page.live_head(order) {
            Ok(f) => f,
            Err(s) => return classify(pfn, order, s),
        };
        let idx = mm.idx(pfn);
        let zi = page.zone().index();
        let mt = page.block_mt();
        if order <= PCP_MAX_ORDER {
            let mut pcp = self.pcp[cpu][zi].lock();
            // The transition is atomic, so two racing frees cannot both succeed.
            if !page.transition(f, PageState::Pcp { order, mt }) {
                return classify(pfn, order, page.state()).and(Err(FreeError::DoubleFree { pfn, order }));
            }
            if order > 0 {
                clear_block(mm, idx, order, f);
            }
            let list = if mt == MigrateType::HighAtomic { MigrateType::Movable } else { mt };
            pcp.push(mm, idx, order, list.index());
            if pcp.count >= pcp.high {
                let batch = pcp.batch;
                self.free_pcppages_bulk(mm, zi, &mut pcp, batch);
            }
            return Ok(());
        }
        if !page.transition(f, PageState::Unmarked) {
            return classify(pfn, order, page.state()).and(Err(FreeError::DoubleFree { pfn, order }));
        }
        clear_block(mm, idx, order, f);
        mm.at(idx).set_owner(0);
        let mut z = self.lock_zone(zi);
        z.free_one(pfn, order, mt);
        Ok(())
    }

    /// Gives at least `count` pages (whole blocks) from a per-CPU list back to the zone.
    fn free_pcppages_bulk(&self, mm: &MemMap, zi: usize, pcp: &mut PerCpuPages, count: u64) {
        let mut z = self.lock_zone(zi);
        let mut rr = 0;
        let mut freed = 0;
        while freed < count {
            let Some((idx, order)) = pcp.pop_any(mm, &mut rr) else {
                break;
            };
            let p = mm.at(idx);
            let PageState::Pcp { mt, .. } = p.state() else { unreachable!("page on a pcp list not in the pcp state") };
            p.set_state(PageState::Unmarked);
            z.free_one(mm.base_pfn + idx as u64, order, mt);
            freed += 1 << order;
        }
    }

    /// Returns one CPU's cached pages to the buddy lists (Linux's `drain_local_pages`).
    pub fn drain_cpu(&self, cpu: usize) {
        let Some(mm) = self.mem_map.get() else { return };
        let Some(lists) = self.pcp.get(cpu) else {
            return;
        };
        for (zi, l) in lists.iter().enumerate() {
            let mut p = l.lock();
            let n = p.count;
            self.free_pcppages_bulk(mm, zi, &mut p, n);
        }
    }
    /// Drains every CPU's lists (Linux's `drain_all_pages`).
    pub fn drain_all(&self) {
        for cpu in 0..NR_CPUS {
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
        self.pcp.iter().flatten().map(|l| l.lock().count).sum()
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
            pcp_pages: self.pcp.iter().map(|c| c[zone.index()].lock().count).sum(),
            reserved_highatomic: m.reserved_highatomic.load(Relaxed),
            wmarks: m.wmarks(),
            lowmem_reserve: m.lowmem_reserve.load(Relaxed),
        }
    }
    /// Calls `f(zone, pfn, order, migratetype)` for every block on a buddy list.
    pub fn for_each_free_block(&self, mut f: impl FnMut(ZoneType, u64, u32, MigrateType)) {
        for zi in 0..MAX_NR_ZONES {
            let z = self.lock_zone(zi);
            let ty = z.ty;
            z.for_each_free_block(&mut |p, o, m| f(ty, p, o, m));
        }
    }

    /// Checks every structure (a debugging aid, O(mem_map)): list links, flags and counts
    /// of every free list and per-CPU list, and that each page is in exactly one state.
    /// Returns the census, or what is wrong.
    pub fn check_invariants(&self) -> Result<PageCensus, &'static str> {
        let Some(mm) = self.mem_map.get() else {
            return Ok(PageCensus::default());
        };
        // The guards are released in array order, not in reverse: one mask around them.
        let _irq = crate::sync::IrqGuard::new();
        let pcps: [[crate::sync::SpinLockGuard<'_, PerCpuPages>; MAX_NR_ZONES]; NR_CPUS] =
            core::array::from_fn(|c| core::array::from_fn(|z| self.pcp[c][z].lock()));
        let zones: [ZoneGuard<'_>; MAX_NR_ZONES] = core::array::from_fn(|z| self.lock_zone(z));
        let mut c = PageCensus::default();
        let mut heads = 0u64;
        for (zi, z) in zones.iter().enumerate() {
            let mut free = 0;
            for (o, a) in z.free_area.iter().enumerate() {
                let mut n = 0;
                for m in MigrateType::ALL {
                    let mut prev = page::NIL;
                    for idx in a.iter(mm, m.index()) {
                        let p = mm.at(idx);
                        if p.prev() != prev {
                            return Err("free list prev link broken");
                        }
                        if p.state() != (PageState::Buddy { order: o as u32, mt: m }) {
                            return Err("page on free list without matching PageBuddy flags");
                        }
                        let pfn = mm.base_pfn + idx as u64;
                        if pfn & ((1 << o) - 1) != 0 || pfn < z.start_pfn || pfn + (1 << o) > z.end_pfn {
                            return Err("free block misaligned or outside its zone");
                        }
                        if p.zone().index() != zi {
                            return Err("free block in the wrong zone");
                        }
                        prev = idx;
                        n += 1;
                    }
                }
                if n != a.nr_free {
                    return Err("nr_free does not match the lists");
                }
                heads += n;
                free += n << o;
            }
            if free != z.free_pages || free != self.meta[zi].free.load(Relaxed) {
                return Err("zone free_pages does not match the lists");
            }
        }
        for cpu in &pcps {
            for p in cpu {
                let mut n = 0;
                for (o, l) in (0..=PCP_MAX_ORDER).flat_map(|o| (0..migratetype::MIGRATE_PCPTYPES).map(move |l| (o, l)))
                {
                    let mut cur = p.lists_head(o, l);
                    while cur != page::NIL {
                        if !matches!(mm.at(cur).state(), PageState::Pcp { order, .. } if order == o) {
                            return Err("page on pcp list without the pcp flag");
                        }
                        n += 1 << o;
                        if n > mm.pages.len() as u64 {
                            return Err("pcp list loops");
                        }
                        cur = mm.at(cur).next();
                    }
                }
                if n != p.count {
                    return Err("pcp count does not match its lists");
                }
            }
        }
        let mut i = 0usize;
        let mut seen_heads = 0;
        while i < mm.pages.len() {
            let s = mm.pages[i].state();
            if let Some(order) = s.block_order() {
                let n = 1usize << order;
                if i + n > mm.pages.len() {
                    return Err("block runs past mem_map");
                }
                for t in &mm.pages[i + 1..i + n] {
                    let ts = t.state();
                    let compound = matches!(s, PageState::Head { compound: true, .. });
                    let ok = ts == PageState::Unmarked || (compound && ts == PageState::Tail);
                    if !ok {
                        return Err("page inside a block has flags of its own");
                    }
                }
                if let PageState::Buddy { .. } = s {
                    seen_heads += 1;
                    c.buddy_free += n as u64;
                } else if let PageState::Pcp { .. } = s {
                    c.pcp_free += n as u64;
                } else {
                    c.allocated += n as u64;
                }
                i += n;
            } else if s == PageState::Reserved {
                c.reserved += 1;
                i += 1;
            } else {
                return Err("page in no state (not free, allocated or reserved)");
            }
        }
        if seen_heads != heads {
            return Err("PageBuddy page not on a free list");
        }
        let pcp_total: u64 = pcps.iter().flatten().map(|p| p.count).sum();
        if pcp_total != c.pcp_free {
            return Err("pcp pages not all on pcp lists");
        }
        Ok(c)
    }
}
