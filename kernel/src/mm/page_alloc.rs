//! The buddy page allocator of the running kernel, and Linux's page API on top of it:
//! `alloc_pages`, `__get_free_pages`, `get_zeroed_page`, `free_pages`, `page_address`...
//!
//! All RAM the memblock map leaves free goes to one Normal zone. Failures print Linux's
//! `page allocation failure` warning with a call trace and the Mem-Info block (unless
//! `__GFP_NOWARN`); a bad free is refused with a warning naming the problem and the
//! caller, and the allocator stays intact.

use crate::printk;
use crate::{pr_info, pr_warn};
use core::fmt::Write;
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SHIFT};
use mm::gfp::Gfp;
use mm::memblock::Memblock;
use mm::page_alloc::{mem_map_overhead, report, AllocFailure, BuddyPageSource, FreeError, Page, PageAllocator};
use mm::pgtable::layout::PAGE_OFFSET;

pub use mm::page_alloc::MAX_PAGE_ORDER;

/// The page allocator.
pub static PAGES: PageAllocator = PageAllocator::new();

static LINEAR_END: AtomicU64 = AtomicU64::new(PAGE_OFFSET);

/// End of the linear map (PAGE_OFFSET + end of RAM).
pub fn linear_map_end() -> u64 {
    LINEAR_END.load(Ordering::Relaxed)
}

fn zero(va: VirtAddr, len: usize) {
    boot::cache::zero_range(va.as_usize(), len);
}

fn on_failure(f: &AllocFailure) {
    report_failure(f);
}

fn on_bad_free(e: &FreeError) {
    pr_warn!("WARNING: page allocator: {} (refused)", e);
    super::page_owner::report_bad_free(e, crate::platform::symbols());
}

/// The buddy allocator as the slab and vmalloc layers see it. Its page_owner hooks are
/// the forms made for a call through a function pointer (a leaf while page_owner is off).
pub static PAGE_SOURCE: BuddyPageSource<'static> =
    BuddyPageSource { on_alloc: super::page_owner::on_alloc_hook, on_free: super::page_owner::on_free_hook, ..SOURCE };

/// [`PAGE_SOURCE`] as a constant, for this module's own calls: each use is a value the
/// compiler sees whole, so its function pointers become direct calls that inline (the
/// CPU number read from TPIDR_EL1, page_owner's `enabled` test), where a call through
/// the static left them out-of-line calls.
const SOURCE: BuddyPageSource<'static> = BuddyPageSource {
    alloc: &PAGES,
    linear_offset: PAGE_OFFSET,
    cpu: crate::percpu::smp_processor_id,
    zero,
    on_failure,
    on_bad_free,
    on_alloc: super::page_owner::on_alloc,
    on_free: super::page_owner::on_free,
};

/// Places the page descriptors and gives every free page to the buddy allocator.
pub fn init(mb: &mut Memblock) {
    let ram_end = mb.memory().iter().map(|r| r.base + r.size).max().unwrap_or(0);
    let ram_start = mb.memory().iter().map(|r| r.base).min().unwrap_or(0);
    LINEAR_END.store(PAGE_OFFSET + ram_end, Ordering::Relaxed);
    let nr_pages = ((ram_end - ram_start) >> PAGE_SHIFT) as usize;
    let (per_page, bytes) = mem_map_overhead(nr_pages);
    let bytes = bytes as u64;
    let pa = match mb.alloc_named(bytes, 4096, "mem_map") {
        Ok(Some(pa)) => pa,
        _ => panic!("mem_map: no memory for {nr_pages} page descriptors"),
    };
    let base = super::phys_to_virt(pa).as_mut_ptr::<Page>();
    for i in 0..nr_pages {
        // SAFETY: [pa, pa + bytes) was just reserved for the descriptors and is mapped
        // read/write by the linear map; each slot is written once before use.
        unsafe { base.add(i).write(Page::new()) };
    }
    // SAFETY: initialised above, reserved in memblock forever, never moved.
    let mem_map: &'static [Page] = unsafe { core::slice::from_raw_parts(base, nr_pages) };
    // Off unless asked for, as in Linux: every allocation walks and hashes its call trace.
    let owner_on = crate::cmdline::option(crate::platform::cmdline(), "page_owner") == Some("on");
    super::page_owner::init(mb, ram_start >> PAGE_SHIFT, nr_pages, owner_on);
    if super::page_owner::enabled() && !PAGES.movable_ops.register_copy_owner(super::page_owner::on_migrate) {
        pr_warn!("page_owner: another migration hook is registered: migrated pages keep no record");
    }
    if let Err(e) = PAGES.init_from_memblock(mem_map, Pfn(ram_start >> PAGE_SHIFT), PhysAddr::new(0), mb) {
        panic!("page allocator: init failed: {e:?}");
    }
    pr_info!("On node 0 totalpages: {}", nr_pages);
    pr_info!(
        "  Normal zone: {} pages used for memmap ({} bytes per page, {} KiB at {:#x})",
        bytes.div_ceil(4096),
        per_page,
        bytes >> 10,
        pa.as_u64()
    );
    pr_info!(
        "Built 1 zonelists, mobility grouping on.  Total pages: {}; MAX_PAGE_ORDER {} ({} MiB blocks)",
        PAGES.snapshot().nr_managed_pages(),
        MAX_PAGE_ORDER,
        (1u64 << (MAX_PAGE_ORDER + PAGE_SHIFT)) >> 20
    );
    declare_cma();
}

