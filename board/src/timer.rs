//! The ARM generic timer: the time base of log timestamps, benchmarks and every bounded
//! wait on a device.
//!
//! The frequency is read from CNTFRQ_EL0, never assumed: 19.2 MHz on a real Pi 3,
//! 62.5 MHz under QEMU.

use crate::poll::{poll_timeout, us_to_ticks, TimedOut};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};

/// Counter frequency in Hz.
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// The counter now. The isb keeps the read from being hoisted above earlier code.
pub fn ticks() -> u64 {
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

/// Nanoseconds for a tick count, without overflow for counts up to centuries.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let f = frequency().max(1);
    ((ticks as u128 * 1_000_000_000) / f as u128) as u64
}

/// Nanoseconds since the counter started (power-on).
pub fn uptime_ns() -> u64 {
    ticks_to_ns(ticks())
}

/// Busy-waits for at least `us` microseconds.
pub fn delay_us(us: u64) {
    let _ = poll_timeout(|| false, ticks, us_to_ticks(us, frequency()));
}

/// Polls `done` for at most `us` microseconds of the generic timer.
pub fn poll_us(done: impl FnMut() -> bool, us: u64) -> Result<(), TimedOut> {
    poll_timeout(done, ticks, us_to_ticks(us, frequency()))
}
