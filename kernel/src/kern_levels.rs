//! Log levels (Linux's `kern_levels.h`): what printk tags each line with and what the
//! log buffer stores beside it.

/// Log levels, Linux's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// System is unusable.
    Emerg = 0,
    /// Action must be taken immediately.
    Alert = 1,
    /// Critical conditions.
    Crit = 2,
    /// Error conditions.
    Err = 3,
    /// Warning conditions.
    Warning = 4,
    /// Normal but significant.
    Notice = 5,
    /// Informational.
    Info = 6,
    /// Debug-level messages.
    Debug = 7,
}

impl Level {
    /// The level of a stored number (anything above 7 is debug).
    pub fn from_u8(n: u8) -> Self {
        match n {
            0 => Level::Emerg,
            1 => Level::Alert,
            2 => Level::Crit,
            3 => Level::Err,
            4 => Level::Warning,
            5 => Level::Notice,
            6 => Level::Info,
            _ => Level::Debug,
        }
    }

    /// Linux's name (`dmesg -l` takes these).
    pub fn name(self) -> &'static str {
        ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"][self as usize]
    }

    /// A level by name (`err`) or number (`3`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.parse::<u8>() {
            Ok(n) if n <= 7 => Some(Self::from_u8(n)),
            Ok(_) => None,
            Err(_) => (0..8).map(Self::from_u8).find(|l| l.name() == s),
        }
    }
}
