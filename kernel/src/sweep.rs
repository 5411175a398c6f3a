//! The allocation sweep: the kernel-lab experiment of `shared/seeds` run on this
//! kernel's own allocators, printed like the lab's Linux log, with exact limits.
//!
//! 1. `alloc_page` with GFP_KERNEL and GFP_HIGHUSER_MOVABLE: where the page comes from.
//! 2. `__get_free_pages(GFP_ATOMIC, order)` for growing orders until one fails.
//! 3. `kmalloc(size, GFP_ATOMIC)` from 4 KiB doubling until one fails.
//! 4. `vmalloc` in 4 MiB steps until one fails, then the exact limit by bisection.
//! 5. The fragmentation lab ([`crate::frag_lab`]): the largest order before and after
//!    compaction, with movable pages and with vmalloc pages as the filler.
//! 6. The machine-readable summary (with each phase's time and how many vmallocs were
//!    mapped with 2 MiB blocks), a leak check, and the comparison with Linux.
//!
//! Every allocation is an owning [`Allocation`] handle, freed when dropped. Ctrl-C stops
//! it between two allocations (everything it held is freed by then); the leak check
//! still runs.

use crate::mm::allocation::Allocation;
use crate::mm::page_alloc::{self, PAGES};
use crate::mm::vmalloc;
use crate::record;
use crate::{pr_info, pr_warn};
use core::fmt;
use mm::addr::PAGE_SIZE;
use mm::gfp::{Gfp, GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};
use mm::page_alloc::MAX_PAGE_ORDER;
use mm::pgtable::Prot;

fn interrupted() -> bool {
    crate::tty::signal_pending()
}

/// Failures injected so far by `fail_page_alloc` and `failslab` (their counters only
/// grow): a phase that saw this change was stopped by an injection, not by memory.
fn injected() -> u64 {
    PAGES.fail.attr.injected() + crate::mm::slab::SLAB.fail.attr.injected()
}

/// How a phase ended, for its summary line: only `Done` carries a result.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ended {
    /// It ran to its end (or to a real failure).
    Done,
    /// Ctrl-C stopped it: no figure is a result.
    Interrupted,
    /// This many injected failures happened meanwhile: no figure is a result.
    Injected(u64),
}

/// Runs a phase and says how it ended.
fn phase<R>(f: impl FnOnce() -> R) -> (R, Ended) {
    let inj = injected();
    let r = f();
    let ended = if interrupted() {
        Ended::Interrupted
    } else if injected() != inj {
        Ended::Injected(injected() - inj)
    } else {
        Ended::Done
    };
    (r, ended)
}

/// The summary line of a phase that has no result: `sweep: NAME: interrupted (^C), no
/// result` or `... N injected failures (fail_page_alloc/failslab), not out of memory: no
/// result`. False for a phase that ended normally.
fn no_result(name: &str, ended: Ended) -> bool {
    match ended {
        Ended::Done => false,
        Ended::Interrupted => {
            pr_info!("sweep: {}: interrupted (^C), no result", name);
            true
        }
        Ended::Injected(n) => {
            pr_info!(
                "sweep: {}: stopped by {} injected failure{} (fail_page_alloc/failslab), not out of memory: no result",
                name,
                n,
                if n == 1 { "" } else { "s" }
            );
            true
        }
    }
}

/// Which phases to run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phases {
    /// Every phase: pages, kmalloc, vmalloc, then the fragmentation lab.
    All,
    /// alloc_page and __get_free_pages.
    Pages,
    /// kmalloc.
    Kmalloc,
    /// vmalloc.
    Vmalloc,
    /// The fragmentation lab: compaction of movable pages and of vmalloc pages.
    Fragment,
}

/// The phase names `sweep` and `sweep=` take, for Tab.
pub const PHASES: [&str; 5] = ["all", "pages", "kmalloc", "vmalloc", "fragment"];

