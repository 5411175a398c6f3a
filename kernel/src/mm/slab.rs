//! kmalloc and the slab caches of the running kernel. Debug checks (poisoning, red
//! zones, double and invalid free detection) are on with `slub_debug` on the kernel
//! command line, as in Linux; they cost time in proportion to object sizes.

use super::slab_hooks;
use crate::printk;
use core::fmt::Write;
use core::ptr::NonNull;
use mm::gfp::Gfp;
use mm::slab::{SlabAllocator, SlabError, SlabReporter};

/// The slab allocator (kmalloc caches and kmem_cache_create users).
pub static SLAB: SlabAllocator<'static> = SlabAllocator::new();

static SLAB_DEBUG: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether slab debugging is on (`slub_debug` on the command line).
pub fn slab_debug() -> bool {
    SLAB_DEBUG.load(core::sync::atomic::Ordering::Relaxed)
}

struct Reporter;

impl SlabReporter for Reporter {
    fn fault_injected(&self, gfp: Gfp) {
        self.injected(gfp)
    }

    fn report(&self, err: &SlabError) {
        let fp = boot::cpu::fp() as u64;
        printk::with_console(|w| {
            let _ = writeln!(w, "{err}");
            let _ = writeln!(w, "-----------------------------------------------------------------------------");
            let _ = crate::arch::aarch64::traps::context_with(|ctx| crate::oops::write_dump_stack(w, fp, ctx));
            let _ = super::page_owner::dump_page_of(w, err.object as u64, crate::platform::symbols());
            let _ = writeln!(w, "{}", mm::slab::FixLine(err));
        });
    }
}

impl Reporter {
    #[inline(never)]
    fn injected(&self, gfp: Gfp) {
        if !gfp.contains(Gfp::GFP_NOWARN) {
            super::fail_dump::fail_dump("failslab", &SLAB.fail.attr.knobs(), boot::cpu::fp() as u64);
        }
    }
}

static REPORTER: Reporter = Reporter;

/// Creates the kmalloc caches, with debugging if `debug`.
pub fn init(debug: bool) {
    SLAB_DEBUG.store(debug, core::sync::atomic::Ordering::Relaxed);
    let seed = board::timer::ticks() ^ 0x9e37_79b9_7f4a_7c15;
    SLAB.init(&super::page_alloc::PAGE_SOURCE, &REPORTER, super::page_alloc::MAX_PAGE_ORDER, debug, seed);
    // kfree's fast path reads an object's cache from its page descriptor (virt_to_slab).
    if let Some(mm) = super::page_alloc::PAGES.mem_map() {
        SLAB.set_mem_map(mm, super::page_alloc::PAGE_SOURCE.linear_offset);
    }
    crate::pr_info!(
        "SLUB: kmalloc-8 .. kmalloc-8k ready, larger requests from the page allocator; debug {}",
        if debug {
            "on (slub_debug: poison, red zones, free checks)"
        } else {
            "off (add slub_debug to the command line)"
        }
    );
}

#[inline(always)]
fn cpu() -> mm::cpu::CpuId {
    crate::percpu::smp_processor_id()
}

/// Linux's `kmalloc`.
///
/// The fast path is the gate byte of the debugging hooks ([`slab_hooks`]: KFENCE's
/// sample due, kmemleak on) and the slab's own fast path; any hook takes the path out of
/// line.
#[inline]
pub fn kmalloc(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    if slab_hooks::pending() != 0 {
        return kmalloc_hooked(size, gfp);
    }
    SLAB.kmalloc(size, gfp, cpu())
}

/// Linux's `kzalloc`.
pub fn kzalloc(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    // The pool's objects start zeroed.
    let p = super::kfence::alloc(size, gfp).or_else(|| SLAB.kzalloc(size, gfp, cpu()));
    if let Some(p) = p {
        super::kmemleak::on_alloc(p.as_ptr(), size);
    }
    p
}

