//! `alloc`, `release`, `allocs`, `fail_page_alloc`, `fail_slab`, `drop_caches`: allocations
//! the user holds by hand, to fragment memory and watch the reports change, and the
//! fault-injection knobs.
//!
//! Nothing here allocates for its own bookkeeping: the handle table is a fixed array
//! ([`HELD_MAX`] slots) and descriptions are formatted straight to the console. An
//! allocation that finds the table full is freed again, and the command says so.
//!
//! The table holds [`Allocation`] handles: taking one out and dropping it frees it.

use super::no_args;
use crate::console::args::{parse_size, parse_u64};
use crate::console::registry::{Command, CommandError};
use crate::cprintln;
use crate::mm::allocation::Allocation;
use crate::mm::page_alloc::PAGES;
use crate::mm::slab::{self, SLAB};
use crate::mm::vmalloc;
use core::fmt;
use mm::addr::{PhysAddr, VirtAddr};
use mm::fault_inject::FaultAttr;
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_alloc::MAX_PAGE_ORDER;
use mm::page_alloc::{BlockMove, MigrateError, MigrateMode, MovableOps, MovableOwner};
use mm::slab::ZERO_SIZE_PTR;

/// Allocations the console can hold at once.
pub const HELD_MAX: usize = 1024;

struct Held {
    id: u32,
    alloc: Allocation,
    gfp: Gfp,
}

struct Table {
    next: u32,
    held: [Option<Held>; HELD_MAX],
    len: usize,
}

static HELD: mm::sync::SpinLock<Table> =
    mm::sync::SpinLock::new(Table { next: 1, held: [const { None }; HELD_MAX], len: 0 });

impl Table {
    /// Records an allocation and returns its description; gives it back when the table
    /// is full.
    fn insert(&mut self, alloc: Allocation, gfp: Gfp) -> Result<Describe, Allocation> {
        let Some(slot) = self.held.iter().position(Option::is_none) else { return Err(alloc) };
        if let (Allocation::Pages { addr, .. }, true) = (&alloc, gfp.contains(Gfp::GFP_MOVABLE)) {
            // Compaction may move it: this slot is its only reference (see `move_held`).
            let owner = MovableOwner::new(crate::mm::migrate::CONSOLE_MOVABLE, slot as u64);
            crate::mm::migrate::set_movable_owner(crate::mm::virt_to_phys(*addr).pfn(), owner);
        }
        let h = Held { id: self.next, alloc, gfp };
        self.next += 1;
        let d = Describe::of(&h);
        self.held[slot] = Some(h);
        self.len += 1;
        Ok(d)
    }

    /// Takes the allocation with handle `id` out of the table.
    fn take(&mut self, id: u64) -> Option<Held> {
        let slot = self.held.iter().position(|h| h.as_ref().is_some_and(|h| h.id as u64 == id))?;
        self.len -= 1;
        self.held[slot].take()
    }

    /// Takes the allocation with the lowest handle out of the table.
    fn take_first(&mut self) -> Option<Held> {
        let slot = (0..HELD_MAX)
            .filter(|&i| self.held[i].is_some())
            .min_by_key(|&i| self.held[i].as_ref().map_or(0, |h| h.id))?;
        self.len -= 1;
        self.held[slot].take()
    }
}

/// The table's `GFP_HIGHUSER_MOVABLE` page blocks, as a movable kind
/// ([`CONSOLE_MOVABLE`](crate::mm::migrate::CONSOLE_MOVABLE), the owner's private part
/// the slot).
#[derive(Debug)]
struct HeldPages;

impl MovableOps for HeldPages {
    /// Copies and repoints the block held in the slot, under the table lock.
    fn migrate_page(&self, m: &BlockMove, mode: MigrateMode) -> Result<(), MigrateError> {
        let mut t = match mode {
            MigrateMode::Sync => HELD.lock(),
            MigrateMode::Async => HELD.try_lock().ok_or(MigrateError::Busy)?,
        };
        match t.held.get_mut(m.owner.private as usize) {
            Some(Some(h)) => h.alloc.migrate(m.old, m.new, m.order),
            _ => Err(MigrateError::Gone),
        }
    }
}

/// Lets compaction move the table's movable page blocks.
pub fn init() {
    crate::mm::migrate::register(crate::mm::migrate::CONSOLE_MOVABLE, &HeldPages);
}

fn parse_gfp(arg: Option<&&str>) -> Result<Gfp, CommandError> {
    match arg {
        None => Ok(GFP_KERNEL),
        Some(s) => Gfp::parse(s).ok_or_else(|| {
            CommandError::bad(format_args!("unknown GFP flags '{s}' (e.g. GFP_KERNEL, GFP_ATOMIC|__GFP_ZERO, 0xcc0)"))
        }),
    }
}