impl Phases {
    /// `all`, `pages`, `kmalloc`, `vmalloc`, `fragment`; `None` for anything else (`off`).
    pub fn parse(s: &str) -> Option<Phases> {
        match s {
            "all" => Some(Phases::All),
            "pages" => Some(Phases::Pages),
            "kmalloc" => Some(Phases::Kmalloc),
            "vmalloc" => Some(Phases::Vmalloc),
            "fragment" => Some(Phases::Fragment),
            _ => None,
        }
    }
}

/// A duration printed the way a person reads it: `850 ns`, `2.3 us`, `41 ms`, `1.3 s`.
struct Took(u64);

impl fmt::Display for Took {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        match ns {
            0..1_000 => write!(f, "{ns} ns"),
            1_000..10_000 => write!(f, "{}.{} us", ns / 1_000, ns / 100 % 10),
            10_000..1_000_000 => write!(f, "{} us", ns / 1_000),
            1_000_000..10_000_000 => write!(f, "{}.{} ms", ns / 1_000_000, ns / 100_000 % 10),
            10_000_000..1_000_000_000 => write!(f, "{} ms", ns / 1_000_000),
            _ => write!(f, "{}.{} s", ns / 1_000_000_000, ns / 100_000_000 % 10),
        }
    }
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Took) {
    let t0 = board::timer::ticks();
    let r = f();
    (r, Took(board::timer::ticks_to_ns(board::timer::ticks() - t0)))
}

/// Prints /proc/buddyinfo as log lines prefixed `buddyinfo: `, as it is formatted
/// (nothing allocated: this runs when memory is exhausted).
fn buddyinfo_line() {
    use crate::printk::{console_loglevel, with_console, ConsoleWriter, Level};
    use core::fmt::Write;
    struct Prefixed<'a> {
        w: &'a mut ConsoleWriter,
        at_start: bool,
    }
    impl Write for Prefixed<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for (i, part) in s.split('\n').enumerate() {
                if i > 0 {
                    self.w.write_str("\n")?;
                    self.at_start = true;
                }
                if part.is_empty() {
                    continue;
                }
                if self.at_start {
                    self.w.write_str("buddyinfo: ")?;
                    self.at_start = false;
                }
                self.w.write_str(part)?;
            }
            Ok(())
        }
    }
    if (Level::Info as u8) >= console_loglevel() {
        return;
    }
    with_console(|w| {
        let _ = mm::page_alloc::report::buddyinfo(&PAGES, &mut Prefixed { w, at_start: true });
    });
}

