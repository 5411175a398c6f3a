//! kmemleak in the running kernel (`kmemleak=on`; off by default: tracking costs a
//! call trace per `kmalloc`): every `kmalloc`/`kzalloc` object is tracked in
//! `mm::debug::kmemleak`'s table, untracked at `kfree`; `kmemleak scan` marks what the
//! roots reach (the kernel's data and bss, which hold the per-CPU areas and the
//! console's handle table, the kernel stacks: the live part of this CPU's, the whole of
//! the others', and the RAM behind the vmalloc and vmap areas, read through the linear
//! map) and every object reached from them, and reports the rest as Linux's
//! `/sys/kernel/debug/kmemleak` does, with their allocation traces.
//!
//! Objects of the Rust heap (`Box`, `Vec`) are not tracked and not scanned: a
//! `kmalloc` object referenced only from one would be reported (Linux scans all slab
//! memory; this is the difference).

use super::vmalloc::VMALLOC;
use crate::ksyms::SymbolizedAddr;
use crate::mm::page_owner::capture;
use core::fmt::{self, Write};
use mm::debug::kmemleak::{leaks_of, vmalloc_ranges, Object, ObjectTable, ScanBuffers, ScanResult};
use mm::debug::stack_depot::{DepotSlot, StackDepot};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::pgtable::layout::PAGE_OFFSET;

static TABLE: spin::Once<ObjectTable<'static>> = spin::Once::new();
static DEPOT: spin::Once<StackDepot<'static>> = spin::Once::new();
/// Suspects a scan keeps for `kmemleak` and `clear` (more are counted).
const LAST_MAX: usize = 64;
/// The last scan's suspected leaks, and how many there were (the console's path only).
static LAST: spin::Mutex<([Object; LAST_MAX], usize)> = spin::Mutex::new(([Object::EMPTY; LAST_MAX], 0));
/// Order of the scan's working block (snapshot, marks, gray stack), taken for the scan.
const SCAN_ORDER: u32 = 7;

/// Orders of the blocks for the object table and the trace depot.
const TABLE_ORDER: u32 = 6;
const DEPOT_ORDER: u32 = 5;

/// Whether objects are tracked.
#[inline(always)]
pub fn enabled() -> bool {
    super::slab_hooks::pending() & super::slab_hooks::KMEMLEAK != 0
}

/// Sets up the table with `kmemleak=on` (after the slab allocator); `exclude`: the
/// allocators' statics that are not references (see [`excluded`]).
pub fn init(exclude: [(usize, usize); 2]) {
    EXCLUDED.call_once(|| exclude);
    if crate::cmdline::option(crate::platform::cmdline(), "kmemleak") != Some("on") {
        return;
    }
    let gfp = GFP_KERNEL | Gfp::GFP_ZERO;
    let (Some(t), Some(d)) =
        (super::page_alloc::__get_free_pages(gfp, TABLE_ORDER), super::page_alloc::__get_free_pages(gfp, DEPOT_ORDER))
    else {
        crate::pr_warn!("kmemleak: no memory for the object table: disabled");
        return;
    };
    let n = (4096 << TABLE_ORDER) / core::mem::size_of::<mm::debug::kmemleak::LeakSlot>();
    let nd = (4096 << DEPOT_ORDER) / core::mem::size_of::<DepotSlot>();
    // SAFETY: both blocks were just allocated, zeroed (all-zero bytes are empty slots:
    // plain atomics) and are never freed; nothing else refers to them.
    let (slots, dslots) =
        unsafe { (core::slice::from_raw_parts(t.as_mut_ptr(), n), core::slice::from_raw_parts(d.as_mut_ptr(), nd)) };
    TABLE.call_once(|| ObjectTable::new(slots));
    DEPOT.call_once(|| StackDepot::new(dslots));
    super::slab_hooks::set(super::slab_hooks::KMEMLEAK);
    crate::pr_info!("kmemleak: Kernel memory leak detector initialized (mem pool available: {n})");
}

/// The slab's allocation hook (Linux's `kmemleak_alloc`).
#[inline(always)]
pub fn on_alloc(p: *mut u8, size: usize) {
    if enabled() {
        track(p as u64, size);
    }
}

