//! The page allocator's counters read in one go (Linux's `mm/vmstat.c`:
//! `global_zone_page_state`, `zone_page_state`, `all_vm_events`):
//! [`PageAllocator::snapshot`] copies every figure into a plain [`VmStat`], taking no
//! lock (each number is a single load, so it may run in interrupt context and never
//! stops an allocating CPU), and the reports (`report.rs`, the kernel's `free`,
//! `vmstat`, `/proc` files, the boot sweep's records) read that copy. Figures taken
//! while other CPUs allocate are each right but may not add up exactly.

use core::sync::atomic::Ordering::Relaxed;

use super::migrate::MigrateEvents;
use super::migratetype::{ZoneType, MAX_NR_ZONES};
use super::pcp::{PerCpuPages, NR_CPUS};
use super::watermark::Watermarks;
use super::PageAllocator;
use crate::addr::PAGE_SIZE;
use crate::cpu::CpuId;

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

/// Every counter of the page allocator at one moment ([`PageAllocator::snapshot`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VmStat {
    /// Each zone's numbers, by [`ZoneType::index`] (zones without memory all zero but
    /// their type).
    pub zones: [ZoneStats; MAX_NR_ZONES],
    /// Each CPU's pageset in each zone, by CPU index then zone index.
    pub pagesets: [[PagesetStats; MAX_NR_ZONES]; NR_CPUS],
    /// The allocation and free events.
    pub events: VmEvents,
    /// The migration and compaction events.
    pub migrate: MigrateEvents,
    /// Allocation failures so far (injected ones included).
    pub failures: u64,
}

impl VmStat {
    /// One zone's numbers.
    pub const fn zone(&self, zone: ZoneType) -> ZoneStats {
        self.zones[zone.index()]
    }
    /// CPU `cpu`'s pageset in `zone`.
    pub const fn pageset(&self, cpu: CpuId, zone: ZoneType) -> PagesetStats {
        self.pagesets[cpu.index()][zone.index()]
    }
    /// Free pages on the buddy lists of every zone (Linux's `NR_FREE_PAGES`).
    pub fn nr_free_buddy_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.free_pages).sum()
    }
    /// Pages on per-CPU lists, all CPUs and zones.
    pub fn nr_pcp_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.pcp_pages).sum()
    }
    /// All free pages: buddy lists plus per-CPU lists.
    pub fn nr_free_pages(&self) -> u64 {
        self.nr_free_buddy_pages() + self.nr_pcp_pages()
    }
    /// Pages handed to the allocator (Linux's `totalram_pages`).
    pub fn nr_managed_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.managed_pages).sum()
    }
    /// MemTotal and MemFree for `/proc/meminfo`.
    pub fn meminfo(&self) -> MemInfo {
        MemInfo { total_pages: self.nr_managed_pages(), free_pages: self.nr_free_pages() }
    }
}

impl PageAllocator {
    /// Every counter, read without a lock (see the module's notes).
    pub fn snapshot(&self) -> VmStat {
        let zones = core::array::from_fn(|zi| {
            let m = &self.meta[zi];
            let start = m.start_pfn.load(Relaxed);
            ZoneStats {
                zone: ZoneType::ALL[zi],
                start_pfn: start,
                spanned_pages: m.end_pfn.load(Relaxed) - start,
                present_pages: m.present.load(Relaxed),
                managed_pages: m.managed.load(Relaxed),
                free_pages: m.free.load(Relaxed),
                pcp_pages: self.pcp.iter().map(|c| c[zi].count()).sum(),
                reserved_highatomic: m.reserved_highatomic.load(Relaxed),
                wmarks: m.wmarks(),
                lowmem_reserve: m.lowmem_reserve.load(Relaxed),
            }
        });
        let pagesets = core::array::from_fn(|cpu| {
            core::array::from_fn(|zi| {
                let p: &PerCpuPages = &self.pcp[cpu][zi];
                PagesetStats { count: p.count(), high: p.high(), batch: p.batch() }
            })
        });
        // Linux's `all_vm_events`: each CPU's own counters plus those of interrupts that
        // found their CPU's lists busy.
        let mut events = VmEvents::default();
        for (zi, m) in self.meta.iter().enumerate() {
            events.pgalloc[zi] = m.pgalloc.load(Relaxed) + self.pcp.iter().map(|c| c[zi].pgalloc()).sum::<u64>();
            events.pgfree += m.pgfree.load(Relaxed) + self.pcp.iter().map(|c| c[zi].pgfree()).sum::<u64>();
        }
        VmStat { zones, pagesets, events, migrate: self.migrate.read(), failures: self.failures.load(Relaxed) }
    }
}
