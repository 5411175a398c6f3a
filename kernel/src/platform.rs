//! The kernel's view of the Raspberry Pi: console output through the PL011, the clock,
//! the board identity, linker-script symbols and the embedded symbol table.

use crate::cmdline::{CommandLine, Escaped};
use crate::ksyms::SymbolTable;
use crate::{pr_err, pr_info, pr_notice, pr_warn};
use board::revision::BoardRevision;
use core::sync::atomic::{AtomicU32, Ordering};

/// Board revision code from the mailbox (0 until known).
static REVISION: AtomicU32 = AtomicU32::new(0);

/// Records the board revision code.
pub fn set_revision(code: u32) {
    REVISION.store(code, Ordering::Relaxed);
}

/// The decoded board revision.
pub fn revision() -> BoardRevision {
    BoardRevision::new(REVISION.load(Ordering::Relaxed))
}

/// A second console that mirrors the UART (the framebuffer's), once registered.
static MIRROR: spin::Once<fn(&str)> = spin::Once::new();

/// Registers a console that gets a copy of everything written to the UART (called
/// under printk's output lock: it must not print, nor wait for long).
pub fn set_console_mirror(f: fn(&str)) {
    MIRROR.call_once(|| f);
}

fn uart_write(s: &str) {
    board::uart::puts(s);
    if let Some(f) = MIRROR.get() {
        f(s);
    }
}

/// Routes printk to the UART with generic-timer timestamps.
pub fn init_console() {
    crate::printk::set_backend(crate::printk::Backend {
        write: uart_write,
        now_ns: board::timer::uptime_ns,
        cpu_id: || crate::percpu::smp_processor_id().index(),
    });
}

/// How long the core's clock is measured at boot.
const CLOCK_MEASURE_US: u64 = 5_000;

fn mhz(hz: u64) -> u64 {
    (hz + 500_000) / 1_000_000
}

/// Asks the firmware for the maximum ARM clock and prints Linux-style what it answered
/// and what the core measures: `CPU: ARM clock N MHz (max M MHz)`, then what the
/// firmware's throttling flags say ([`check_clock`]).
pub fn arm_clock_max() {
    let c = board::clock::set_arm_max();
    let measured = board::clock::measure_hz(CLOCK_MEASURE_US);
    let (now, max) = match (c.now_hz, c.max_hz) {
        (Ok(now), Ok(max)) => (now as u64, max as u64),
        _ => {
            pr_warn!("CPU: ARM clock unknown: the firmware did not answer ({:?}, {:?})", c.now_hz, c.max_hz);
            return;
        }
    };
    let was = match c.boot_hz {
        Ok(b) if b as u64 != now => Some(mhz(b as u64)),
        _ => None,
    };
    match measured {
        Some(m) => pr_info!(
            "CPU: ARM clock {} MHz (max {} MHz){}{}; measured {} MHz (PMU cycles over {} ms of the generic timer)",
            mhz(now),
            mhz(max),
            if was.is_some() { ", raised from " } else { "" },
            Mhz(was),
            mhz(m),
            CLOCK_MEASURE_US / 1000
        ),
        None => pr_info!("CPU: ARM clock {} MHz (max {} MHz); not measured (no PMU cycle counter)", mhz(now), mhz(max)),
    }
    if let Err(e) = c.set_hz {
        pr_warn!("CPU: the firmware refused the maximum clock: {:?}", e);
    }
    check_clock(now, measured);
}

/// The clock check again, for `bench`: the rate the firmware reports now, the core's
/// count, and what the throttling flags say ([`check_clock`]).
pub fn recheck_clock() {
    let measured = board::clock::measure_hz(CLOCK_MEASURE_US);
    match (board::mailbox::clock_rate(board::mailbox::clock::ARM), measured) {
        (Ok(now), Some(m)) => {
            pr_info!("CPU: ARM clock {} MHz; measured {} MHz", mhz(now as u64), mhz(m));
            check_clock(now as u64, measured);
        }
        (Ok(now), None) => {
            pr_info!("CPU: ARM clock {} MHz; not measured (no PMU cycle counter)", mhz(now as u64));
            check_clock(now as u64, None);
        }
        (Err(e), _) => pr_warn!("CPU: ARM clock unknown: the firmware did not answer ({:?})", e),
    }
}