#[inline(never)]
fn track(addr: u64, size: usize) {
    if size == 0 || addr < 4096 {
        return; // ZERO_SIZE_PTR and NULL are not objects
    }
    let (Some(t), Some(d)) = (TABLE.get(), DEPOT.get()) else { return };
    let trace = capture(boot::cpu::fp() as u64);
    let h = d.save(&trace);
    t.insert(addr, size, h, crate::percpu::smp_processor_id().index() as u32, super::page_owner::now_units());
}

/// The slab's free hook (Linux's `kmemleak_free`).
#[inline(always)]
pub fn on_free(p: *mut u8) {
    if enabled() {
        if let Some(t) = TABLE.get() {
            t.remove(p as u64);
        }
    }
}

/// Reads a word of a root or a tracked object. A KFENCE object's page is only mapped
/// while it lives: its words are read only then.
fn read(a: u64) -> Option<u64> {
    if super::kfence::is_kfence_address(a) && !super::kfence::is_live(a) {
        return None;
    }
    // SAFETY: `a` is 8-byte aligned and inside the kernel's data, bss, a kernel stack, a
    // live tracked object (all mapped for the scan's duration; an object freed
    // meanwhile is still mapped slab memory) or the linear map of RAM (a vmalloc page's
    // frame: always mapped, even if the area was freed since).
    Some(unsafe { core::ptr::read_volatile(a as *const u64) })
}

/// Ranges of vmalloc pages taken per round of the vmalloc lock.
const VMALLOC_BATCH: usize = 64;

/// The RAM behind the vmalloc and vmap areas as roots, through the linear map, a batch
/// per round of the vmalloc lock (not held while the words are read): guard pages,
/// ioremap areas and device mappings are left out (`mm::debug::kmemleak::vmalloc_ranges`),
/// and so is KFENCE's pool, whose live objects are scanned as objects.
fn vmalloc_roots(sink: &mut dyn FnMut(u64, u64)) {
    let ram_end = super::page_alloc::linear_map_end() - PAGE_OFFSET;
    let mut from = 0;
    loop {
        let mut out = [(0u64, 0u64); VMALLOC_BATCH];
        let skip = |start: u64| super::kfence::is_kfence_address(start);
        let Some((n, next)) = VMALLOC.lock().with_pt(|vm, pt| vmalloc_ranges(vm, pt, from, &skip, &mut out)) else {
            return;
        };
        for &(s, e) in &out[..n] {
            // Only frames the linear map covers (RAM); a vmap of anything else is skipped.
            if e <= ram_end {
                sink(PAGE_OFFSET + s, PAGE_OFFSET + e);
            }
        }
        match next {
            Some(f) => from = f,
            None => return,
        }
    }
}

/// The allocators' own statics, which are not references: KFENCE's metadata names
/// every pool object, and the slab's per-CPU arrays keep stale copies of addresses
/// they handed out (Linux's freelists live in the free objects, which are not scanned).
fn excluded() -> [(usize, usize); 2] {
    EXCLUDED.get().copied().unwrap_or([(0, 0); 2])
}

/// [`excluded`], given by `init`'s caller (which knows the allocators).
static EXCLUDED: spin::Once<[(usize, usize); 2]> = spin::Once::new();

/// The roots: data, bss (less [`excluded`]), the stacks (this one from its stack
/// pointer up).
fn roots(out: &mut [(u64, u64)]) -> usize {
    let l = crate::platform::image_layout();
    let sp = boot::cpu::sp();
    let mut ex = excluded();
    ex.sort_unstable();
    let mut n = 0;
    let mut push = |(s, e): (usize, usize)| {
        let mut s = if (s..e).contains(&sp) { sp } else { s };
        for &(xs, xe) in ex.iter().chain(core::iter::once(&(e, e))) {
            let b = xs.clamp(s, e);
            if s < b && n < out.len() {
                out[n] = (s as u64, b as u64);
                n += 1;
            }
            s = s.max(xe.min(e));
        }
    };
    push(l.data);
    push(l.bss);
    push(l.boot_stack);
    for r in crate::stacks::registered() {
        push(r);
    }
    n
}

