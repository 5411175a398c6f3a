//! The framebuffer's text console: a character grid that mirrors everything written to
//! the UART (boot log, sweep, prompt, echo), with wrapping and scrolling, drawn with
//! `embedded-graphics`' mono font.
//!
//! [`write`] runs under printk's output lock and only updates the grid (a short
//! critical section, never drawing); [`flush`], from the refresh timer, draws the rows
//! that changed. The grid's lock is only ever tried: a writer that cannot get it
//! within a bounded spin (an exception inside a writer on the same CPU) drops its text
//! from the screen rather than wait.

use super::font::{draw_text, CH, CW};
use super::screen::{Screen, BACKGROUND};
use crate::printk::LOG;
use core::fmt::Write;
use embedded_graphics::pixelcolor::Rgb888;
const MAX_COLS: usize = 160;
const MAX_ROWS: usize = 64;
const FOREGROUND: Rgb888 = Rgb888::new(200, 200, 200);
/// Tries of the grid's lock before a writer gives up.
const WRITE_TRIES: usize = 100_000;

/// Escape-sequence state (ANSI CSI: `ESC [ params final`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Esc {
    /// Plain text.
    None,
    /// After ESC.
    Start,
    /// Inside a CSI sequence.
    Csi,
}

struct Grid {
    cols: usize,
    rows: usize,
    /// Row `r` of the screen is `text[(top + r) % rows]`.
    text: [[u8; MAX_COLS]; MAX_ROWS],
    top: usize,
    x: usize,
    y: usize,
    esc: Esc,
    /// Screen rows to draw (bit r).
    dirty: u64,
    /// Rows scrolled since the last flush (the flusher moves the pixels up as many).
    scrolled: usize,
}

/// The flusher's copy of the rows it draws, and where it drew the cursor.
struct Snapshot {
    text: [[u8; MAX_COLS]; MAX_ROWS],
    cursor: Option<usize>,
}

static SNAPSHOT: spin::Mutex<Snapshot> =
    spin::Mutex::new(Snapshot { text: [[b' '; MAX_COLS]; MAX_ROWS], cursor: None });

static GRID: mm::sync::SpinLock<Grid> = mm::sync::SpinLock::new(Grid {
    cols: 0,
    rows: 0,
    text: [[b' '; MAX_COLS]; MAX_ROWS],
    top: 0,
    x: 0,
    y: 0,
    esc: Esc::None,
    dirty: 0,
    scrolled: 0,
});

impl Grid {
    fn row(&mut self, r: usize) -> &mut [u8; MAX_COLS] {
        let i = (self.top + r) % self.rows;
        &mut self.text[i]
    }
    fn newline(&mut self) {
        self.dirty |= 1 << self.y;
        self.x = 0;
        if self.y + 1 < self.rows {
            self.y += 1;
        } else {
            // Scroll: the oldest row becomes the new last one, blank; the rows to draw
            // move up with their text.
            self.top = (self.top + 1) % self.rows;
            let y = self.y;
            self.row(y).fill(b' ');
            self.dirty >>= 1;
            self.scrolled += 1;
        }
        self.dirty |= 1 << self.y;
    }
    fn put(&mut self, c: u8) {
        if self.x >= self.cols {
            self.newline();
        }
        let (x, y) = (self.x, self.y);
        self.row(y)[x] = c;
        self.x += 1;
        self.dirty |= 1 << y;
    }
    fn byte(&mut self, b: u8) {
        match (self.esc, b) {
            (Esc::Start, b'[') => self.esc = Esc::Csi,
            (Esc::Start, _) => self.esc = Esc::None,
            (Esc::Csi, 0x40..=0x7e) => {
                self.esc = Esc::None;
                if b == b'K' {
                    // Erase to the end of the line (the line editor's redraw).
                    let (x, y) = (self.x, self.y);
                    self.row(y)[x.min(MAX_COLS)..].fill(b' ');
                    self.dirty |= 1 << y;
                }
            }
            (Esc::Csi, _) => {}
            (_, 0x1b) => self.esc = Esc::Start,
            (_, b'\n') => self.newline(),
            (_, b'\r') => {
                self.x = 0;
                self.dirty |= 1 << self.y;
            }
            (_, 0x08) => {
                self.x = self.x.saturating_sub(1);
                self.dirty |= 1 << self.y;
            }
            (_, b'\t') => {
                for _ in 0..(8 - self.x % 8) {
                    self.put(b' ');
                }
            }
            (_, 0x20..=0x7e) => self.put(b),
            // UTF-8: one mark per character, continuation bytes dropped.
            (_, 0xc0..=0xff) => self.put(b'?'),
            _ => {}
        }
    }
}

