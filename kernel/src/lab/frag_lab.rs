//! The fragmentation lab (the sweep's `fragment` phase): how large a contiguous
//! allocation can be once memory is fragmented, before and after compaction.
//!
//! 1. Fill the free memory with single movable pages (`__GFP_MOVABLE`, taken in bulk), each
//!    marked at both ends, and free every other one (by frame number): no free block
//!    above order 0 is left. The largest order `__get_free_pages(GFP_ATOMIC)` gets (it
//!    never compacts) is shown, then compaction runs and it is shown again; every page
//!    kept must still carry its marks.
//! 2. The same with vmalloc pages as the filler: the holes of a fresh checkerboard are
//!    filled by one `__GFP_MOVABLE` vmalloc, and the pages around them freed, so the
//!    vmalloc's pages form the checkerboard; compaction moves them through the page table.
//! 3. With a CMA area (`cma=SIZE`): memory filled again, every other page outside the
//!    area freed, so that the lab's movable pages borrow every page of the area (checked)
//!    and free targets exist elsewhere; `cma_alloc` of the whole area is timed, the pages
//!    it moved must keep their marks, and the range goes back with `cma_release`.
//!
//! The pages of part 1 are held in the lab's page array, an unmovable block; each is
//! tagged with an owner of [`LAB_MOVABLE`] and its index, and compaction moves it through
//! [`lab_move`] under the array's lock.

use crate::mm::allocation::Allocation;
use crate::mm::migrate::{self, LAB_MOVABLE};
use crate::mm::page_alloc::{PAGES, PAGE_SOURCE};
use crate::mm::phys_to_virt;
use crate::{pr_info, record};
use mm::addr::{Pfn, PhysAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_ATOMIC, GFP_KERNEL};
use mm::page_alloc::{
    BlockMove, CmaAllocStats, CmaError, MigrateError, MigrateMode, MovableOps, MovableOwner, MAX_PAGE_ORDER,
};
use mm::page_source::PageSource;

/// Pages per bulk allocation or free.
const BATCH: usize = 64;

/// The filler's flags: movable, from the reserves too (below the min watermark).
const FILL: Gfp = GFP_ATOMIC.union(Gfp::GFP_MOVABLE).union(Gfp::GFP_MEMALLOC).union(Gfp::GFP_NOWARN);

/// The page array: `len` frame numbers (0: none) in a block at linear-map address `base`.
struct Lab {
    base: usize,
    len: usize,
}

static LAB: mm::sync::SpinLock<Lab> = mm::sync::SpinLock::new(Lab { base: 0, len: 0 });

impl Lab {
    fn get(&self, i: usize) -> u32 {
        assert!(i < self.len);
        // SAFETY: the array block (len u32 entries at base) is allocated for as long as
        // `len` is non-zero, and only touched under LAB's lock.
        unsafe { (self.base as *const u32).add(i).read_volatile() }
    }
    fn set(&mut self, i: usize, pfn: u32) {
        assert!(i < self.len);
        // SAFETY: as in `get`.
        unsafe { (self.base as *mut u32).add(i).write_volatile(pfn) }
    }
}

/// The lab's pages, as a movable kind ([`LAB_MOVABLE`], registered by each part).
#[derive(Debug)]
struct LabPages;

impl MovableOps for LabPages {
    fn migrate_page(&self, m: &BlockMove, mode: MigrateMode) -> Result<(), MigrateError> {
        let mut lab = match mode {
            MigrateMode::Sync => LAB.lock(),
            MigrateMode::Async => LAB.try_lock().ok_or(MigrateError::Busy)?,
        };
        let i = m.owner.private as usize;
        if m.order != 0 || i >= lab.len || lab.get(i) as u64 != m.old.0 {
            return Err(MigrateError::Gone);
        }
        migrate::copy_block(m.old, m.new, 0);
        lab.set(i, m.new.0 as u32);
        Ok(())
    }
}

/// The mark at both ends of lab page `i`.
fn mark(i: usize) -> u64 {
    0x6c61_6200_0000_0000 ^ (i as u64).wrapping_mul(0x9e37_79b9)
}

