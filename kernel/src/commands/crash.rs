//! `crash TYPE`: deliberate faults, like Linux's LKDTM, to show the kernel's reports.

use crate::console::registry::{Command, CommandError};
use crate::cprintln;

/// `crash`
pub const CRASH: Command = Command {
    name: "crash",
    args: "TYPE",
    help: "provoke a fault to see its report (crash alone lists the types)",
    run: crash,
};

struct CrashType {
    name: &'static str,
    what: &'static str,
    run: fn(),
}

static TYPES: &[CrashType] = &[
    CrashType {
        name: "null",
        what: "read through a NULL pointer",
        run: crash_null,
    },
    CrashType {
        name: "panic",
        what: "call panic!()",
        run: crash_panic,
    },
    CrashType {
        name: "brk",
        what: "execute a BRK instruction (BUG())",
        run: crash_brk,
    },
];

fn crash(args: &[&str]) -> Result<(), CommandError> {
    match args {
        [] => {
            cprintln!("crash types:");
            for t in TYPES {
                cprintln!("  {:<20} {}", t.name, t.what);
            }
            Ok(())
        }
        [name] => match TYPES.iter().find(|t| t.name == *name) {
            Some(t) => {
                crate::pr_emerg!(
                    "lkdtm: Performing direct entry {}",
                    t.name.to_ascii_uppercase()
                );
                (t.run)();
                Ok(())
            }
            None => Err(CommandError::BadArgument(alloc::format!(
                "unknown crash type '{name}' (crash lists them)"
            ))),
        },
        _ => Err(CommandError::Usage),
    }
}

#[inline(never)]
fn crash_null() {
    let p = core::hint::black_box(core::ptr::null::<u64>());
    // SAFETY: deliberately unsound: the point is the fault report.
    let v = unsafe { core::ptr::read_volatile(p) };
    core::hint::black_box(v);
}

#[inline(never)]
fn crash_panic() {
    panic!("crash: deliberate panic");
}

#[inline(never)]
fn crash_brk() {
    // SAFETY: BRK raises a synchronous exception, which the kernel reports as BUG.
    unsafe { core::arch::asm!("brk #0x800") };
}
