//! Decoding of the board revision code the firmware reports through the mailbox
//! (tag 0x00010002), new-style codes (bit 23 set):
//!
//! ```text
//! bits 0-3 revision, 4-11 type, 12-15 processor, 16-19 manufacturer,
//! 20-22 memory size, 23 new-style flag
//! ```
//! QEMU's raspi3b reports 0xa02082 (a 3B rev 1.2); a 3B+ reports 0xa020d3.

use core::fmt;

/// A decoded board revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardRevision {
    /// The raw code.
    pub code: u32,
}

impl BoardRevision {
    /// Wraps a raw revision code.
    pub const fn new(code: u32) -> Self {
        Self { code }
    }
    /// Whether this is a new-style code (all Pi 2 and later boards).
    pub const fn is_new_style(self) -> bool {
        self.code & (1 << 23) != 0
    }
    /// The board type field.
    pub const fn board_type(self) -> u32 {
        (self.code >> 4) & 0xff
    }
    /// Model name, e.g. `Raspberry Pi 3 Model B+`.
    pub fn model(self) -> &'static str {
        if !self.is_new_style() {
            return "Raspberry Pi (old-style revision code)";
        }
        match self.board_type() {
            0x00 => "Raspberry Pi Model A",
            0x01 => "Raspberry Pi Model B",
            0x02 => "Raspberry Pi Model A+",
            0x03 => "Raspberry Pi Model B+",
            0x04 => "Raspberry Pi 2 Model B",
            0x06 => "Raspberry Pi Compute Module 1",
            0x08 => "Raspberry Pi 3 Model B",
            0x09 => "Raspberry Pi Zero",
            0x0a => "Raspberry Pi Compute Module 3",
            0x0c => "Raspberry Pi Zero W",
            0x0d => "Raspberry Pi 3 Model B+",
            0x0e => "Raspberry Pi 3 Model A+",
            0x10 => "Raspberry Pi Compute Module 3+",
            0x11 => "Raspberry Pi 4 Model B",
            0x12 => "Raspberry Pi Zero 2 W",
            _ => "Raspberry Pi (unknown model)",
        }
    }
    /// Whether the board is one this kernel is built for (3B, 3B+, 3A+).
    pub fn is_pi3(self) -> bool {
        self.is_new_style() && matches!(self.board_type(), 0x08 | 0x0d | 0x0e)
    }
    /// Board revision (the `N` in `rev 1.N`).
    pub const fn revision(self) -> u32 {
        self.code & 0xf
    }
    /// Processor name.
    pub fn processor(self) -> &'static str {
        match (self.code >> 12) & 0xf {
            0 => "BCM2835",
            1 => "BCM2836",
            2 => "BCM2837",
            3 => "BCM2711",
            _ => "unknown SoC",
        }
    }
}

/// `Raspberry Pi 3 Model B rev 1.2`
impl fmt::Display for BoardRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rev 1.{}", self.model(), self.revision())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_raspi3b() {
        let r = BoardRevision::new(0xa02082);
        assert_eq!(r.to_string(), "Raspberry Pi 3 Model B rev 1.2");
        assert_eq!(r.processor(), "BCM2837");
        assert!(r.is_pi3());
    }

    #[test]
    fn pi3b_plus_and_3a_plus() {
        let r = BoardRevision::new(0xa020d3);
        assert_eq!(r.to_string(), "Raspberry Pi 3 Model B+ rev 1.3");
        assert!(r.is_pi3());
        let a = BoardRevision::new(0x9020e0);
        assert_eq!(a.to_string(), "Raspberry Pi 3 Model A+ rev 1.0");
        assert!(a.is_pi3());
    }

    #[test]
    fn not_a_pi3() {
        assert!(!BoardRevision::new(0xc03111).is_pi3());
        assert_eq!(BoardRevision::new(0xc03111).model(), "Raspberry Pi 4 Model B");
        assert!(!BoardRevision::new(0x000e).is_new_style());
        assert!(!BoardRevision::new(0x000e).is_pi3());
    }
}
