//! The HDMI framebuffer: the firmware's buffer (`board::framebuffer`), mapped
//! write-combining through ioremap, holding a text console that mirrors the UART
//! ([`console`]) and a live map of physical memory ([`panel`]).
//!
//! Drawing never makes a printer wait: printk only copies text into the console's
//! character grid; the pixels are drawn by a timer on the boot CPU a few times a second
//! (rows that changed, and the map when the page allocator's counters moved), each step
//! with `try_lock`, skipped when busy. `fb=off` on the command line, or a firmware that
//! does not answer (every mailbox wait is bounded), leaves the UART alone.
//!
//! Cache attributes (real hardware): the buffer is mapped Normal non-cacheable, as
//! Linux's `bcm2708_fb` maps it with `ioremap_wc` (arm64: `MT_NORMAL_NC`): the
//! VideoCore scans it out without seeing the ARM caches, and writes need no cache
//! maintenance; non-cacheable Normal memory may gather writes, which the display
//! tolerates (a frame may show a row half drawn).

pub mod console;
pub mod panel;
pub mod screen;

use crate::{pr_info, pr_warn};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use screen::Screen;

/// The requested mode (the firmware may answer another).
const WIDTH: u32 = 1024;
const HEIGHT: u32 = 768;
const DEPTH: u32 = 32;

/// How often the timer draws the console's changed rows.
const TICK_US: u64 = 100_000;
/// How often, at most, the map is redrawn (when the allocator's counters moved).
const MAP_EVERY_TICKS: u64 = 4;

static SCREEN: spin::Once<Screen> = spin::Once::new();
static ENABLED: AtomicBool = AtomicBool::new(false);
static TICKS: AtomicU64 = AtomicU64::new(0);
/// The allocator's pgalloc + pgfree count at the map's last redraw.
static LAST_EVENTS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Whether the framebuffer is in use.
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// The screen, once set up.
pub(crate) fn screen() -> Option<&'static Screen> {
    if enabled() {
        SCREEN.get()
    } else {
        None
    }
}

/// Sets the framebuffer up (boot CPU, after the memory manager and the timers): asks the
/// firmware, maps the buffer, draws the boot log so far and the map, and starts the
/// refresh timer. `fb=off`, or no answer: a line in the log and the UART alone.
pub fn init(cmdline: &str) {
    if crate::cmdline::option(cmdline, "fb") == Some("off") {
        pr_info!("fb: off (fb=off on the command line): console on the UART only");
        return;
    }
    let info = match board::framebuffer::allocate(WIDTH, HEIGHT, DEPTH) {
        Ok(i) => i,
        Err(e) => {
            pr_warn!("fb: no framebuffer from the firmware ({:?}): console on the UART only", e);
            return;
        }
    };
    if info.depth != 32 && info.depth != 16 {
        pr_warn!("fb: the firmware set {} bits per pixel (16 or 32 supported): console on the UART only", info.depth);
        return;
    }
    let pa = mm::addr::PhysAddr::new(info.base as u64);
    let va = match crate::mm::vmalloc::ioremap_wc(pa, info.size as usize, "framebuffer") {
        Ok(va) => va,
        Err(e) => {
            pr_warn!("fb: cannot map the framebuffer at {:#x}: {} (console on the UART only)", info.base, e);
            return;
        }
    };
    let s = SCREEN.call_once(|| Screen::new(va.as_usize(), info));
    s.clear();
    let (cols, rows) = console::init(s);
    panel::init(s);
    let cell = panel::cell_rect(s, 0);
    pr_info!(
        "fb: {}x{}x{} at {:#010x} (pitch {}, {} KiB), {} order, write-combining; console {}x{}; memory map: {} cells per row of {} px from ({},{})",
        info.width,
        info.height,
        info.depth,
        info.base,
        info.pitch,
        info.size >> 10,
        if info.rgb { "RGB" } else { "BGR" },
        cols,
        rows,
        panel::PER_ROW,
        cell.2 + 1,
        cell.0,
        cell.1
    );
    ENABLED.store(true, Relaxed);
    console::replay_log();
    tick(0);
}

/// The refresh timer: the console's changed rows every tick, the map every few ticks
/// when pages were allocated or freed since its last redraw; then re-armed.
fn tick(_: usize) {
    let Some(s) = screen() else { return };
    console::flush(s);
    let n = TICKS.fetch_add(1, Relaxed);
    if n.is_multiple_of(MAP_EVERY_TICKS) {
        let e = crate::mm::page_alloc::PAGES.vm_events();
        let events = e.pgalloc.iter().sum::<u64>() + e.pgfree;
        if LAST_EVENTS.swap(events, Relaxed) != events {
            panel::redraw(s);
        }
    }
    let deadline = crate::timer::now() + crate::timer::us_to_ticks(TICK_US);
    if crate::timer::add_timer(deadline, tick, 0).is_err() {
        pr_warn!("fb: timer queue full: the screen is no longer refreshed");
    }
}

/// Redraws the map now (after a command changed memory), unless a redraw is running.
pub fn redraw_map() {
    if let Some(s) = screen() {
        panel::redraw(s);
    }
}
