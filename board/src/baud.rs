//! PL011 baud-rate divisors and the choice of UART clock (pure arithmetic, tested on
//! the host).

/// Integer and fractional baud divisors for a UART clock of `clock_hz`:
/// divisor = clk / (16 * baud), IBRD its integer part, FBRD = round(fraction * 64).
pub const fn divisors(clock_hz: u32, baud: u32) -> (u32, u32) {
    // 64 * clk / (16 * baud) = 4 * clk / baud, rounded to nearest.
    let scaled = ((4 * clock_hz as u64) + baud as u64 / 2) / baud as u64;
    ((scaled >> 6) as u32, (scaled & 0x3f) as u32)
}

/// The PL011 clock config.txt sets (`init_uart_clock=48000000`): the kernel's
/// assumption when the firmware's answer cannot be used.
pub const DEFAULT_UART_CLOCK: u32 = 48_000_000;

/// Why the firmware's UART clock was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockFallback {
    /// The mailbox did not answer.
    Silent,
    /// The firmware answered a clock too slow for the baud rate (0 Hz, say): the
    /// integer divisor would be 0, which stops the PL011 (no console at all).
    Unusable(u32),
}

/// The clock to program the PL011 with for `baud`: the firmware's answer when it gives
/// a usable divisor, else [`DEFAULT_UART_CLOCK`] and why.
pub const fn uart_clock(reported: Option<u32>, baud: u32) -> (u32, Option<ClockFallback>) {
    match reported {
        None => (DEFAULT_UART_CLOCK, Some(ClockFallback::Silent)),
        Some(hz) if divisors(hz, baud).0 == 0 => (DEFAULT_UART_CLOCK, Some(ClockFallback::Unusable(hz))),
        Some(hz) => (hz, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_divisors() {
        // pi3-hardware.md: 48 MHz -> 115200: 26/3, 921600: 3/16.
        assert_eq!(divisors(48_000_000, 115_200), (26, 3));
        assert_eq!(divisors(48_000_000, 921_600), (3, 16));
        // QEMU's 3 MHz UART clock.
        assert_eq!(divisors(3_000_000, 115_200), (1, 40));
    }

    #[test]
    fn a_zero_or_too_slow_uart_clock_falls_back_to_48_mhz() {
        assert_eq!(uart_clock(Some(0), 115_200), (48_000_000, Some(ClockFallback::Unusable(0))));
        // Below 16 * 115200 Hz (rounded) the integer divisor is 0.
        assert_eq!(uart_clock(Some(1_000_000), 115_200), (48_000_000, Some(ClockFallback::Unusable(1_000_000))));
        assert_eq!(uart_clock(None, 115_200), (48_000_000, Some(ClockFallback::Silent)));
        assert_ne!(divisors(uart_clock(Some(0), 115_200).0, 115_200).0, 0, "the fallback gives a console");
    }

    #[test]
    fn a_usable_uart_clock_is_kept() {
        assert_eq!(uart_clock(Some(48_000_000), 115_200), (48_000_000, None));
        assert_eq!(uart_clock(Some(3_000_000), 115_200), (3_000_000, None), "QEMU's clock");
        // The slowest clock whose divisor is still 1 (16 * baud - baud / 128, rounded).
        let slowest = (0..16 * 115_200).rev().find(|&hz| divisors(hz, 115_200).0 == 0).unwrap() + 1;
        assert_eq!(uart_clock(Some(slowest), 115_200), (slowest, None));
        assert_eq!(uart_clock(Some(slowest - 1), 115_200).1, Some(ClockFallback::Unusable(slowest - 1)));
    }
}
