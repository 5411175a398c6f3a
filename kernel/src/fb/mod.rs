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
pub mod font;
pub mod panel;
pub mod screen;

use crate::{pr_info, pr_warn};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use screen::Screen;

/// The requested mode (the firmware may answer another).
const WIDTH: u32 = 1024;
const HEIGHT: u32 = 768;
const DEPTH: u32 = 32;

/// The refresh timer's period: the console's changed rows are drawn at most this often.
const TICK_US: u64 = 100_000;
/// Ticks between two walks of part of the map, at least.
const MAP_EVERY_TICKS: u64 = 2;
/// Each drawing step is followed by a pause of at least this many times its own
/// duration, so the screen takes a bounded share of the boot CPU whatever the load: the
/// console at most about 1/50 while it scrolls (its pause is also capped at
/// [`CONSOLE_MAX_PAUSE_US`]), the map at most 1/100 (a walk over memory full of single
/// pages takes tens of ms under QEMU, so the map then redraws every few seconds).
const CONSOLE_DUTY: u64 = 50;
const MAP_DUTY: u64 = 100;
/// The console's longest pause.
const CONSOLE_MAX_PAUSE_US: u64 = 1_500_000;
/// Map rows walked and drawn per step (a whole map in a few steps, each short).
const MAP_ROWS_PER_STEP: usize = 2;

static SCREEN: spin::Once<Screen> = spin::Once::new();
static ENABLED: AtomicBool = AtomicBool::new(false);
static TICKS: AtomicU64 = AtomicU64::new(0);
/// The allocator's pgalloc + pgfree count when the map's last full pass started.
static LAST_EVENTS: AtomicU64 = AtomicU64::new(u64::MAX);
/// The counter value before which the console, and the map, are not drawn again.
static CONSOLE_NEXT: AtomicU64 = AtomicU64::new(0);
static MAP_NEXT: AtomicU64 = AtomicU64::new(0);
/// The map row the next step starts at (0: a new pass).
static MAP_ROW: AtomicU64 = AtomicU64::new(0);
/// Drawing so far: console flushes and map steps, and the counter ticks they took.
static STATS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// What the screen has cost so far.
#[derive(Clone, Copy, Debug)]
pub struct FbStats {
    /// Console flushes that drew.
    pub console_flushes: u64,
    /// Their time in ns.
    pub console_ns: u64,
    /// Map steps (a few rows each).
    pub map_steps: u64,
    /// Their time in ns.
    pub map_ns: u64,
}

/// The drawing so far (`None`: no framebuffer).
pub fn stats() -> Option<FbStats> {
    let g = |i: usize| STATS[i].load(Relaxed);
    screen().map(|_| FbStats {
        console_flushes: g(0),
        console_ns: board::timer::ticks_to_ns(g(1)),
        map_steps: g(2),
        map_ns: board::timer::ticks_to_ns(g(3)),
    })
}

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
    let (cols, rows) = console::init(s, panel::top(s));
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
    crate::platform::set_console_mirror(console::write);
    tick(0);
}

/// Runs `f` unless its pause is not over, then sets its next pause from what `f` took.
/// `stat` is the first of its two [`STATS`] (count, time); the pause is `duty` times
/// the step, within `min..=max` counter ticks.
fn paced(next: &AtomicU64, (min, max, duty): (u64, u64, u64), stat: usize, f: impl FnOnce() -> bool) {
    let t0 = crate::timer::now();
    if t0 < next.load(Relaxed) {
        return;
    }
    let drew = f();
    let t1 = crate::timer::now();
    next.store(t1 + ((t1 - t0) * duty).clamp(min.min(max), max), Relaxed);
    if drew {
        STATS[stat].fetch_add(1, Relaxed);
        STATS[stat + 1].fetch_add(t1 - t0, Relaxed);
    }
}

/// The refresh timer: the console's changed rows, then a step of the map (a few of its
/// rows) while a pass is under way, a new pass only when pages were allocated or freed
/// since the last one began; each paced by [`paced`]; then re-armed.
fn tick(_: usize) {
    let Some(s) = screen() else { return };
    let period = crate::timer::us_to_ticks(TICK_US);
    // The console's pause is capped, so that it keeps up after one long step (the first
    // drawing of a whole screen); its steps are short once it scrolls by moving pixels.
    let console_max = crate::timer::us_to_ticks(CONSOLE_MAX_PAUSE_US);
    paced(&CONSOLE_NEXT, (0, console_max, CONSOLE_DUTY), 0, || console::flush(s));
    TICKS.fetch_add(1, Relaxed);
    paced(&MAP_NEXT, (period * MAP_EVERY_TICKS - period / 2, u64::MAX, MAP_DUTY), 2, || {
        let row = MAP_ROW.load(Relaxed) as usize;
        if row == 0 {
            let e = crate::mm::page_alloc::PAGES.snapshot().events;
            let events = e.pgalloc.iter().sum::<u64>() + e.pgfree;
            if LAST_EVENTS.swap(events, Relaxed) == events {
                return false;
            }
        }
        let next = panel::redraw_rows(s, row, MAP_ROWS_PER_STEP);
        MAP_ROW.store(next as u64, Relaxed);
        true
    });
    let deadline = crate::timer::now() + crate::timer::us_to_ticks(TICK_US);
    if crate::timer::add_timer(deadline, tick, 0).is_err() {
        pr_warn!("fb: timer queue full: the screen is no longer refreshed");
    }
}
