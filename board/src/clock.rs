//! The ARM core clock. The firmware starts the Cortex-A53s at its non-turbo rate (600 MHz
//! on a 3B/3B+) and a bare-metal kernel stays there unless it asks for more, as Linux's
//! cpufreq driver does through the same mailbox tags: the maximum rate for clock 3
//! (0x00030004), then set it (0x00038002). The firmware's answers are cross-checked by
//! counting the core's own cycles (PMU) against the generic timer, so the boot banner
//! shows what the core really runs at. QEMU answers the clock tags (700 MHz) without
//! changing anything, and its cycle counter runs at 1 GHz of virtual time: the two
//! disagree, and the banner says so.

use crate::mailbox::{self, clock, MailboxError};
use crate::poll::us_to_ticks;
use crate::timer;

/// What the firmware said about the ARM clock, in Hz.
#[derive(Clone, Copy, Debug)]
pub struct ArmClock {
    /// The rate at hand-over.
    pub boot_hz: Result<u32, MailboxError>,
    /// The firmware's maximum (config.txt's `arm_freq`).
    pub max_hz: Result<u32, MailboxError>,
    /// The answer to the set request (the rate the firmware says it set).
    pub set_hz: Result<u32, MailboxError>,
    /// The rate read back after the request.
    pub now_hz: Result<u32, MailboxError>,
}

/// Asks the firmware to run the ARM cores at their maximum clock, and reports what it
/// answered at each step.
pub fn set_arm_max() -> ArmClock {
    let boot_hz = mailbox::clock_rate(clock::ARM);
    let max_hz = mailbox::max_clock_rate(clock::ARM);
    let set_hz = match max_hz {
        Ok(max) => mailbox::set_clock_rate(clock::ARM, max),
        Err(e) => Err(e),
    };
    let now_hz = mailbox::clock_rate(clock::ARM);
    ArmClock { boot_hz, max_hz, set_hz, now_hz }
}

/// The core's clock measured over `window_us` microseconds: cycles counted by the PMU
/// against the generic timer. `None` without a PMU or a timer frequency.
pub fn measure_hz(window_us: u64) -> Option<u64> {
    let freq = timer::frequency();
    if !boot::pmu::present() || freq == 0 {
        return None;
    }
    boot::pmu::cycle_counter_enable();
    let (t0, c0) = (timer::ticks(), boot::pmu::cycles());
    let window = us_to_ticks(window_us, freq);
    let mut t1 = t0;
    while t1.wrapping_sub(t0) < window {
        t1 = timer::ticks();
    }
    let c1 = boot::pmu::cycles();
    Some(((c1.wrapping_sub(c0) as u128 * freq as u128) / t1.wrapping_sub(t0).max(1) as u128) as u64)
}
