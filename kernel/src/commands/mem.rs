//! The /proc-style reports: meminfo, zoneinfo, vmstat, buddyinfo, pagetypeinfo,
//! slabinfo, vmallocinfo (each also `cat /proc/NAME`), and SysRq-m's `show_mem`.

use super::no_args;
use crate::console::registry::{Command, CommandError};
use crate::mm::page_alloc::PAGES;
use crate::mm::slab::SLAB;
use crate::mm::vmalloc::VMALLOC;
use core::fmt::Write;
use mm::cpu::CpuId;
use mm::page_alloc::ZoneType;
use mm::pgtable::layout::{VMALLOC_END, VMALLOC_START};

/// Prints a report as it is formatted, straight to the console (no buffer, nothing
/// allocated, so the reports work when memory is exhausted). The console is held for
/// the whole report, then the report's own locks: the order every report uses.
pub fn print(f: impl FnOnce(&mut dyn Write) -> core::fmt::Result) {
    struct Raw<'a>(&'a mut crate::printk::ConsoleWriter);
    impl Write for Raw<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.raw(s);
            Ok(())
        }
    }
    crate::printk::with_console(|w| {
        let _ = f(&mut Raw(w));
    });
}

/// `meminfo`
pub const MEMINFO: Command = Command { name: "meminfo", args: "", help: "memory usage (/proc/meminfo)", run: meminfo };

/// meminfo's first three figures, which `free` and `vmstat` print too.
#[derive(Clone, Copy, Debug)]
pub struct MemSummary {
    /// MemTotal: the managed pages, in kB.
    pub total_kb: u64,
    /// MemFree: the buddy lists, in kB.
    pub free_kb: u64,
    /// MemAvailable, in kB.
    pub available_kb: u64,
}

/// Linux's MemFree is NR_FREE_PAGES: the buddy lists only (pages on the per-CPU lists
/// are counted as allocated; zoneinfo shows them as pagesets). MemAvailable = free -
/// reserve (the high watermark); nothing here is reclaimable.
pub fn mem_summary() -> MemSummary {
    let stat = PAGES.snapshot();
    let z = stat.zone(ZoneType::Normal);
    MemSummary {
        total_kb: stat.meminfo().total_kb(),
        free_kb: z.free_pages * 4,
        available_kb: z.free_pages.saturating_sub(z.wmarks.high) * 4,
    }
}

/// Writes /proc/meminfo.
pub fn write_meminfo(w: &mut dyn Write) -> core::fmt::Result {
    let m = mem_summary();
    let (vm_pages, pt_pages) = crate::mm::vmalloc::usage();
    let kb = |pages: u64| pages * 4;
    let largest_vm = VMALLOC.lock().vmalloc_areas().largest_free();
    let slab_kb = mm::slab::slabinfo::meminfo_slab_kb(&SLAB) as u64;
    // Linux's layout: the label and its colon padded to 16 columns, the value to 8.
    let row = |w: &mut dyn Write, name: &str, v: u64| {
        writeln!(w, "{name}:{:pad$}{:>8} kB", "", v, pad = 15usize.saturating_sub(name.len()))
    };
    row(w, "MemTotal", m.total_kb)?;
    row(w, "MemFree", m.free_kb)?;
    row(w, "MemAvailable", m.available_kb)?;
    row(w, "Slab", slab_kb)?;
    row(w, "SReclaimable", 0)?;
    row(w, "SUnreclaim", slab_kb)?;
    row(w, "KernelStack", crate::stacks::kernel_stack_bytes() as u64 >> 10)?;
    row(w, "PageTables", kb(pt_pages as u64))?;
    row(w, "VmallocTotal", (VMALLOC_END - VMALLOC_START) >> 10)?;
    row(w, "VmallocUsed", kb(vm_pages as u64))?;
    row(w, "VmallocChunk", largest_vm >> 10)?;
    // Linux prints these with CONFIG_CMA; here only when `cma=` declared an area.
    if let Some(c) = mm::page_alloc::Cma::new(&PAGES).stats() {
        row(w, "CmaTotal", kb(c.pages))?;
        row(w, "CmaFree", kb(c.free))?;
    }
    Ok(())
}

/// `zoneinfo`
pub const ZONEINFO: Command = Command {
    name: "zoneinfo",
    args: "",
    help: "the zone: free pages, watermarks, spans (/proc/zoneinfo)",
    run: zoneinfo,
};

/// Writes /proc/zoneinfo for the one zone, with Linux's field names (in pages).
pub fn write_zoneinfo(w: &mut dyn Write) -> core::fmt::Result {
    let stat = PAGES.snapshot();
    let z = stat.zone(ZoneType::Normal);
    writeln!(w, "Node 0, zone   Normal")?;
    writeln!(w, "  pages free     {}", z.free_pages)?;
    writeln!(w, "        boost    0")?;
    writeln!(w, "        min      {}", z.wmarks.min)?;
    writeln!(w, "        low      {}", z.wmarks.low)?;
    writeln!(w, "        high     {}", z.wmarks.high)?;
    writeln!(w, "        spanned  {}", z.spanned_pages)?;
    writeln!(w, "        present  {}", z.present_pages)?;
    writeln!(w, "        managed  {}", z.managed_pages)?;
    writeln!(w, "        cma      {}", mm::page_alloc::Cma::new(&PAGES).stats().map_or(0, |c| c.pages))?;
    writeln!(w, "        protection: ({})", z.lowmem_reserve)?;
    writeln!(w, "      nr_free_pages {}", z.free_pages)?;
    writeln!(w, "      nr_zone_reserved_highatomic {}", z.reserved_highatomic)?;
    // Each online CPU's pageset, as Linux prints them (count, high, batch).
    writeln!(w, "  pagesets")?;
    let online = crate::percpu::online_mask();
    for cpu in CpuId::all().filter(|c| online & (1 << c.index()) != 0) {
        let p = stat.pageset(cpu, ZoneType::Normal);
        writeln!(w, "    cpu: {}", cpu)?;
        writeln!(w, "              count: {}", p.count)?;
        writeln!(w, "              high:  {}", p.high)?;
        writeln!(w, "              batch: {}", p.batch)?;
    }
    writeln!(w, "  node_unreclaimable:  0")?;
    writeln!(w, "  start_pfn:           {}", z.start_pfn)
}

