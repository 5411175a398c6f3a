//! The mapped framebuffer as an `embedded-graphics` draw target: 32-bit pixels (red in
//! the low byte, or blue when the firmware keeps BGR) or 16-bit RGB565.

use board::framebuffer::FbInfo;
use embedded_graphics::geometry::Dimensions;
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Size};
use embedded_graphics::primitives::{PointsIter, Rectangle};

/// The framebuffer as mapped.
pub struct Screen {
    base: usize,
    /// What the firmware set up.
    pub info: FbInfo,
}

impl Screen {
    /// The buffer described by `info`, mapped at `base` (write-combining, whole).
    pub fn new(base: usize, info: FbInfo) -> Screen {
        Screen { base, info }
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.info.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.info.height
    }
    fn encode(&self, c: Rgb888) -> u32 {
        let (r, g, b) = (c.r() as u32, c.g() as u32, c.b() as u32);
        match (self.info.depth, self.info.rgb) {
            (16, _) => ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3),
            (_, true) => r | (g << 8) | (b << 16),
            (_, false) => b | (g << 8) | (r << 16),
        }
    }
    /// Fills `w` x `h` pixels from (`x`, `y`), clipped to the screen.
    pub fn fill(&self, x: u32, y: u32, w: u32, h: u32, c: Rgb888) {
        let v = self.encode(c);
        let x1 = x.saturating_add(w).min(self.info.width);
        let y1 = y.saturating_add(h).min(self.info.height);
        for yy in y..y1 {
            let row = self.base + yy as usize * self.info.pitch as usize;
            for xx in x..x1 {
                self.store(row, xx, v);
            }
        }
    }
    #[inline(always)]
    fn store(&self, row: usize, x: u32, v: u32) {
        if self.info.depth == 16 {
            // SAFETY: `row` is the address of a row inside the mapped buffer (y below the
            // height, pitch from the firmware, checked against the buffer's size when
            // allocated) and x is below the width, so the pixel lies inside the mapping.
            unsafe { ((row + x as usize * 2) as *mut u16).write_volatile(v as u16) }
        } else {
            // SAFETY: as above, for 4-byte pixels.
            unsafe { ((row + x as usize * 4) as *mut u32).write_volatile(v) }
        }
    }
    /// Draws a `w`-pixel wide 1-bit image at (`x`, `y`): bit `i` of `rows[r]` set is
    /// `fg`, clear is `bg`. Clipped to the screen.
    pub fn blit(&self, x: u32, y: u32, rows: &[u16], w: u32, fg: Rgb888, bg: Rgb888) {
        let (f, b) = (self.encode(fg), self.encode(bg));
        let x1 = x.saturating_add(w).min(self.info.width);
        for (r, bits) in rows.iter().enumerate() {
            let yy = y as usize + r;
            if yy >= self.info.height as usize {
                break;
            }
            let row = self.base + yy * self.info.pitch as usize;
            for xx in x..x1 {
                self.store(row, xx, if bits & (1 << (xx - x)) != 0 { f } else { b });
            }
        }
    }
    /// Moves the pixel rows `from..from + h` up to `to` (`to` < `from`), `w` pixels of
    /// each from the left edge: the console's scroll. (Real hardware: this reads the
    /// non-cacheable buffer, slower than RAM but far cheaper than drawing the glyphs.)
    pub fn move_up(&self, from: u32, to: u32, h: u32, w: u32) {
        let bytes = (w.min(self.info.width) * self.info.depth / 8) as usize;
        let pitch = self.info.pitch as usize;
        let h = h.min(self.info.height.saturating_sub(from));
        for r in 0..h as usize {
            let src = self.base + (from as usize + r) * pitch;
            let dst = self.base + (to as usize + r) * pitch;
            // SAFETY: both rows lie inside the mapped buffer (below the height, `bytes`
            // within the pitch); `to` < `from`, so copying rows top down reads each
            // source row before it is overwritten, and within a row `copy` allows overlap.
            unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
        }
    }
    /// Clears the whole screen to the background.
    pub fn clear(&self) {
        self.fill(0, 0, self.info.width, self.info.height, BACKGROUND);
    }
    /// A draw target over the whole screen.
    pub fn canvas(&self) -> Canvas<'_> {
        Canvas(self)
    }
}

/// The screen's background colour.
pub const BACKGROUND: Rgb888 = Rgb888::new(0, 0, 0);

/// `embedded-graphics`' view of a [`Screen`].
pub struct Canvas<'a>(&'a Screen);

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.0.info.width, self.0.info.height)
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(&mut self, pixels: I) -> Result<(), Self::Error> {
        let (w, h) = (self.0.info.width as i32, self.0.info.height as i32);
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                let row = self.0.base + p.y as usize * self.0.info.pitch as usize;
                self.0.store(row, p.x as u32, self.0.encode(c));
            }
        }
        Ok(())
    }

    fn fill_contiguous<I: IntoIterator<Item = Rgb888>>(
        &mut self,
        area: &Rectangle,
        colors: I,
    ) -> Result<(), Self::Error> {
        // A glyph: row by row with no per-pixel bounds check when wholly on the screen.
        if area.intersection(&self.bounding_box()) != *area {
            return self.draw_iter(area.points().zip(colors).map(|(p, c)| Pixel(p, c)));
        }
        let (x0, y0) = (area.top_left.x as u32, area.top_left.y as usize);
        let mut colors = colors.into_iter();
        for dy in 0..area.size.height as usize {
            let row = self.0.base + (y0 + dy) * self.0.info.pitch as usize;
            for dx in 0..area.size.width {
                let Some(c) = colors.next() else { return Ok(()) };
                self.0.store(row, x0 + dx, self.0.encode(c));
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Rgb888) -> Result<(), Self::Error> {
        let a = area.intersection(&self.bounding_box());
        self.0.fill(a.top_left.x as u32, a.top_left.y as u32, a.size.width, a.size.height, color);
        Ok(())
    }
}
