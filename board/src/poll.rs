//! Bounded waits on device bits: every wait in board/ goes through [`poll_timeout`], so a
//! device that never answers (a disabled PL011 that keeps BUSY set for ever, a mailbox
//! that never fills) costs a timeout, never a silent hang. Pure logic over a condition
//! and a clock, tested on the host; `timer::poll_us` binds it to the generic timer.

/// The condition did not become true in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

/// Polls `done` until it is true or `timeout` ticks of `now` have passed. The condition
/// is checked once more after the deadline, so a wait that was delayed (an exception,
/// another CPU holding the bus) does not report a timeout for a condition that holds.
pub fn poll_timeout(
    mut done: impl FnMut() -> bool,
    mut now: impl FnMut() -> u64,
    timeout: u64,
) -> Result<(), TimedOut> {
    if done() {
        return Ok(());
    }
    let start = now();
    loop {
        if done() {
            return Ok(());
        }
        if now().wrapping_sub(start) >= timeout {
            return if done() { Ok(()) } else { Err(TimedOut) };
        }
        core::hint::spin_loop();
    }
}

/// Counter ticks in `us` microseconds at `freq_hz`, rounded up, plus one: a wait of that
/// many ticks lasts at least `us` wherever in a tick it starts.
pub const fn us_to_ticks(us: u64, freq_hz: u64) -> u64 {
    ((us as u128 * freq_hz as u128).div_ceil(1_000_000) as u64).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[test]
    fn an_always_busy_device_times_out() {
        // A PL011 that stays BUSY (disabled with data in its FIFO): the wait ends after
        // the timeout, having polled a bounded number of times.
        let clock = Cell::new(0u64);
        let polls = Cell::new(0u32);
        let busy = || {
            polls.set(polls.get() + 1);
            true
        };
        let r = poll_timeout(|| !busy(), || clock.replace(clock.get() + 10), 1000);
        assert_eq!(r, Err(TimedOut));
        assert!(clock.get() >= 1000 && clock.get() <= 1030, "stopped at the deadline, not after");
        assert!(polls.get() <= 103, "{} polls", polls.get());
    }

    #[test]
    fn a_device_that_answers_in_time() {
        let clock = Cell::new(0u64);
        let left = Cell::new(5);
        let r = poll_timeout(
            || {
                left.set(left.get() - 1);
                left.get() == 0
            },
            || clock.replace(clock.get() + 1),
            1000,
        );
        assert_eq!(r, Ok(()));
        assert!(clock.get() < 10);
        // Already true: no clock read at all.
        assert_eq!(poll_timeout(|| true, || unreachable!(), 0), Ok(()));
    }

    #[test]
    fn late_success_is_success() {
        // The clock jumps past the deadline (the CPU was away), but the device is ready.
        let clock = Cell::new(0u64);
        let calls = Cell::new(0);
        let r = poll_timeout(
            || {
                calls.set(calls.get() + 1);
                calls.get() >= 3
            },
            || clock.replace(clock.get() + 1_000_000),
            10,
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn tick_conversion_rounds_up() {
        // 1 us at 19.2 MHz is 19.2 ticks: 20, plus one for the partial first tick.
        assert_eq!(us_to_ticks(1, 19_200_000), 21);
        assert_eq!(us_to_ticks(1, 62_500_000), 64);
        assert_eq!(us_to_ticks(20_000, 19_200_000), 384_001);
        assert_eq!(us_to_ticks(5, 0), 1, "an unset CNTFRQ still gives a bounded wait");
    }
}
