//! Console commands, one module per subject, all listed in [`COMMANDS`], the single
//! registry that `help` and dispatch use.
//!
//! No command needs `unsafe`: allocations are held as owning
//! [`Allocation`](crate::mm::allocation::Allocation) handles. The one exception is
//! `crash`, whose whole job is to fault on purpose.
#![deny(unsafe_code)]

mod alloc;
mod bench;
mod cmdline;
mod compact;
mod crash;
mod irq;
mod log;
pub(crate) mod mem;
mod memdebug;
mod stress;
mod sweep;
mod system;

use crate::console::registry::{Command, CommandError};

/// Every console command, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    system::HELP,
    sweep::SWEEP,
    mem::MEMINFO,
    mem::ZONEINFO,
    mem::VMSTAT,
    mem::BUDDYINFO,
    mem::PAGETYPEINFO,
    mem::SLABINFO,
    mem::VMALLOCINFO,
    compact::COMPACT,
    compact::EXTFRAG,
    irq::INTERRUPTS,
    alloc::ALLOC,
    alloc::FREE,
    alloc::ALLOCS,
    alloc::FAIL_PAGE_ALLOC,
    alloc::FAIL_SLAB,
    alloc::DROP_CACHES,
    memdebug::PAGE_OWNER,
    memdebug::KMEMLEAK,
    stress::STRESS,
    bench::BENCH,
    irq::IRQTEST,
    crash::CRASH,
    log::DMESG,
    cmdline::CMDLINE,
    system::VERSION,
    system::UPTIME,
    system::REBOOT,
    system::POWEROFF,
];

/// Binds the commands' state to the layers below (once, before the first prompt):
/// compaction may move the console's movable page blocks.
pub fn init() {
    alloc::init();
}

/// For commands without arguments: anything extra is a usage error.
fn no_args(args: &[&str]) -> Result<(), CommandError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Usage)
    }
}
