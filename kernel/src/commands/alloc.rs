//! `alloc`, `free`, `allocs`, `fail_page_alloc`: allocations the user holds by hand, to
//! fragment memory and watch the reports change.

use super::no_args;
use crate::console::args::{parse_size, parse_u64};
use crate::console::registry::{Command, CommandError};
use crate::cprintln;
use crate::mm::page_alloc::{self, PAGES};
use crate::mm::{slab, vmalloc};
use alloc::format;
use alloc::vec::Vec;
use mm::addr::VirtAddr;
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_alloc::MAX_PAGE_ORDER;

#[derive(Clone, Copy)]
enum Kind {
    Pages { order: u32 },
    Kmalloc { size: usize },
    Vmalloc { size: usize },
}

#[derive(Clone, Copy)]
struct Held {
    id: u32,
    kind: Kind,
    addr: VirtAddr,
    gfp: Gfp,
}

struct Table {
    next: u32,
    held: Vec<Held>,
}

static HELD: mm::sync::SpinLock<Table> = mm::sync::SpinLock::new(Table { next: 1, held: Vec::new() });

fn bad(msg: alloc::string::String) -> CommandError {
    CommandError::BadArgument(msg)
}

fn parse_gfp(arg: Option<&&str>) -> Result<Gfp, CommandError> {
    match arg {
        None => Ok(GFP_KERNEL),
        Some(s) => Gfp::parse(s)
            .ok_or_else(|| bad(format!("unknown GFP flags '{s}' (e.g. GFP_KERNEL, GFP_ATOMIC|__GFP_ZERO, 0xcc0)"))),
    }
}

fn human(bytes: u64) -> alloc::string::String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

fn describe(h: &Held) -> alloc::string::String {
    let what = match h.kind {
        Kind::Pages { order } => format!("pages order {order} ({})", human(4096 << order)),
        Kind::Kmalloc { size } => format!("kmalloc {} (ksize {})", human(size as u64), slab::ksize(h.addr.as_ptr())),
        Kind::Vmalloc { size } => format!("vmalloc {}", human(size as u64)),
    };
    let phys = match h.kind {
        Kind::Vmalloc { .. } => {
            vmalloc::vmalloc_to_page(h.addr).map_or("?".into(), |p| format!("first page {:#x}", p.as_u64()))
        }
        _ => format!("phys {:#x}", h.addr.as_u64().wrapping_sub(mm::pgtable::layout::PAGE_OFFSET)),
    };
    format!("#{}: {what} at {:#x}, {phys}, mode:{}", h.id, h.addr.as_u64(), h.gfp)
}

fn keep(kind: Kind, addr: VirtAddr, gfp: Gfp) {
    let mut t = HELD.lock();
    let h = Held { id: t.next, kind, addr, gfp };
    t.next += 1;
    t.held.push(h);
    drop(t);
    cprintln!("{}", describe(&h));
}

/// `alloc`
pub const ALLOC: Command = Command {
    name: "alloc",
    args: "pages ORDER [GFP] | kmalloc SIZE [GFP] | vmalloc SIZE",
    help: "allocate and keep (prints a handle for free)",
    run: alloc_cmd,
};

