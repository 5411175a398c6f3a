//! The procps tools as Linux users type them: `free [-k|-m|-h]`, `vmstat [DELAY [COUNT]]`
//! and `slabtop` (one shot, as `slabtop -o`), in procps' formats and with the numbers
//! of the /proc files they read in Linux (`cat /proc/meminfo`, `/proc/slabinfo`).
//!
//! Nothing here allocates: figures are taken into fixed structures and printed.

use super::mem::{mem_summary, print};
use crate::console::args::parse_u64;
use crate::console::registry::{Command, CommandError};
use crate::cprintln;
use crate::mm::slab::SLAB;
use crate::percpu::{cpu_online, smp_processor_id, CpuId, NR_CPUS};
use core::fmt;

/// `free`
pub const FREE: Command = Command {
    name: "free",
    args: "[-k|-m|-h]",
    help: "memory in use and free, as procps free (kB; -m MiB; -h human)",
    run: free,
};

/// `free`'s options, for Tab.
pub fn free_options(before: &[&str], each: &mut dyn FnMut(&'static str)) {
    if before.is_empty() {
        ["-k", "-m", "-h"].into_iter().for_each(each);
    }
}

/// How `free` prints a size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unit {
    Kibi,
    Mebi,
    Human,
}

/// A size in kB printed in `unit`, right-aligned in `free`'s 12 columns.
struct Size(u64, Unit);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kb = self.0;
        match self.1 {
            Unit::Kibi => write!(f, "{:>12}", kb),
            Unit::Mebi => write!(f, "{:>12}", kb >> 10),
            Unit::Human => {
                // procps' -h: three significant figures, a binary suffix.
                let bytes = kb * 1024;
                let mut s = crate::printk::StackString::<16>::new();
                if bytes < 1024 {
                    let _ = fmt::write(&mut s, format_args!("{bytes}B"));
                } else {
                    let (mut unit, mut div) = (0, 1024u64);
                    while unit < 4 && bytes >= div * 1024 {
                        unit += 1;
                        div *= 1024;
                    }
                    let suffix = ["Ki", "Mi", "Gi", "Ti", "Pi"][unit];
                    let tenths = (bytes * 10 + div / 2) / div;
                    if tenths < 100 {
                        let _ = fmt::write(&mut s, format_args!("{}.{}{suffix}", tenths / 10, tenths % 10));
                    } else {
                        let _ = fmt::write(&mut s, format_args!("{}{suffix}", (bytes + div / 2) / div));
                    }
                }
                write!(f, "{:>12}", s.as_str())
            }
        }
    }
}

fn free(args: &[&str]) -> Result<(), CommandError> {
    let unit = match args {
        [] | ["-k"] => Unit::Kibi,
        ["-m"] => Unit::Mebi,
        ["-h"] => Unit::Human,
        // The console's old `free HANDLE`: say what releases a handle now.
        [h] if *h == "all" || parse_u64(h.trim_start_matches('#')).is_ok() => {
            return Err(CommandError::bad(format_args!(
                "free shows memory as in Linux; to give back an allocation type 'release {}'",
                h.trim_start_matches('#')
            )));
        }
        _ => return Err(CommandError::Usage),
    };
    let m = mem_summary();
    // procps: used = total - free - buff/cache; there is no page cache and no
    // reclaimable slab here, so buff/cache and shared are 0, and so is swap.
    let used = m.total_kb.saturating_sub(m.free_kb);
    cprintln!("{:>19}{:>12}{:>12}{:>12}{:>12}{:>12}", "total", "used", "free", "shared", "buff/cache", "available");
    cprintln!(
        "{:<7}{}{}{}{}{}{}",
        "Mem:",
        Size(m.total_kb, unit),
        Size(used, unit),
        Size(m.free_kb, unit),
        Size(0, unit),
        Size(0, unit),
        Size(m.available_kb, unit)
    );
    cprintln!("{:<7}{}{}{}", "Swap:", Size(0, unit), Size(0, unit), Size(0, unit));
    Ok(())
}

/// `vmstat`
pub const VMSTAT: Command = Command {
    name: "vmstat",
    args: "[DELAY [COUNT]]",
    help: "procs, memory and cpu, as procps vmstat: every DELAY s, COUNT times (Ctrl-C stops)",
    run: vmstat,
};