fn zoneinfo(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|s| write_zoneinfo(s));
    Ok(())
}

/// Writes the /proc/vmstat counters this kernel keeps, with Linux's names and units
/// (pages; nr_kernel_stack in kB, as in Linux): the counts of pages, then the page
/// allocator's events (`pgalloc_<zone>`, `pgfree`, in pages), kept per CPU and summed
/// here. Events the kernel does not have (pgfault, reclaim) are not shown.
pub fn write_vmstat(w: &mut dyn Write) -> core::fmt::Result {
    let stat = PAGES.snapshot();
    let z = stat.zone(ZoneType::Normal);
    let (vm_pages, pt_pages) = crate::mm::vmalloc::usage();
    let slab_pages = mm::slab::slabinfo::meminfo_slab_kb(&SLAB) as u64 / 4;
    writeln!(w, "nr_free_pages {}", z.free_pages)?;
    writeln!(w, "nr_zone_reserved_highatomic {}", z.reserved_highatomic)?;
    writeln!(w, "nr_slab_reclaimable 0")?;
    writeln!(w, "nr_slab_unreclaimable {}", slab_pages)?;
    writeln!(w, "nr_kernel_misc_reclaimable 0")?;
    writeln!(w, "nr_page_table_pages {}", pt_pages)?;
    writeln!(w, "nr_vmalloc {}", vm_pages)?;
    writeln!(w, "nr_kernel_stack {}", crate::stacks::kernel_stack_bytes() >> 10)?;
    let e = stat.events;
    writeln!(w, "pgalloc_dma {}", e.pgalloc[ZoneType::Dma.index()])?;
    writeln!(w, "pgalloc_normal {}", e.pgalloc[ZoneType::Normal.index()])?;
    writeln!(w, "pgfree {}", e.pgfree)?;
    let m = stat.migrate;
    writeln!(w, "pgmigrate_success {}", m.pgmigrate_success)?;
    writeln!(w, "pgmigrate_fail {}", m.pgmigrate_fail)?;
    writeln!(w, "compact_migrate_scanned {}", m.compact_migrate_scanned)?;
    writeln!(w, "compact_free_scanned {}", m.compact_free_scanned)?;
    writeln!(w, "compact_isolated {}", m.compact_isolated)?;
    writeln!(w, "compact_stall {}", m.compact_stall)?;
    writeln!(w, "compact_fail {}", m.compact_fail)?;
    writeln!(w, "compact_success {}", m.compact_success)
}

fn meminfo(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|s| write_meminfo(s));
    Ok(())
}

/// `buddyinfo`
pub const BUDDYINFO: Command =
    Command { name: "buddyinfo", args: "", help: "free blocks per order (/proc/buddyinfo)", run: buddyinfo };

fn buddyinfo(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|s| mm::page_alloc::report::buddyinfo(&PAGES, s));
    Ok(())
}

/// `pagetypeinfo`
pub const PAGETYPEINFO: Command = Command {
    name: "pagetypeinfo",
    args: "",
    help: "free blocks per order and migratetype (/proc/pagetypeinfo)",
    run: pagetypeinfo,
};

fn pagetypeinfo(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|s| mm::page_alloc::report::pagetypeinfo(&PAGES, s));
    Ok(())
}

/// `slabinfo`
pub const SLABINFO: Command =
    Command { name: "slabinfo", args: "", help: "slab caches (/proc/slabinfo)", run: slabinfo };

fn slabinfo(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|s| mm::slab::slabinfo::slabinfo(&SLAB, s));
    Ok(())
}

/// `vmallocinfo`
pub const VMALLOCINFO: Command =
    Command { name: "vmallocinfo", args: "", help: "vmalloc and ioremap areas (/proc/vmallocinfo)", run: vmallocinfo };

fn vmallocinfo(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|s| VMALLOC.lock().vmallocinfo(s));
    Ok(())
}

/// `show_mem`
pub const SHOW_MEM: Command = Command {
    name: "show_mem",
    args: "",
    help: "the memory summary of SysRq-m (show_mem): Mem-Info, free lists, pages",
    run: show_mem,
};

/// Linux's `show_mem` as SysRq-m prints it: `sysrq: Show Memory`, the Mem-Info block
/// (the zone's free, watermarks and free lists by order and type), then the page counts.
pub fn write_show_mem(w: &mut dyn Write) -> core::fmt::Result {
    writeln!(w, "sysrq: Show Memory")?;
    mm::page_alloc::report::show_free_areas(&PAGES, w)?;
    let z = PAGES.snapshot().zone(ZoneType::Normal);
    writeln!(w, "{} pages RAM", z.present_pages)?;
    writeln!(w, "0 pages HighMem/MovableOnly")?;
    writeln!(w, "{} pages reserved", z.present_pages.saturating_sub(z.managed_pages))?;
    writeln!(w, "{} pages cma reserved", mm::page_alloc::Cma::new(&PAGES).stats().map_or(0, |c| c.pages))
}

fn show_mem(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|s| write_show_mem(s));
    Ok(())
}
