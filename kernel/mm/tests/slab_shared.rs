//! The node's shared array (Linux SLAB's `n->shared`) against a model of the two stacks:
//! which objects a flush moves there, which a refill takes back, in which order, and what
//! the drains, the shrink and slabinfo make of it.

use std::collections::VecDeque;
use std::sync::Mutex;

use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::cpu::CpuId;
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_source::PageSource;
use mm::slab::host::HostPages;
use mm::slab::slabinfo::slabinfo;
use mm::slab::{SlabAllocator, SlabError, SlabFlags, SlabReporter};

#[derive(Default)]
struct Rec(Mutex<Vec<SlabError>>);
impl SlabReporter for Rec {
    fn report(&self, e: &SlabError) {
        self.0.lock().unwrap().push(*e);
    }
}

fn with_slab(debug: bool, f: impl FnOnce(&SlabAllocator<'_>, &HostPages)) {
    let pages = HostPages::new(14);
    let rep = Rec::default();
    let slab: Box<SlabAllocator<'_>> = Box::default();
    slab.init(&pages, &rep, 16, debug, 7);
    let (mm, offset) = pages.mem_map();
    slab.set_mem_map(mm, offset);
    f(&slab, &pages);
    assert!(rep.0.lock().unwrap().is_empty(), "no error reported");
}

const CPU: CpuId = CpuId::BOOT;

/// `n` kmallocs of `size` bytes on [`CPU`], then their frees there, oldest first.
fn alloc_then_free(slab: &SlabAllocator<'_>, size: usize, n: usize) {
    let objs: Vec<_> = (0..n).map(|_| slab.kmalloc(size, GFP_KERNEL, CPU).unwrap()).collect();
    for o in objs {
        // SAFETY: live objects, each freed once.
        unsafe { slab.kfree(o.as_ptr(), CPU) };
    }
}

/// One CPU's array and the shared array as the design says they behave: the array is a
/// stack of `limit`; a free into a full array first moves its `batch` oldest objects to
/// the top of the shared array while it has room (the rest to the slabs); an allocation
/// from an empty array first takes the shared array's newest `batch`, in their order.
/// What comes from the slabs is not modelled: `alloc` then says `None`.
struct Model {
    arr: VecDeque<usize>,
    shared: Vec<usize>,
    limit: usize,
    batch: usize,
    shared_limit: usize,
    /// Objects the model sent to the slabs.
    to_slabs: usize,
}

impl Model {
    fn free(&mut self, obj: usize) {
        if self.arr.len() == self.limit {
            for _ in 0..self.batch {
                let old = self.arr.pop_front().unwrap();
                if self.shared.len() < self.shared_limit {
                    self.shared.push(old);
                } else {
                    self.to_slabs += 1;
                }
            }
        }
        self.arr.push_back(obj);
    }

    /// The object the next allocation returns, while the model knows it.
    fn alloc(&mut self) -> Option<usize> {
        if self.arr.is_empty() {
            let t = self.batch.min(self.shared.len());
            let top = self.shared.split_off(self.shared.len() - t);
            self.arr.extend(top);
            if self.arr.len() < self.batch {
                return None;
            }
        }
        self.arr.pop_back()
    }
}

#[test]
fn flushes_fill_the_shared_array_and_refills_take_its_newest_first() {
    with_slab(false, |slab, _| {
        let id = slab.kmalloc_cache(64).unwrap();
        let objs: Vec<usize> =
            (0..1500).map(|_| slab.kmalloc(64, GFP_KERNEL, CPU).unwrap().as_ptr() as usize).collect();
        let st = slab.cache_stats(id).unwrap();
        assert_eq!((st.limit, st.batchcount, st.sharedfactor), (120, 60, 8));
        assert_eq!(st.shared_avail, 0, "nothing flushed yet");
        assert_eq!(st.shared_pages, 1, "taken with the second slab");
        // The model starts from an empty array (the drain sends its objects, unknown to
        // the model, to the slabs).
        slab.drain_cpu(CPU);
        assert_eq!(slab.cache_stats(id).unwrap().cpu_cached, 0);
        let mut m =
            Model { arr: VecDeque::new(), shared: Vec::new(), limit: 120, batch: 60, shared_limit: 480, to_slabs: 0 };
        // Freed in a scrambled order (a stride coprime to 1500).
        for i in 0..objs.len() {
            let o = objs[i * 7 % objs.len()];
            // SAFETY: live objects, each freed once.
            unsafe { slab.kfree(o as *mut u8, CPU) };
            m.free(o);
            if i % 97 == 0 || i == objs.len() - 1 {
                let st = slab.cache_stats(id).unwrap();
                assert_eq!((st.cpu_cached, st.shared_avail), (m.arr.len(), m.shared.len()), "after {} frees", i + 1);
                let live = objs.len() - i - 1;
                assert_eq!(st.active_objs, live + m.arr.len() + m.shared.len(), "cached objects count as in use");
            }
        }
        assert_eq!(m.shared.len(), 480, "the shared array filled up");
        assert!(m.to_slabs > 0, "and the rest went to the slabs");
        // Allocations get the array's objects, then the shared array's, newest batch
        // first, exactly in the model's order.
        let mut predicted = 0;
        let mut got = Vec::new();
        loop {
            let want = m.alloc();
            let o = slab.kmalloc(64, GFP_KERNEL, CPU).unwrap().as_ptr() as usize;
            got.push(o);
            match want {
                Some(w) => assert_eq!(o, w, "allocation {}", got.len()),
                None => break,
            }
            predicted += 1;
        }
        assert_eq!(predicted, 120 + 480, "the full array and the full shared array");
        let st = slab.cache_stats(id).unwrap();
        assert_eq!(st.shared_avail, 0);
        for o in got {
            // SAFETY: live objects, each freed once.
            unsafe { slab.kfree(o as *mut u8, CPU) };
        }
    });
}

#[test]
fn drains_shrink_and_slabinfo_see_the_shared_array() {
    with_slab(false, |slab, pages| {
        let id = slab.kmalloc_cache(128).unwrap();
        alloc_then_free(slab, 128, 400);
        let st = slab.cache_stats(id).unwrap();
        assert!(st.shared_avail > 0 && st.cpu_cached > 0, "{st:?}");
        assert_eq!(slab.slab_bytes(), slab_pages(slab) * PAGE_SIZE, "Slab: counts the shared array's page");
        let mut out = String::new();
        slabinfo(slab, &mut out).unwrap();
        let row = out.lines().find(|l| l.starts_with("kmalloc-128 ")).unwrap();
        assert!(row.contains(": tunables  120   60    8 : slabdata"), "{row}");
        assert!(row.ends_with(&format!("{:>6}", st.shared_avail)), "sharedavail: {row}");

        // A CPU's drain leaves the shared array alone; drain_all empties it into the slabs.
        slab.drain_cpu(CPU);
        let d = slab.cache_stats(id).unwrap();
        assert_eq!((d.cpu_cached, d.shared_avail), (0, st.shared_avail));
        assert_eq!(d.active_objs, st.shared_avail);
        slab.drain_all();
        let d = slab.cache_stats(id).unwrap();
        assert_eq!((d.cpu_cached, d.shared_avail, d.active_objs, d.shared_pages), (0, 0, 0, 1));

        // The shrink gives back the empty slabs and the shared array's page.
        let before = pages.pages_in_use();
        let freed = slab.kmem_cache_shrink(id);
        let s = slab.cache_stats(id).unwrap();
        assert_eq!(freed, (d.num_slabs - s.num_slabs) * d.pagesperslab + 1);
        assert_eq!(pages.pages_in_use(), before - freed);
        assert_eq!(s.shared_pages, 0);
        assert_eq!(slab.slab_bytes(), slab_pages(slab) * PAGE_SIZE);
    });
}

/// Pages in slabs and shared arrays, from the per-cache counters.
fn slab_pages(slab: &SlabAllocator<'_>) -> usize {
    let mut n = 0;
    slab.for_each_cache(|_, s| n += s.num_slabs * s.pagesperslab + s.shared_pages);
    n
}

#[test]
fn a_page_only_from_the_second_slab_and_none_for_debug_or_large_objects() {
    with_slab(false, |slab, _| {
        let id = slab.kmem_cache_create("one-slab", 256, 8, SlabFlags::NONE, None).unwrap();
        let per = slab.cache_stats(id).unwrap().objperslab;
        let objs: Vec<_> = (0..per).map(|_| slab.kmem_cache_alloc(id, GFP_KERNEL, CPU).unwrap()).collect();
        let st = slab.cache_stats(id).unwrap();
        assert_eq!((st.num_slabs, st.shared_pages, st.sharedfactor), (1, 0, 8), "one slab: nothing to share");
        let more = slab.kmem_cache_alloc(id, GFP_KERNEL, CPU).unwrap();
        assert_eq!(slab.cache_stats(id).unwrap().shared_pages, 1, "the second slab brings it");
        for o in objs.into_iter().chain([more]) {
            // SAFETY: live objects of this cache, each freed once.
            unsafe { slab.kmem_cache_free(id, o, CPU) };
        }
        // Objects over a page have none (Linux's `shared = 0` above PAGE_SIZE).
        let big = slab.kmalloc_cache(8192).unwrap();
        alloc_then_free(slab, 8192, 200);
        let st = slab.cache_stats(big).unwrap();
        assert_eq!((st.sharedfactor, st.shared_avail, st.shared_pages), (0, 0, 0), "{st:?}");
        // A page's objects do: 8 batches of 12.
        let page = slab.kmalloc_cache(4096).unwrap();
        alloc_then_free(slab, 4096, 300);
        let st = slab.cache_stats(page).unwrap();
        assert_eq!((st.limit, st.batchcount, st.sharedfactor, st.shared_avail), (24, 12, 8, 96), "{st:?}");
    });
    // A debug cache has none: every free object stays where validation sees it.
    with_slab(true, |slab, _| {
        let id = slab.kmalloc_cache(64).unwrap();
        alloc_then_free(slab, 64, 1000);
        let st = slab.cache_stats(id).unwrap();
        assert_eq!((st.sharedfactor, st.shared_avail, st.shared_pages), (0, 0, 0), "{st:?}");
        assert_eq!(slab.validate_all(), 0);
    });
}

/// Host pages that log the flags and order of every allocation.
struct GfpLog {
    pages: HostPages,
    log: Mutex<Vec<(Gfp, u32)>>,
}

impl PageSource for GfpLog {
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr> {
        self.log.lock().unwrap().push((gfp, order));
        self.pages.alloc_pages(gfp, order)
    }
    fn free_pages(&self, pa: PhysAddr, order: u32) {
        self.pages.free_pages(pa, order)
    }
    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr {
        self.pages.phys_to_virt(pa)
    }
    fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        self.pages.virt_to_phys(va)
    }
    fn set_page_owner(&self, pa: PhysAddr, word: u64) {
        self.pages.set_page_owner(pa, word)
    }
    fn page_owner(&self, pa: PhysAddr) -> u64 {
        self.pages.page_owner(pa)
    }
}