/// A byte count the way a person reads it: `2 MiB`, `3000 bytes`.
struct Human(u64);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b if b >= 1 << 30 && b % (1 << 30) == 0 => write!(f, "{} GiB", b >> 30),
            b if b >= 1 << 20 && b % (1 << 20) == 0 => write!(f, "{} MiB", b >> 20),
            b if b >= 1 << 10 && b % (1 << 10) == 0 => write!(f, "{} KiB", b >> 10),
            b => write!(f, "{b} bytes"),
        }
    }
}

/// What an allocation is, for one line of `allocs`.
#[derive(Clone, Copy)]
enum What {
    Pages { order: u32 },
    Kmalloc { size: usize, ksize: usize },
    Vmalloc { size: usize, first_page: Option<PhysAddr> },
    Cma { pages: usize },
}

/// One line of `allocs`: `#3: kmalloc 3000 bytes (ksize 4096) at 0x..., phys 0x..., mode:...`.
/// A copy of the entry taken under the table lock with what it needs from the allocators
/// (ksize, the first page of a vmalloc area), so printing takes no lock but the console's.
#[derive(Clone, Copy)]
struct Describe {
    id: u32,
    what: What,
    addr: VirtAddr,
    gfp: Gfp,
}

impl Describe {
    fn of(h: &Held) -> Describe {
        let addr = h.alloc.addr();
        let what = match h.alloc {
            Allocation::Pages { order, .. } => What::Pages { order },
            Allocation::Kmalloc { size, .. } => What::Kmalloc { size, ksize: slab::ksize(addr.as_ptr()) },
            Allocation::Vmalloc { size, .. } => What::Vmalloc { size, first_page: vmalloc::vmalloc_to_page(addr) },
            Allocation::Cma { pages, .. } => What::Cma { pages },
        };
        Describe { id: h.id, what, addr, gfp: h.gfp }
    }
}

impl fmt::Display for Describe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}: ", self.id)?;
        match self.what {
            What::Pages { order } => write!(f, "pages order {order} ({})", Human(4096 << order))?,
            What::Kmalloc { size, ksize } => write!(f, "kmalloc {} (ksize {})", Human(size as u64), ksize)?,
            What::Vmalloc { size, .. } => write!(f, "vmalloc {}", Human(size as u64))?,
            What::Cma { pages } => write!(f, "cma {}", Human(pages as u64 * 4096))?,
        }
        write!(f, " at {:#x}, ", self.addr.as_u64())?;
        match self.what {
            What::Vmalloc { first_page, .. } => match first_page {
                Some(p) => write!(f, "first page {:#x}", p.as_u64())?,
                None => f.write_str("first page ?")?,
            },
            // kmalloc(0) returns ZERO_SIZE_PTR, which is no memory at all.
            What::Kmalloc { .. } if self.addr.as_u64() <= ZERO_SIZE_PTR as u64 => {
                f.write_str("ZERO_SIZE_PTR (no memory)")?
            }
            // A kmalloc object is in the linear map, unless KFENCE sampled it: then it
            // sits in KFENCE's pool, a vmap area, and the page table knows its frame.
            _ => match self.addr.linear_pa().or_else(|| {
                vmalloc::vmalloc_to_page(self.addr).map(|p| PhysAddr::new(p.as_u64() + self.addr.page_offset()))
            }) {
                Some(pa) => write!(f, "phys {:#x}", pa.as_u64())?,
                None => f.write_str("phys ?")?,
            },
        }
        write!(f, ", mode:{}", self.gfp)
    }
}

/// Records an allocation and prints its handle; if the table is full, frees it again.
fn keep(alloc: Allocation, gfp: Gfp) {
    let r = HELD.lock().insert(alloc, gfp);
    match r {
        Ok(d) => cprintln!("{}", d),
        Err(alloc) => {
            drop(alloc);
            cprintln!("alloc: the handle table is full ({} held): freed the allocation again", HELD_MAX);
        }
    }
}

/// `alloc`
pub const ALLOC: Command = Command {
    name: "alloc",
    args: "pages ORDER [GFP] | kmalloc SIZE [GFP] | vmalloc SIZE [GFP] | cma SIZE",
    help: "allocate and keep (prints a handle for release)",
    run: alloc_cmd,
};

