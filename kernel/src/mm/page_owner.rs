//! page_owner in the running kernel (`page_owner=on`; off by default, as in Linux):
//! the record table and stack depot reserved from memblock before the buddy allocator
//! takes the memory, the hooks the page source calls on every block given out and
//! freed, the call traces from the frame-pointer unwinder the oops reports use, and the
//! reports: `page_owner` (grouped like `page_owner_sort`) and one page's record.

use crate::arch::aarch64::backtrace;
use crate::ksyms::{SymbolTable, SymbolizedAddr};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use mm::addr::Pfn;
use mm::debug::page_owner::{OwnerInfo, OwnerRecord, PageOwner};
use mm::debug::stack_depot::{DepotSlot, StackDepot, Trace, DEPOT_DEPTH, NO_HANDLE};
use mm::gfp::Gfp;
use mm::memblock::Memblock;
use mm::pgtable::layout::PAGE_OFFSET;

/// Distinct traces the depot keeps (shared by page_owner only; about 400 KiB).
const DEPOT_SLOTS: usize = 4096;

static PAGE_OWNER: spin::Once<PageOwner<'static>> = spin::Once::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether page_owner records (reserved at boot and not switched off).
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// The table, once reserved.
pub fn table() -> Option<&'static PageOwner<'static>> {
    PAGE_OWNER.get()
}

/// Reserves the records for `nr_pages` frames from `base_pfn` and the depot from
/// memblock, if `on` (not `page_owner=off`). Called before the buddy allocator takes
/// the free memory.
pub fn init(mb: &mut Memblock, base_pfn: u64, nr_pages: usize, on: bool) {
    if !on {
        crate::pr_info!("page_owner is disabled (page_owner=off)");
        return;
    }
    let rec_bytes = (nr_pages * core::mem::size_of::<OwnerRecord>()) as u64;
    let depot_bytes = (DEPOT_SLOTS * core::mem::size_of::<DepotSlot>()) as u64;
    let (Ok(Some(rpa)), Ok(Some(dpa))) =
        (mb.alloc_named(rec_bytes, 4096, "page_owner"), mb.alloc_named(depot_bytes, 4096, "stack_depot"))
    else {
        crate::pr_warn!("page_owner: no memory for {} records: disabled", nr_pages);
        return;
    };
    let linear = |pa: mm::addr::PhysAddr| (PAGE_OFFSET + pa.as_u64()) as usize;
    let rva = linear(rpa) as *mut OwnerRecord;
    let dva = linear(dpa) as *mut DepotSlot;
    // SAFETY: both ranges were just reserved in memblock for ever and are mapped
    // read/write by the linear map; all-zero bytes are the empty record and slot (plain
    // atomics); nothing else refers to them.
    let (records, slots) = unsafe {
        core::ptr::write_bytes(rva as *mut u8, 0, rec_bytes as usize);
        core::ptr::write_bytes(dva as *mut u8, 0, depot_bytes as usize);
        (core::slice::from_raw_parts(rva, nr_pages), core::slice::from_raw_parts(dva, DEPOT_SLOTS))
    };
    PAGE_OWNER.call_once(|| PageOwner::new(base_pfn, records, StackDepot::new(slots)));
    ENABLED.store(true, Relaxed);
    crate::pr_info!(
        "page_owner: on, {} KiB of records for {} pages, stack depot of {} traces ({} KiB)",
        rec_bytes >> 10,
        nr_pages,
        DEPOT_SLOTS,
        depot_bytes >> 10
    );
}

/// The call trace of the caller of the function that calls this (the return addresses
/// of the frame chain from `fp`). The chain is read only inside the running stack's
/// slot, found once from the stack pointer (cheaper than checking every word against
/// every stack, as the oops unwinder must).
#[inline(always)]
pub fn capture(fp: u64) -> Trace {
    let (lo, hi) = crate::stacks::slot_of(boot::cpu::sp());
    let (lo, hi) = (lo as u64, hi as u64);
    let read = |a: u64| {
        if a >= lo && a < hi - 8 && a.is_multiple_of(8) {
            // SAFETY: 8-byte aligned and inside the running stack's mapped slot (guard
            // page excluded).
            Some(unsafe { core::ptr::read_volatile(a as *const u64) })
        } else {
            None
        }
    };
    let mut t = [0u64; DEPOT_DEPTH];
    let mut n = 0;
    backtrace::walk(fp, read, |ret| {
        if n < DEPOT_DEPTH {
            t[n] = ret;
            n += 1;
        }
    });
    t
}

