//! cmdline: the kernel command line as the kernel kept it, like Linux's /proc/cmdline.

use super::no_args;
use crate::console::registry::{Command, CommandError};
use crate::cprintln;

/// `cmdline`
pub const CMDLINE: Command =
    Command { name: "cmdline", args: "", help: "the kernel command line (like /proc/cmdline)", run: cmdline };

fn cmdline(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    cprintln!("{}", crate::platform::cmdline());
    Ok(())
}