/// `cma=SIZE`: the contiguous memory area, declared while memory is still free (Linux
/// reserves it from memblock in `cma_declare_contiguous`; here the buddy lists give it,
/// which is the same at this point and needs no second hand-over).
fn declare_cma() {
    match crate::cmdline::cma(crate::platform::cmdline()) {
        Ok(None) => {}
        Ok(Some(0)) => pr_info!("cma: size 0, no CMA area"),
        Ok(Some(bytes)) => match mm::page_alloc::Cma::new(&PAGES).declare(bytes) {
            Some(c) => {
                pr_info!("cma: Reserved {} MiB at {:#018x}", (c.pages << PAGE_SHIFT) >> 20, c.base.0 << PAGE_SHIFT)
            }
            None => pr_warn!("cma: Failed to reserve {} MiB", bytes >> 20),
        },
        Err((v, why)) => pr_warn!(
            "cma={}: {why}: expected a size (e.g. 16M or 0x1000000), no CMA area",
            crate::cmdline::Escaped(v.as_bytes(), 40)
        ),
    }
}

/// Prints Linux's allocation-failure report: for an injected failure `fail_dump`'s
/// `FAULT_INJECTION: forcing a failure.` and a call trace; for an order above MAX_PAGE_ORDER the
/// `WARN_ON` of `__alloc_pages` (as in the lab's log for order 11), otherwise
/// `warn_alloc`'s `page allocation failure` line; then CPU, call trace and Mem-Info.
/// Never inlined: the call trace starts from this function's frame, so its first line
/// is always the allocating caller, whatever the compiler inlines.
#[inline(never)]
pub fn report_failure(f: &AllocFailure) {
    if !f.should_warn() {
        return;
    }
    let fp = boot::cpu::fp() as u64;
    if let AllocFailure::Injected { .. } = f {
        // Linux fails the request before the slow path: no warn_alloc, no Mem-Info; the
        // report says it was injected.
        return super::fail_dump::fail_dump("fail_page_alloc", &PAGES.fail.attr.knobs(), fp);
    }
    printk::with_console(|w| {
        let too_large = matches!(f, AllocFailure::OrderTooLarge { .. });
        if let AllocFailure::OrderTooLarge { order, gfp } = f {
            let _ = writeln!(w, "------------[ cut here ]------------");
            let _ = writeln!(
                w,
                "WARNING: CPU: {} PID: 0 at mm/page_alloc.c: __alloc_pages: order:{} > MAX_PAGE_ORDER {}, mode:{}",
                crate::percpu::smp_processor_id(),
                order,
                MAX_PAGE_ORDER,
                gfp
            );
        } else {
            let _ = report::warn_alloc(w, "swapper/0", f);
        }
        let _ = crate::arch::aarch64::traps::context_with(|ctx| crate::oops::write_dump_stack(w, fp, ctx));
        if too_large {
            let _ = writeln!(w, "---[ end trace 0000000000000000 ]---");
        } else {
            let _ = mm::page_alloc::report::show_free_areas(&PAGES, w);
        }
    });
}

/// Linux's `alloc_pages`: `2^order` contiguous pages, or `None` (reported unless
/// `__GFP_NOWARN`), through [`PAGE_SOURCE`], which zeroes and reports.
pub fn alloc_pages(gfp: Gfp, order: u32) -> Option<&'static Page> {
    SOURCE.alloc(gfp, order).ok().and_then(|pfn| PAGES.pfn_to_page(pfn))
}

/// Linux's `alloc_page`.
pub fn alloc_page(gfp: Gfp) -> Option<&'static Page> {
    alloc_pages(gfp, 0)
}

fn pfn_to_virt(pfn: Pfn) -> VirtAddr {
    super::phys_to_virt(pfn.phys())
}