/// What one `vmstat` line is computed from.
#[derive(Clone, Copy)]
struct Sample {
    ticks: u64,
    idle: [u64; NR_CPUS],
    interrupts: u64,
}

fn sample() -> Sample {
    let mut interrupts = 0;
    crate::irq::for_each_irq(|r| interrupts += r.counts.iter().sum::<u64>());
    Sample {
        ticks: board::timer::ticks(),
        idle: core::array::from_fn(|c| crate::idle::idle_ticks(CpuId::of(c))),
        interrupts,
    }
}

fn online_cpus() -> impl Iterator<Item = CpuId> {
    CpuId::all().filter(|&c| cpu_online(c))
}

/// One line: memory now; interrupts per second and the cpu split over `from..to`.
fn vmstat_line(from: &Sample, to: &Sample) {
    let m = mem_summary();
    let span = to.ticks.saturating_sub(from.ticks).max(1);
    let cpus = online_cpus().count().max(1) as u64;
    let idle: u64 = online_cpus().map(|c| to.idle[c.index()].saturating_sub(from.idle[c.index()])).sum();
    let id = (idle.min(span * cpus) * 100 / (span * cpus)).min(100);
    let secs_x1000 = board::timer::ticks_to_ns(span) / 1_000_000;
    let per_s = to.interrupts.saturating_sub(from.interrupts) * 1000 / secs_x1000.max(1);
    // r: this CPU (running vmstat, as Linux counts vmstat itself) and any CPU that is
    // not asleep in wfi; b, swap, block I/O and context switches do not exist here.
    let r = 1 + online_cpus().filter(|&c| c != smp_processor_id() && !crate::idle::is_idle(c)).count();
    cprintln!(
        "{:2} {:2} {:6} {:6} {:6} {:6} {:4} {:4} {:5} {:5} {:4} {:4} {:2} {:2} {:2} {:2} {:2}",
        r,
        0,
        0,
        m.free_kb,
        0,
        0,
        0,
        0,
        0,
        0,
        per_s,
        0,
        0,
        100 - id,
        id,
        0,
        0
    );
}

fn vmstat(args: &[&str]) -> Result<(), CommandError> {
    let num = |s: &str, what: &str| {
        parse_u64(s).map_err(|e| CommandError::bad(format_args!("{what}: {e}"))).and_then(|v| {
            if v == 0 {
                Err(CommandError::bad(format_args!("{what} must be at least 1")))
            } else {
                Ok(v)
            }
        })
    };
    let (delay, count) = match args {
        [] => (None, 1),
        [d] => (Some(num(d, "DELAY")?), u64::MAX),
        [d, c] => (Some(num(d, "DELAY")?), num(c, "COUNT")?),
        _ => return Err(CommandError::Usage),
    };
    cprintln!("procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu-----");
    cprintln!(" r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st");
    // The first line: averages since boot (the counter and the idle time start at 0).
    let boot = Sample { ticks: 0, idle: [0; NR_CPUS], interrupts: 0 };
    let mut last = sample();
    vmstat_line(&boot, &last);
    let Some(delay) = delay else { return Ok(()) };
    let ticks = board::timer::frequency().saturating_mul(delay.min(3600));
    for _ in 1..count {
        // Asleep until the next line or Ctrl-C.
        crate::idle::wait_until_timeout(crate::tty::signal_pending, ticks);
        if crate::tty::signal_pending() {
            break;
        }
        let now = sample();
        vmstat_line(&last, &now);
        last = now;
    }
    Ok(())
}

/// `slabtop`
pub const SLABTOP: Command =
    Command { name: "slabtop", args: "", help: "slab caches by size of use, once (as slabtop -o)", run: slabtop };

fn slabtop(args: &[&str]) -> Result<(), CommandError> {
    super::no_args(args)?;
    let mut rows = [mm::slab::cache::CacheStats::default(); mm::slab::MAX_CACHES];
    let mut n = 0;
    SLAB.for_each_cache(|_, s| {
        if n < rows.len() {
            rows[n] = *s;
            n += 1;
        }
    });
    print(|w| mm::slab::slabinfo::slabtop(&mut rows[..n], w));
    Ok(())
}