fn write_marks(pfn: Pfn, m: u64) {
    let p = phys_to_virt(pfn.phys()).as_mut_ptr::<u64>();
    // SAFETY: the page is the caller's (just allocated, or held by the lab), mapped
    // read-write in the linear map; both words are inside it.
    unsafe {
        p.write_volatile(m);
        p.add(PAGE_SIZE / 8 - 1).write_volatile(!m);
    }
}

fn marks_ok(pfn: Pfn, m: u64) -> bool {
    let p = phys_to_virt(pfn.phys()).as_ptr::<u64>();
    // SAFETY: as in `write_marks`.
    unsafe { p.read_volatile() == m && p.add(PAGE_SIZE / 8 - 1).read_volatile() == !m }
}

/// The largest order `__get_free_pages(GFP_ATOMIC)` gets now (no compaction allowed).
fn max_atomic_order() -> Option<u32> {
    let mut best = None;
    for order in 0..=MAX_PAGE_ORDER {
        match Allocation::pages(GFP_ATOMIC | Gfp::GFP_NOWARN, order) {
            Some(a) => {
                drop(a);
                best = Some(order);
            }
            None => break,
        }
    }
    best
}

/// One part's result.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fragmented {
    /// Largest order before compaction (None: not even order 0).
    pub before: Option<u32>,
    /// Largest order after.
    pub after: Option<u32>,
    /// Pages compaction migrated.
    pub migrated: u64,
    /// Compaction time in ns.
    pub ns: u64,
    /// Pages whose contents did not survive (must be 0).
    pub corrupt: u64,
    /// Pages the filler held after the checkerboard.
    pub held: u64,
    /// The whole part's time in ns (set-up, compaction, checks, freeing).
    pub part_ns: u64,
}

/// Prints the memory map into the log (plain, one line each), after a title line; with
/// `records=on` also as a `memmap` record and a `buddyinfo` record named `when`.
fn print_memmap(title: &str, when: &str) {
    if let Some(view) = crate::mm::memmap::MapView::whole() {
        pr_info!("sweep: memmap {title}:");
        crate::mm::memmap::print_map(view, false, |l| pr_info!("sweep: {l}"));
        if record::enabled() {
            let cells = crate::mm::memmap::cell_letters(view);
            record::emit(records::MemMap {
                when,
                start: view.start.0 << mm::addr::PAGE_SHIFT,
                cell_bytes: view.cell_bytes(),
                cells: cells.as_str(),
            });
        }
    }
    if record::enabled() {
        let counts = mm::page_alloc::report::buddyinfo_counts(&PAGES, mm::page_alloc::ZoneType::Normal);
        record::emit(records::BuddyInfo { when, counts: &counts });
    }
}

fn compact_timed(r: &mut Fragmented, part: &str) {
    r.before = max_atomic_order();
    let mut when = crate::printk::StackString::<32>::new();
    let _ = core::fmt::Write::write_fmt(&mut when, format_args!("lab.{part}.before"));
    print_memmap("before compaction", when.as_str());
    let t0 = board::timer::ticks();
    let c = migrate::compact_memory();
    r.ns = board::timer::ticks_to_ns(board::timer::ticks() - t0);
    r.migrated = c.migrated;
    r.after = max_atomic_order();
    let mut when = crate::printk::StackString::<32>::new();
    let _ = core::fmt::Write::write_fmt(&mut when, format_args!("lab.{part}.after"));
    print_memmap("after compaction", when.as_str());
}

