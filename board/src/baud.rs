//! PL011 baud-rate divisors (pure arithmetic, tested on the host).

/// Integer and fractional baud divisors for a UART clock of `clock_hz`:
/// divisor = clk / (16 * baud), IBRD its integer part, FBRD = round(fraction * 64).
pub const fn divisors(clock_hz: u32, baud: u32) -> (u32, u32) {
    // 64 * clk / (16 * baud) = 4 * clk / baud, rounded to nearest.
    let scaled = ((4 * clock_hz as u64) + baud as u64 / 2) / baud as u64;
    ((scaled >> 6) as u32, (scaled & 0x3f) as u32)
}

#[cfg(test)]
mod tests {
    use super::divisors;

    #[test]
    fn known_divisors() {
        // pi3-hardware.md: 48 MHz -> 115200: 26/3, 921600: 3/16.
        assert_eq!(divisors(48_000_000, 115_200), (26, 3));
        assert_eq!(divisors(48_000_000, 921_600), (3, 16));
        // QEMU's 3 MHz UART clock.
        assert_eq!(divisors(3_000_000, 115_200), (1, 40));
    }
}
