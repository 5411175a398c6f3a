//! help, version, uptime, reboot, poweroff.

use super::{no_args, COMMANDS};
use crate::console::registry::{write_help, Command, CommandError, Usage};
use crate::cprintln;

/// `help`
pub const HELP: Command =
    Command { name: "help", args: "[CMD]", help: "list the commands, or describe one", run: help };

fn help(args: &[&str]) -> Result<(), CommandError> {
    match args {
        [] => {
            cprintln!("commands:");
            super::mem::print(|w| write_help(w, COMMANDS));
            cprintln!("help CMD describes one; Tab completes, up/down recall earlier lines");
            Ok(())
        }
        [name] => {
            let Some(cmd) = COMMANDS.iter().find(|c| c.name == *name) else {
                return Err(CommandError::bad(format_args!("no command '{}'", name)));
            };
            cprintln!("{}", Usage(cmd));
            cprintln!("  {}", cmd.help);
            if let Some(more) = details(cmd.name) {
                for line in more.lines() {
                    cprintln!("  {}", line);
                }
            }
            Ok(())
        }
        _ => Err(CommandError::Usage),
    }
}

/// `help CMD`'s longer descriptions.
fn details(name: &str) -> Option<&'static str> {
    Some(match name {
        "sweep" => {
            "Runs the lab's allocation sweep: __get_free_pages by order up to failure, kmalloc by\n\
                    size, vmalloc in 4 MB steps then bisection, then the fragmentation lab (the\n\
                    largest order before and after compaction, movable then vmalloc pages as the\n\
                    filler; cma_alloc of the whole CMA area with cma=); a leak check ends it. The\n\
                    boot runs what sweep= on the command line says (default all)."
        }
        "meminfo" => "Fields have Linux's /proc/meminfo meanings (kB).",
        "alloc" => {
            "Allocates and keeps the memory under a handle (#N) until 'free N' or 'free all'.\n\
                    GFP flags as in Linux: GFP_KERNEL (default), GFP_ATOMIC, __GFP_ZERO|..., or hex.\n\
                    Sizes take K/M/G suffixes or 0x hex."
        }
        "free" => "Frees a handle from 'alloc' (see 'allocs'), or every one with 'free all'.",
        "fail_page_alloc" => {
            "Linux's fault injection for the page allocator: NTH fails the Nth allocation from\n\
                              now; the knobs set a random failure rate; alone it shows the counters."
        }
        "fail_slab" => "Linux's failslab: the same knobs for allocations from slab caches.",
        "stress" => {
            "All four CPUs allocate and free at once (with frees on other CPUs), then the\n\
                     allocators are checked and every page must come back. A SEED repeats a run."
        }
        "crash" => {
            "Provokes a fault or a misuse; 'crash' alone lists the types. Fatal ones end in an\n\
                    oops and a panic: panic=N on the command line reboots N seconds later."
        }
        "dmesg" => {
            "Prints the kernel log buffer (128 KiB; when full the oldest lines are dropped,\n\
                    and dmesg says how many). -c clears it after printing, -C only clears it;\n\
                    -l err,warn shows only those levels (emerg alert crit err warn notice info\n\
                    debug, or 0-7)."
        }
        "bench" => {
            "Times N allocations (default 10000) of the kernel's allocators and of a\n\
                    linked_list_allocator heap on the same memory."
        }
        "help" => {
            "Line editing: Left/Right, Home/End (Ctrl-A/E), Backspace, Delete (Ctrl-D),\n\
                   Ctrl-U/K/W cut before the cursor/after it/the word before it, Ctrl-L redraws,\n\
                   Up/Down (Ctrl-P/N) recall the last 32 lines, Tab completes, Ctrl-C drops the line."
        }
        _ => return None,
    })
}

/// `version`
pub const VERSION: Command =
    Command { name: "version", args: "", help: "the kernel's version and build (like /proc/version)", run: version };

fn version(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    cprintln!("{}", crate::version::Banner);
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