/// Runs the sweep and prints it.
pub fn run(phases: Phases) {
    let before = crate::mm::settled_free_pages();
    let all = phases == Phases::All;
    let mut max_order = None;
    let mut kmalloc_max = None;
    let mut vmalloc_max = None;
    // Nanoseconds per phase (None: not run), and how each ended (None: not run).
    let mut took: [Option<u64>; 3] = [None; 3];
    let mut ended: [Option<Ended>; 3] = [None; 3];
    let t_all = board::timer::ticks();
    if all || phases == Phases::Pages {
        let (((), t), e) = phase(|| {
            timed(|| {
                alloc_page_demo();
                max_order = get_free_pages_sweep();
            })
        });
        took[0] = Some(t.0);
        ended[0] = Some(e);
    }
    if (all || phases == Phases::Kmalloc) && !interrupted() {
        let ((r, t), e) = phase(|| timed(kmalloc_sweep));
        kmalloc_max = r;
        took[1] = Some(t.0);
        ended[1] = Some(e);
    }
    let mut huge = HugeStats::default();
    if (all || phases == Phases::Vmalloc) && !interrupted() {
        let ((r, t), e) = phase(|| timed(|| vmalloc_sweep(&mut huge)));
        vmalloc_max = r;
        took[2] = Some(t.0);
        ended[2] = Some(e);
    }
    let mut frag = None;
    let mut frag_took = None;
    // The lab reports its parts itself: one that Ctrl-C kept from running says so.
    let lab_wanted = all || phases == Phases::Fragment;
    if lab_wanted && !interrupted() {
        let (r, t) = timed(|| crate::frag_lab::run(interrupted, injected));
        frag = Some(r);
        frag_took = Some(t.0);
    }
    let total = board::timer::ticks_to_ns(board::timer::ticks() - t_all);
    let stopped = interrupted();
    if stopped {
        pr_info!("sweep: interrupted (^C); the rest is skipped");
        let phase = if frag.is_some() {
            "fragment"
        } else if took[2].is_some() {
            "vmalloc"
        } else if took[1].is_some() {
            "kmalloc"
        } else {
            "pages"
        };
        record::emit(records::SweepInterrupted { phase });
    }
    let after = crate::mm::settled_free_pages();
    // The summary lines are always printed for the phases that were asked for, also when
    // the very first allocation failed (exhausted memory); a phase that Ctrl-C stopped or
    // kept from running, or that met an injected failure, says so instead of a figure.
    let summary = |i: usize, name: &str| match ended[i] {
        None if stopped => no_result(name, Ended::Interrupted),
        None => false,
        Some(e) => no_result(name, e),
    };
    if (all || phases == Phases::Pages) && !summary(0, "__get_free_pages") {
        match max_order {
            Some(order) => pr_info!(
                "sweep: __get_free_pages max order={} ({} pages, {} bytes)",
                order,
                1u64 << order,
                (PAGE_SIZE as u64) << order
            ),
            None => pr_info!("sweep: __get_free_pages max order=none, failed at order 0"),
        }
        record::emit(records::SweepMax {
            api: "gfp",
            order: max_order,
            bytes: max_order.map(|o| (PAGE_SIZE as u64) << o),
            free_bytes: None,
        });
    }
    if (all || phases == Phases::Kmalloc) && !summary(1, "kmalloc") {
        match kmalloc_max {
            Some(size) => pr_info!("sweep: kmalloc max size={} bytes", size),
            None => pr_info!("sweep: kmalloc max size=none, failed at order 0 ({} bytes)", PAGE_SIZE),
        }
        record::emit(records::SweepMax {
            api: "kmalloc",
            order: kmalloc_max.map(|s| (s / PAGE_SIZE).trailing_zeros()),
            bytes: kmalloc_max.map(|s| s as u64),
            free_bytes: None,
        });
    }
    let vmalloc_result = (all || phases == Phases::Vmalloc) && !summary(2, "vmalloc");
    if vmalloc_result {
        match vmalloc_max {
            Some((bytes, free)) => {
                let permille = bytes as u128 * 1000 / free.max(1) as u128;
                pr_info!(
                    "sweep: vmalloc max size={} bytes ({} pages), {}.{}% of {} free bytes",
                    bytes,
                    bytes / PAGE_SIZE as u64,
                    permille / 10,
                    permille % 10,
                    free
                );
            }
            None => pr_info!("sweep: vmalloc max size=none, failed at 1 page ({} bytes)", PAGE_SIZE),
        }
        record::emit(records::SweepMax {
            api: "vmalloc",
            order: None,
            bytes: vmalloc_max.map(|v| v.0),
            free_bytes: vmalloc_max.map(|v| v.1),
        });
    }
    if took[2].is_some() && vmalloc_result {
        pr_info!(
            "sweep: vmalloc huge mappings: {} of {} vmallocs used 2 MiB blocks, {} blocks and {} pages mapped",
            huge.huge_vmallocs,
            huge.vmallocs,
            huge.blocks,
            huge.pages
        );
        record::emit(records::SweepHuge {
            areas: huge.vmallocs,
            huge_areas: huge.huge_vmallocs,
            blocks: huge.blocks,
            pages: huge.pages,
        });
    }
    match &frag {
        Some(r) => crate::frag_lab::report(r),
        None if lab_wanted && stopped => crate::frag_lab::report_not_run(),
        None => {}
    }
    // Machine-readable (microseconds), then for people; the times of an interrupted
    // sweep, or of one that met an injected failure, are no measurement: none is printed.
    let clean = ended.iter().all(|e| matches!(e, None | Some(Ended::Done)));
    if !stopped && clean {
        phase_times(took, frag_took, total);
    }
    pr_info!(
        "sweep: leak check: free pages before={} after={} {}",
        before,
        after,
        if before == after { "OK" } else { "LEAK" }
    );
    record::emit(records::SweepLeak { before, after, ok: before == after });
    if all && !stopped && clean {
        compare_with_linux(max_order, kmalloc_max, vmalloc_max);
    }
}

