//! `page_owner`: who holds the memory (Linux's `/sys/kernel/debug/page_owner` read
//! through `page_owner_sort`, and one page's record); `kmemleak`: what nothing refers
//! to any more (Linux's `/sys/kernel/debug/kmemleak`).

use crate::console::args::parse_u64;
use crate::console::registry::{Command, CommandError};
use crate::cprintln;
use crate::mm::page_owner;
use mm::pgtable::layout::PAGE_OFFSET;

/// The console's output as a `fmt::Write`, for the report writers shared with oopses.
struct Raw;

impl core::fmt::Write for Raw {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::printk::print_raw(s);
        Ok(())
    }
}

/// Distinct traces `page_owner` lists (a buffer on the stack: 4 KiB).
const GROUPS_MAX: usize = 128;

/// `page_owner`
pub const PAGE_OWNER: Command = Command {
    name: "page_owner",
    args: "[PFN|ADDR]",
    help: "who allocated the pages held, grouped by call trace; or one page's record (with its last free)",
    run: page_owner_cmd,
};

fn page_owner_cmd(args: &[&str]) -> Result<(), CommandError> {
    let Some(po) = page_owner::table() else {
        return Err(CommandError::bad(format_args!("page_owner is off (boot without page_owner=off)")));
    };
    match args {
        [] => {
            // Only blocks the page allocator still has as allocated at that order.
            let held = |pfn: u64, order: u32| {
                matches!(crate::mm::page_alloc::pfn_to_page(mm::addr::Pfn(pfn)).map(|p| p.state()),
                    Some(mm::page_alloc::page::PageState::Head { order: o, .. }) if o == order)
            };
            let mut buf = [mm::debug::page_owner::Group::EMPTY; GROUPS_MAX];
            let (n, left_out) = po.aggregate_held(&mut buf, &held);
            let groups = &buf[..n];
            let (blocks, pages) = groups.iter().fold((0, 0), |(b, p), g| (b + g.times, p + g.pages));
            cprintln!(
                "page_owner: {} blocks ({} pages) held, {} distinct traces; stack depot {}/{} traces, {} not kept; {} frames outside the table",
                blocks,
                pages,
                groups.len(),
                po.depot.used(),
                po.depot.capacity(),
                po.depot.dropped(),
                po.outside()
            );
            if left_out > 0 {
                cprintln!("page_owner: {left_out} blocks of further traces not listed (more than {GROUPS_MAX} traces)");
            }
            for g in groups {
                cprintln!("{} times, {} pages:", g.times, g.pages);
                cprintln!("Page allocated via order {}, mask {}, migratetype {:?}", g.order, g.gfp, g.migratetype);
                let _ = page_owner::write_trace(&mut Raw, po, g.handle, crate::platform::symbols());
                cprintln!();
            }
            Ok(())
        }
        [a] => {
            let v = parse_u64(a).map_err(|e| CommandError::bad(format_args!("{a}: {e}")))?;
            let pfn = if v >= PAGE_OFFSET {
                if v >= crate::mm::page_alloc::linear_map_end() {
                    return Err(CommandError::bad(format_args!("{v:#x} is not a linear-map address")));
                }
                crate::mm::virt_to_phys(mm::addr::VirtAddr::new(v)).as_u64() >> mm::addr::PAGE_SHIFT
            } else {
                v
            };
            if crate::mm::page_alloc::pfn_to_page(mm::addr::Pfn(pfn)).is_none() {
                return Err(CommandError::bad(format_args!("pfn {pfn:#x} is outside memory")));
            }
            match po.lookup(pfn) {
                Some(i) => {
                    let _ = page_owner::write_record(&mut Raw, pfn, &i, crate::platform::symbols());
                }
                None => cprintln!("PFN 0x{pfn:x}: never allocated since boot (page_owner has no record)"),
            }
            Ok(())
        }
        _ => Err(CommandError::Usage),
    }
}

/// `kmemleak`
pub const KMEMLEAK: Command = Command {
    name: "kmemleak",
    args: "[scan|clear]",
    help: "scan for kmalloc objects nothing refers to (needs kmemleak=on); alone: the last scan's; clear: forget them",
    run: kmemleak_cmd,
};

fn kmemleak_cmd(args: &[&str]) -> Result<(), CommandError> {
    use crate::mm::kmemleak;
    let err = |e: &str| CommandError::bad(format_args!("{e}"));
    match args {
        [] => {
            let _ = kmemleak::write_leaks(&mut Raw);
            Ok(())
        }
        ["scan"] => {
            let r = kmemleak::scan().map_err(err)?;
            cprintln!(
                "kmemleak: {} suspected memory leaks ({} objects tracked, {} words scanned)",
                r.leaks,
                r.objects,
                r.words
            );
            let _ = kmemleak::write_leaks(&mut Raw);
            Ok(())
        }
        ["clear"] => {
            let n = kmemleak::clear().map_err(err)?;
            cprintln!("kmemleak: {n} suspects cleared (not reported again)");
            Ok(())
        }
        _ => Err(CommandError::Usage),
    }
}
