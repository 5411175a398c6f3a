//! The firmware's throttling flags (mailbox tag 0x00030046, what `vcgencmd
//! get_throttled` prints and Linux's `raspberrypi-hwmon` polls) and the verdict on a core
//! clock that differs from the one the firmware reports. Pure logic, tested on the host.
//!
//! An under-powered or hot Pi 3B+ caps its ARM clock while GET_CLOCK_RATE still answers
//! the rate that was set, so a core that counts fewer cycles than the firmware reports
//! is not by itself an emulator: the flags say whether the firmware throttles, and its
//! own measurement of the clock (tag 0x00030047) says what it really runs at. QEMU
//! answers neither tag, and its cycle counter runs at 1 GHz of virtual time.
//!
//! Flag bits (the firmware's documentation of `get_throttled`): 0 under-voltage
//! detected, 1 ARM frequency capped, 2 currently throttled, 3 soft temperature limit
//! active; bits 16-19 say the same conditions have occurred since they were last read
//! (Linux asks the firmware to clear them with each read, as [`crate::mailbox`] does).

use core::fmt;

/// The raw flags word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled(pub u32);

/// The conditions, by bit (the "now" bit; the "has occurred" bit is 16 higher), with
/// the words printed for each: now, and has occurred.
const CONDITIONS: [(u32, &str, &str); 4] = [
    (0, "under-voltage detected", "under-voltage"),
    (1, "ARM frequency capped", "ARM frequency capping"),
    (2, "currently throttled", "throttling"),
    (3, "soft temperature limit active", "soft temperature limit"),
];

impl Throttled {
    /// Under-voltage now.
    pub const UNDER_VOLTAGE: u32 = 1 << 0;
    /// The ARM clock is capped now.
    pub const ARM_CAPPED: u32 = 1 << 1;
    /// Throttled now.
    pub const THROTTLED: u32 = 1 << 2;
    /// The soft temperature limit is active now.
    pub const SOFT_TEMP_LIMIT: u32 = 1 << 3;
    /// The "has occurred" copy of a condition bit.
    pub const OCCURRED_SHIFT: u32 = 16;
    /// Every bit the firmware documents.
    pub const KNOWN: u32 = 0xf | (0xf << 16);

    /// Whether under-voltage is, or has been, reported (Linux's `Undervoltage
    /// detected!`, which watches the sticky bit 16).
    pub const fn under_voltage(self) -> bool {
        self.0 & (Self::UNDER_VOLTAGE | Self::UNDER_VOLTAGE << Self::OCCURRED_SHIFT) != 0
    }

    /// Whether any documented condition is, or has been, reported.
    pub const fn any(self) -> bool {
        self.0 & Self::KNOWN != 0
    }

    /// Whether the ARM clock is slowed now (capped, throttled or at the soft limit):
    /// what can make the core count fewer cycles than the firmware's reported rate.
    pub const fn slows_clock_now(self) -> bool {
        self.0 & (Self::ARM_CAPPED | Self::THROTTLED | Self::SOFT_TEMP_LIMIT) != 0
    }
}

/// `under-voltage detected, currently throttled; has occurred: under-voltage,
/// throttling`, or `none`.
impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, now, _) in CONDITIONS {
            if self.0 & (1 << bit) != 0 {
                write!(f, "{}{now}", if first { "" } else { ", " })?;
                first = false;
            }
        }
        let mut occurred = true;
        for (bit, _, past) in CONDITIONS {
            if self.0 & (1 << (bit + Self::OCCURRED_SHIFT)) != 0 {
                let sep = match (first, occurred) {
                    (true, true) => "has occurred: ",
                    (false, true) => "; has occurred: ",
                    _ => ", ",
                };
                write!(f, "{sep}{past}")?;
                first = false;
                occurred = false;
            }
        }
        if first {
            write!(f, "none")?;
        }
        let unknown = self.0 & !Self::KNOWN;
        if unknown != 0 {
            write!(f, " (undocumented bits {unknown:#x})")?;
        }
        Ok(())
    }
}

/// What a comparison of the core's cycle count with the firmware's clock concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockVerdict {
    /// The count agrees with the firmware's rate (within 10 %).
    Agrees,
    /// The count is off, and the firmware says it throttles or caps the clock, or has
    /// seen under-voltage: a real board slowed down, not an emulator.
    Throttled(Throttled),
    /// The count is off, no throttling is reported, but the firmware's own measurement
    /// of the ARM clock (Hz) agrees with the count: the clock really runs there.
    FirmwareMeasured(u32),
    /// The count is off and the firmware says nothing of throttling (no flags, or no
    /// answer to the tag at all) nor measures the counted rate: the firmware's answers
    /// do not describe this CPU (QEMU answers clock requests without changing anything).
    Emulator,
}

