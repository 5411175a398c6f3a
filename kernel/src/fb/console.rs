//! The framebuffer's text console: a character grid that mirrors everything written to
//! the UART (boot log, sweep, prompt, echo), with wrapping and scrolling, drawn with
//! `embedded-graphics`' mono font.
//!
//! [`write`] runs under printk's output lock and only updates the grid (a short
//! critical section, never drawing); [`flush`], from the refresh timer, draws the rows
//! that changed. The grid's lock is only ever tried: a writer that cannot get it
//! within a bounded spin (an exception inside a writer on the same CPU) drops its text
//! from the screen rather than wait.

use super::screen::{Screen, BACKGROUND};
use crate::printk::LOG;
use core::fmt::Write;
use embedded_graphics::mono_font::ascii::FONT_7X13;
use embedded_graphics::mono_font::{MonoFont, MonoTextStyleBuilder};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::{Point, Primitive};
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use embedded_graphics::Drawable;

/// The console's font.
pub const FONT: &MonoFont<'static> = &FONT_7X13;
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
}

static GRID: mm::sync::SpinLock<Grid> = mm::sync::SpinLock::new(Grid {
    cols: 0,
    rows: 0,
    text: [[b' '; MAX_COLS]; MAX_ROWS],
    top: 0,
    x: 0,
    y: 0,
    esc: Esc::None,
    dirty: 0,
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
            // Scroll: the oldest row becomes the new last one, blank.
            self.top = (self.top + 1) % self.rows;
            let y = self.y;
            self.row(y).fill(b' ');
            self.dirty = u64::MAX;
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

/// Sizes the grid to the screen above the map panel; returns (columns, rows).
pub fn init(s: &Screen) -> (usize, usize) {
    let cols = ((s.width() - 8) / FONT.character_size.width) as usize;
    let rows = ((super::panel::top(s).saturating_sub(4)) / FONT.character_size.height) as usize;
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

/// Draws the rows that changed since the last flush (the refresh timer); whether any
/// was drawn.
pub fn flush(s: &Screen) -> bool {
    let style = MonoTextStyleBuilder::new().font(FONT).text_color(FOREGROUND).background_color(BACKGROUND).build();
    let (cw, ch) = (FONT.character_size.width, FONT.character_size.height);
    let mut c = s.canvas();
    let mut drew = false;
    for r in 0..MAX_ROWS {
        // One row at a time under the lock: a copy, drawn after.
        let mut buf = [b' '; MAX_COLS];
        let (cols, cursor) = {
            let Some(mut g) = GRID.try_lock() else { return drew };
            if r >= g.rows || g.dirty & (1 << r) == 0 {
                continue;
            }
            g.dirty &= !(1 << r);
            let cols = g.cols;
            buf[..cols].copy_from_slice(&g.row(r)[..cols]);
            (cols, (g.y == r).then_some(g.x))
        };
        drew = true;
        // The text up to its last character as glyphs, the rest of the row cleared.
        let len = buf[..cols].iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        let text = core::str::from_utf8(&buf[..len]).unwrap_or("");
        let y = 2 + r as i32 * ch as i32;
        let _ = Text::with_baseline(text, Point::new(4, y), style, Baseline::Top).draw(&mut c);
        s.fill(4 + len as u32 * cw, y as u32, (cols - len) as u32 * cw, ch, BACKGROUND);
        if let Some(x) = cursor.filter(|&x| x < cols) {
            let _ = Rectangle::new(
                Point::new(4 + (x as u32 * cw) as i32, y + ch as i32 - 2),
                embedded_graphics::geometry::Size::new(cw, 2),
            )
            .into_styled(PrimitiveStyle::with_fill(FOREGROUND))
            .draw(&mut c);
        }
    }
    drew
}
