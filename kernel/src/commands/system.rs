//! help, uptime, reboot, poweroff.

use super::{no_args, COMMANDS};
use crate::console::registry::{write_help, Command, CommandError};
use crate::cprintln;

/// `help`
pub const HELP: Command = Command { name: "help", args: "", help: "list the commands", run: help };

fn help(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    cprintln!("commands:");
    super::mem::print(|w| write_help(w, COMMANDS));
    Ok(())
}

/// `uptime`
pub const UPTIME: Command = Command { name: "uptime", args: "", help: "time since power-on", run: uptime };

fn uptime(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    let ns = board::timer::uptime_ns();
    let s = ns / 1_000_000_000;
    cprintln!(
        "up {}.{:06} s ({}:{:02}:{:02}), counter {} Hz",
        s,
        (ns / 1000) % 1_000_000,
        s / 3600,
        (s / 60) % 60,
        s % 60,
        board::timer::frequency()
    );
    Ok(())
}

/// `reboot`
pub const REBOOT: Command = Command { name: "reboot", args: "", help: "reset the board (PM watchdog)", run: reboot };

fn reboot(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    crate::pr_notice!("reboot: Restarting system");
    board::uart::flush();
    board::power::reboot()
}

/// `poweroff`
pub const POWEROFF: Command =
    Command { name: "poweroff", args: "", help: "halt the board (QEMU exits with status 0)", run: poweroff };

fn poweroff(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    crate::pr_notice!("reboot: Power down");
    board::uart::flush();
    board::power::poweroff()
}