/// The shared array's page is optional: asked for quietly and without retrying hard
/// (`__GFP_NOWARN | __GFP_NORETRY` on the caller's flags, less `__GFP_ZERO`), and when it
/// cannot be had the cache works on without one and asks again with its next slab.
#[test]
fn the_page_is_asked_for_quietly_and_a_cache_does_without_it() {
    let src = GfpLog { pages: HostPages::new(14), log: Mutex::default() };
    let rep = Rec::default();
    let slab: Box<SlabAllocator<'_>> = Box::default();
    slab.init(&src, &rep, 16, false, 7);
    let (mm, offset) = src.pages.mem_map();
    slab.set_mem_map(mm, offset);
    let id = slab.kmem_cache_create("quiet", 256, 8, SlabFlags::NONE, None).unwrap();
    let per = slab.cache_stats(id).unwrap().objperslab;
    src.log.lock().unwrap().clear();
    let zero = GFP_KERNEL | Gfp::GFP_ZERO;
    let mut objs: Vec<_> = (0..per).map(|_| slab.kmem_cache_alloc(id, zero, CPU).unwrap()).collect();
    // The second slab fails its shared page (the allocation after the slab's).
    src.pages.fail_nth(2);
    objs.push(slab.kmem_cache_alloc(id, zero, CPU).unwrap());
    let st = slab.cache_stats(id).unwrap();
    assert_eq!((st.num_slabs, st.shared_pages), (2, 0), "the slab, not the page");
    let quiet = (zero | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY).without(Gfp::GFP_ZERO);
    let log = src.log.lock().unwrap().clone();
    assert_eq!(log.last(), Some(&(quiet, 0)), "{log:?}");
    // Freed, they wait in the array; the shared array, without a page, holds none.
    for o in objs.drain(..) {
        // SAFETY: live objects of this cache, each freed once.
        unsafe { slab.kmem_cache_free(id, o, CPU) };
    }
    let st = slab.cache_stats(id).unwrap();
    assert_eq!((st.shared_avail, st.active_objs), (0, st.cpu_cached), "{st:?}");
    // The next slab brings the page.
    let more: Vec<_> = (0..3 * per).map(|_| slab.kmem_cache_alloc(id, GFP_KERNEL, CPU).unwrap()).collect();
    assert_eq!(slab.cache_stats(id).unwrap().shared_pages, 1);
    let log = src.log.lock().unwrap().clone();
    let quiet_kernel = GFP_KERNEL | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY;
    assert_eq!(log.iter().filter(|&&(g, o)| o == 0 && g.contains(Gfp::GFP_NORETRY)).count(), 2, "{log:?}");
    assert!(log.contains(&(quiet_kernel, 0)), "{log:?}");
    for o in more {
        // SAFETY: live objects of this cache, each freed once.
        unsafe { slab.kmem_cache_free(id, o, CPU) };
    }
    slab.drain_all();
    slab.shrink_all();
    assert_eq!(src.pages.pages_in_use(), 0);
    assert!(rep.0.lock().unwrap().is_empty());
}