fn phase_times(took: [Option<u64>; 3], frag_took: Option<u64>, total: u64) {
    let us = |t: Option<u64>| t.map_or(-1, |ns| (ns / 1000) as i64);
    pr_info!(
        "sweep: phase times us: pages={} kmalloc={} vmalloc={} fragment={} total={}",
        us(took[0]),
        us(took[1]),
        us(took[2]),
        us(frag_took),
        total / 1000
    );
    for (phase, t) in [("pages", took[0]), ("kmalloc", took[1]), ("vmalloc", took[2]), ("fragment", frag_took)] {
        if let Some(ns) = t {
            record::emit(records::SweepPhase { phase, ns });
        }
    }
    record::emit(records::SweepPhase { phase: "total", ns: total });
    for (name, t) in [("pages", took[0]), ("kmalloc", took[1]), ("vmalloc", took[2])] {
        if let Some(ns) = t {
            pr_info!(" {} phase took {}", name, Took(ns));
        }
    }
    if let Some(ns) = frag_took {
        pr_info!(" fragment phase took {}", Took(ns));
    }
    pr_info!(" the whole sweep took {}", Took(total));
}

fn alloc_page_demo() {
    pr_info!("Allocating one page with alloc_page()");
    for (name, gfp) in [("GFP_KERNEL", GFP_KERNEL), ("GFP_HIGHUSER_MOVABLE", GFP_HIGHUSER_MOVABLE)] {
        // An owning handle: the page goes back when it is dropped at the end of the turn.
        let Some(held) = Allocation::pages(gfp, 0) else {
            pr_warn!("alloc_page({}) failed", name);
            continue;
        };
        let va = held.addr();
        let Some(page) = page_alloc::virt_to_page(va) else { continue };
        let pa = page_alloc::page_to_phys(page);
        pr_info!(
            " alloc_page({}): struct page {:#x}, pfn {:#x}, phys {:#x}, virt {:#x}, zone {}, migratetype {}",
            name,
            page as *const _ as usize,
            pa.as_u64() >> 12,
            pa.as_u64(),
            va.as_u64(),
            page.page_zone().name(),
            page.pageblock_migratetype().name()
        );
        // SAFETY: `held` owns the page, mapped RW in the linear map, until it is dropped
        // below; no other reference to it exists.
        let bytes = unsafe { core::slice::from_raw_parts_mut(va.as_mut_ptr::<u8>(), PAGE_SIZE) };
        bytes.fill(0x55);
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        // Read back through a second mapping of the frame (a vmap alias), not the address
        // just written: the check covers virt_to_page/page_to_phys and the page tables.
        // Both mappings are Normal write-back, so the PIPT data cache keeps them coherent
        // on real hardware too.
        let good = match vmalloc::vmap(&[pa], Prot::KERNEL_RW, "sweep") {
            Ok(alias) => {
                let p = alias.as_mut_ptr::<u8>() as *const u8;
                // SAFETY: `alias` maps the page `held` owns, for reads only, until the
                // vunmap below.
                let good = (0..PAGE_SIZE).filter(|&i| unsafe { p.add(i).read_volatile() } == 0x55).count();
                let _ = vmalloc::vunmap(alias);
                good
            }
            Err(e) => {
                pr_warn!(" ... vmap of the page failed: {}", e);
                0
            }
        };
        pr_info!(
            " ... filled with 0x55, verified {} of {} bytes through a vmap alias {}",
            good,
            PAGE_SIZE,
            if good == PAGE_SIZE { "OK" } else { "MISMATCH" }
        );
        drop(held);
    }
    pr_info!(
        " GFP_KERNEL vs GFP_HIGHUSER_MOVABLE: on arm64 both come from ZONE_NORMAL and have a linear-map address (there is no highmem). \
         GFP_KERNEL ({}) takes MIGRATE_UNMOVABLE free lists for kernel data that never moves; GFP_HIGHUSER_MOVABLE ({}) takes \
         MIGRATE_MOVABLE lists for user pages that could be migrated, so the two kinds do not fragment each other, and adds \
         __GFP_HARDWALL (cpuset limits). Both may sleep to reclaim; neither may dip below the min watermark.",
        GFP_KERNEL,
        GFP_HIGHUSER_MOVABLE
    );
}

