//! `compact` and `extfrag`: memory compaction on demand (Linux's
//! /proc/sys/vm/compact_memory) and the fragmentation index per order (Linux's
//! /sys/kernel/debug/extfrag/extfrag_index).

use super::mem::print;
use super::no_args;
use crate::console::registry::{Command, CommandError};
use crate::cprintln;
use crate::mm::page_alloc::PAGES;
use mm::addr::PAGE_SHIFT;
use mm::page_alloc::{ZoneType, NR_ORDERS};

/// `compact`
pub const COMPACT: Command = Command {
    name: "compact",
    args: "",
    help: "compact memory: migrate movable pages to rebuild large free blocks (/proc/sys/vm/compact_memory)",
    run: compact,
};

/// The largest order with a free block on the buddy lists.
pub fn max_free_order() -> Option<u32> {
    let mut best = None;
    mm::page_alloc::memmap::for_each_free_block(&PAGES, |_, _, o, _| best = best.max(Some(o)));
    best
}

fn compact(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    crate::mm::drain_all_cpu_caches();
    let before = max_free_order();
    let t0 = board::timer::ticks();
    let r = crate::mm::migrate::compact_memory();
    let us = board::timer::ticks_to_ns(board::timer::ticks() - t0) / 1000;
    let after = max_free_order();
    let o = |x: Option<u32>| x.map_or(-1, |v| v as i64);
    cprintln!(
        "compact: {} pages migrated ({} failed), scanned {} (migrate) {} (free), largest free block order {} -> {} ({}.{:03} ms)",
        r.migrated,
        r.failed,
        r.migrate_scanned,
        r.free_scanned,
        o(before),
        o(after),
        us / 1000,
        us % 1000
    );
    // The evacuation step, when the scanners met below the zone's highest order.
    if let Some(ev) = r.evacuation {
        let (met, tried) = (o(ev.scanners_order), ev.tried);
        let s = if tried == 1 { "" } else { "s" };
        match ev.block {
            Some(pfn) => cprintln!(
                "compact: scanners met at order {}; emptied order-{} block [mem {:#010x}-{:#010x}]: {} blocks ({} pages) migrated out, {} candidate{} tried",
                met,
                ev.order,
                pfn.0 << PAGE_SHIFT,
                ((pfn.0 + (1 << ev.order)) << PAGE_SHIFT) - 1,
                ev.migrated,
                ev.pages,
                tried,
                s
            ),
            None => cprintln!(
                "compact: scanners met at order {}; no order-{} block could be emptied: {} candidate{} tried, a page did not move ({} blocks, {} pages migrated out)",
                met,
                ev.order,
                tried,
                s,
                ev.migrated,
                ev.pages
            ),
        }
    }
    Ok(())
}

/// `extfrag`
pub const EXTFRAG: Command = Command {
    name: "extfrag",
    args: "",
    help: "fragmentation index per order (/sys/kernel/debug/extfrag/extfrag_index)",
    run: extfrag,
};

fn extfrag(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    print(|w| {
        for zone in ZoneType::ALL {
            if PAGES.snapshot().zone(zone).managed_pages == 0 {
                continue;
            }
            write!(w, "Node 0, zone {:>8} ", zone.name())?;
            let idx = mm::page_alloc::extfrag_indices(&PAGES, zone.index());
            for &i in idx.iter().take(NR_ORDERS) {
                write!(w, "{:2}.{:03} ", i / 1000, i % 1000)?;
            }
            writeln!(w)?;
        }
        Ok(())
    });
    Ok(())
}