/// Linux's `__get_free_pages`: the linear-map address of `2^order` pages.
#[inline]
pub fn __get_free_pages(gfp: Gfp, order: u32) -> Option<VirtAddr> {
    SOURCE.alloc(gfp, order).ok().map(pfn_to_virt)
}

/// Linux's `get_zeroed_page`.
pub fn get_zeroed_page(gfp: Gfp) -> Option<VirtAddr> {
    __get_free_pages(gfp | Gfp::GFP_ZERO, 0)
}

/// Linux's `page_to_pfn`.
pub fn page_to_pfn(page: &Page) -> Pfn {
    PAGES.page_to_pfn(page).expect("page descriptor outside mem_map")
}

/// Linux's `page_to_phys`.
pub fn page_to_phys(page: &Page) -> PhysAddr {
    page_to_pfn(page).phys()
}

/// Linux's `page_address`: the page's linear-map address.
pub fn page_address(page: &Page) -> VirtAddr {
    pfn_to_virt(page_to_pfn(page))
}

/// Linux's `pfn_to_page`.
pub fn pfn_to_page(pfn: Pfn) -> Option<&'static Page> {
    PAGES.pfn_to_page(pfn)
}

/// Linux's `virt_to_page` for linear-map addresses.
pub fn virt_to_page(va: VirtAddr) -> Option<&'static Page> {
    let v = va.as_u64();
    if !(PAGE_OFFSET..linear_map_end()).contains(&v) {
        return None;
    }
    PAGES.pfn_to_page(super::virt_to_phys(va).pfn())
}

/// Linux's `__free_pages`. Bad input is refused with a warning naming the caller.
#[track_caller]
pub fn __free_pages(page: &Page, order: u32) -> Result<(), FreeError> {
    free_pfn(page_to_pfn(page), order, Location::caller())
}

/// Linux's `free_pages` by linear-map address. Bad input (an address the allocator never
/// gave, the wrong order, a double free, an unaligned address) is refused with a warning
/// naming the problem and the caller; the allocator stays intact.
///
/// Inline, the good case in a few instructions: the address goes straight to the page
/// allocator, whose `pfn_to_page` bounds check refuses every address outside the linear
/// map (below `PAGE_OFFSET` the subtraction wraps to a frame far above RAM) and every
/// unaligned one (the frame number is the physical address rotated right by
/// `PAGE_SHIFT`, so an offset within the page lands in the top bits: a frame far above
/// RAM too, with no test of its own). A refusal is then told apart, and warned about,
/// out of line (`refuse_free`).
#[track_caller]
#[inline(always)]
pub fn free_pages(addr: VirtAddr, order: u32) -> Result<(), FreeError> {
    let pfn = Pfn(super::virt_to_phys(addr).as_u64().rotate_right(PAGE_SHIFT));
    match SOURCE.free(pfn, order) {
        Ok(()) => Ok(()),
        Err(e) => Err(refuse_free(addr, order, e, Location::caller())),
    }
}

/// [`free_pages`]' refusals, with their warnings: an address outside the linear map, an
/// unaligned one, or the page allocator's reason (`e`) for one inside it.
#[cold]
#[inline(never)]
fn refuse_free(addr: VirtAddr, order: u32, e: FreeError, caller: &Location<'_>) -> FreeError {
    let v = addr.as_u64();
    if !(PAGE_OFFSET..linear_map_end()).contains(&v) {
        pr_warn!(
            "WARNING: free_pages: {:#x} is not a linear-map address (called from {}:{}); refused",
            v,
            caller.file(),
            caller.line()
        );
        return FreeError::OutsideMemMap { pfn: 0 };
    }
    if !addr.is_page_aligned() {
        pr_warn!(
            "WARNING: free_pages: {:#x} is not page aligned (called from {}:{}); refused",
            v,
            caller.file(),
            caller.line()
        );
        return FreeError::Unaligned { pfn: super::virt_to_phys(addr).as_u64() >> PAGE_SHIFT, order };
    }
    report_refused(e, caller)
}

fn free_pfn(pfn: Pfn, order: u32, caller: &Location<'_>) -> Result<(), FreeError> {
    SOURCE.free(pfn, order).map_err(|e| report_refused(e, caller))
}

/// The warning for a free the page allocator refused (it is unchanged).
#[cold]
#[inline(never)]
fn report_refused(e: FreeError, caller: &Location<'_>) -> FreeError {
    pr_warn!("WARNING: free_pages: {} (called from {}:{}); refused", e, caller.file(), caller.line());
    super::page_owner::report_bad_free(&e, crate::platform::symbols());
    e
}