fn line(order: Option<u32>, pages: u64, bytes: u64, what: &str, ok: bool, took: &Took) {
    let api = match what {
        "__get_free_pages" => "gfp",
        other => other,
    };
    record::emit(records::SweepStep { api, order, pages, bytes, ok, ns: took.0 });
    // An injected failure is marked on its own line (fail_dump printed its report).
    let ok = if ok {
        "OK"
    } else if injected_now() {
        "failed (injected)"
    } else {
        "failed"
    };
    match order {
        Some(o) => pr_info!(" order={:2}, pages={:6}, size={:10} ... {} {} ({})", o, pages, bytes, what, ok, took),
        None => pr_info!(" pages={:6}, size={:5} MB ... {} {} ({})", pages, bytes >> 20, what, ok, took),
    }
}

/// Whether the allocation just made was failed by injection (the counters moved since
/// [`mark_injected`]).
fn injected_now() -> bool {
    injected() != LAST_INJECTED.load(core::sync::atomic::Ordering::Relaxed)
}

static LAST_INJECTED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Notes the injection counters before an allocation whose line follows.
fn mark_injected() {
    LAST_INJECTED.store(injected(), core::sync::atomic::Ordering::Relaxed);
}

fn get_free_pages_sweep() -> Option<u32> {
    pr_info!("Allocating memory with __get_free_pages(GFP_ATOMIC, order), MAX_PAGE_ORDER {}", MAX_PAGE_ORDER);
    let mut best = None;
    // One order past the maximum shows where and why the allocator stops.
    for order in 0..=MAX_PAGE_ORDER + 1 {
        if interrupted() {
            return best;
        }
        let pages = 1u64 << order;
        mark_injected();
        let (r, took) = timed(|| Allocation::pages(GFP_ATOMIC, order));
        line(Some(order), pages, pages * PAGE_SIZE as u64, "__get_free_pages", r.is_some(), &took);
        match r {
            // Freed when the handle is dropped, before the next order is tried.
            Some(_held) => best = Some(order),
            None => {
                buddyinfo_line();
                if order > MAX_PAGE_ORDER {
                    pr_info!(
                        " ... order {} is above MAX_PAGE_ORDER {}: no free list that large exists",
                        order,
                        MAX_PAGE_ORDER
                    );
                }
                break;
            }
        }
    }
    best
}

fn kmalloc_sweep() -> Option<usize> {
    pr_info!("Allocating memory with kmalloc(size, GFP_ATOMIC)");
    let mut best = None;
    let mut order = 0u32;
    loop {
        if interrupted() {
            return best;
        }
        let size = PAGE_SIZE << order;
        mark_injected();
        let (r, took) = timed(|| Allocation::kmalloc(size, GFP_ATOMIC));
        line(Some(order), 1 << order, size as u64, "kmalloc", r.is_some(), &took);
        match r {
            Some(_held) => best = Some(size),
            None => {
                buddyinfo_line();
                if order > MAX_PAGE_ORDER {
                    pr_info!(
                        " ... {} bytes needs an order-{} block, above MAX_PAGE_ORDER {}: kmalloc's limit is the buddy's",
                        size,
                        order,
                        MAX_PAGE_ORDER
                    );
                }
                return best;
            }
        }
        order += 1;
    }
}