fn alloc_cmd(args: &[&str]) -> Result<(), CommandError> {
    match args {
        ["pages", order, rest @ ..] if rest.len() <= 1 => {
            let order = parse_u64(order).map_err(|e| CommandError::bad(format_args!("ORDER: {e}")))?;
            if order > MAX_PAGE_ORDER as u64 {
                return Err(CommandError::bad(format_args!("ORDER must be 0..={MAX_PAGE_ORDER}")));
            }
            let gfp = parse_gfp(rest.first())?;
            match Allocation::pages(gfp, order as u32) {
                Some(a) => keep(a, gfp),
                None => cprintln!("alloc: __get_free_pages(order {order}) failed"),
            }
            Ok(())
        }
        ["kmalloc", size, rest @ ..] if rest.len() <= 1 => {
            let size = parse_size(size).map_err(|e| CommandError::bad(format_args!("SIZE: {e}")))?;
            let gfp = parse_gfp(rest.first())?;
            match Allocation::kmalloc(size as usize, gfp) {
                Some(a) => keep(a, gfp),
                None => cprintln!("alloc: kmalloc({size}) failed"),
            }
            Ok(())
        }
        ["vmalloc", size, rest @ ..] if rest.len() <= 1 => {
            let size = parse_size(size).map_err(|e| CommandError::bad(format_args!("SIZE: {e}")))?;
            if size == 0 {
                return Err(CommandError::bad(format_args!("SIZE must be at least 1 byte")));
            }
            let gfp = parse_gfp(rest.first())?;
            match Allocation::vmalloc(size as usize, gfp, "console_alloc") {
                Ok(a) => keep(a, gfp),
                Err(_) => cprintln!("alloc: vmalloc({size}) failed"),
            }
            Ok(())
        }
        ["cma", size] => {
            let size = parse_size(size).map_err(|e| CommandError::bad(format_args!("SIZE: {e}")))?;
            if size == 0 {
                return Err(CommandError::bad(format_args!("SIZE must be at least 1 byte")));
            }
            let pages = size.div_ceil(4096);
            // Linux's dma_alloc_from_contiguous: aligned to the size's order, at most
            // CONFIG_CMA_ALIGNMENT (8: 1 MiB).
            let align = (64 - (pages - 1).leading_zeros()).min(8);
            let t0 = board::timer::ticks();
            match Allocation::cma(pages as usize, align) {
                Ok((a, st)) => {
                    let us = board::timer::ticks_to_ns(board::timer::ticks() - t0) / 1000;
                    cprintln!(
                        "cma_alloc: {} pages, {} borrowed blocks migrated out ({} ranges tried, {}.{:03} ms)",
                        pages,
                        st.migrated,
                        st.ranges_tried,
                        us / 1000,
                        us % 1000
                    );
                    keep(a, mm::gfp::GFP_KERNEL)
                }
                Err(e) => cprintln!("alloc: cma_alloc({pages} pages) failed: {e}"),
            }
            Ok(())
        }
        _ => Err(CommandError::Usage),
    }
}

/// `release` (not `free`, which is procps' free as in Linux)
pub const RELEASE: Command =
    Command { name: "release", args: "HANDLE|all", help: "free an allocation made with alloc", run: release };

