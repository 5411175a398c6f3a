//! `stress [OPS [SEED]] [compact]`: the multi-CPU allocator stress test.

use crate::console::args::parse_u64;
use crate::console::registry::{Command, CommandError};

/// `stress`
pub const STRESS: Command = Command {
    name: "stress",
    args: "[OPS [SEED]] [compact]",
    help: "all CPUs allocate and free at once (OPS per CPU, default 2000; SEED repeats a run; compact: one CPU migrates their pages meanwhile), then check",
    run: stress_cmd,
};

fn stress_cmd(args: &[&str]) -> Result<(), CommandError> {
    let ops = |n: &str| match parse_u64(n) {
        Ok(n @ 1..=1_000_000) => Ok(n as usize),
        _ => Err(CommandError::bad(format_args!("OPS must be 1..=1000000, not '{n}'"))),
    };
    // A trailing `compact`: one CPU compacts memory under the others.
    let (args, compact) = match args {
        [rest @ .., "compact"] => (rest, true),
        _ => (args, false),
    };
    let (ops, seed) = match args {
        [] => (2000, 0),
        [n] => (ops(n)?, 0),
        [n, seed] => match parse_u64(seed) {
            Ok(s @ 1..) => (ops(n)?, s),
            _ => return Err(CommandError::bad(format_args!("SEED must be a number above 0, not '{seed}'"))),
        },
        _ => return Err(CommandError::Usage),
    };
    crate::lab::stress::set_seed(seed);
    crate::lab::stress::run(ops, compact);
    crate::lab::stress::set_seed(0);
    Ok(())
}