/// Reads the firmware's throttling flags (as Linux's raspberrypi-hwmon, which says
/// `Undervoltage detected!`) and its own measurement of the ARM clock, prints any
/// under-voltage or throttling, and judges a core count that differs from the rate the
/// firmware reports ([`board::throttle::clock_verdict`]): a throttled board says so;
/// only a firmware that reports nothing of the kind is taken for an emulator (QEMU
/// answers clock requests without changing anything and knows neither tag).
fn check_clock(reported: u64, counted: Option<u64>) {
    use board::throttle::{clock_verdict, ClockVerdict, Throttled};
    let flags = board::mailbox::throttled().ok().map(Throttled);
    let fw_measured = board::mailbox::clock_measured(board::mailbox::clock::ARM).ok();
    if let Some(t) = flags {
        if t.under_voltage() {
            pr_err!("raspberrypi-hwmon: Undervoltage detected!");
        }
        if t.any() {
            pr_warn!("CPU: the firmware reports throttling: {} (flags {:#x})", t, t.0);
        }
    }
    let Some(counted) = counted else { return };
    match clock_verdict(reported, counted, flags, fw_measured) {
        ClockVerdict::Agrees => {}
        ClockVerdict::Throttled(t) => pr_warn!(
            "CPU: the core counts {} MHz, not the {} MHz the firmware reports: throttled by the firmware ({}){}{}",
            mhz(counted),
            mhz(reported),
            t,
            if fw_measured.is_some() { "; it measures " } else { "" },
            Mhz(fw_measured.map(|m| mhz(m as u64)))
        ),
        ClockVerdict::FirmwareMeasured(m) => pr_warn!(
            "CPU: the core counts {} MHz, not the {} MHz the firmware reports; the firmware measures {} MHz too (no throttling flags): the clock runs below the rate set",
            mhz(counted),
            mhz(reported),
            mhz(m as u64)
        ),
        ClockVerdict::Emulator => pr_notice!(
            "CPU: the set clock was ignored: the firmware reports {} MHz but the core counts {} MHz (an emulator: {}, and QEMU answers clock requests without changing anything)",
            mhz(reported),
            mhz(counted),
            if flags.is_some() { "the firmware reports no throttling" } else { "no throttling flags from the firmware" }
        ),
    }
}

/// An optional MHz figure, printed only when present.
struct Mhz(Option<u64>);

impl core::fmt::Display for Mhz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(m) => write!(f, "{m} MHz"),
            None => Ok(()),
        }
    }
}

extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __ksyms_start: u8;
    static __ksyms_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static __kernel_end: u8;
    static boot_stack_guard: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
    static emergency_stacks: u8;
    static emergency_stacks_end: u8;
}

macro_rules! sym {
    ($s:ident) => {
        core::ptr::addr_of!($s) as usize
    };
}

/// Kernel image ranges (virtual addresses) from the linker script.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// Whole image.
    pub start: usize,
    /// End of the image (page aligned, after bss).
    pub end: usize,
    /// Text.
    pub text: (usize, usize),
    /// Read-only data (including the symbol table).
    pub rodata: (usize, usize),
    /// Initialised data.
    pub data: (usize, usize),
    /// Zero-initialised data, including page tables and stacks.
    pub bss: (usize, usize),
    /// The boot stack's guard page.
    pub boot_stack_guard: usize,
    /// Boot stack usable range.
    pub boot_stack: (usize, usize),
    /// Emergency stacks (one 64 KiB slot per CPU).
    pub emergency_stacks: (usize, usize),
}