/// Allocates the page array for every free page and fills memory with movable pages
/// into it, each marked; returns the array's block (`None`: the array could not be
/// allocated) and how many pages it holds.
fn fill() -> Option<(Allocation, usize)> {
    let entries = crate::mm::settled_free_pages() as usize + 1024;
    let order = (entries * 4).div_ceil(PAGE_SIZE).next_power_of_two().trailing_zeros();
    let arr = Allocation::pages(GFP_KERNEL | Gfp::GFP_NOWARN | Gfp::GFP_ZERO, order)?;
    {
        let mut lab = LAB.lock();
        lab.base = arr.addr().as_usize();
        lab.len = (PAGE_SIZE << order) / 4;
    }
    let len = LAB.lock().len;
    let mut n = 0;
    let mut buf = [PhysAddr::new(0); BATCH];
    while n < len {
        // Every page, reserves included (as a PF_MEMALLOC task may): no free block may
        // be left above order 0 once every other page is freed.
        let want = BATCH.min(len - n);
        let mut got = PAGE_SOURCE.alloc_pages_bulk(FILL, &mut buf[..want]);
        // The bulk path stops at the low watermark: the rest one by one.
        while got < want {
            let Ok(pfn) = PAGE_SOURCE.alloc(FILL, 0) else { break };
            buf[got] = pfn.phys();
            got += 1;
        }
        let mut lab = LAB.lock();
        for &pa in &buf[..got] {
            write_marks(pa.pfn(), mark(n));
            lab.set(n, pa.pfn().0 as u32);
            migrate::set_movable_owner(pa.pfn(), MovableOwner::new(LAB_MOVABLE, n as u64));
            n += 1;
        }
        if got < want {
            break;
        }
    }
    crate::mm::drain_all_cpu_caches();
    Some((arr, n))
}

/// Frees the held pages among the first `n` whose frame number `which` picks, in bulk.
fn free_where(n: usize, which: impl Fn(u64) -> bool) {
    let mut buf = [PhysAddr::new(0); BATCH];
    let mut k = 0;
    for i in 0..n {
        let mut lab = LAB.lock();
        let pfn = lab.get(i) as u64;
        if pfn != 0 && which(pfn) {
            lab.set(i, 0);
            buf[k] = Pfn(pfn).phys();
            k += 1;
        }
        drop(lab);
        if k == BATCH || (i + 1 == n && k > 0) {
            PAGE_SOURCE.free_pages_bulk(&buf[..k]);
            k = 0;
        }
    }
    crate::mm::drain_all_cpu_caches();
}

/// [`fill`], then frees the pages with an even frame number: a checkerboard.
fn checkerboard() -> Option<Allocation> {
    let (arr, n) = fill()?;
    free_where(n, |pfn| pfn.is_multiple_of(2));
    Some(arr)
}

/// Checks the marks of every page held and frees them all (the array is left to the
/// caller, which no longer reaches it through the lab); returns how many had lost their
/// marks.
fn release(check: bool) -> u64 {
    let len = LAB.lock().len;
    let mut corrupt = 0;
    let mut buf = [PhysAddr::new(0); BATCH];
    let mut k = 0;
    for i in 0..len {
        let mut lab = LAB.lock();
        let pfn = lab.get(i);
        if pfn != 0 {
            if check && !marks_ok(Pfn(pfn as u64), mark(i)) {
                corrupt += 1;
            }
            lab.set(i, 0);
            buf[k] = Pfn(pfn as u64).phys();
            k += 1;
        }
        drop(lab);
        if k == BATCH || (i + 1 == len && k > 0) {
            PAGE_SOURCE.free_pages_bulk(&buf[..k]);
            k = 0;
        }
    }
    *LAB.lock() = Lab { base: 0, len: 0 };
    corrupt
}

/// Part 1: movable pages as the filler.
fn pages_part() -> Option<Fragmented> {
    migrate::register(LAB_MOVABLE, &LabPages);
    let arr = checkerboard()?;
    let mut r = Fragmented::default();
    let len = LAB.lock().len;
    r.held = (0..len).filter(|&i| LAB.lock().get(i) != 0).count() as u64;
    compact_timed(&mut r, "movable");
    r.corrupt = release(true);
    drop(arr);
    Some(r)
}

