//! `records=on`: the kernel's results as data. Each summary the kernel prints is also
//! printed as one JSON line behind `@rec ` (the `records` crate writes it; the schema is
//! in docs/records.md), so a host tool can read a run back (`make report`). Off by
//! default: the console stays readable.

use crate::pr_info;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use records::Record;

static ON: AtomicBool = AtomicBool::new(false);

/// Turns records on when the command line says `records=on` (or a bare `records`).
pub fn init(cmdline: &str) {
    let on = match crate::cmdline::option(cmdline, "records") {
        Some("on") => true,
        Some("off") => false,
        Some(v) => {
            crate::pr_warn!("records={}: expected on or off; records stay off", v);
            false
        }
        None => crate::cmdline::flag(cmdline, "records"),
    };
    ON.store(on, Relaxed);
}

/// Whether records are printed.
pub fn enabled() -> bool {
    ON.load(Relaxed)
}

/// Prints `rec` as a record line, when records are on. Nothing is allocated (the line is
/// written into a buffer on the stack), so results can be recorded with memory exhausted.
pub fn emit<'a>(rec: impl Into<Record<'a>>) {
    if !enabled() {
        return;
    }
    let rec = rec.into();
    let mut buf = [0u8; records::MAX_LEN];
    match records::encode(&rec, &mut buf) {
        // serde-json-core writes UTF-8 (the strings it is given are &str).
        Ok(n) => pr_info!("{}{}", records::PREFIX, core::str::from_utf8(&buf[..n]).unwrap_or("")),
        Err(_) => {
            crate::pr_warn!("records: a {} record is longer than {} bytes; left out", rec.kind(), records::MAX_LEN)
        }
    }
}

/// The boot's records (on the target: they read the board and the allocators): which kernel on which board with which command line, then the
/// memory as the page allocator has it, and `/proc/buddyinfo` before anything ran.
#[cfg(target_os = "none")]
pub fn boot(board: &str, cmdline: &str) {
    if !enabled() {
        return;
    }
    use crate::mm::page_alloc::PAGES;
    use mm::addr::PAGE_SIZE;
    use mm::page_alloc::{ZoneType, MAX_PAGE_ORDER};
    // A long command line is cut at a character boundary: the record must fit its buffer.
    let mut end = cmdline.len().min(256);
    while !cmdline.is_char_boundary(end) {
        end -= 1;
    }
    emit(records::BootInfo { version: crate::oops::VERSION, board, cmdline: &cmdline[..end] });
    let z = PAGES.snapshot().zone(ZoneType::Normal);
    let ram = board::mailbox::arm_memory().map_or(0, |(b, s)| b as u64 + s as u64);
    emit(records::BootMemory {
        ram_bytes: ram,
        present_pages: z.present_pages,
        managed_pages: z.managed_pages,
        free_pages: crate::mm::settled_free_pages(),
        max_order: MAX_PAGE_ORDER,
        cma_bytes: mm::page_alloc::Cma::new(&PAGES).stats().map_or(0, |c| c.pages * PAGE_SIZE as u64),
    });
    let counts = mm::page_alloc::report::buddyinfo_counts(&PAGES, ZoneType::Normal);
    emit(records::BuddyInfo { when: "boot", counts: &counts });
}