/// The kernel image layout.
pub fn image_layout() -> ImageLayout {
    ImageLayout {
        start: sym!(__kernel_start),
        end: sym!(__kernel_end),
        text: (sym!(__text_start), sym!(__text_end)),
        rodata: (sym!(__rodata_start), sym!(__rodata_end)),
        data: (sym!(__data_start), sym!(__data_end)),
        bss: (sym!(__bss_start), sym!(__bss_end)),
        boot_stack_guard: sym!(boot_stack_guard),
        boot_stack: (sym!(boot_stack_bottom), sym!(boot_stack_top)),
        emergency_stacks: (sym!(emergency_stacks), sym!(emergency_stacks_end)),
    }
}

/// Size of the `.ksyms` reservation (must match KSYMS_SIZE in linker/kernel.ld).
pub const KSYMS_SIZE: usize = 0x10000;

/// The reservation tools/ksyms.py fills after linking; zero (no table) until then.
#[link_section = ".ksyms"]
#[used]
static KSYMS_RESERVATION: [u8; KSYMS_SIZE] = [0; KSYMS_SIZE];

/// The symbol table embedded by tools/ksyms.py, if the image has one.
pub fn symbols() -> Option<SymbolTable<'static>> {
    let (start, end) = (sym!(__ksyms_start), sym!(__ksyms_end));
    // SAFETY: [__ksyms_start, __ksyms_end) is the read-only .ksyms section of the image,
    // mapped for the kernel's lifetime.
    let blob = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
    SymbolTable::parse(blob).map(|t| t.with_limit(sym!(__text_end) as u64))
}

/// The kernel command line, copied at boot (at most `COMMAND_LINE_SIZE` bytes).
static CMDLINE: spin::Once<CommandLine> = spin::Once::new();

/// Where QEMU writes the ATAGS list for a raw image (`-append`), and how far it may run:
/// a 2 KiB command line does not fit in page 0, and the image starts at 0x80000.
const ATAGS_ADDR: u64 = 0x100;
const ATAGS_WINDOW: u64 = 0x1_0000 - ATAGS_ADDR;

fn linear_bytes(pa: u64, len: u64) -> &'static [u8] {
    let va = mm::addr::PhysAddr::new(pa).linear_va().as_ptr::<u8>();
    // SAFETY: callers pass ranges inside RAM, which the kernel maps read/write at
    // PAGE_OFFSET for its whole life; the loader's data is only read.
    unsafe { core::slice::from_raw_parts(va, len as usize) }
}

/// The flattened device tree the loader passed in `x0`, if `x0` points at one lying
/// wholly inside RAM (`[0, ram_end)`). Read through the linear map.
pub fn loader_fdt(x0: u64, ram_end: u64) -> Option<&'static [u8]> {
    if x0 == 0 || !x0.is_multiple_of(8) || x0.checked_add(8)? > ram_end {
        return None;
    }
    let head = linear_bytes(x0, 8);
    let total = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as u64;
    let magic_ok = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) == crate::fdt::FDT_MAGIC;
    (magic_ok && total >= 8 && x0 + total <= ram_end).then(|| linear_bytes(x0, total))
}