/// One `__GFP_MOVABLE` vmalloc over every free page, page tables included; returns it
/// with its pages. The first try asks for the free pages less one page table per 512
/// (and one above them); if that was a table short, the failure says how many pages it
/// got with their tables before memory ran out, and after the unwind (drained back from
/// the per-CPU lists) exactly that many fit again: the retry cannot fail on a few pages'
/// difference. (A request that finds the zone empty drains its own CPU's lists, so pages
/// left there by the refills for the page tables are taken too.)
fn vmalloc_all_free() -> Option<(Allocation, usize)> {
    crate::mm::drain_all_cpu_caches();
    let free = PAGES.snapshot().nr_free_pages() as usize;
    let mut want = free.saturating_sub(free.div_ceil(512) + 1);
    for _ in 0..4 {
        if want == 0 {
            return None;
        }
        match Allocation::vmalloc(want * PAGE_SIZE, FILL, "frag_lab") {
            Ok(v) => return Some((v, want)),
            Err(e) => {
                // The area might start elsewhere in its table the next time: at most
                // one page less than what fitted.
                let got = (e.allocated_bytes / PAGE_SIZE as u64) as usize;
                want = got.min(want - 1);
                crate::mm::drain_all_cpu_caches();
            }
        }
    }
    None
}

/// Part 2: vmalloc pages as the filler.
fn vmalloc_part() -> Option<Fragmented> {
    migrate::register(LAB_MOVABLE, &LabPages);
    let arr = checkerboard()?;
    // Fill the holes with one movable vmalloc, mapped with pages (its tables take a few
    // holes too); then the lab's pages go and the vmalloc's pages are the checkerboard.
    let v = vmalloc_all_free();
    let _ = release(true);
    // The array stays allocated until the end: freed now, it would be a free block.
    let (v, pages) = v?;
    let base = v.addr().as_mut_ptr::<u64>();
    for i in 0..pages {
        // SAFETY: the vmalloc area of `pages` pages is ours until `v` is dropped.
        unsafe { base.add(i * PAGE_SIZE / 8).write_volatile(mark(i)) };
    }
    crate::mm::drain_all_cpu_caches();
    let mut r = Fragmented { held: pages as u64, ..Default::default() };
    compact_timed(&mut r, "vmalloc");
    for i in 0..pages {
        // SAFETY: as above.
        if unsafe { base.add(i * PAGE_SIZE / 8).read_volatile() } != mark(i) {
            r.corrupt += 1;
        }
    }
    drop(v);
    drop(arr);
    Some(r)
}

/// The CMA part's result.
#[derive(Clone, Copy, Debug, Default)]
pub struct CmaPart {
    /// The area's size in pages.
    pub pages: u64,
    /// Lab pages in the area before `cma_alloc` (the area's pages when all are borrowed).
    pub borrowed: u64,
    /// The area's free pages then (must be 0).
    pub area_free: u64,
    /// Pages on per-CPU lists then (must be 0: an area page there would be free).
    pub pcp: u64,
    /// Whether `cma_alloc` of the whole area succeeded, with what it did.
    pub alloc: Option<Result<CmaAllocStats, CmaError>>,
    /// `cma_alloc`'s time in ns.
    pub ns: u64,
    /// Lab pages still in the area after `cma_alloc` (must be 0).
    pub left: u64,
    /// Lab pages whose marks did not survive (must be 0).
    pub corrupt: u64,
    /// The whole part's time in ns.
    pub part_ns: u64,
}

impl CmaPart {
    /// Every page of the area borrowed by the lab, none free.
    fn all_borrowed(&self) -> bool {
        self.borrowed == self.pages && self.area_free == 0 && self.pcp == 0
    }
    /// `cma_alloc` succeeded, with the area fully borrowed, and no page lost its marks.
    pub fn ok(&self) -> bool {
        self.all_borrowed() && matches!(self.alloc, Some(Ok(_))) && self.left == 0 && self.corrupt == 0
    }
}

/// What the CMA part could do.
#[derive(Clone, Copy, Debug)]
pub enum CmaOutcome {
    /// No CMA area (no `cma=` on the command line).
    NoArea,
    /// The lab's page array could not be allocated.
    NoMemory,
    /// It ran.
    Ran(CmaPart),
}

