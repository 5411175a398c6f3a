//! `cat /proc/NAME`: the /proc files this kernel has, printed as Linux prints them (the
//! same writers as the `meminfo`, `buddyinfo`... commands).

use super::mem::{self, print};
use crate::console::registry::{Command, CommandError};
use crate::cprintln;
use crate::mm::page_alloc::PAGES;
use crate::mm::slab::SLAB;
use crate::mm::vmalloc::VMALLOC;

/// `cat`
pub const CAT: Command = Command {
    name: "cat",
    args: "/proc/FILE...",
    help: "print /proc files: meminfo buddyinfo pagetypeinfo zoneinfo vmstat slabinfo vmallocinfo interrupts cmdline version",
    run: cat,
};

/// The files, as `cat` finds them and Tab completes them.
pub const FILES: [&str; 10] = [
    "/proc/meminfo",
    "/proc/buddyinfo",
    "/proc/pagetypeinfo",
    "/proc/zoneinfo",
    "/proc/vmstat",
    "/proc/slabinfo",
    "/proc/vmallocinfo",
    "/proc/interrupts",
    "/proc/cmdline",
    "/proc/version",
];

/// The /proc files, for Tab (any argument: cat takes several).
pub fn complete_files(_before: &[&str], each: &mut dyn FnMut(&'static str)) {
    FILES.into_iter().for_each(each);
}

fn cat_one(path: &str) -> bool {
    match path {
        "/proc/meminfo" => print(|w| mem::write_meminfo(w)),
        "/proc/buddyinfo" => print(|w| mm::page_alloc::report::buddyinfo(&PAGES, w)),
        "/proc/pagetypeinfo" => print(|w| mm::page_alloc::report::pagetypeinfo(&PAGES, w)),
        "/proc/zoneinfo" => print(|w| mem::write_zoneinfo(w)),
        "/proc/vmstat" => print(|w| mem::write_vmstat(w)),
        "/proc/slabinfo" => print(|w| mm::slab::slabinfo::slabinfo(&SLAB, w)),
        "/proc/vmallocinfo" => print(|w| VMALLOC.lock().vmallocinfo(w)),
        "/proc/interrupts" => {
            let _ = (super::irq::INTERRUPTS.run)(&[]);
        }
        "/proc/cmdline" => cprintln!("{}", crate::platform::cmdline()),
        "/proc/version" => cprintln!("{}", crate::version::Banner),
        _ => return false,
    }
    true
}

fn cat(args: &[&str]) -> Result<(), CommandError> {
    if args.is_empty() {
        return Err(CommandError::Usage);
    }
    for path in args {
        if !cat_one(path) {
            // As coreutils' cat says it, and it goes on with the next file.
            cprintln!("cat: {}: No such file or directory", path);
        }
    }
    Ok(())
}
