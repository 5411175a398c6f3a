//! Reports in Linux's exact formats: `/proc/buddyinfo`, `/proc/pagetypeinfo`, and the
//! pieces of an allocation-failure report (`warn_alloc` and `show_free_areas`).
//! Everything is written into a `core::fmt::Write`; the kernel adds the CPU, call trace
//! and log prefixes.

use core::fmt::{self, Write};

use super::error::AllocFailure;
use super::migratetype::{MigrateType, ZoneType, MIGRATE_TYPES};
use super::{PageAllocator, NR_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::addr::PAGE_SIZE;

const KB_PER_PAGE: u64 = PAGE_SIZE as u64 / 1024;

/// Linux's `warn_alloc` line: `comm: page allocation failure: order:N,
/// mode:0x...(GFP_...), nodemask=(null)`. Writes nothing for failures that should not
/// warn (`__GFP_NOWARN`) or that were not memory requests.
pub fn warn_alloc(w: &mut dyn Write, comm: &str, failure: &AllocFailure) -> fmt::Result {
    match *failure {
        AllocFailure::NoMemory { order, gfp } | AllocFailure::Injected { order, gfp } if failure.should_warn() => {
            writeln!(w, "{comm}: page allocation failure: order:{order}, mode:{gfp}, nodemask=(null)")
        }
        _ => Ok(()),
    }
}

fn populated(pages: &PageAllocator) -> impl Iterator<Item = ZoneType> + '_ {
    ZoneType::ALL.into_iter().filter(|z| pages.meta[z.index()].present.load(core::sync::atomic::Ordering::Relaxed) > 0)
}

/// Free blocks per order on a zone's buddy lists (a line of `/proc/buddyinfo`).
pub fn buddyinfo_counts(pages: &PageAllocator, zt: ZoneType) -> [u64; NR_ORDERS] {
    let z = pages.lock_zone(zt.index());
    core::array::from_fn(|o| z.free_area[o].nr_free)
}

/// `/proc/buddyinfo` (`frag_show_print`): free blocks per order on the buddy lists.
pub fn buddyinfo(pages: &PageAllocator, w: &mut dyn Write) -> fmt::Result {
    for zt in populated(pages) {
        // Copy under the lock, write after: the writer may allocate (a String growing
        // through kmalloc), which can need this very zone lock.
        let counts = buddyinfo_counts(pages, zt);
        write!(w, "Node 0, zone {:>8} ", zt.name())?;
        for n in counts {
            write!(w, "{n:6} ")?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// `/proc/pagetypeinfo`: free blocks per order and migratetype, then pageblocks per
/// migratetype.
pub fn pagetypeinfo(pages: &PageAllocator, w: &mut dyn Write) -> fmt::Result {
    writeln!(w, "Page block order: {PAGEBLOCK_ORDER}")?;
    writeln!(w, "Pages per block:  {PAGEBLOCK_NR_PAGES}")?;
    writeln!(w)?;
    write!(w, "{:<43} ", "Free pages count per migrate type at order")?;
    for o in 0..NR_ORDERS {
        write!(w, "{o:6} ")?;
    }
    writeln!(w)?;
    let mut blocks = [[0u64; MIGRATE_TYPES]; 2];
    // Linux prints the CMA type only with CONFIG_CMA; here only when an area exists.
    let types = if super::Cma::new(pages).stats().is_some() { MIGRATE_TYPES } else { MIGRATE_TYPES - 1 };
    let types = &MigrateType::ALL[..types];
    for zt in populated(pages) {
        // Snapshot under the lock, write after it (the writer may allocate).
        let (lens, counts) = {
            let z = pages.lock_zone(zt.index());
            (z.list_lengths(), z.pageblock_counts())
        };
        for &m in types {
            write!(w, "Node {:4}, zone {:>8}, type {:>12} ", 0, zt.name(), m.name())?;
            for l in &lens {
                // Linux stops counting at 100000 and prints ">".
                let n = l[m.index()];
                let over = if n >= 100_000 { ">" } else { "" };
                write!(w, "{over}{:6} ", n.min(100_000))?;
            }
            writeln!(w)?;
        }
        blocks[zt.index()] = counts;
    }
    write!(w, "\n{:<23}", "Number of blocks type ")?;
    for m in types {
        write!(w, "{:>12} ", m.name())?;
    }
    writeln!(w)?;
    for zt in populated(pages) {
        write!(w, "Node 0, zone {:>8} ", zt.name())?;
        for c in &blocks[zt.index()][..types.len()] {
            write!(w, "{c:12} ")?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// The zone part of Linux's `show_free_areas` (`Mem-Info:`): per zone the free,
/// watermark and size line, `lowmem_reserve[]`, then the per-order line with
/// migratetype letters, e.g. `Normal: 3*4kB (UM) 1*8kB (M) ... = 20kB`.
pub fn show_free_areas(pages: &PageAllocator, w: &mut dyn Write) -> fmt::Result {
    writeln!(w, "Mem-Info:")?;
    let stat = pages.snapshot();
    for zt in populated(pages) {
        let s = stat.zone(zt);
        writeln!(
            w,
            "{} free:{}kB min:{}kB low:{}kB high:{}kB reserved_highatomic:{}KB present:{}kB managed:{}kB free_pcp:{}kB",
            zt.name(),
            s.free_pages * KB_PER_PAGE,
            s.wmarks.min * KB_PER_PAGE,
            s.wmarks.low * KB_PER_PAGE,
            s.wmarks.high * KB_PER_PAGE,
            s.reserved_highatomic * KB_PER_PAGE,
            s.present_pages * KB_PER_PAGE,
            s.managed_pages * KB_PER_PAGE,
            s.pcp_pages * KB_PER_PAGE,
        )?;
        // lowmem_reserve[j]: pages zone keeps from requests whose highest zone is j.
        write!(w, "lowmem_reserve[]:")?;
        for j in ZoneType::ALL {
            let r = if j.index() > zt.index() { s.lowmem_reserve } else { 0 };
            write!(w, " {r}")?;
        }
        writeln!(w)?;
    }
    for zt in populated(pages) {
        // Snapshot (count, non-empty migratetypes) per order, then write unlocked.
        let orders: [(u64, [bool; MIGRATE_TYPES]); NR_ORDERS] = {
            let z = pages.lock_zone(zt.index());
            core::array::from_fn(|o| {
                let a = &z.free_area[o];
                (a.nr_free, core::array::from_fn(|m| !a.is_empty(m)))
            })
        };
        write!(w, "{}: ", zt.name())?;
        let mut total = 0;
        for (o, (nr_free, present)) in orders.iter().enumerate() {
            total += nr_free << o;
            write!(w, "{}*{}kB ", nr_free, KB_PER_PAGE << o)?;
            if *nr_free != 0 {
                w.write_char('(')?;
                for m in MigrateType::ALL {
                    if present[m.index()] {
                        w.write_char(m.letter())?;
                    }
                }
                w.write_str(") ")?;
            }
        }
        writeln!(w, "= {}kB", total * KB_PER_PAGE)?;
    }
    Ok(())
}