const VMALLOC_STEP: usize = 4 << 20;

/// How the vmallocs of the sweep were mapped.
#[derive(Default)]
struct HugeStats {
    vmallocs: u64,
    huge_vmallocs: u64,
    blocks: u64,
    pages: u64,
}

fn try_vmalloc(bytes: usize, gfp: Gfp, huge: &mut HugeStats) -> bool {
    let Ok(held) = Allocation::vmalloc(bytes, gfp, "sweep_vmalloc") else {
        return false;
    };
    // Only this area is live in the sweep: the counter is its blocks.
    let blocks = vmalloc::nr_huge_blocks() as u64;
    let pages = (bytes / PAGE_SIZE) as u64;
    huge.vmallocs += 1;
    huge.huge_vmallocs += u64::from(blocks != 0);
    huge.blocks += blocks;
    huge.pages += pages.saturating_sub(blocks * 512);
    // The handle vfrees the area when it is dropped, here.
    drop(held);
    true
}

/// Returns (largest size that succeeded, free bytes when the phase began).
fn vmalloc_sweep(huge: &mut HugeStats) -> Option<(u64, u64)> {
    let free = crate::mm::settled_free_pages() * PAGE_SIZE as u64;
    pr_info!("Allocating memory with vmalloc in 4 MB steps, each freed before the next ({} MB free)", free >> 20);
    let mut size = VMALLOC_STEP;
    let mut last_ok = 0usize;
    loop {
        if interrupted() {
            return None;
        }
        mark_injected();
        let (ok, took) = timed(|| try_vmalloc(size, GFP_KERNEL, huge));
        line(None, (size / PAGE_SIZE) as u64, size as u64, "vmalloc", ok, &took);
        if !ok {
            break;
        }
        last_ok = size;
        size += VMALLOC_STEP;
    }
    // Bisection, to the page, between the last success and the first failure.
    let (mut lo, mut hi) = (last_ok / PAGE_SIZE, size / PAGE_SIZE);
    let quiet = GFP_KERNEL | Gfp::GFP_NOWARN;
    let (_, took) = timed(|| {
        while hi - lo > 1 && !interrupted() {
            let mid = lo + (hi - lo) / 2;
            if try_vmalloc(mid * PAGE_SIZE, quiet, huge) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    });
    if interrupted() {
        return None;
    }
    pr_info!(" bisection: largest vmalloc is {} pages ({} bytes); {} pages fail ({})", lo, lo * PAGE_SIZE, hi, took);
    record::emit(records::SweepBisect {
        pages: lo as u64,
        bytes: (lo * PAGE_SIZE) as u64,
        fail_pages: hi as u64,
        ns: took.0,
    });
    (lo > 0).then_some(((lo * PAGE_SIZE) as u64, free))
}

fn compare_with_linux(order: Option<u32>, kmalloc: Option<usize>, vmalloc: Option<(u64, u64)>) {
    pr_info!("sweep: Linux 5.10 on a Pi 3B+ (the lab documents): __get_free_pages max order 10 (4 MiB, MAX_ORDER 11), kmalloc max 4 MiB, vmalloc ~826 MB of ~900 MB, then the OOM killer");
    if let (Some(o), Some(k), Some((v, f))) = (order, kmalloc, vmalloc) {
        pr_info!(
            "sweep: this kernel: order {} ({} MiB, {}x Linux), kmalloc {} MiB ({}x), vmalloc {} MB of {} MB free and a clean failure; still running",
            o,
            (PAGE_SIZE << o) >> 20,
            (1u64 << o) / 1024,
            k >> 20,
            k / (4 << 20),
            v >> 20,
            f >> 20
        );
    }
}
