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
#[cfg(any(test, feature = "test-support"))]
pub mod fuzz;
pub mod migratetype;
pub mod page;
pub mod pcp;
pub mod report;
pub mod source;
pub mod watermark;
pub mod zone;

mod check;
mod init;
#[cfg(test)]
mod tests;
mod zone_meta;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::addr::{Pfn, PAGE_SIZE};
use crate::cpu::CpuId;
use crate::gfp::Gfp;

pub use check::PageCensus;
pub use error::{AllocFailure, FreeError};
pub use fail::FailPageAlloc;
pub use init::InitError;
pub use migratetype::{gfp_migratetype, MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_TYPES};
pub use page::{mem_map_overhead, MemMap, Page};
pub use pcp::{PerCpuPages, NR_CPUS, PCP_MAX_ORDER};
pub use source::BuddyPageSource;
pub use watermark::{AllocFlags, Watermarks, Wmark};
pub use zone::Zone;

use page::{LiveHead, PageState};
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
#[inline]
fn clear_block(mm: &MemMap, idx: u32, order: u32, head: LiveHead) {
    if !head.touched_tails() {
        return;
    }
    let compound = head.compound();
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
    pub fn alloc_pages(&self, gfp: Gfp, order: u32, cpu: CpuId) -> Result<Pfn, AllocFailure> {
        let mm = self.mem_map.get().ok_or(AllocFailure::NotInitialized)?;
        if order > MAX_PAGE_ORDER {
            return Err(AllocFailure::OrderTooLarge { order, gfp });
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
    fn rmqueue_pcp_fast(&self, mm: &MemMap, order: u32, mt: MigrateType, zi: usize, cpu: CpuId) -> Option<u64> {
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
        let mut pcp = self.pcp[cpu.index()][zi].lock();
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
        cpu: CpuId,
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
    fn rmqueue_pcplist(&self, mm: &MemMap, zi: usize, cpu: CpuId, order: u32, mt: MigrateType) -> Option<u64> {
        let mut pcp = self.pcp[cpu.index()][zi].lock();
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
    pub fn free_pages(&self, pfn: Pfn, order: u32, cpu: CpuId) -> Result<(), FreeError> {
        let mm = self.mem_map.get().ok_or(FreeError::NotInitialized)?;
        let pfn = pfn.0;
        if order > MAX_PAGE_ORDER {
            return Err(FreeError::OrderTooLarge { pfn, order });
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
            let mut pcp = self.pcp[cpu.index()][zi].lock();
            // The transition is atomic, so two racing frees cannot both succeed.
            if !page.transition_from(f, PageState::Pcp { order, mt }) {
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
        if !page.transition_from(f, PageState::Unmarked) {
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
    pub fn drain_cpu(&self, cpu: CpuId) {
        let Some(mm) = self.mem_map.get() else { return };
        for (zi, l) in self.pcp[cpu.index()].iter().enumerate() {
            let mut p = l.lock();
            let n = p.count;
            self.free_pcppages_bulk(mm, zi, &mut p, n);
        }
    }
    /// Drains every CPU's lists (Linux's `drain_all_pages`).
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
}
