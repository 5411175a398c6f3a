//! The screen's font: `embedded-graphics`' 7x13 mono font, each printable ASCII glyph
//! rendered once through the crate into a 1-bit cache, then copied to the screen row
//! by row (the crate's own per-pixel path costs about 40 times more under QEMU, and
//! the console redraws whole screens when it scrolls).

use super::screen::Screen;
use embedded_graphics::mono_font::ascii::FONT_7X13;
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::{BinaryColor, Rgb888};
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Point, Size};
use embedded_graphics::text::{Baseline, Text};
use embedded_graphics::Drawable;

/// The font.
pub const FONT: &MonoFont<'static> = &FONT_7X13;
/// Glyph width in pixels.
pub const CW: u32 = FONT_7X13.character_size.width;
/// Glyph height in pixels.
pub const CH: u32 = FONT_7X13.character_size.height;
const GLYPHS: usize = 95;
const _: () = assert!(CW <= 16, "a glyph row is kept in a u16");

/// One glyph: a bit per pixel, bit `x` of row `y`.
type Glyph = [u16; CH as usize];

/// A glyph being rendered by the crate.
struct Bits(Glyph);

impl OriginDimensions for Bits {
    fn size(&self) -> Size {
        Size::new(CW, CH)
    }
}

impl DrawTarget for Bits {
    type Color = BinaryColor;
    type Error = core::convert::Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<BinaryColor>>>(&mut self, pixels: I) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if c == BinaryColor::On && (0..CW as i32).contains(&p.x) && (0..CH as i32).contains(&p.y) {
                self.0[p.y as usize] |= 1 << p.x;
            }
        }
        Ok(())
    }
}

static CACHE: spin::Once<[Glyph; GLYPHS]> = spin::Once::new();

fn cache() -> &'static [Glyph; GLYPHS] {
    CACHE.call_once(|| {
        let style = MonoTextStyle::new(FONT, BinaryColor::On);
        core::array::from_fn(|i| {
            let mut b = Bits([0; CH as usize]);
            let c = [0x20 + i as u8];
            let s = core::str::from_utf8(&c).unwrap_or("?");
            let _ = Text::with_baseline(s, Point::zero(), style, Baseline::Top).draw(&mut b);
            b.0
        })
    })
}

/// Draws ASCII `text` at (`x`, `y`) (other bytes as `?`), `fg` on `bg`.
pub fn draw_text(s: &Screen, x: u32, y: u32, text: &[u8], fg: Rgb888, bg: Rgb888) {
    let glyphs = cache();
    for (i, &b) in text.iter().enumerate() {
        let g = &glyphs[if (0x20..0x7f).contains(&b) { b - 0x20 } else { b'?' - 0x20 } as usize];
        s.blit(x + i as u32 * CW, y, g, CW, fg, bg);
    }
}