/// `all`, for Tab.
pub fn complete_release(before: &[&str], each: &mut dyn FnMut(&'static str)) {
    if before.is_empty() {
        each("all");
    }
}

/// GFP names where `alloc` takes them (after `pages ORDER`, `kmalloc SIZE`, `vmalloc
/// SIZE`), and the kinds for the first word.
pub fn complete_alloc(before: &[&str], each: &mut dyn FnMut(&'static str)) {
    match before {
        [] => ["pages", "kmalloc", "vmalloc", "cma"].into_iter().for_each(each),
        ["pages" | "kmalloc" | "vmalloc", _] => Gfp::names().for_each(each),
        _ => {}
    }
}

fn release(args: &[&str]) -> Result<(), CommandError> {
    let [which] = args else { return Err(CommandError::Usage) };
    if *which == "all" {
        // One at a time: the table lock is not held while freeing or printing.
        loop {
            let h = HELD.lock().take_first();
            let Some(h) = h else { break };
            let id = h.id;
            drop(h);
            cprintln!("freed #{id}");
        }
        return Ok(());
    }
    let id = parse_u64(which.trim_start_matches('#')).map_err(|e| CommandError::bad(format_args!("HANDLE: {e}")))?;
    let h = HELD.lock().take(id);
    match h {
        Some(h) => {
            let id = h.id;
            drop(h);
            cprintln!("freed #{id}");
            Ok(())
        }
        None => Err(CommandError::bad(format_args!("no allocation #{id} (allocs lists them)"))),
    }
}

/// `allocs`
pub const ALLOCS: Command = Command { name: "allocs", args: "", help: "list allocations held by alloc", run: allocs };

fn allocs(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    // Copy the entries out one at a time, then describe them without the table lock.
    let mut shown = 0;
    let mut last = 0u32;
    loop {
        let next = {
            let t = HELD.lock();
            t.held.iter().flatten().filter(|h| h.id > last).min_by_key(|h| h.id).map(Describe::of)
        };
        let Some(d) = next else { break };
        last = d.id;
        shown += 1;
        cprintln!("{}", d);
    }
    if shown == 0 {
        cprintln!("no allocations held");
    }
    Ok(())
}

/// Applies `NTH`, `off` or `knob=value` words to a fault attribute; `extra` handles the
/// injection point's own knobs (returns false for an unknown one).
fn set_knobs(attr: &FaultAttr, args: &[&str], extra: &mut dyn FnMut(&str, u64) -> bool) -> Result<(), CommandError> {
    match args {
        [] => Ok(()),
        ["off"] => {
            attr.disarm();
            extra("off", 0);
            Ok(())
        }
        [n] if !n.contains('=') => {
            let n = parse_u64(n).map_err(|e| CommandError::bad(format_args!("NTH: {e}")))?;
            if n == 0 {
                return Err(CommandError::bad(format_args!("NTH counts from 1 (off disarms)")));
            }
            attr.fail_nth(n);
            Ok(())
        }
        words => {
            for w in words {
                let Some((key, value)) = w.split_once('=') else { return Err(CommandError::Usage) };
                let v = match value {
                    "-1" if key == "times" => u64::MAX,
                    "Y" | "y" => 1,
                    "N" | "n" => 0,
                    v => parse_u64(v).map_err(|e| CommandError::bad(format_args!("{key}: {e}")))?,
                };
                match key {
                    "probability" if v <= 100 => {
                        let k = attr.knobs();
                        attr.set_probability(v as u32, k.times, board::timer::ticks());
                    }
                    "probability" => {
                        return Err(CommandError::bad(format_args!("probability is a percentage, 0..=100")))
                    }
                    "interval" => attr.set_interval(v),
                    "times" => attr.set_times(if v == u64::MAX { -1 } else { v.min(i64::MAX as u64) as i64 }),
                    k if extra(k, v) => {}
                    k => return Err(CommandError::bad(format_args!("unknown knob '{k}'"))),
                }
            }
            Ok(())
        }
    }
}

fn print_knobs(name: &str, attr: &FaultAttr, extra: fmt::Arguments<'_>) {
    let k = attr.knobs();
    cprintln!("{}: attempts {} injected {}", name, k.attempts, k.injected);
    cprintln!(
        "{}: nth {} probability {} interval {} times {}{}",
        name,
        k.nth,
        k.probability,
        k.interval,
        k.times,
        extra
    );
}

/// `fail_page_alloc`
pub const FAIL_PAGE_ALLOC: Command = Command {
    name: "fail_page_alloc",
    args: "[NTH | off | probability=P interval=I times=T min_order=O ignore_gfp_wait=Y|N]",
    help: "fault injection: fail the NTH page allocation from now, or by probability (Linux's fail_page_alloc)",
    run: fail_page_alloc,
};

fn fail_page_alloc(args: &[&str]) -> Result<(), CommandError> {
    let f = &PAGES.fail;
    set_knobs(&f.attr, args, &mut |k, v| match k {
        "off" => {
            f.set_min_order(0);
            f.set_ignore_gfp_reclaim(false);
            true
        }
        "min_order" => {
            f.set_min_order(v.min(u32::MAX as u64) as u32);
            true
        }
        "ignore_gfp_wait" => {
            f.set_ignore_gfp_reclaim(v != 0);
            true
        }
        _ => false,
    })?;
    let yn = if f.ignore_gfp_reclaim() { "Y" } else { "N" };
    print_knobs("fail_page_alloc", &f.attr, format_args!(" min_order {} ignore_gfp_wait {}", f.min_order(), yn));
    Ok(())
}

/// `fail_slab`
pub const FAIL_SLAB: Command = Command {
    name: "fail_slab",
    args: "[NTH | off | probability=P interval=I times=T ignore_gfp_wait=Y|N]",
    help: "fault injection: fail the NTH slab allocation from now, or by probability (Linux's failslab)",
    run: fail_slab,
};

fn fail_slab(args: &[&str]) -> Result<(), CommandError> {
    let f = &SLAB.fail;
    set_knobs(&f.attr, args, &mut |k, v| match k {
        "off" => {
            f.set_ignore_gfp_reclaim(false);
            true
        }
        "ignore_gfp_wait" => {
            f.set_ignore_gfp_reclaim(v != 0);
            true
        }
        _ => false,
    })?;
    let yn = if f.ignore_gfp_reclaim() { "Y" } else { "N" };
    print_knobs("fail_slab", &f.attr, format_args!(" ignore_gfp_wait {}", yn));
    Ok(())
}

/// `drop_caches`
pub const DROP_CACHES: Command = Command {
    name: "drop_caches",
    args: "",
    help: "give back cached pages (per-CPU lists, spare vmap nodes, empty slabs) and print the free page count",
    run: drop_caches,
};

fn drop_caches(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    cprintln!("drop_caches: {} pages free", crate::mm::settled_free_pages());
    Ok(())
}