/// Part 3, with a CMA area (`cma=SIZE`): every page of the area borrowed by the lab's
/// movable pages (memory filled, then every other page outside the area freed for
/// targets), checked, then `cma_alloc` of the whole area timed; the moved pages must keep
/// their marks.
fn cma_part() -> CmaOutcome {
    let Some(area) = mm::page_alloc::Cma::new(&PAGES).stats() else { return CmaOutcome::NoArea };
    migrate::register(LAB_MOVABLE, &LabPages);
    let t0 = board::timer::ticks();
    let Some((arr, n)) = fill() else { return CmaOutcome::NoMemory };
    let (lo, hi) = (area.base.0, area.base.0 + area.pages);
    let in_area = move |pfn: u64| (lo..hi).contains(&pfn);
    free_where(n, |pfn| pfn.is_multiple_of(2) && !in_area(pfn));
    let count_in_area = || (0..n).filter(|&i| in_area(LAB.lock().get(i) as u64)).count() as u64;
    let mut r = CmaPart { pages: area.pages, ..Default::default() };
    // Verified, not assumed: the lab holds every page of the area, the area has no free
    // page on the buddy lists, and no per-CPU list holds a page (all were drained).
    r.borrowed = count_in_area();
    r.area_free = mm::page_alloc::Cma::new(&PAGES).stats().map_or(0, |c| c.free);
    r.pcp = PAGES.snapshot().nr_pcp_pages();
    if r.all_borrowed() {
        let t = board::timer::ticks();
        let got = Allocation::cma(area.pages as usize, 0);
        r.ns = board::timer::ticks_to_ns(board::timer::ticks() - t);
        r.left = count_in_area();
        r.alloc = Some(got.map(|(a, st)| {
            print_memmap("with the CMA area taken by cma_alloc", "lab.cma.taken");
            // The range is handed back (cma_release) when the handle goes.
            drop(a);
            st
        }));
    }
    r.corrupt = release(true);
    drop(arr);
    r.part_ns = board::timer::ticks_to_ns(board::timer::ticks() - t0);
    CmaOutcome::Ran(r)
}

fn report_cma(r: &CmaOutcome) {
    let r = match r {
        CmaOutcome::NoArea => return pr_info!("sweep: cma: no area (boot with cma=SIZE to reserve one)"),
        CmaOutcome::NoMemory => return pr_info!("sweep: cma: could not set up (no memory for the lab)"),
        CmaOutcome::Ran(r) => r,
    };
    let bytes = r.pages * PAGE_SIZE as u64;
    if !r.all_borrowed() {
        pr_info!(
            "sweep: cma: region={} bytes, not all of it borrowed ({} of {} pages by the lab, {} free, {} on per-CPU lists): cma_alloc not tried",
            bytes,
            r.borrowed,
            r.pages,
            r.area_free,
            r.pcp
        );
        return;
    }
    let st = match r.alloc {
        Some(Ok(st)) => Some(st),
        _ => None,
    };
    record::emit(records::LabCma {
        region_bytes: bytes,
        ok: r.ok(),
        migrated: st.map_or(0, |s| s.migrated),
        failed: st.map_or(0, |s| s.failed),
        corrupt: r.corrupt,
        ns: r.ns,
    });
    pr_info!(
        "sweep: cma: region={} bytes, cma_alloc of {} bytes with all of it borrowed: {} ({} ms)",
        bytes,
        bytes,
        if r.ok() { "OK" } else { "failed" },
        r.ns / 1_000_000
    );
    match r.alloc {
        Some(Ok(st)) => pr_info!(
            " {} borrowed blocks migrated out ({} failed, {} range tried), {} lab pages left in the area, {} with their contents changed {}; the part took {} ms",
            st.migrated,
            st.failed,
            st.ranges_tried,
            r.left,
            r.corrupt,
            if r.corrupt == 0 { "OK" } else { "CORRUPT" },
            r.part_ns / 1_000_000
        ),
        Some(Err(e)) => pr_info!(
            " cma_alloc: {}; {} lab pages with their contents changed; the part took {} ms",
            e,
            r.corrupt,
            r.part_ns / 1_000_000
        ),
        None => {}
    }
}

/// What the lab found: each part that ran (`Some`), with its result (`None` inside:
/// it could not be set up), and the failures injected while it ran.
#[derive(Clone, Copy, Debug, Default)]
pub struct LabResult {
    /// Movable pages as the filler.
    pub pages: Option<(Option<Fragmented>, u64)>,
    /// vmalloc pages as the filler.
    pub vmalloc: Option<(Option<Fragmented>, u64)>,
    /// `cma_alloc` of the whole CMA area, all of it borrowed.
    pub cma: Option<(CmaOutcome, u64)>,
    /// Ctrl-C kept the parts that did not run from running.
    pub interrupted: bool,
}

