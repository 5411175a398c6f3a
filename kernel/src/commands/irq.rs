//! `interrupts` (/proc/interrupts) and `irqtest` (allocations from interrupt handlers).

use super::no_args;
use crate::console::args::parse_u64;
use crate::console::registry::{Command, CommandError};
use crate::cprint;
use crate::cprintln;
use crate::ipi::{self, IPI_NAMES, NR_IPI};
use crate::percpu::NR_CPUS;

/// `interrupts`
pub const INTERRUPTS: Command =
    Command { name: "interrupts", args: "", help: "interrupt counts per CPU (/proc/interrupts)", run: interrupts };

fn online(cpu: usize) -> bool {
    crate::percpu::online_mask() & (1 << cpu) != 0
}

fn counts_row(counts: &[u64; NR_CPUS]) {
    for (cpu, c) in counts.iter().enumerate() {
        if online(cpu) {
            cprint!("{:>10} ", c);
        }
    }
}

/// Prints /proc/interrupts, Linux's layout (arm64 with the bcm2836 controller): one row
/// per interrupt with its controller, hwirq, trigger and handler, then the IPIs by kind,
/// spurious entries per CPU and the count of interrupts nobody handled.
fn interrupts(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    cprint!("{:11}", "");
    for cpu in (0..NR_CPUS).filter(|&c| online(c)) {
        cprint!("CPU{:<8}", cpu);
    }
    cprintln!();
    crate::irq::for_each_irq(|r| {
        cprint!("{:>3}: ", r.irq);
        counts_row(&r.counts);
        cprintln!(" {:>8} {:>3} {:<8}  {}", r.chip, r.hwirq, r.trigger, r.name);
    });
    for (n, name) in IPI_NAMES.iter().enumerate().take(NR_IPI) {
        cprint!("IPI{}:", n);
        counts_row(&ipi::counts(n));
        cprintln!("      {}", name);
    }
    cprint!("SPU: ");
    counts_row(&crate::irq::spurious_counts());
    cprintln!("  Spurious interrupts");
    cprintln!("Err: {:>10}", crate::irq::error_count());
    Ok(())
}

/// `irqtest`
pub const IRQTEST: Command = Command {
    name: "irqtest",
    args: "[MS]",
    help:
        "every CPU allocates from timer interrupts (GFP_ATOMIC) while it allocates in the foreground (MS, default 200)",
    run: irqtest_cmd,
};

fn irqtest_cmd(args: &[&str]) -> Result<(), CommandError> {
    let ms = match args {
        [] => 200,
        [n] => match parse_u64(n) {
            Ok(n @ 1..=60_000) => n,
            _ => return Err(CommandError::bad(format_args!("MS must be 1..=60000, not '{n}'"))),
        },
        _ => return Err(CommandError::Usage),
    };
    crate::lab::irqtest::run(ms);
    Ok(())
}
