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
mod fb;
mod fields;
mod irq;
mod log;
pub(crate) mod mem;
mod memdebug;
mod memmap;
mod proc;
mod procps;
mod stress;
mod sweep;
mod system;

use crate::console::registry::{ArgCompletion, Command, CommandError};

/// Every console command, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    system::HELP,
    sweep::SWEEP,
    procps::FREE,
    proc::CAT,
    procps::VMSTAT,
    procps::SLABTOP,
    mem::SHOW_MEM,
    mem::MEMINFO,
    mem::ZONEINFO,
    mem::BUDDYINFO,
    mem::PAGETYPEINFO,
    memmap::MEMMAP,
    mem::SLABINFO,
    mem::VMALLOCINFO,
    compact::COMPACT,
    compact::EXTFRAG,
    irq::INTERRUPTS,
    alloc::ALLOC,
    alloc::RELEASE,
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
    fb::FB,
    system::VERSION,
    system::UPTIME,
    system::REBOOT,
    system::POWEROFF,
];

/// Tab completion of arguments beyond the synopsis' words: the crash types, GFP names,
/// sweep phases, /proc files, options.
pub static COMPLETIONS: &[(&str, ArgCompletion)] = &[
    ("help", system::complete_topics),
    ("crash", crash::complete_types),
    ("alloc", alloc::complete_alloc),
    ("release", alloc::complete_release),
    ("cat", proc::complete_files),
    ("free", procps::free_options),
    ("sweep", complete_phases),
];

fn complete_phases(before: &[&str], each: &mut dyn FnMut(&'static str)) {
    if before.is_empty() {
        crate::lab::sweep::PHASES.into_iter().for_each(each);
    }
}

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