/// Sizes the grid to the screen above `top` (the map panel); returns (columns, rows).
pub fn init(s: &Screen, top: u32) -> (usize, usize) {
    let cols = ((s.width() - 8) / CW) as usize;
    let rows = (top.saturating_sub(4) / CH) as usize;
    let mut g = GRID.lock();
    g.cols = cols.min(MAX_COLS);
    g.rows = rows.clamp(1, MAX_ROWS);
    g.dirty = u64::MAX;
    (g.cols, g.rows)
}

/// Mirrors text written to the UART (printk's backend, under its output lock).
pub fn write(s: &str) {
    for _ in 0..WRITE_TRIES {
        if let Some(mut g) = GRID.try_lock() {
            if g.rows == 0 {
                return;
            }
            for &b in s.as_bytes() {
                g.byte(b);
            }
            return;
        }
        mm::sync::cpu_relax();
    }
}

/// Puts the log so far on the screen (the boot log printed before the framebuffer was
/// set up), as `dmesg` shows it.
pub fn replay_log() {
    let mut at = LOG.lock().oldest();
    let mut line = [0u8; 512];
    loop {
        let Some(h) = LOG.lock().read(&mut at, &mut line) else { break };
        let mut ts = crate::printk::StackString::<24>::new();
        let _ = write!(ts, "{}", crate::printk::Timestamp(h.ts_ns));
        write(ts.as_str());
        write(core::str::from_utf8(&line[..h.len.min(line.len())]).unwrap_or("?"));
        write("\n");
    }
}

/// Draws the rows that changed since the last flush (the refresh timer): the screen's
/// text moved up by the rows scrolled meanwhile (one copy within the buffer), then the
/// changed rows drawn from a snapshot taken in one short hold of the grid. Whether
/// anything was drawn.
pub fn flush(s: &Screen) -> bool {
    let Some(mut snap) = SNAPSHOT.try_lock() else { return false };
    let (cols, rows, mut dirty, scrolled, cursor) = {
        let Some(mut g) = GRID.try_lock() else { return false };
        if g.rows == 0 || (g.dirty == 0 && g.scrolled == 0) {
            return false;
        }
        let (rows, dirty) = (g.rows, g.dirty);
        for r in 0..rows {
            if dirty & (1 << r) != 0 {
                let cols = g.cols;
                snap.text[r][..cols].copy_from_slice(&g.row(r)[..cols]);
            }
        }
        let scrolled = core::mem::take(&mut g.scrolled);
        g.dirty = 0;
        (g.cols, rows, dirty, scrolled, (g.y, g.x))
    };
    if scrolled >= rows {
        // More than a screen: everything is new.
        return redraw_all(s, &mut snap, cols, rows, cursor);
    }
    if scrolled > 0 {
        s.move_up(2 + scrolled as u32 * CH, 2, (rows - scrolled) as u32 * CH, 4 + cols as u32 * CW);
    }
    // The old cursor's row (moved up with the text) loses its underline.
    if let Some(old) = snap.cursor.and_then(|c| c.checked_sub(scrolled)) {
        dirty |= 1 << old;
    }
    dirty |= 1 << cursor.0;
    for r in 0..rows {
        if dirty & (1 << r) != 0 {
            draw_row(s, &snap.text[r][..cols], r, (cursor.0 == r).then_some(cursor.1));
        }
    }
    snap.cursor = Some(cursor.0);
    true
}

/// Every row again from the grid (after more than a screen scrolled by).
fn redraw_all(s: &Screen, snap: &mut Snapshot, cols: usize, rows: usize, cursor: (usize, usize)) -> bool {
    {
        let Some(mut g) = GRID.try_lock() else {
            return false;
        };
        for r in 0..rows {
            snap.text[r][..cols].copy_from_slice(&g.row(r)[..cols]);
        }
    }
    for r in 0..rows {
        draw_row(s, &snap.text[r][..cols], r, (cursor.0 == r).then_some(cursor.1));
    }
    snap.cursor = Some(cursor.0);
    true
}

/// One row: the text up to its last character as glyphs, the rest cleared, the cursor
/// underlined.
fn draw_row(s: &Screen, text: &[u8], r: usize, cursor: Option<usize>) {
    let len = text.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let y = 2 + r as u32 * CH;
    draw_text(s, 4, y, &text[..len], FOREGROUND, BACKGROUND);
    s.fill(4 + len as u32 * CW, y, (text.len() - len) as u32 * CW, CH, BACKGROUND);
    if let Some(x) = cursor.filter(|&x| x < text.len()) {
        s.fill(4 + x as u32 * CW, y + CH - 2, CW, 2, FOREGROUND);
    }
}
