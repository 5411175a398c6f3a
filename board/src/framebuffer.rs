//! The firmware's framebuffer through the mailbox property interface: one message with
//! the physical and virtual size, depth and pixel order, the buffer allocation and the
//! pitch (the tags of the Raspberry Pi firmware's "Mailbox property interface" wiki
//! page, `0x0004xxxx`/`0x0004_8xxx`; QEMU's raspi3b answers them as `bcm2835-fb`).
//!
//! The firmware answers with a VideoCore bus address. On a real Pi it lies in the GPU's
//! part of SDRAM seen through the uncached `0xC0000000` alias: the ARM physical address
//! is the bus address with bits 30-31 cleared, as Linux's `bcm2708_fb` does
//! (`fbinfo.base &= ~0xc0000000`) before it maps the buffer with `ioremap_wc`.

use crate::mailbox::{property_list, MailboxError};

/// Tag ids (firmware wiki, "Mailbox property interface": framebuffer).
mod tag {
    pub const ALLOCATE_BUFFER: u32 = 0x0004_0001;
    pub const GET_PITCH: u32 = 0x0004_0008;
    pub const SET_PHYSICAL_SIZE: u32 = 0x0004_8003;
    pub const SET_VIRTUAL_SIZE: u32 = 0x0004_8004;
    pub const SET_DEPTH: u32 = 0x0004_8005;
    pub const SET_PIXEL_ORDER: u32 = 0x0004_8006;
}

/// Pixel order value for [`tag::SET_PIXEL_ORDER`]: red in the low byte of a 32-bit pixel.
const PIXEL_ORDER_RGB: u32 = 1;

/// What the firmware set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FbInfo {
    /// Visible width in pixels.
    pub width: u32,
    /// Visible height in pixels.
    pub height: u32,
    /// Bits per pixel.
    pub depth: u32,
    /// Bytes per row.
    pub pitch: u32,
    /// ARM physical address of the buffer (bus alias bits cleared).
    pub base: u32,
    /// Bytes of the buffer.
    pub size: u32,
    /// Whether red is in the low byte (`true`) or blue (`false`, the firmware's default).
    pub rgb: bool,
}

/// Why no framebuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FbError {
    /// The mailbox failed or a tag was not answered.
    Mailbox(MailboxError),
    /// The firmware answered, but with no buffer (no display, or a size it refused).
    NoBuffer,
    /// The answer does not describe a usable buffer (the pitch or size too small).
    BadAnswer,
}

/// Asks the firmware for a `width` x `height` buffer of `depth` bits per pixel, red in
/// the low byte. The firmware may answer another size or depth (a real Pi keeps the
/// monitor's mode); the answer is checked for a buffer that holds every row.
pub fn allocate(width: u32, height: u32, depth: u32) -> Result<FbInfo, FbError> {
    #[rustfmt::skip]
    let mut t = [
        tag::SET_PHYSICAL_SIZE, 8, 0, width, height,
        tag::SET_VIRTUAL_SIZE, 8, 0, width, height,
        tag::SET_DEPTH, 4, 0, depth,
        tag::SET_PIXEL_ORDER, 4, 0, PIXEL_ORDER_RGB,
        tag::ALLOCATE_BUFFER, 8, 0, 4096, 0,
        tag::GET_PITCH, 4, 0, 0,
    ];
    property_list(&mut t).map_err(FbError::Mailbox)?;
    // Each tag's response bit; offsets of each tag's request/response word.
    for (i, id) in [
        (2, tag::SET_PHYSICAL_SIZE),
        (7, tag::SET_VIRTUAL_SIZE),
        (12, tag::SET_DEPTH),
        (20, tag::ALLOCATE_BUFFER),
        (25, tag::GET_PITCH),
    ] {
        if t[i] & (1 << 31) == 0 {
            return Err(FbError::Mailbox(MailboxError::TagNotAnswered(id)));
        }
    }
    let (w, h, d) = (t[3], t[4], t[13]);
    let rgb = t[16] & (1 << 31) != 0 && t[17] == PIXEL_ORDER_RGB;
    let (bus, size, pitch) = (t[21], t[22], t[26]);
    if bus == 0 || size == 0 {
        return Err(FbError::NoBuffer);
    }
    if w == 0 || h == 0 || pitch < w * d.div_ceil(8) || (size as u64) < pitch as u64 * h as u64 {
        return Err(FbError::BadAnswer);
    }
    Ok(FbInfo { width: w, height: h, depth: d, pitch, base: bus & !0xC000_0000, size, rgb })
}
