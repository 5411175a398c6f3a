//! `memmap`: physical memory as a grid of cells, each with the state of most of its
//! pages (free with the order of its largest free block, used by pageblock type,
//! isolated, reserved), on ANSI colours or plain.

use crate::console::args::{parse_size, parse_u64};
use crate::console::registry::{Command, CommandError};
use crate::mm::memmap::{print_map, MapView, MAX_CELLS};
use mm::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use mm::page_alloc::memmap::memmap_span;

/// `memmap`
pub const MEMMAP: Command = Command {
    name: "memmap",
    args: "[--plain] [START-END] [CELL]",
    help: "physical memory as a map: one cell per pageblock (2M) or CELL bytes, coloured by state",
    run: memmap,
};

/// Parses `START-END` (END exclusive), in bytes.
fn parse_range(s: &str) -> Option<Result<(u64, u64), CommandError>> {
    let (a, b) = s.split_once('-')?;
    let r = (|| {
        let start = parse_size(a).map_err(|e| CommandError::bad(format_args!("range start {a}: {e}")))?;
        let end = parse_size(b).map_err(|e| CommandError::bad(format_args!("range end {b}: {e}")))?;
        if end <= start {
            return Err(CommandError::bad(format_args!("empty range {start:#x}-{end:#x}")));
        }
        Ok((start, end))
    })();
    Some(r)
}

fn memmap(args: &[&str]) -> Result<(), CommandError> {
    let Some(whole) = MapView::whole() else {
        return Err(CommandError::bad(format_args!("the page allocator is not set up")));
    };
    let mut plain = false;
    let mut range = None;
    let mut cell = None;
    for &a in args {
        if a == "--plain" {
            plain = true;
        } else if let Some(r) = parse_range(a) {
            if range.replace(r?).is_some() {
                return Err(CommandError::Usage);
            }
        } else if cell.is_none() && (parse_u64(a).is_ok() || parse_size(a).is_ok()) {
            let c = parse_size(a).map_err(|e| CommandError::bad(format_args!("cell size {a}: {e}")))?;
            if c < PAGE_SIZE as u64 || !c.is_power_of_two() {
                return Err(CommandError::bad(format_args!("cell size {a}: a power of two of at least 4K")));
            }
            cell = Some(c >> PAGE_SHIFT);
        } else {
            return Err(CommandError::Usage);
        }
    }
    let cell_pages = cell.unwrap_or(whole.cell_pages);
    let (lo, hi) = memmap_span(&crate::mm::page_alloc::PAGES).map_or((0, 0), |(s, e)| (s.0, e.0));
    let (start, end) = match range {
        Some((s, e)) => {
            let (s, e) = (s >> PAGE_SHIFT, e.div_ceil(PAGE_SIZE as u64));
            if s >= hi || e <= lo {
                return Err(CommandError::bad(format_args!(
                    "range outside memory [mem {:#010x}-{:#010x}]",
                    lo << PAGE_SHIFT,
                    (hi << PAGE_SHIFT) - 1
                )));
            }
            (s, e)
        }
        None => (lo, hi),
    };
    let start = start & !(cell_pages - 1);
    let cells = (end - start).div_ceil(cell_pages);
    if cells > MAX_CELLS as u64 {
        return Err(CommandError::bad(format_args!(
            "{cells} cells: at most {MAX_CELLS} (a larger CELL or a smaller range)"
        )));
    }
    let view = MapView { start: Pfn(start), cell_pages, cells: cells as usize };
    print_map(view, !plain, |l| crate::cprintln!("{l}"));
    Ok(())
}
