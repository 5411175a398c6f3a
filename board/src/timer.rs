//! The ARM generic timer: the time base of log timestamps and benchmarks.
//!
//! The frequency is read from CNTFRQ_EL0, never assumed: 19.2 MHz on a real Pi 3,
//! 62.5 MHz under QEMU.

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

/// Busy-waits for `us` microseconds.
pub fn delay_us(us: u64) {
    let end = ticks() + us * frequency() / 1_000_000;
    while ticks() < end {
        core::hint::spin_loop();
    }
}

/// Busy-waits for roughly `n` CPU cycles (GPIO pull sequencing wants "150 cycles").
pub fn delay_cycles(n: u32) {
    for _ in 0..n {
        aarch64_cpu::asm::nop();
    }
}
