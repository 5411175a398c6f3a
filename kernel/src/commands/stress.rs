//! `stress [OPS]`: the multi-CPU allocator stress test.

use crate::console::args::parse_u64;
use crate::console::registry::{Command, CommandError};

/// `stress`
pub const STRESS: Command = Command {
    name: "stress",
    args: "[OPS]",
    help: "all CPUs allocate and free at once (OPS per CPU, default 2000), then check",
    run: stress_cmd,
};

fn stress_cmd(args: &[&str]) -> Result<(), CommandError> {
    let ops = match args {
        [] => 2000,
        [n] => match parse_u64(n) {
            Ok(n @ 1..=1_000_000) => n as usize,
            _ => return Err(CommandError::bad(format_args!("OPS must be 1..=1000000, not '{n}'"))),
        },
        _ => return Err(CommandError::Usage),
    };
    crate::stress::run(ops);
    Ok(())
}