fn alloc_cmd(args: &[&str]) -> Result<(), CommandError> {
    match args {
        ["pages", order, rest @ ..] if rest.len() <= 1 => {
            let order = parse_u64(order).map_err(|e| bad(format!("ORDER: {e}")))?;
            if order > MAX_PAGE_ORDER as u64 {
                return Err(bad(format!("ORDER must be 0..={MAX_PAGE_ORDER}")));
            }
            let gfp = parse_gfp(rest.first())?;
            match page_alloc::__get_free_pages(gfp, order as u32) {
                Some(va) => keep(Kind::Pages { order: order as u32 }, va, gfp),
                None => cprintln!("alloc: __get_free_pages(order {order}) failed"),
            }
            Ok(())
        }
        ["kmalloc", size, rest @ ..] if rest.len() <= 1 => {
            let size = parse_size(size).map_err(|e| bad(format!("SIZE: {e}")))?;
            let gfp = parse_gfp(rest.first())?;
            match slab::kmalloc(size as usize, gfp) {
                Some(p) => keep(Kind::Kmalloc { size: size as usize }, VirtAddr::new(p.as_ptr() as u64), gfp),
                None => cprintln!("alloc: kmalloc({size}) failed"),
            }
            Ok(())
        }
        ["vmalloc", size] => {
            let size = parse_size(size).map_err(|e| bad(format!("SIZE: {e}")))?;
            if size == 0 {
                return Err(bad("SIZE must be at least 1 byte".into()));
            }
            match vmalloc::vmalloc(size as usize, "console_alloc") {
                Ok(va) => keep(Kind::Vmalloc { size: size as usize }, va, GFP_KERNEL),
                Err(_) => cprintln!("alloc: vmalloc({size}) failed"),
            }
            Ok(())
        }
        _ => Err(CommandError::Usage),
    }
}

fn release(h: &Held) {
    match h.kind {
        Kind::Pages { order } => {
            let _ = page_alloc::free_pages(h.addr, order);
        }
        // SAFETY: the pointer came from kmalloc and was removed from the table, so it is
        // freed once.
        Kind::Kmalloc { .. } => unsafe { slab::kfree(h.addr.as_mut_ptr()) },
        Kind::Vmalloc { .. } => {
            let _ = vmalloc::vfree(h.addr);
        }
    }
}

/// `free`
pub const FREE: Command =
    Command { name: "free", args: "HANDLE|all", help: "free an allocation made with alloc", run: free_cmd };

fn free_cmd(args: &[&str]) -> Result<(), CommandError> {
    let [which] = args else { return Err(CommandError::Usage) };
    let taken: Vec<Held> = {
        let mut t = HELD.lock();
        if *which == "all" {
            core::mem::take(&mut t.held)
        } else {
            let id = parse_u64(which.trim_start_matches('#')).map_err(|e| bad(format!("HANDLE: {e}")))?;
            match t.held.iter().position(|h| h.id as u64 == id) {
                Some(i) => alloc::vec![t.held.remove(i)],
                None => return Err(bad(format!("no allocation #{id} (allocs lists them)"))),
            }
        }
    };
    for h in &taken {
        release(h);
        cprintln!("freed #{}", h.id);
    }
    Ok(())
}

/// `allocs`
pub const ALLOCS: Command = Command { name: "allocs", args: "", help: "list allocations held by alloc", run: allocs };

fn allocs(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    let t = HELD.lock();
    if t.held.is_empty() {
        cprintln!("no allocations held");
    }
    for h in &t.held {
        cprintln!("{}", describe(h));
    }
    Ok(())
}

/// `fail_page_alloc`
pub const FAIL_PAGE_ALLOC: Command = Command {
    name: "fail_page_alloc",
    args: "[NTH|off]",
    help: "fault injection: fail the NTH page allocation from now (like Linux's fail_page_alloc)",
    run: fail_page_alloc,
};

fn fail_page_alloc(args: &[&str]) -> Result<(), CommandError> {
    match args {
        [] => {}
        ["off"] => {
            PAGES.fail.fail_nth(0);
            PAGES.fail.set_probability(0, 0, 0);
        }
        [n] => {
            let n = parse_u64(n).map_err(|e| bad(format!("NTH: {e}")))?;
            if n == 0 {
                return Err(bad("NTH counts from 1 (off disarms)".into()));
            }
            PAGES.fail.fail_nth(n);
        }
        _ => return Err(CommandError::Usage),
    }
    cprintln!("fail_page_alloc: attempts {} injected {}", PAGES.fail.attempts(), PAGES.fail.injected());
    Ok(())
}
