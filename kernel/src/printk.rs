//! printk: kernel log lines with Linux's dmesg timestamps (`[    0.123456] `) and log
//! levels, written to whatever console the platform registers.
//!
//! The sink, the clock and the CPU id are plain function pointers set once at boot, so
//! this module stays hardware-free and testable. Lines from different CPUs do not
//! interleave: a lock is held per message. An oops on the CPU that holds the lock (a
//! fault inside printk) does not deadlock: the owner re-enters, like Linux's
//! bust_spinlocks.
//!
//! Every line with a timestamp also goes into the kernel log buffer ([`LOG`], read by
//! `dmesg`), whatever the console level: like Linux, the console level decides only what
//! is printed.

use crate::log_buf::LogBuf;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

pub use crate::kern_levels::Level;

/// Size of the kernel log buffer: Linux arm64's default (CONFIG_LOG_BUF_SHIFT=17).
pub const LOG_BUF_LEN: usize = 128 * 1024;

/// The kernel log buffer.
pub static LOG: spin::Mutex<LogBuf<LOG_BUF_LEN>> = spin::Mutex::new(LogBuf::new());

/// Runs `f` on the log buffer if it can be had soon: writers hold the console lock, so
/// the only other holder is a `dmesg` copying one line; a CPU that faulted inside the
/// log code itself finds it held for ever and leaves the line out. "Soon" is 10 ms of
/// the clock (not a count of tries, whose time depends on the core or the emulator);
/// before the clock is registered only the boot CPU runs, so a held lock means that
/// fault and the line is left out at once.
fn with_log(f: impl FnOnce(&mut LogBuf<LOG_BUF_LEN>)) {
    const WAIT_NS: u64 = 10_000_000;
    let start = now_ns();
    loop {
        if let Some(mut log) = LOG.try_lock() {
            f(&mut log);
            return;
        }
        let now = now_ns();
        if now == 0 || now.saturating_sub(start) > WAIT_NS {
            return;
        }
        // (`yield`: under QEMU's thread=single it hands the host thread to the holder.)
        mm::sync::cpu_relax();
    }
}

/// Messages with a level numerically below this are printed (Linux's console_loglevel).
static CONSOLE_LOGLEVEL: AtomicU8 = AtomicU8::new(7);

/// Sets the console log level (1..=8); returns the previous one.
pub fn set_console_loglevel(level: u8) -> u8 {
    CONSOLE_LOGLEVEL.swap(level.clamp(1, 8), Ordering::Relaxed)
}

/// The console log level.
pub fn console_loglevel() -> u8 {
    CONSOLE_LOGLEVEL.load(Ordering::Relaxed)
}

/// Where the platform's console, clock and CPU id come from.
#[derive(Clone, Copy)]
pub struct Backend {
    /// Writes text to the console (the sink turns `\n` into `\r\n` if it needs to).
    pub write: fn(&str),
    /// Nanoseconds since boot.
    pub now_ns: fn() -> u64,
    /// The current CPU number.
    pub cpu_id: fn() -> usize,
}

fn nop_write(_: &str) {}
fn zero() -> u64 {
    0
}
fn cpu0() -> usize {
    0
}

static BACKEND: spin::RwLock<Backend> = spin::RwLock::new(Backend { write: nop_write, now_ns: zero, cpu_id: cpu0 });

/// Installs the platform backend.
pub fn set_backend(b: Backend) {
    *BACKEND.write() = b;
}

fn backend() -> Backend {
    *BACKEND.read()
}

/// Nanoseconds since boot, from the registered clock.
pub fn now_ns() -> u64 {
    (backend().now_ns)()
}

/// Formats a dmesg timestamp: `[    0.123456] ` (seconds right-aligned in 5, microseconds).
pub struct Timestamp(pub u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0 / 1_000;
        write!(f, "[{:5}.{:06}] ", us / 1_000_000, us % 1_000_000)
    }
}