/// The point of sharing: objects one CPU flushed are what another CPU's refill gets,
/// without a slab in between.
#[test]
fn a_cpu_refills_from_what_another_flushed() {
    with_slab(false, |slab, _| {
        let id = slab.kmalloc_cache(64).unwrap();
        let (one, two) = (CpuId::of(1), CpuId::of(2));
        let objs: Vec<usize> = (0..300).map(|_| slab.kmalloc(64, GFP_KERNEL, one).unwrap().as_ptr() as usize).collect();
        slab.drain_cpu(one);
        let mut m =
            Model { arr: VecDeque::new(), shared: Vec::new(), limit: 120, batch: 60, shared_limit: 480, to_slabs: 0 };
        for &o in &objs {
            // SAFETY: live objects, each freed once.
            unsafe { slab.kfree(o as *mut u8, one) };
            m.free(o);
        }
        assert_eq!(slab.cache_stats(id).unwrap().shared_avail, m.shared.len());
        assert_eq!(m.shared.len(), 180, "three batches flushed by CPU 1");
        // CPU 2's array is empty: its refill takes CPU 1's newest batch, hottest first.
        let want: Vec<usize> = m.shared[120..].iter().rev().copied().collect();
        let got: Vec<usize> = (0..60).map(|_| slab.kmalloc(64, GFP_KERNEL, two).unwrap().as_ptr() as usize).collect();
        assert_eq!(got, want);
        assert_eq!(slab.cache_stats(id).unwrap().shared_avail, 120);
        for o in got {
            // SAFETY: live objects, each freed once.
            unsafe { slab.kfree(o as *mut u8, two) };
        }
    });
}