/// Runs the lab's parts in turn; `stop` is asked between two parts (Ctrl-C);
/// `injected` counts the failures injected so far (fail_page_alloc, failslab), so that a
/// part that met one is not reported as a result.
pub fn run(stop: impl Fn() -> bool, injected: impl Fn() -> u64) -> LabResult {
    pr_info!("Fragmenting memory: movable pages, then vmalloc pages, every other page freed; then compaction");
    let mut r = LabResult::default();
    let counted = |f: &mut dyn FnMut()| {
        let before = injected();
        f();
        injected() - before
    };
    if stop() {
        r.interrupted = true;
        return r;
    }
    let mut part = None;
    let n = counted(&mut || part = Some(timed_part(pages_part)));
    r.pages = part.map(|p| (p, n));
    if stop() {
        r.interrupted = true;
        return r;
    }
    let mut part = None;
    let n = counted(&mut || part = Some(timed_part(vmalloc_part)));
    r.vmalloc = part.map(|p| (p, n));
    if stop() {
        r.interrupted = true;
        return r;
    }
    let mut part = None;
    let n = counted(&mut || part = Some(cma_part()));
    r.cma = part.map(|p| (p, n));
    r
}

/// The lab's lines when Ctrl-C stopped the sweep before the lab began.
pub fn report_not_run() {
    report(&LabResult { interrupted: true, ..LabResult::default() })
}

fn timed_part(part: fn() -> Option<Fragmented>) -> Option<Fragmented> {
    let t0 = board::timer::ticks();
    let mut r = part()?;
    r.part_ns = board::timer::ticks_to_ns(board::timer::ticks() - t0);
    Some(r)
}

/// Prints the summary lines of the parts that ran; a part that Ctrl-C kept from running,
/// or that met an injected failure, says so and prints no figure.
pub fn report(r: &LabResult) {
    let parts = [
        ("fragmented", r.pages.map(|p| p.1)),
        ("fragmented vmalloc", r.vmalloc.map(|p| p.1)),
        ("cma", r.cma.map(|p| p.1)),
    ];
    for (i, (name, injected)) in parts.into_iter().enumerate() {
        match injected {
            None if r.interrupted => pr_info!("sweep: {}: interrupted (^C) before it ran, no result", name),
            None => {}
            Some(n) if n > 0 => pr_info!(
                "sweep: {}: {} injected failure{} (fail_page_alloc/failslab) during the part, not out of memory: no result",
                name,
                n,
                if n == 1 { "" } else { "s" }
            ),
            Some(_) => match i {
                0 => report_part(name, "movable", &r.pages.and_then(|p| p.0)),
                1 => report_part(name, "vmalloc", &r.vmalloc.and_then(|p| p.0)),
                _ => {
                    if let Some((c, _)) = &r.cma {
                        report_cma(c);
                    }
                }
            },
        }
    }
}

/// Prints a part's line.
fn report_part(name: &str, part: &str, r: &Option<Fragmented>) {
    let o = |x: Option<u32>| x.map_or(-1, |v| v as i64);
    match r {
        Some(r) => {
            record::emit(records::LabFragment {
                part,
                order_before: r.before,
                order_after: r.after,
                migrated: r.migrated,
                ns: r.ns,
                held: r.held,
                corrupt: r.corrupt,
            });
            pr_info!(
                "sweep: {}: max order={} before compaction, {} after ({} pages migrated, {} ms)",
                name,
                o(r.before),
                o(r.after),
                r.migrated,
                r.ns / 1_000_000
            );
            pr_info!(
                " {} filler pages held, {} with their contents changed {}; the part took {} ms",
                r.held,
                r.corrupt,
                if r.corrupt == 0 { "OK" } else { "CORRUPT" },
                r.part_ns / 1_000_000
            );
        }
        None => pr_info!("sweep: {}: could not set up (no memory for the lab)", name),
    }
}
