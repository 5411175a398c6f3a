//! The chainboot protocol, shared by the loader (`main.rs`, on the Pi) and described for
//! the host tool (`tools/chainboot.py`); pure code, tested on the host.
//!
//! 1. The loader asks: it sends [`REQUEST`] on a line of its own, about once a second,
//!    until a header arrives.
//! 2. The host sends the header: [`MAGIC`], the image size and its CRC-32 (IEEE, as
//!    zlib's `crc32`), both 32-bit little-endian.
//! 3. The loader answers `OK` (then the host sends the image) or `ERR <why>` and asks
//!    again.
//! 4. After the image the loader says `crc32 OK` and starts the kernel, or
//!    `crc32 mismatch` and asks again.

#![cfg_attr(not(test), no_std)]

/// What the loader sends while it waits for a kernel.
pub const REQUEST: &str = "MMLOAD?";
/// What starts the host's header.
pub const MAGIC: &[u8; 6] = b"MMBOOT";

/// Updates a CRC-32 (IEEE 802.3, reflected, as zlib) with `bytes`. Start with 0.
pub fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// Finds the header in the bytes received: [`MAGIC`] (anything before it is skipped, a
/// restart of the magic is followed), then size and CRC.
#[derive(Debug, Default)]
pub struct HeaderParser {
    matched: usize,
    fields: [u8; 8],
    have: usize,
}

/// A complete header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes of the image.
    pub size: u32,
    /// Its CRC-32.
    pub crc32: u32,
}

impl HeaderParser {
    /// A parser waiting for the magic.
    pub const fn new() -> Self {
        Self { matched: 0, fields: [0; 8], have: 0 }
    }

    /// Feeds one byte; a complete header once the last byte arrives.
    pub fn feed(&mut self, b: u8) -> Option<Header> {
        if self.matched < MAGIC.len() {
            // The longest end of what was matched plus `b` that begins the magic.
            let m = self.matched;
            self.matched =
                (1..=m + 1).rev().find(|&l| MAGIC[m + 1 - l..m] == MAGIC[..l - 1] && MAGIC[l - 1] == b).unwrap_or(0);
            return None;
        }
        self.fields[self.have] = b;
        self.have += 1;
        if self.have < 8 {
            return None;
        }
        let f = self.fields;
        *self = Self::new();
        Some(Header {
            size: u32::from_le_bytes([f[0], f[1], f[2], f[3]]),
            crc32: u32::from_le_bytes([f[4], f[5], f[6], f[7]]),
        })
    }
}

/// Why a header is refused: the image would not fit below the loader, or would cover
/// the device tree the firmware passed (`x0`).
pub fn check_size(size: u32, load: u64, limit: u64, x0: u64) -> Result<(), &'static str> {
    let end = load + size as u64;
    if size == 0 {
        Err("empty image")
    } else if end > limit {
        Err("image too large")
    } else if x0 >= load && x0 < end {
        Err("image would cover the device tree at x0")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32_update(0, b""), 0);
        assert_eq!(crc32_update(0, b"123456789"), 0xCBF4_3926);
        let whole = crc32_update(0, b"hello, world");
        assert_eq!(crc32_update(crc32_update(0, b"hello, "), b"world"), whole, "incremental");
    }

    #[test]
    fn header_after_noise() {
        let mut p = HeaderParser::new();
        let mut bytes = b"\r\nxxMMMBOOT".to_vec();
        bytes.extend(1234u32.to_le_bytes());
        bytes.extend(0xdead_beefu32.to_le_bytes());
        let got: Vec<_> = bytes.iter().filter_map(|&b| p.feed(b)).collect();
        assert_eq!(got, [Header { size: 1234, crc32: 0xdead_beef }]);
        assert_eq!(p.feed(b'M'), None, "ready for the next one");
    }

    #[test]
    fn sizes() {
        assert_eq!(check_size(1 << 20, 0x80000, 0x1ff0000, 0x100), Ok(()));
        assert!(check_size(0, 0x80000, 0x1ff0000, 0x100).is_err());
        assert!(check_size(0x2000000, 0x80000, 0x1ff0000, 0x100).is_err());
        assert!(check_size(1 << 20, 0x80000, 0x1ff0000, 0x100000).is_err(), "over the DTB");
    }
}
