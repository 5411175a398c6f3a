//! The framebuffer's memory-map panel: the cells of [`crate::mm::memmap`] (one per
//! pageblock) as coloured squares under the console, with each row's physical address
//! and a legend. A redraw walks the allocator a few rows at a time (no lock held but
//! the zone lock for a moment), so that no step keeps the boot CPU long, and paints
//! only the cells whose state changed.

use super::font::FONT;
use super::screen::{Screen, BACKGROUND};
use crate::mm::memmap::{rgb, MapView};
use crate::mm::page_alloc::PAGES;
use core::fmt::Write;
use embedded_graphics::mono_font::MonoTextStyleBuilder;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::Point;
use embedded_graphics::text::{Baseline, Text};
use embedded_graphics::Drawable;
use mm::addr::PAGE_SHIFT;
use mm::page_alloc::memmap::{memmap_walk, CellState};
use mm::page_alloc::MigrateType;

/// Cells per panel row (as the `memmap` command prints them).
pub const PER_ROW: usize = 64;
/// Most cells the panel shows (the rest of a larger memory is left out).
const MAX_CELLS: usize = 1024;
/// Pixels per cell, gap included, at most.
const CELL_PX: u32 = 14;
/// The row labels' width: `0x00000000 `.
const LABEL_COLS: u32 = 11;

struct Panel {
    view: Option<MapView>,
    /// What each cell shows now (`None`: not drawn yet).
    shown: [Option<CellState>; MAX_CELLS],
}

static PANEL: spin::Mutex<Panel> = spin::Mutex::new(Panel { view: None, shown: [None; MAX_CELLS] });

fn rows_of(cells: usize) -> u32 {
    cells.min(MAX_CELLS).div_ceil(PER_ROW) as u32
}

fn cells() -> usize {
    MapView::whole().map_or(0, |v| v.cells.min(MAX_CELLS))
}

/// Pixels per cell on this screen.
fn cell_px(s: &Screen) -> u32 {
    let left = 4 + LABEL_COLS * FONT.character_size.width;
    ((s.width().saturating_sub(left + 4)) / PER_ROW as u32).clamp(2, CELL_PX)
}

/// The panel's first pixel row: a title line, the cell rows, a legend line.
pub fn top(s: &Screen) -> u32 {
    let ch = FONT.character_size.height;
    s.height().saturating_sub(ch * 2 + 8 + rows_of(cells()) * cell_px(s))
}

/// Where cell `i` is: (x, y, size in pixels without the gap).
pub fn cell_rect(s: &Screen, i: usize) -> (u32, u32, u32) {
    let px = cell_px(s);
    let x0 = 4 + LABEL_COLS * FONT.character_size.width;
    let y0 = top(s) + FONT.character_size.height + 4;
    (x0 + (i % PER_ROW) as u32 * px, y0 + (i / PER_ROW) as u32 * px, px - 1)
}

/// Draws the panel's fixed parts (title, row addresses, legend).
pub fn init(s: &Screen) {
    let Some(view) = MapView::whole() else { return };
    let mut p = PANEL.lock();
    p.view = Some(view);
    let label = MonoTextStyleBuilder::new()
        .font(FONT)
        .text_color(Rgb888::new(200, 200, 200))
        .background_color(BACKGROUND)
        .build();
    let mut c = s.canvas();
    let ch = FONT.character_size.height;
    let t = top(s);
    s.fill(0, t - 3, s.width(), 1, Rgb888::new(90, 90, 90));
    let mut title = crate::printk::StackString::<128>::new();
    let _ = write!(
        title,
        "memory map: [mem {:#010x}-{:#010x}], {} MiB per cell",
        view.start.0 << PAGE_SHIFT,
        ((view.start.0 + view.cell_pages * view.cells as u64) << PAGE_SHIFT) - 1,
        view.cell_bytes() >> 20
    );
    let _ = Text::with_baseline(title.as_str(), Point::new(4, t as i32), label, Baseline::Top).draw(&mut c);
    let n = view.cells.min(MAX_CELLS);
    for r in 0..rows_of(n) as usize {
        let (_, y, _) = cell_rect(s, r * PER_ROW);
        let mut a = crate::printk::StackString::<16>::new();
        let _ = write!(a, "{:#010x}", (view.start.0 + (r * PER_ROW) as u64 * view.cell_pages) << PAGE_SHIFT);
        let _ = Text::with_baseline(a.as_str(), Point::new(4, y as i32), label, Baseline::Top).draw(&mut c);
    }
    // Legend: a swatch and a name each.
    let ly = (cell_rect(s, (rows_of(n) as usize) * PER_ROW).1 + 3) as i32;
    let mut x = 4i32;
    let cw = FONT.character_size.width as i32;
    let item = |st: CellState, name: &str, x: &mut i32| {
        let (r, g, b) = rgb(st);
        s.fill(*x as u32, ly as u32 + 1, ch - 2, ch - 2, Rgb888::new(r, g, b));
        *x += ch as i32 + 2;
        let _ = Text::with_baseline(name, Point::new(*x, ly), label, Baseline::Top).draw(&mut s.canvas());
        *x += (name.len() as i32 + 2) * cw;
    };
    item(CellState::Free { order: 16 }, "free (darker: smaller blocks)", &mut x);
    for m in MigrateType::ALL {
        item(CellState::Used(m), m.name(), &mut x);
    }
    item(CellState::Isolated, "isolated", &mut x);
    item(CellState::Reserved, "reserved", &mut x);
}

/// Walks the allocator over `rows` of the map's rows from `row` and paints the cells
/// that changed; returns the row to start from next (0 after the last). Skipped (the
/// same row returned) if a redraw is already running.
pub fn redraw_rows(s: &Screen, row: usize, rows: usize) -> usize {
    let Some(mut p) = PANEL.try_lock() else { return row };
    let Some(view) = p.view else { return 0 };
    let n = view.cells.min(MAX_CELLS);
    let first = (row * PER_ROW).min(n);
    let count = (rows * PER_ROW).min(n - first);
    let start = mm::addr::Pfn(view.start.0 + first as u64 * view.cell_pages);
    memmap_walk(&PAGES, start, view.cell_pages, count, |k, c| {
        let (i, st) = (first + k, c.state());
        if p.shown[i] != Some(st) {
            let (x, y, w) = cell_rect(s, i);
            let (r, g, b) = rgb(st);
            s.fill(x, y, w, w, Rgb888::new(r, g, b));
            p.shown[i] = Some(st);
        }
    });
    if first + count >= n {
        0
    } else {
        row + rows
    }
}