/// Whether `a` and `b` agree within 10 % of `b`.
const fn close(a: u64, b: u64) -> bool {
    a.abs_diff(b) <= b / 10
}

/// Judges the core's counted clock (`counted_hz`, PMU cycles against the generic timer)
/// against the firmware's reported rate, its throttling flags (`None`: the tag was not
/// answered) and its own measurement of the ARM clock (`None`: not answered).
pub const fn clock_verdict(
    reported_hz: u64,
    counted_hz: u64,
    throttled: Option<Throttled>,
    firmware_measured_hz: Option<u32>,
) -> ClockVerdict {
    if close(counted_hz, reported_hz) {
        return ClockVerdict::Agrees;
    }
    if let Some(t) = throttled {
        if t.any() {
            return ClockVerdict::Throttled(t);
        }
    }
    if let Some(m) = firmware_measured_hz {
        if m != 0 && close(counted_hz, m as u64) {
            return ClockVerdict::FirmwareMeasured(m);
        }
    }
    ClockVerdict::Emulator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_words_as_vcgencmd_documents_them() {
        assert_eq!(Throttled(0).to_string(), "none");
        assert_eq!(Throttled(0x1).to_string(), "under-voltage detected");
        assert_eq!(Throttled(0x6).to_string(), "ARM frequency capped, currently throttled");
        assert_eq!(Throttled(0x8).to_string(), "soft temperature limit active");
        // The classic under-powered Pi: 0x50005.
        assert_eq!(
            Throttled(0x50005).to_string(),
            "under-voltage detected, currently throttled; has occurred: under-voltage, throttling"
        );
        assert_eq!(Throttled(0xa0000).to_string(), "has occurred: ARM frequency capping, soft temperature limit");
        assert_eq!(Throttled(0x100).to_string(), "none (undocumented bits 0x100)");
    }

    #[test]
    fn flag_predicates() {
        assert!(Throttled(0x1).under_voltage() && Throttled(0x10000).under_voltage());
        assert!(!Throttled(0x20006).under_voltage());
        assert!(
            Throttled(0x2).slows_clock_now() && Throttled(0x4).slows_clock_now() && Throttled(0x8).slows_clock_now()
        );
        assert!(!Throttled(0x70001).slows_clock_now(), "past conditions and under-voltage alone do not slow it now");
        assert!(Throttled(0x80000).any() && !Throttled(0).any() && !Throttled(0x100).any());
    }

    #[test]
    fn a_throttled_pi_is_not_an_emulator() {
        // 3B+ under-powered: the firmware reports 1400 MHz, the core counts 600.
        let v = clock_verdict(1_400_000_000, 600_000_000, Some(Throttled(0x50005)), Some(600_000_000));
        assert_eq!(v, ClockVerdict::Throttled(Throttled(0x50005)));
        // Only a past capping: still a real board, said so.
        assert_eq!(
            clock_verdict(1_400_000_000, 1_200_000_000, Some(Throttled(0x20000)), None),
            ClockVerdict::Throttled(Throttled(0x20000))
        );
        // No flags, but the firmware measures what the core counts.
        assert_eq!(
            clock_verdict(1_400_000_000, 1_000_000_000, Some(Throttled(0)), Some(1_000_200_000)),
            ClockVerdict::FirmwareMeasured(1_000_200_000)
        );
    }

    #[test]
    fn an_emulator_only_when_the_firmware_says_nothing_of_the_kind() {
        // QEMU: 700 MHz reported, ~1000 counted, neither tag answered.
        assert_eq!(clock_verdict(700_000_000, 1_000_000_000, None, None), ClockVerdict::Emulator);
        // Flags answered and clear, and a measurement that does not explain the count.
        assert_eq!(
            clock_verdict(1_400_000_000, 3_000_000_000, Some(Throttled(0)), Some(1_400_000_000)),
            ClockVerdict::Emulator
        );
        assert_eq!(clock_verdict(700_000_000, 1_000_000_000, Some(Throttled(0x100)), Some(0)), ClockVerdict::Emulator);
    }

    #[test]
    fn agreement_is_within_ten_percent() {
        assert_eq!(clock_verdict(1_400_000_000, 1_399_000_000, Some(Throttled(0x50005)), None), ClockVerdict::Agrees);
        assert_eq!(clock_verdict(600_000_000, 660_000_000, None, None), ClockVerdict::Agrees);
        assert_eq!(clock_verdict(600_000_000, 661_000_000, None, None), ClockVerdict::Emulator);
    }
}
