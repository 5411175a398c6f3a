//! The /proc-style reports: meminfo, buddyinfo, pagetypeinfo, slabinfo, vmallocinfo.

use super::no_args;
use crate::console::registry::{Command, CommandError};
use crate::mm::page_alloc::PAGES;
use crate::mm::slab::SLAB;
use crate::mm::vmalloc::VMALLOC;
use crate::printk::print_raw;
use alloc::string::String;
use core::fmt::Write;
use mm::page_alloc::ZoneType;
use mm::pgtable::layout::{VMALLOC_END, VMALLOC_START};

/// Formats a report into a buffer reserved up front (so the writer does not allocate
/// while the report's locks are held), then prints it.
fn print(f: impl FnOnce(&mut String) -> core::fmt::Result) {
    let mut s = String::with_capacity(64 * 1024);
    let _ = f(&mut s);
    print_raw(&s);
}

/// `meminfo`
pub const MEMINFO: Command = Command { name: "meminfo", args: "", help: "memory usage (/proc/meminfo)", run: meminfo };

/// Writes /proc/meminfo.
pub fn write_meminfo(w: &mut dyn Write) -> core::fmt::Result {
    let mi = PAGES.meminfo();
    let z = PAGES.zone_stats(ZoneType::Normal);
    let (vm_pages, pt_pages) = crate::mm::vmalloc::usage();
    let kb = |pages: u64| pages * 4;
    // Linux: MemAvailable = free - reserve (the high watermark); nothing here is reclaimable.
    let available = mi.free_pages.saturating_sub(z.wmarks.high);
    let largest_vm = VMALLOC.lock().vmalloc_areas().largest_free();
    let slab_kb = mm::slab::slabinfo::meminfo_slab_kb(&SLAB) as u64;
    let row = |w: &mut dyn Write, name: &str, v: u64| writeln!(w, "{:<16}{:>8} kB", alloc::format!("{name}:"), v);
    row(w, "MemTotal", mi.total_kb())?;
    row(w, "MemFree", mi.free_kb())?;
    row(w, "MemAvailable", kb(available))?;
    row(w, "Slab", slab_kb)?;
    row(w, "SReclaimable", 0)?;
    row(w, "SUnreclaim", slab_kb)?;
    row(w, "KmallocLarge", SLAB.large_bytes() as u64 >> 10)?;
    row(w, "KernelStack", 64)?;
    row(w, "PageTables", kb(pt_pages as u64))?;
    row(w, "VmallocTotal", (VMALLOC_END - VMALLOC_START) >> 10)?;
    row(w, "VmallocUsed", kb(vm_pages as u64))?;
    row(w, "VmallocChunk", largest_vm >> 10)?;
    row(w, "Percpu", kb(z.pcp_pages))
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
    print(|s| PAGES.buddyinfo(s));
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
    print(|s| PAGES.pagetypeinfo(s));
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
