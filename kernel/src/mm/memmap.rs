//! The memory map as text and colours: [`mm::page_alloc::memmap`]'s cells for the running
//! allocator, printed as rows of one character per cell (plain, or on ANSI 24-bit
//! background colours), with each row's physical address, a header and a legend. The
//! `memmap` command and the fragmentation lab print it; the framebuffer's map panel
//! uses the same cells and the same [`rgb`] palette.

use super::page_alloc::PAGES;
use core::fmt::Write;
use mm::addr::{Pfn, PAGE_SHIFT};
use mm::page_alloc::memmap::{memmap_span, memmap_walk, CellState};
use mm::page_alloc::{MigrateType, MAX_PAGE_ORDER, PAGEBLOCK_NR_PAGES};

/// Cells per printed row.
pub const CELLS_PER_ROW: usize = 64;
/// Most cells one map prints (a 4 KiB-cell map of all memory would be 3,840 rows).
pub const MAX_CELLS: usize = 64 * 1024;

/// Which cells to show: `cells` cells of `cell_pages` pages from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapView {
    /// First page frame.
    pub start: Pfn,
    /// Pages per cell (a power of two).
    pub cell_pages: u64,
    /// Number of cells.
    pub cells: usize,
}

impl MapView {
    /// All memory with a descriptor, one cell per pageblock (2 MiB).
    pub fn whole() -> Option<MapView> {
        let (s, e) = memmap_span(&PAGES)?;
        let start = s.0 & !(PAGEBLOCK_NR_PAGES - 1);
        Some(MapView {
            start: Pfn(start),
            cell_pages: PAGEBLOCK_NR_PAGES,
            cells: (e.0 - start).div_ceil(PAGEBLOCK_NR_PAGES) as usize,
        })
    }
    /// Bytes per cell.
    pub fn cell_bytes(&self) -> u64 {
        self.cell_pages << PAGE_SHIFT
    }
}

/// The colour of a cell (the UART's and the screen's): free memory in greens, brighter
/// for larger free blocks; each migratetype its own hue.
pub const fn rgb(s: CellState) -> (u8, u8, u8) {
    match s {
        CellState::Absent => (48, 48, 48),
        CellState::Reserved => (140, 140, 140),
        CellState::Isolated => (255, 255, 255),
        CellState::Free { order } => {
            let o = if order > MAX_PAGE_ORDER { MAX_PAGE_ORDER } else { order };
            (0, (70 + o * 11) as u8, (30 + o * 3) as u8)
        }
        CellState::Used(MigrateType::Unmovable) => (220, 50, 47),
        CellState::Used(MigrateType::Movable) => (38, 139, 210),
        CellState::Used(MigrateType::Reclaimable) => (230, 180, 0),
        CellState::Used(MigrateType::HighAtomic) => (211, 54, 130),
        CellState::Used(MigrateType::Cma) => (150, 90, 230),
    }
}

/// The cells of `view` as their letters (`memmap --plain`'s, without addresses), for a
/// record: a whole-memory map of 2 MiB cells is 480 letters; a longer view is cut.
pub fn cell_letters(view: MapView) -> crate::printk::StackString<{ records::MAX_LEN / 2 }> {
    let mut s = crate::printk::StackString::new();
    memmap_walk(&PAGES, view.start, view.cell_pages, view.cells, |_, count| {
        let _ = s.write_char(count.state().letter());
    });
    s
}

/// Writes a cell's character, on its colour if `color` (black text on light colours).
fn write_cell(w: &mut impl Write, s: CellState, color: bool, last: &mut Option<(u8, u8, u8)>) {
    if color {
        let c = rgb(s);
        if *last != Some(c) {
            let luma = c.0 as u32 * 3 + c.1 as u32 * 6 + c.2 as u32;
            let fg = if luma > 1200 { 30 } else { 97 };
            let _ = write!(w, "\x1b[{};48;2;{};{};{}m", fg, c.0, c.1, c.2);
            *last = Some(c);
        }
    }
    let _ = w.write_char(s.letter());
}

/// Prints the map of `view`, line by line through `line` (each without its newline):
/// a header, rows of [`CELLS_PER_ROW`] cells each led by its physical address, and the
/// legend. No allocation; the allocator is walked once, without locks held while
/// `line` runs but the zone lock for a moment at the start.
pub fn print_map(view: MapView, color: bool, mut line: impl FnMut(&str)) {
    let mut l = crate::printk::StackString::<2048>::new();
    let size = |b: u64| -> (u64, &'static str) {
        if b >= 1 << 20 {
            (b >> 20, "MiB")
        } else {
            (b >> 10, "KiB")
        }
    };
    let (cs, cu) = size(view.cell_bytes());
    let first = view.start.0 << PAGE_SHIFT;
    let last = ((view.start.0 + view.cell_pages * view.cells as u64) << PAGE_SHIFT) - 1;
    let _ = write!(l, "memmap: [mem {first:#010x}-{last:#010x}], {cs} {cu} per cell, {CELLS_PER_ROW} cells per row");
    if let Some(c) = mm::page_alloc::Cma::new(&PAGES).stats() {
        let b = c.base.0 << PAGE_SHIFT;
        let _ = write!(l, "; CMA area [mem {:#010x}-{:#010x}]", b, b + (c.pages << PAGE_SHIFT) - 1);
    }
    line(l.as_str());
    l = crate::printk::StackString::new();
    let mut last_color = None;
    memmap_walk(&PAGES, view.start, view.cell_pages, view.cells, |i, count| {
        if i % CELLS_PER_ROW == 0 {
            let _ = write!(l, "{:#010x} ", (view.start.0 + i as u64 * view.cell_pages) << PAGE_SHIFT);
        }
        write_cell(&mut l, count.state(), color, &mut last_color);
        if i % CELLS_PER_ROW == CELLS_PER_ROW - 1 || i + 1 == view.cells {
            if color {
                let _ = l.write_str("\x1b[0m");
                last_color = None;
            }
            line(l.as_str());
            l = crate::printk::StackString::new();
        }
    });
    // The legend: each state on its colour.
    let legend = |l: &mut crate::printk::StackString<2048>, s: CellState, name: &str| {
        let mut c = None;
        write_cell(l, s, color, &mut c);
        if color {
            let _ = l.write_str("\x1b[0m");
        }
        let _ = write!(l, " {name}  ");
    };
    let _ = l.write_str("legend: ");
    for o in [0, 4, 9, 16] {
        let mut c = None;
        write_cell(&mut l, CellState::Free { order: o }, color, &mut c);
    }
    if color {
        let _ = l.write_str("\x1b[0m");
    }
    let _ = l.write_str(" free: the order of the largest free block in the cell (0-9, a=10 .. g=16)");
    line(l.as_str());
    l = crate::printk::StackString::new();
    let _ = l.write_str("        ");
    for m in MigrateType::ALL {
        legend(&mut l, CellState::Used(m), m.name());
    }
    legend(&mut l, CellState::Isolated, "isolated");
    legend(&mut l, CellState::Reserved, "reserved");
    legend(&mut l, CellState::Absent, "no RAM");
    line(l.as_str().trim_end());
}