/// Finds the command line the loader passed (a device tree at `x0` from the Pi firmware,
/// else an ATAGS list at 0x100 from QEMU with a raw image), keeps what can be read,
/// prints it like Linux, warns once about anything lost, cut, unknown or malformed
/// (including a long ATAGS line that QEMU's own boot code overwrote), and applies
/// `loglevel=`.
pub fn init_cmdline(x0: u64, ram_end: u64) {
    let mut overwritten = None;
    let found = loader_fdt(x0, ram_end).and_then(crate::fdt::bootargs).or_else(|| {
        let atags = linear_bytes(ATAGS_ADDR, ATAGS_WINDOW.min(ram_end.saturating_sub(ATAGS_ADDR)));
        let c = crate::cmdline::atags_cmdline(atags, ATAGS_ADDR, crate::cmdline::QEMU_SMPBOOT_ADDR)?;
        overwritten = c.overwritten;
        Some(c.text)
    });
    let mut line = CommandLine::new();
    let damage = crate::cmdline::keep(found.unwrap_or(&[]), &mut line);
    let line = CMDLINE.call_once(|| line).as_str();
    pr_notice!("Kernel command line: {}", line);
    if let Some(o) = overwritten {
        let kept = found.map_or(0, <[u8]>::len);
        pr_warn!(
            "Kernel command line: {}{} bytes in the ATAGs at {:#x}, overwritten from byte {} on by QEMU's boot code for CPUs 1-3 at {:#x}: kept the {} bytes of whole options before it, lost {}{} bytes; boot with a device tree (-dtb) to pass up to {} bytes",
            if o.exact { "" } else { "about " },
            o.total,
            ATAGS_ADDR,
            o.from,
            crate::cmdline::QEMU_SMPBOOT_ADDR,
            kept,
            if o.exact { "" } else { "about " },
            o.total.saturating_sub(kept),
            crate::cmdline::COMMAND_LINE_SIZE
        );
    }
    if let Some((first, lost)) = damage.cut {
        pr_warn!(
            "Kernel command line: {} bytes, longer than {}: cut before '{}' ({} option{} not kept)",
            damage.total,
            crate::cmdline::COMMAND_LINE_SIZE,
            Escaped(first, 40),
            lost,
            if lost == 1 { "" } else { "s" }
        );
    }
    if damage.invalid_count > 0 {
        let named = &damage.invalid[..damage.invalid_count.min(crate::cmdline::NAMED)];
        pr_warn!(
            "Kernel command line: dropped {} option{} with bytes that are not UTF-8: {}{}",
            damage.invalid_count,
            if damage.invalid_count == 1 { "" } else { "s" },
            List(named),
            if damage.invalid_count > named.len() { " ..." } else { "" }
        );
    }
    let unknown = crate::cmdline::unknown(line);
    if unknown.clone().next().is_some() {
        pr_warn!(
            "Unknown kernel command line parameters \"{}\", ignored (this kernel knows sweep=, slub_debug, loglevel=, panic=, nohugevmalloc, cma=, page_owner=, kmemleak=)",
            Words(unknown)
        );
    }
    if let Err(v) = crate::cmdline::sweep(line) {
        pr_warn!("sweep={}: expected {}, keeping all", Escaped(v.as_bytes(), 40), crate::cmdline::SWEEP_VALUES);
    }
    match crate::cmdline::panic_timeout(line) {
        Ok(Some(seconds)) => crate::panic::set_timeout(seconds),
        Ok(None) => {}
        Err(v) => pr_warn!("panic={}: expected seconds, keeping 0 (halt)", Escaped(v.as_bytes(), 40)),
    }
    match crate::cmdline::loglevel(line) {
        Ok(Some(level)) => {
            crate::printk::set_console_loglevel(level);
        }
        Ok(None) => {}
        Err(v) => pr_warn!(
            "loglevel={}: expected 0..=8, keeping {}",
            Escaped(v.as_bytes(), 40),
            crate::printk::console_loglevel()
        ),
    }
}

/// Dropped words, quoted and escaped, separated by spaces.
struct List<'a>(&'a [&'a [u8]]);

impl core::fmt::Display for List<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, w) in self.0.iter().enumerate() {
            write!(f, "{}'{}'", if i > 0 { " " } else { "" }, Escaped(w, 40))?;
        }
        Ok(())
    }
}

/// Words printed with single spaces, without building a string: the first eight, then
/// how many more.
struct Words<I>(I);

impl<'a, I: Iterator<Item = &'a str> + Clone> core::fmt::Display for Words<I> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const SHOWN: usize = 8;
        for (i, w) in self.0.clone().take(SHOWN).enumerate() {
            write!(f, "{}{}", if i > 0 { " " } else { "" }, Escaped(w.as_bytes(), 40))?;
        }
        let more = self.0.clone().skip(SHOWN).count();
        if more > 0 {
            write!(f, " ... ({more} more)")?;
        }
        Ok(())
    }
}

/// The kernel command line ("" if none).
pub fn cmdline() -> &'static str {
    CMDLINE.get().map_or("", |s| s.as_str())
}
