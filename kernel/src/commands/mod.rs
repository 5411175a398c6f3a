//! Console commands, one module per subject, all listed in [`COMMANDS`], the single
//! registry that `help` and dispatch use.

mod crash;
mod system;

use crate::console::registry::Command;

/// Every console command.
pub static COMMANDS: &[Command] = &[
    system::HELP,
    system::UPTIME,
    crash::CRASH,
    system::REBOOT,
    system::POWEROFF,
];