/// `kmemleak scan`: the mark-and-scan; the suspects are kept for `kmemleak`. Its
/// working memory is one block from the page allocator, taken for the scan.
pub fn scan() -> Result<ScanResult, &'static str> {
    let t = TABLE.get().ok_or("kmemleak is off (boot with kmemleak=on)")?;
    let mut r = [(0u64, 0u64); 12];
    let n = roots(&mut r);
    let block = super::page_alloc::__get_free_pages(GFP_KERNEL | Gfp::GFP_NOWARN, SCAN_ORDER)
        .ok_or("no memory for the scan's working block")?;
    let bytes = 4096usize << SCAN_ORDER;
    let per = core::mem::size_of::<Object>() + 1 + 4;
    let cap = (bytes / per).min(t.capacity());
    let base = block.as_usize();
    // SAFETY: the block is ours until freed below, `bytes` long and page aligned; the
    // three arrays are disjoint within it, each suitably aligned (Object: 8, u32: 4 at
    // an offset that is a multiple of 8), and every element is written before it is
    // read (plain data: any bit pattern is a valid Object, u32 or bool once written).
    let (objects, gray, marked) = unsafe {
        let o = base as *mut Object;
        let g = (base + cap * core::mem::size_of::<Object>()) as *mut u32;
        let m = (base + cap * (core::mem::size_of::<Object>() + 4)) as *mut bool;
        core::ptr::write_bytes(m, 0, cap);
        (
            core::slice::from_raw_parts_mut(o, cap),
            core::slice::from_raw_parts_mut(g, cap),
            core::slice::from_raw_parts_mut(m, cap),
        )
    };
    for o in objects.iter_mut() {
        *o = Object::EMPTY;
    }
    let mut buf = ScanBuffers { objects, marked, gray };
    let mut all_roots = |sink: &mut dyn FnMut(u64, u64)| {
        for &(s, e) in &r[..n] {
            sink(s, e);
        }
        vmalloc_roots(sink);
    };
    let res = t.scan_with(&mut all_roots, &read, &mut buf);
    {
        let mut last = LAST.lock();
        last.1 = res.leaks;
        for (slot, o) in last.0.iter_mut().zip(leaks_of(&buf, &res)) {
            *slot = *o;
        }
    }
    let _ = super::page_alloc::free_pages(block, SCAN_ORDER);
    Ok(res)
}

/// `kmemleak clear`: the suspects reported so far are never reported again.
pub fn clear() -> Result<usize, &'static str> {
    let t = TABLE.get().ok_or("kmemleak is off (boot with kmemleak=on)")?;
    let mut last = LAST.lock();
    let k = last.1.min(LAST_MAX);
    let n = t.ignore(&last.0[..k]);
    last.1 = 0;
    Ok(n)
}

/// The last scan's suspects (the first [`LAST_MAX`], and how many more).
pub fn write_leaks(w: &mut dyn Write) -> fmt::Result {
    if TABLE.get().is_none() {
        return writeln!(w, "kmemleak is off (boot with kmemleak=on)");
    }
    let last = LAST.lock();
    let now_ms = super::page_owner::units_to_ns(super::page_owner::now_units()) / 1_000_000;
    for o in &last.0[..last.1.min(LAST_MAX)] {
        write_object(w, o, now_ms)?;
    }
    if last.1 > LAST_MAX {
        writeln!(w, "({} more suspects not listed)", last.1 - LAST_MAX)?;
    }
    Ok(())
}

fn write_object(w: &mut dyn Write, o: &Object, now_ms: u64) -> fmt::Result {
    writeln!(w, "unreferenced object 0x{:016x} (size {}):", o.addr, o.size)?;
    let age = now_ms.saturating_sub(o.ts_ms as u64);
    writeln!(
        w,
        "  comm \"swapper/{}\", pid 0, jiffies {} (age {}.{:03}s)",
        o.cpu,
        o.ts_ms / 10,
        age / 1000,
        age % 1000
    )?;
    let n = (o.size as usize).min(32);
    if read(o.addr & !7).is_some() {
        writeln!(w, "  hex dump (first {n} bytes):")?;
        for row in (0..n).step_by(16) {
            write!(w, "   ")?;
            for i in row..(row + 16).min(n) {
                // SAFETY: inside a live tracked object (checked readable above).
                let b = unsafe { core::ptr::read_volatile((o.addr + i as u64) as *const u8) };
                write!(w, " {b:02x}")?;
            }
            writeln!(w)?;
        }
    }
    writeln!(w, "  backtrace:")?;
    let syms = crate::platform::symbols();
    match DEPOT.get().and_then(|d| d.fetch(o.handle)) {
        Some(tr) => {
            for &a in tr.iter().take_while(|&&a| a != 0) {
                writeln!(w, "    [<{a:016x}>] {}", SymbolizedAddr(syms, a))?;
            }
        }
        None => writeln!(w, "    (no trace: the stack depot was full)")?,
    }
    Ok(())
}