/// The counter in units of 2^16 ticks (about 1 ms at 62.5 MHz): one register read and
/// a shift on the allocation path; converted to time only when printed.
pub fn now_units() -> u32 {
    use aarch64_cpu::registers::{Readable, CNTPCT_EL0};
    (CNTPCT_EL0.get() >> UNIT_SHIFT) as u32
}

const UNIT_SHIFT: u32 = 16;

/// Nanoseconds since boot of a recorded time.
pub fn units_to_ns(u: u32) -> u64 {
    board::timer::ticks_to_ns((u as u64) << UNIT_SHIFT)
}

/// The page source's allocation hook (Linux's `set_page_owner`) for direct calls: the
/// `enabled` test inline in the allocation path, the record out of line.
#[inline(always)]
pub fn on_alloc(pfn: Pfn, order: u32, gfp: Gfp) {
    if enabled() {
        record_alloc(pfn, order, gfp);
    }
}

/// [`on_alloc`] as a function pointer's target (the page source the slab and vmalloc
/// layers call through): the record in line, so that with page_owner off the call is a
/// leaf, three instructions and no frame. (A test that tail-calls the record out of line
/// sets up a frame on both paths: three instructions more for every block vmalloc maps.)
#[inline(never)]
pub fn on_alloc_hook(pfn: Pfn, order: u32, gfp: Gfp) {
    if enabled() {
        set_alloc_record(pfn, order, gfp);
    }
}

/// [`on_alloc`]'s record. Never inlined: the call trace starts from its caller.
#[cold]
#[inline(never)]
fn record_alloc(pfn: Pfn, order: u32, gfp: Gfp) {
    set_alloc_record(pfn, order, gfp);
}

/// The record, its call trace taken from the frame of the function it is inlined in.
#[inline(always)]
fn set_alloc_record(pfn: Pfn, order: u32, gfp: Gfp) {
    if let Some(po) = PAGE_OWNER.get() {
        let t = capture(boot::cpu::fp() as u64);
        po.set_alloc(pfn.0, order, gfp, boot::cpu::cpu_id() as u32, now_units(), &t);
    }
}

/// The page source's free hook (Linux's `reset_page_owner`) for direct calls: the
/// `enabled` test inline in the free path, the record out of line.
#[inline(always)]
pub fn on_free(pfn: Pfn, _order: u32) {
    if enabled() {
        record_free(pfn);
    }
}

/// [`on_free`] as a function pointer's target: with page_owner off, a leaf (see
/// [`on_alloc_hook`]).
#[inline(never)]
pub fn on_free_hook(pfn: Pfn, _order: u32) {
    if enabled() {
        set_free_record(pfn);
    }
}

/// [`on_free`]'s record. Never inlined: the call trace starts from its caller.
#[cold]
#[inline(never)]
fn record_free(pfn: Pfn) {
    set_free_record(pfn);
}

/// The record, its call trace taken from the frame of the function it is inlined in.
#[inline(always)]
fn set_free_record(pfn: Pfn) {
    if let Some(po) = PAGE_OWNER.get() {
        let t = capture(boot::cpu::fp() as u64);
        po.set_free(pfn.0, now_units(), &t);
    }
}

/// The migration's hook (Linux's `folio_copy_owner`): the block at `new` takes over
/// `old`'s record; `old`, which the migration frees, records that free.
#[inline(never)]
pub fn on_migrate(old: Pfn, new: Pfn, _order: u32) {
    if !enabled() {
        return;
    }
    if let Some(po) = PAGE_OWNER.get() {
        let t = capture(boot::cpu::fp() as u64);
        po.copy_owner(old.0, new.0, now_units(), &t);
    }
}

/// Writes a stored trace, one symbolized frame a line, or that none was kept.
pub fn write_trace(w: &mut dyn Write, po: &PageOwner<'_>, handle: u32, syms: Option<SymbolTable<'_>>) -> fmt::Result {
    match po.depot.fetch(handle) {
        Some(t) => {
            for &a in t.iter().take_while(|&&a| a != 0) {
                writeln!(w, " {}", SymbolizedAddr(syms, a))?;
            }
            Ok(())
        }
        None if handle == NO_HANDLE => writeln!(w, " (no trace: the stack depot was full)"),
        None => writeln!(w, " (trace being written)"),
    }
}