/// [`kmalloc`] with a hook pending: a KFENCE sample that falls due, kmemleak's tracking.
#[inline(never)]
fn kmalloc_hooked(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    let p = super::kfence::alloc(size, gfp).or_else(|| SLAB.kmalloc(size, gfp, cpu()));
    if let Some(p) = p {
        super::kmemleak::on_alloc(p.as_ptr(), size);
    }
    p
}

/// Linux's `ksize`: the usable size of an object.
pub fn ksize(p: *const u8) -> usize {
    if super::kfence::is_kfence_address(p as u64) {
        return super::kfence::ksize(p as u64).unwrap_or(0);
    }
    SLAB.ksize(p)
}

/// Linux's `kfree`.
///
/// The fast path is kmemleak's bit of the hooks' gate byte and the slab's fast path; a
/// KFENCE object is not in the linear map, so the slab's fast path never takes it, and
/// the pool's range is checked after it, out of line.
///
/// # Safety
/// `p` must come from kmalloc/kzalloc/krealloc (or be null / the zero-size pointer) and
/// not be used after this call. With slab debugging, a double or invalid free is
/// detected and refused; without it, it is undefined behaviour, as in Linux.
#[inline]
pub unsafe fn kfree(p: *mut u8) {
    if slab_hooks::pending() & slab_hooks::KMEMLEAK != 0 {
        // SAFETY: forwarded contract.
        return unsafe { kfree_hooked(p) };
    }
    // SAFETY: forwarded contract.
    if unsafe { SLAB.kfree_fast(p, cpu()) } {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { kfree_slow(p) }
}

/// [`kfree`] with kmemleak on: the object is untracked before it is freed (once freed,
/// another CPU may get the address and track it again).
///
/// # Safety
/// As for [`kfree`].
#[inline(never)]
unsafe fn kfree_hooked(p: *mut u8) {
    super::kmemleak::on_free(p);
    // SAFETY: forwarded contract.
    if unsafe { SLAB.kfree_fast(p, cpu()) } {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { kfree_slow(p) }
}

/// [`kfree`] past the slab's fast path: a KFENCE object, or the slab's slow path.
///
/// # Safety
/// As for [`kfree`].
#[inline(never)]
unsafe fn kfree_slow(p: *mut u8) {
    if super::kfence::is_kfence_address(p as u64) {
        return super::kfence::free(p as u64);
    }
    // SAFETY: forwarded contract.
    unsafe { SLAB.kfree_slow(p, cpu()) }
}

// The slab's fast path finds an object's page from its linear-map address; KFENCE's
// pool is mapped in the vmalloc range, which lies outside the linear map, so a pool
// object never passes that path and reaches `kfree_slow`'s range check.
const _: () = assert!(
    mm::pgtable::layout::VMALLOC_START >= mm::pgtable::layout::PAGE_OFFSET + mm::pgtable::layout::LINEAR_MAP_SIZE
);

/// Linux's `krealloc`.
///
/// # Safety
/// As [`kfree`] for `p`; on success the old pointer must no longer be used.
pub unsafe fn krealloc(p: *mut u8, new_size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    // SAFETY: forwarded contract.
    let n = unsafe { krealloc_untracked(p, new_size, gfp) }?;
    super::kmemleak::on_free(p);
    super::kmemleak::on_alloc(n.as_ptr(), new_size);
    Some(n)
}

/// [`krealloc`] without kmemleak's bookkeeping.
///
/// # Safety
/// As [`krealloc`].
unsafe fn krealloc_untracked(p: *mut u8, new_size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    if super::kfence::is_kfence_address(p as u64) {
        // A sampled object moves to the slab: copy what fits, free the pool's.
        let old = super::kfence::ksize(p as u64)?;
        let n = SLAB.kmalloc(new_size, gfp, cpu())?;
        // SAFETY: both are live objects of at least `min(old, new_size)` bytes.
        unsafe { core::ptr::copy_nonoverlapping(p, n.as_ptr(), old.min(new_size)) };
        super::kfence::free(p as u64);
        return Some(n);
    }
    // SAFETY: forwarded contract.
    unsafe { SLAB.krealloc(p, new_size, gfp, cpu()) }
}
