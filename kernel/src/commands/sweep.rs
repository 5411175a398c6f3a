//! `sweep`: run the allocation sweep again (or one phase of it).

use crate::console::registry::{Command, CommandError};
use crate::lab::sweep::{self, Phases};

/// `sweep`
pub const SWEEP: Command = Command {
    name: "sweep",
    args: "[all|pages|kmalloc|vmalloc|fragment]",
    help: "run the allocation sweep (the lab) again",
    run: sweep_cmd,
};

fn sweep_cmd(args: &[&str]) -> Result<(), CommandError> {
    let phases = match args {
        [] => Phases::All,
        [p] => Phases::parse(p).ok_or_else(|| CommandError::bad(format_args!("unknown phase '{p}'")))?,
        _ => return Err(CommandError::Usage),
    };
    sweep::run(phases);
    Ok(())
}