/// One block's record, as `/sys/kernel/debug/page_owner` prints it, with the last free
/// for a free page.
pub fn write_record(w: &mut dyn Write, pfn: u64, i: &OwnerInfo, syms: Option<SymbolTable<'_>>) -> fmt::Result {
    let Some(po) = table() else { return Ok(()) };
    writeln!(
        w,
        "Page allocated via order {}, mask {}, pid 0, tgid 0 (swapper/{}), ts {} ns",
        i.order,
        i.gfp,
        i.cpu,
        units_to_ns(i.ts_alloc_ms)
    )?;
    writeln!(
        w,
        "PFN 0x{:x} (block 0x{:x}-0x{:x}) type {:?} {}",
        pfn,
        i.head_pfn,
        i.head_pfn + (1 << i.order) - 1,
        i.migratetype,
        if i.allocated { "allocated" } else { "now free" }
    )?;
    write_trace(w, po, i.alloc_handle, syms)?;
    if !i.allocated {
        writeln!(w, "page last free pid 0 tgid 0 ts {} ns stack trace:", units_to_ns(i.ts_free_ms))?;
        write_trace(w, po, i.free_handle, syms)?;
    }
    if i.migrated {
        // Linux adds ", last_migrate_reason: compaction" (or cma...): the allocator's
        // migration does not know its caller's reason; the old block's free trace shows it.
        writeln!(w, "Page has been migrated")?;
    }
    Ok(())
}

/// For oops and bad-page reports: the frame's page_owner lines, as Linux's
/// `__dump_page_owner` prints them after `dump_page` (nothing when page_owner is off or
/// has no record of the frame).
pub fn dump_page_owner(w: &mut dyn Write, pfn: u64, syms: Option<SymbolTable<'_>>) -> fmt::Result {
    let (Some(po), true) = (table(), enabled()) else { return Ok(()) };
    let Some(i) = po.lookup(pfn) else {
        return writeln!(w, "page_owner info is not present (never set?)");
    };
    writeln!(w, "page_owner tracks the page as {}", if i.allocated { "allocated" } else { "freed" })?;
    writeln!(
        w,
        "page last allocated via order {}, migratetype {:?}, gfp_mask {}, pid 0, tgid 0 (swapper/{}), ts {}, free_ts {}",
        i.order,
        i.migratetype,
        i.gfp,
        i.cpu,
        units_to_ns(i.ts_alloc_ms),
        units_to_ns(i.ts_free_ms)
    )?;
    write_trace(w, po, i.alloc_handle, syms)?;
    if i.free_handle == NO_HANDLE {
        writeln!(w, "page_owner free stack trace missing")?;
    } else {
        writeln!(w, "page last free pid 0 tgid 0 stack trace:")?;
        write_trace(w, po, i.free_handle, syms)?;
    }
    if i.migrated {
        writeln!(w, "page has been migrated")?;
    }
    Ok(())
}

/// The `page:` line of Linux's `dump_page` for `pfn` and its page_owner record: for a
/// report about memory at `addr` (KASAN's "The buggy address belongs to the physical
/// page:"). Only a linear-map address of a frame the table covers has one to tell.
pub fn dump_page_of(w: &mut dyn Write, addr: u64, syms: Option<SymbolTable<'_>>) -> fmt::Result {
    let pfn = addr.wrapping_sub(PAGE_OFFSET) >> mm::addr::PAGE_SHIFT;
    if !enabled() || addr < PAGE_OFFSET || !table().is_some_and(|po| po.covers(pfn)) {
        return Ok(());
    }
    writeln!(w, "The buggy address belongs to the physical page:")?;
    writeln!(w, "page: pfn:0x{pfn:x}")?;
    dump_page_owner(w, pfn, syms)
}

/// After a refused free of a block the allocator gave out or took back: its record (who
/// allocated it, who freed it first), as Linux's `dump_page` does for a bad page.
pub fn report_bad_free(e: &mm::page_alloc::FreeError, syms: Option<SymbolTable<'_>>) {
    use mm::page_alloc::FreeError as E;
    let (E::DoubleFree { pfn, .. } | E::WrongOrder { pfn, .. } | E::TailPage { pfn, .. } | E::NotAllocated { pfn, .. }) =
        *e
    else {
        return;
    };
    crate::printk::with_console(|w| {
        let _ = dump_page_owner(w, pfn, syms);
    });
}
