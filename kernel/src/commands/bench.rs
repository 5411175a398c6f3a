//! `bench [N]`: the kernel's allocators against linked_list_allocator.

use crate::console::args::parse_u64;
use crate::console::registry::{Command, CommandError};

/// `bench`
pub const BENCH: Command = Command {
    name: "bench",
    args: "[N]",
    help: "kmalloc and page workloads against a linked_list_allocator heap: time, cycles and instructions per op (N per workload, default 20000)",
    run: bench_cmd,
};

fn bench_cmd(args: &[&str]) -> Result<(), CommandError> {
    let n = match args {
        [] => 20_000,
        [n] => match parse_u64(n) {
            Ok(n @ 1000..=10_000_000) => n,
            _ => return Err(CommandError::bad(format_args!("N must be 1000..=10000000, not '{n}'"))),
        },
        _ => return Err(CommandError::Usage),
    };
    crate::lab::bench::run(n);
    Ok(())
}