/// Owner of the output lock: CPU number + 1, or 0 when free.
static OWNER: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` with the console to itself; re-entrant on the owning CPU. Lines written with
/// timestamps go into the log at Linux's default message level (warning).
pub fn with_console<R>(f: impl FnOnce(&mut ConsoleWriter) -> R) -> R {
    with_console_at(Level::Warning, true, f)
}

/// [`with_console`] for lines of `level`, printed only if `print`.
fn with_console_at<R>(level: Level, print: bool, f: impl FnOnce(&mut ConsoleWriter) -> R) -> R {
    let b = backend();
    let me = (b.cpu_id)() + 1;
    let reentered = OWNER.load(Ordering::Acquire) == me;
    if !reentered {
        while OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
            mm::sync::cpu_relax();
        }
    }
    let mut w = ConsoleWriter { write: b.write, at_line_start: true, now_ns: b.now_ns, level, print };
    let r = f(&mut w);
    if !reentered {
        OWNER.store(0, Ordering::Release);
    }
    r
}

/// Writes to the console, putting a timestamp at the start of every line.
pub struct ConsoleWriter {
    write: fn(&str),
    now_ns: fn() -> u64,
    at_line_start: bool,
    level: Level,
    print: bool,
}

impl ConsoleWriter {
    /// Writes text as it is, without timestamps and not into the log (console echo,
    /// prompts, command output).
    pub fn raw(&mut self, s: &str) {
        (self.write)(s);
    }

    fn print(&self, s: &str) {
        if self.print {
            (self.write)(s);
        }
    }
}

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.print("\n");
                with_log(|l| l.end());
                self.at_line_start = true;
            }
            if line.is_empty() {
                continue;
            }
            if self.at_line_start {
                let now = (self.now_ns)();
                let mut ts = StackString::<24>::new();
                let _ = write!(ts, "{}", Timestamp(now));
                self.print(ts.as_str());
                let level = self.level;
                with_log(|l| l.begin(level, now));
                self.at_line_start = false;
            }
            self.print(line);
            with_log(|l| l.append(line.as_bytes()));
        }
        Ok(())
    }
}

/// Logs a message at `level` followed by a newline, and prints it if the console level
/// allows it.
pub fn printk(level: Level, args: fmt::Arguments<'_>) {
    let print = (level as u8) < console_loglevel();
    with_console_at(level, print, |w| {
        let _ = w.write_fmt(args);
        let _ = w.write_str("\n");
    });
}

/// Prints raw text (no timestamp, no newline): console echo and prompts.
pub fn print_raw(s: &str) {
    with_console(|w| w.raw(s));
}

/// Prints formatted text as it is (no timestamps): console command output.
pub fn print_raw_fmt(args: fmt::Arguments<'_>) {
    struct Raw<'a>(&'a mut ConsoleWriter);
    impl Write for Raw<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.raw(s);
            Ok(())
        }
    }
    with_console(|w| {
        let _ = Raw(w).write_fmt(args);
    });
}

/// Console output without timestamps, like a user-space program's (`cprintln!`).
#[macro_export]
macro_rules! cprint { ($($a:tt)*) => { $crate::printk::print_raw_fmt(format_args!($($a)*)) } }
/// [`cprint!`] with a newline.
#[macro_export]
macro_rules! cprintln {
    () => { $crate::printk::print_raw("\n") };
    ($($a:tt)*) => {{ $crate::printk::print_raw_fmt(format_args!($($a)*)); $crate::printk::print_raw("\n"); }};
}

/// A fixed-capacity string on the stack, for formatting without a heap.
pub struct StackString<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackString<N> {
    /// An empty string.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }
    /// The contents.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 strings are ever appended (see write_str).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for StackString<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Display for StackString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for StackString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq for StackString<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for StackString<N> {}

impl<const N: usize> StackString<N> {
    /// Formats `args`, keeping what fits (a message cut short rather than an allocation).
    pub fn from_fmt(args: fmt::Arguments<'_>) -> Self {
        let mut s = Self::new();
        let _ = TruncWrite(&mut s).write_fmt(args);
        s
    }
}

/// Writes what fits into a [`StackString`], dropping the rest of each piece.
struct TruncWrite<'a, const N: usize>(&'a mut StackString<N>);

impl<const N: usize> Write for TruncWrite<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.0.len;
        let mut cut = s.len().min(room);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = self.0.write_str(&s[..cut]);
        Ok(())
    }
}

impl<const N: usize> Write for StackString<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        if s.len() > room {
            return Err(fmt::Error);
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// `pr_emerg!("...")`, and likewise `pr_err!`, `pr_warn!`, `pr_notice!`, `pr_info!`,
/// `pr_debug!`: a log line at that level.
#[macro_export]
macro_rules! pr_emerg { ($($a:tt)*) => { $crate::printk::printk($crate::printk::Level::Emerg, format_args!($($a)*)) } }
/// Error-level log line.
#[macro_export]
macro_rules! pr_err { ($($a:tt)*) => { $crate::printk::printk($crate::printk::Level::Err, format_args!($($a)*)) } }
/// Warning-level log line.
#[macro_export]
macro_rules! pr_warn { ($($a:tt)*) => { $crate::printk::printk($crate::printk::Level::Warning, format_args!($($a)*)) } }
/// Notice-level log line.
#[macro_export]
macro_rules! pr_notice { ($($a:tt)*) => { $crate::printk::printk($crate::printk::Level::Notice, format_args!($($a)*)) } }
/// Info-level log line.
#[macro_export]
macro_rules! pr_info { ($($a:tt)*) => { $crate::printk::printk($crate::printk::Level::Info, format_args!($($a)*)) } }
/// Debug-level log line (hidden at the default console level).
#[macro_export]
macro_rules! pr_debug { ($($a:tt)*) => { $crate::printk::printk($crate::printk::Level::Debug, format_args!($($a)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_like_dmesg() {
        assert_eq!(Timestamp(0).to_string(), "[    0.000000] ");
        assert_eq!(Timestamp(123_456_789).to_string(), "[    0.123456] ");
        assert_eq!(Timestamp(7_391_431_768_000).to_string(), "[ 7391.431768] ");
        assert_eq!(Timestamp(123_456_000_000_000).to_string(), "[123456.000000] ");
    }

    #[test]
    fn stack_string_refuses_overflow() {
        let mut s = StackString::<4>::new();
        assert!(s.write_str("abc").is_ok());
        assert!(s.write_str("de").is_err());
        assert_eq!(s.as_str(), "abc");
        let t = StackString::<8>::from_fmt(format_args!("{}-{}", "abcdef", "ghijk"));
        assert_eq!(t.as_str(), "abcdef-g", "cut short, never grown");
    }
}
