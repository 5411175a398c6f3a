//! kmalloc, kmem_cache and slabinfo behaviour over host pages.

use mm::cpu::CpuId;
use std::sync::Mutex;

use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_ATOMIC, GFP_KERNEL};
use mm::page_alloc::page::PageState;
use mm::page_source::PageSource;
use mm::slab::host::HostPages;
use mm::slab::kmalloc::{kmalloc_index, SlabDestroyError};
use mm::slab::slabinfo::{meminfo_slab_kb, slabinfo};
use mm::slab::{SlabAllocator, SlabError, SlabFlags, SlabReporter, KMALLOC_NAMES, MAX_CACHES, ZERO_SIZE_PTR};

#[derive(Default)]
struct Rec(Mutex<Vec<SlabError>>);
impl SlabReporter for Rec {
    fn report(&self, e: &SlabError) {
        self.0.lock().unwrap().push(*e);
    }
}

fn with_slab(order: u32, debug: bool, f: impl FnOnce(&SlabAllocator<'_>, &HostPages, &Rec)) {
    let pages = HostPages::new(order);
    let rep = Rec::default();
    let slab: Box<SlabAllocator<'_>> = Box::default();
    slab.init(&pages, &rep, 16, debug, 42);
    let (mm, offset) = pages.mem_map();
    slab.set_mem_map(mm, offset);
    f(&slab, &pages, &rep);
}

fn leak_check(slab: &SlabAllocator<'_>, pages: &HostPages) {
    slab.drain_all();
    slab.shrink_all();
    assert_eq!(pages.pages_in_use(), 0);
    assert_eq!(slab.slab_bytes(), 0);
}

#[test]
fn kmalloc_index_like_linux() {
    let cases = [
        (1, "kmalloc-8"),
        (8, "kmalloc-8"),
        (9, "kmalloc-16"),
        (17, "kmalloc-32"),
        (33, "kmalloc-64"),
        (65, "kmalloc-96"),
        (96, "kmalloc-96"),
        (97, "kmalloc-128"),
        (129, "kmalloc-192"),
        (192, "kmalloc-192"),
        (193, "kmalloc-256"),
        (257, "kmalloc-512"),
        (1000, "kmalloc-1k"),
        (2048, "kmalloc-2k"),
        (4000, "kmalloc-4k"),
        (8192, "kmalloc-8k"),
    ];
    for (size, name) in cases {
        assert_eq!(KMALLOC_NAMES[kmalloc_index(size)].0, name, "size {}", size);
    }
    for size in 1..=8192 {
        let class = KMALLOC_NAMES[kmalloc_index(size)].1;
        assert!(class >= size && (kmalloc_index(size) == 0 || KMALLOC_NAMES[kmalloc_index(size) - 1].1 < size));
    }
}

#[test]
fn every_class_allocates_aligned_and_frees_back() {
    with_slab(14, false, |slab, pages, rep| {
        let mut ptrs = Vec::new();
        for (_, size) in KMALLOC_NAMES {
            for _ in 0..100 {
                let p = slab.kmalloc(size, GFP_KERNEL, CpuId::of(0)).unwrap();
                let align = if size.is_power_of_two() { size } else { 8 };
                assert_eq!(p.as_ptr() as usize % align, 0);
                assert_eq!(slab.ksize(p.as_ptr()), size);
                // SAFETY: a fresh object of `size` bytes.
                unsafe { p.as_ptr().write_bytes(0xee, size) };
                ptrs.push(p);
            }
        }
        assert!(slab.slab_bytes() > 0);
        for p in ptrs {
            // SAFETY: live objects from this allocator.
            unsafe { slab.kfree(p.as_ptr(), CpuId::of(1)) };
        }
        leak_check(slab, pages);
        assert!(rep.0.lock().unwrap().is_empty());
    });
}

#[test]
fn zero_size_overflow_and_large() {
    with_slab(14, true, |slab, pages, rep| {
        let z = slab.kmalloc(0, GFP_KERNEL, CpuId::of(0)).unwrap();
        assert_eq!(z.as_ptr() as usize, ZERO_SIZE_PTR);
        assert_eq!(slab.ksize(z.as_ptr()), 0);
        // SAFETY: ZERO_SIZE_PTR and null are accepted and ignored.
        unsafe {
            slab.kfree(z.as_ptr(), CpuId::of(0));
            slab.kfree(core::ptr::null_mut(), CpuId::of(0));
        }
        assert!(slab.kmalloc(usize::MAX, GFP_KERNEL, CpuId::of(0)).is_none());
        assert!(slab.kmalloc(usize::MAX - PAGE_SIZE, GFP_KERNEL, CpuId::of(0)).is_none());
        // Beyond the largest order the page source is not even asked: with its next call
        // set to fail, that failure is still waiting for the request after.
        pages.fail_nth(1);
        assert!(slab.kmalloc((PAGE_SIZE << 16) + 1, GFP_KERNEL, CpuId::of(0)).is_none(), "beyond max order");
        assert!(slab.kmalloc(8193, GFP_KERNEL, CpuId::of(0)).is_none(), "the page source was asked before");
        // Large: 8193 bytes -> order 2 compound block (arena has only 2^14 pages).
        let p = slab.kmalloc(8193, GFP_KERNEL, CpuId::of(0)).unwrap();
        assert_eq!(p.as_ptr() as usize % PAGE_SIZE, 0);
        assert_eq!(slab.ksize(p.as_ptr()), 4 * PAGE_SIZE);
        // A pointer inside the block is not one kmalloc returned.
        assert_eq!(slab.ksize(p.as_ptr().wrapping_add(8)), 0);
        assert_eq!(slab.ksize(p.as_ptr().wrapping_add(PAGE_SIZE)), 0);
        assert_eq!(slab.large_bytes(), 4 * PAGE_SIZE);
        // A compound block, as Linux's `kmalloc_large` asks (`__GFP_COMP`): head, then tails.
        let pa = pages.virt_to_phys(VirtAddr::new(p.as_ptr() as u64)).unwrap();
        let pfn = pa.as_u64() / PAGE_SIZE as u64;
        let state = |i: u64| pages.buddy().pfn_to_page(mm::addr::Pfn(pfn + i)).unwrap().state();
        assert_eq!(state(0), PageState::Head { order: 2, compound: true, tail_owner: false });
        for i in 1..4 {
            assert_eq!(state(i), PageState::Tail, "page {i} of the large block");
        }
        let q = slab.kzalloc(5 * PAGE_SIZE, GFP_KERNEL, CpuId::of(0)).unwrap();
        assert_eq!(slab.ksize(q.as_ptr()), 8 * PAGE_SIZE);
        // SAFETY: `q` has 8 pages.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr(), 8 * PAGE_SIZE) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: live objects.
        unsafe {
            slab.kfree(p.as_ptr(), CpuId::of(0));
            slab.kfree(q.as_ptr(), CpuId::of(3));
        }
        assert_eq!(slab.large_bytes(), 0);
        leak_check(slab, pages);
        assert!(rep.0.lock().unwrap().is_empty());
    });
}

#[test]
fn max_order_block_is_served() {
    // 2^17 pages of (lazily committed) host memory: order 16 = 256 MiB succeeds.
    with_slab(17, false, |slab, pages, _| {
        let p = slab.kmalloc(PAGE_SIZE << 16, GFP_KERNEL, CpuId::of(0)).unwrap();
        assert_eq!(slab.ksize(p.as_ptr()), PAGE_SIZE << 16);
        // SAFETY: live object.
        unsafe { slab.kfree(p.as_ptr(), CpuId::of(0)) };
        leak_check(slab, pages);
    });
}

#[test]
fn kzalloc_krealloc_keep_contents() {
    with_slab(12, true, |slab, pages, rep| {
        let p = slab.kzalloc(100, GFP_KERNEL, CpuId::of(0)).unwrap();
        // SAFETY: 100 live bytes (ksize 128).
        let s = unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), 100) };
        assert!(s.iter().all(|&b| b == 0));
        for (i, b) in s.iter_mut().enumerate() {
            *b = i as u8;
        }
        // Fits in kmalloc-128: same object.
        // SAFETY: live object.
        let q = unsafe { slab.krealloc(p.as_ptr(), 120, GFP_KERNEL, CpuId::of(1)) }.unwrap();
        assert_eq!(q, p);
        // Grows: copied.
        // SAFETY: live object.
        let r = unsafe { slab.krealloc(q.as_ptr(), 5000, GFP_KERNEL, CpuId::of(2)) }.unwrap();
        assert_ne!(r, q);
        // SAFETY: at least 100 live bytes.
        let s = unsafe { core::slice::from_raw_parts(r.as_ptr(), 100) };
        assert!(s.iter().enumerate().all(|(i, &b)| b == i as u8));
        // Grows into a compound block and back down.
        // SAFETY: live object.
        let big = unsafe { slab.krealloc(r.as_ptr(), 40000, GFP_KERNEL, CpuId::of(3)) }.unwrap();
        // SAFETY: live object.
        let small = unsafe { slab.krealloc(big.as_ptr(), 50, GFP_KERNEL, CpuId::of(0)) }.unwrap();
        // SAFETY: 50 live bytes.
        let s = unsafe { core::slice::from_raw_parts(small.as_ptr(), 50) };
        assert!(s.iter().enumerate().all(|(i, &b)| b == i as u8));
        // SAFETY: live object; size 0 frees it.
        let z = unsafe { slab.krealloc(small.as_ptr(), 0, GFP_KERNEL, CpuId::of(0)) }.unwrap();
        assert_eq!(z.as_ptr() as usize, ZERO_SIZE_PTR);
        leak_check(slab, pages);
        assert!(rep.0.lock().unwrap().is_empty());
    });
}

#[test]
fn remote_frees_and_drain() {
    with_slab(12, false, |slab, pages, _| {
        let ptrs: Vec<_> = (0..1000).map(|i| slab.kmalloc(64, GFP_KERNEL, CpuId::of(i % 4)).unwrap()).collect();
        let mut sorted: Vec<usize> = ptrs.iter().map(|p| p.as_ptr() as usize).collect();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
        for (i, p) in ptrs.iter().enumerate() {
            // SAFETY: live objects, freed on another CPU than the allocating one.
            unsafe { slab.kfree(p.as_ptr(), CpuId::of((i + 1) % 4)) };
        }
        let id = slab.kmalloc_cache(64).unwrap();
        let st = slab.cache_stats(id).unwrap();
        assert!(st.cpu_cached > 0);
        leak_check(slab, pages);
    });
}

#[test]
fn empty_slab_reserve_bounded() {
    with_slab(12, false, |slab, pages, _| {
        let ptrs: Vec<_> = (0..5000).map(|_| slab.kmalloc(512, GFP_KERNEL, CpuId::of(0)).unwrap()).collect();
        let peak = pages.pages_in_use();
        for p in ptrs {
            // SAFETY: live object.
            unsafe { slab.kfree(p.as_ptr(), CpuId::of(0)) };
        }
        let id = slab.kmalloc_cache(512).unwrap();
        let st = slab.cache_stats(id).unwrap();
        // Only the slabs of the per-CPU array's and the shared array's objects plus at
        // most FREE_SLAB_RESERVE empty slabs remain.
        assert_eq!(st.shared_avail, 8 * st.batchcount, "the shared array filled up first");
        assert!(st.num_slabs <= 2 + (st.limit + st.shared_avail).div_ceil(st.objperslab) + 1, "{:?}", st);
        assert!(pages.pages_in_use() < peak / 10);
        leak_check(slab, pages);
    });
}

#[test]
fn fault_injection_fails_cleanly() {
    with_slab(12, true, |slab, pages, rep| {
        pages.fail_nth(1);
        assert!(slab.kmalloc(32, GFP_ATOMIC, CpuId::of(0)).is_none());
        let p = slab.kmalloc(32, GFP_ATOMIC, CpuId::of(0)).unwrap();
        pages.fail_after(Some(0));
        assert!(slab.kmalloc(20000, GFP_KERNEL, CpuId::of(0)).is_none());
        let mut held = Vec::new();
        // kmalloc-32 keeps serving from its slab until it is exhausted, then fails.
        while let Some(q) = slab.kmalloc(32, GFP_KERNEL, CpuId::of(0)) {
            held.push(q);
        }
        pages.fail_after(None);
        // SAFETY: live objects.
        unsafe {
            slab.kfree(p.as_ptr(), CpuId::of(0));
            for q in held {
                slab.kfree(q.as_ptr(), CpuId::of(2));
            }
        }
        leak_check(slab, pages);
        assert!(rep.0.lock().unwrap().is_empty());
    });
}

static CTOR_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// # Safety
/// `obj` points to at least 24 writable bytes.
unsafe fn ctor(obj: *mut u8) {
    CTOR_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: the cache hands 24 bytes.
    unsafe { obj.cast::<u64>().write_unaligned(0xfeed_face) };
}

#[test]
fn kmem_cache_create_ctor_destroy() {
    for debug in [false, true] {
        with_slab(12, debug, |slab, pages, rep| {
            let id = slab.kmem_cache_create("task_struct", 24, 8, SlabFlags::HWCACHE_ALIGN, Some(ctor)).unwrap();
            let objs: Vec<_> =
                (0..200).map(|i| slab.kmem_cache_alloc(id, GFP_KERNEL, CpuId::of(i % 4)).unwrap()).collect();
            for o in &objs {
                assert_eq!(o.as_ptr() as usize % 8, 0);
                // SAFETY: constructed object.
                assert_eq!(unsafe { o.as_ptr().cast::<u64>().read() }, 0xfeed_face);
            }
            assert!(CTOR_CALLS.load(std::sync::atomic::Ordering::Relaxed) >= 200);
            match slab.kmem_cache_destroy(id) {
                Err(e @ SlabDestroyError::Busy { name: "task_struct", active }) => {
                    // The per-CPU arrays drained first: exactly the live objects.
                    assert_eq!(active, 200);
                    assert!(e.to_string().contains("Slab cache still has objects"));
                }
                other => panic!("{:?}", other),
            }
            for o in objs {
                // SAFETY: live objects of `id`.
                unsafe { slab.kmem_cache_free(id, o, CpuId::of(3)) };
            }
            assert_eq!(slab.kmem_cache_destroy(id), Ok(()));
            assert!(slab.kmem_cache_alloc(id, GFP_KERNEL, CpuId::of(0)).is_none());
            assert_eq!(slab.kmem_cache_destroy(slab.kmalloc_cache(8).unwrap()), Err(SlabDestroyError::BadCache));
            leak_check(slab, pages);
            assert!(rep.0.lock().unwrap().is_empty());
        });
    }
}

#[test]
fn registry_is_bounded_and_slots_reused() {
    with_slab(12, false, |slab, _, _| {
        let mut ids = Vec::new();
        while let Ok(id) = slab.kmem_cache_create("filler", 40, 8, SlabFlags::NONE, None) {
            ids.push(id);
        }
        assert_eq!(ids.len(), MAX_CACHES - KMALLOC_NAMES.len());
        slab.kmem_cache_destroy(ids[3]).unwrap();
        assert_eq!(slab.kmem_cache_create("again", 40, 8, SlabFlags::NONE, None), Ok(ids[3]));
        assert!(slab.kmem_cache_create("bad", 40, 24, SlabFlags::NONE, None).is_err());
    });
}

#[test]
fn calculate_order_keeps_waste_small() {
    with_slab(12, false, |slab, _, _| {
        slab.for_each_cache(|_, s| {
            let slab_bytes = s.pagesperslab * PAGE_SIZE;
            let waste = slab_bytes - s.objperslab * s.size;
            assert!(waste * 4 <= slab_bytes, "{} wastes {} of {}", s.name, waste, slab_bytes);
            assert!(s.objperslab >= 2, "{}", s.name);
        });
    });
}

#[test]
fn slabinfo_exact_format() {
    with_slab(12, false, |slab, _, _| {
        let id = slab.kmem_cache_create("dentry", 192, 8, SlabFlags::NONE, None).unwrap();
        let objs: Vec<_> = (0..3).map(|_| slab.kmem_cache_alloc(id, GFP_KERNEL, CpuId::of(0)).unwrap()).collect();
        let mut out = String::new();
        slabinfo(slab, &mut out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "slabinfo - version: 2.1");
        assert_eq!(
            lines[1],
            "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
        );
        // Order-0 slabs of 21 objects of 192 bytes; a refill grows one slab when none
        // has free objects (Linux's cache_alloc_refill) and takes all 21 of them; per-CPU
        // cached objects count as active like in Linux SLAB.
        // Both have a shared array of 8 batches (empty: nothing was flushed).
        assert_eq!(lines[2], "dentry                21     21    192   21    1 : tunables  120   60    8 : slabdata      1      1      0");
        assert_eq!(lines.last().unwrap(), &"kmalloc-8              0      0      8  504    1 : tunables  120   60    8 : slabdata      0      0      0");
        assert_eq!(lines.len(), 2 + 14);
        assert_eq!(meminfo_slab_kb(slab), 4);
        for o in objs {
            // SAFETY: live objects of `id`.
            unsafe { slab.kmem_cache_free(id, o, CpuId::of(0)) };
        }
    });
}

#[test]
fn global_alloc_layouts() {
    use core::alloc::Layout;
    with_slab(14, false, |slab, pages, _| {
        let mut held = Vec::new();
        for size in [1usize, 7, 24, 80, 100, 150, 3000, 9000, 70000] {
            for align in [1usize, 8, 16, 32, 64, 128, 4096, 16384] {
                let l = Layout::from_size_align(size, align).unwrap();
                let p = slab.alloc_layout(l, GFP_KERNEL, CpuId::of(0));
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {} align {}", size, align);
                assert!(slab.ksize(p) >= size);
                held.push((p, l));
            }
        }
        let (p, l) = held.pop().unwrap();
        // SAFETY: `p` came from alloc_layout with layout `l`.
        let q = unsafe { slab.realloc_layout(p, l, 200_000, GFP_KERNEL, CpuId::of(1)) };
        assert_eq!(q as usize % l.align(), 0);
        held.push((q, Layout::from_size_align(200_000, l.align()).unwrap()));
        for (p, l) in held {
            // SAFETY: `p` came from alloc_layout/realloc_layout with layout `l`.
            unsafe { slab.dealloc_layout(p, l, CpuId::of(2)) };
        }
        leak_check(slab, pages);
        let _ = Gfp::EMPTY;
    });
}

#[test]
fn four_threads_with_remote_frees() {
    use std::sync::mpsc;
    with_slab(15, true, |slab, pages, rep| {
        std::thread::scope(|s| {
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..4).map(|_| mpsc::channel::<usize>()).unzip();
            for (cpu, rx) in rxs.into_iter().enumerate() {
                let txs = txs.clone();
                s.spawn(move || {
                    let mut x = cpu as u64 + 1;
                    for i in 0..5000usize {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let size = (x >> 33) as usize % 600 + 1;
                        let p = slab.kmalloc(size, GFP_KERNEL, CpuId::of(cpu)).unwrap().as_ptr();
                        // SAFETY: a fresh object of `size` bytes.
                        unsafe { p.write_bytes(cpu as u8, size) };
                        // Hand every other object to the next CPU, which frees it.
                        if i % 2 == 0 {
                            txs[(cpu + 1) % 4].send(p as usize).unwrap();
                        } else {
                            // SAFETY: live object.
                            unsafe { slab.kfree(p, CpuId::of(cpu)) };
                        }
                        while let Ok(q) = rx.try_recv() {
                            // SAFETY: a live object handed over by another CPU.
                            unsafe { slab.kfree(q as *mut u8, CpuId::of(cpu)) };
                        }
                    }
                    drop(txs);
                    while let Ok(q) = rx.recv() {
                        // SAFETY: as above.
                        unsafe { slab.kfree(q as *mut u8, CpuId::of(cpu)) };
                    }
                });
            }
        });
        assert!(rep.0.lock().unwrap().is_empty());
        leak_check(slab, pages);
    });
}

/// The allocator can be a `static` (as the kernel's heap) and be initialised later.
static STATIC_SLAB: SlabAllocator<'static> = SlabAllocator::new();

#[test]
fn static_allocator() {
    let pages: &'static HostPages = Box::leak(Box::new(HostPages::new(10)));
    let rep: &'static Rec = Box::leak(Box::default());
    assert!(STATIC_SLAB.kmalloc(8, GFP_KERNEL, CpuId::of(0)).is_none(), "not initialised yet");
    STATIC_SLAB.init(pages, rep, 16, false, 1);
    let p = STATIC_SLAB.kmalloc(8, GFP_KERNEL, CpuId::of(0)).unwrap();
    // SAFETY: live object.
    unsafe { STATIC_SLAB.kfree(p.as_ptr(), CpuId::of(0)) };
    leak_check(&STATIC_SLAB, pages);
}

/// A linear map whose offset is one page off the slab alignment: physical blocks stay
/// naturally aligned, virtual ones of order >= 1 do not (page 0 is kept back so that the
/// shifted map stays inside the arena).
struct Shifted(HostPages);

impl Shifted {
    fn new(order: u32) -> Self {
        let inner = HostPages::new(order);
        let first = inner.alloc_pages(GFP_KERNEL, 0).unwrap();
        assert_eq!(first.as_u64(), mm::slab::host::HOST_PHYS_BASE);
        Shifted(inner)
    }
}

impl PageSource for Shifted {
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr> {
        self.0.alloc_pages(gfp, order)
    }
    fn free_pages(&self, pa: PhysAddr, order: u32) {
        self.0.free_pages(pa, order)
    }
    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr {
        VirtAddr::new(self.0.phys_to_virt(pa).as_u64() - PAGE_SIZE as u64)
    }
    fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        self.0.virt_to_phys(VirtAddr::new(va.as_u64().checked_add(PAGE_SIZE as u64)?))
    }
    fn set_page_owner(&self, pa: PhysAddr, word: u64) {
        self.0.set_page_owner(pa, word)
    }
    fn page_owner(&self, pa: PhysAddr) -> u64 {
        self.0.page_owner(pa)
    }
}

#[test]
fn slabs_not_aligned_in_the_linear_map() {
    for debug in [false, true] {
        let pages = Shifted::new(12);
        let rep = Rec::default();
        let slab: Box<SlabAllocator<'_>> = Box::default();
        slab.init(&pages, &rep, 16, debug, 7);
        let mut live = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..3 {
            for i in 0..600usize {
                let size = [24, 96, 700, 1024, 3000, 4096, 8192][i % 7];
                let p = slab.kmalloc(size, GFP_KERNEL, CpuId::of(round % 2)).unwrap();
                // SAFETY: a fresh object of at least `size` bytes.
                unsafe { p.as_ptr().write_bytes(i as u8, size) };
                assert!(slab.ksize(p.as_ptr()) >= size);
                live.push((p, size, i as u8));
            }
            // Free all but a few in pseudo-random order, from both CPUs.
            while live.len() > 50 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (p, size, b) = live.swap_remove(x as usize % live.len());
                // SAFETY: the object is live and was filled with `b`.
                let s = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
                assert!(s.iter().all(|&v| v == b));
                // SAFETY: live object, not used afterwards.
                unsafe { slab.kfree(p.as_ptr(), CpuId::of((x >> 32) as usize % 2)) };
            }
        }
        if debug {
            // A double free is still recognised through the page-source fallback.
            let p = slab.kmalloc(1024, GFP_KERNEL, CpuId::of(0)).unwrap();
            // SAFETY: live object, then a deliberate double free (debug mode refuses it).
            unsafe {
                slab.kfree(p.as_ptr(), CpuId::of(0));
                slab.kfree(p.as_ptr(), CpuId::of(0));
            }
            let errs = rep.0.lock().unwrap().clone();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].kind, mm::slab::SlabErrorKind::DoubleFree);
            rep.0.lock().unwrap().clear();
            assert_eq!(slab.validate_all(), 0);
        }
        for (p, _, _) in live.drain(..) {
            // SAFETY: live object.
            unsafe { slab.kfree(p.as_ptr(), CpuId::of(0)) };
        }
        assert!(rep.0.lock().unwrap().is_empty());
        slab.drain_all();
        slab.shrink_all();
        assert_eq!(slab.slab_bytes(), 0);
        assert_eq!(pages.0.pages_in_use(), 1, "only the kept-back page");
    }
}

#[test]
fn fail_slab_fails_cache_allocations_only() {
    with_slab(12, false, |slab, pages, _| {
        slab.fail.attr.fail_nth(2);
        let a = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).expect("1st");
        assert!(slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).is_none(), "2nd injected");
        let b = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).expect("3rd");
        assert!(!slab.fail.attr.nth_armed());
        slab.fail.attr.fail_nth(1);
        let big =
            slab.kmalloc(20000, GFP_KERNEL, CpuId::of(0)).expect("large kmalloc is fail_page_alloc's, not fail_slab's");
        let nofail = slab.kmalloc(64, GFP_KERNEL | Gfp::GFP_NOFAIL, CpuId::of(0)).expect("__GFP_NOFAIL never fails");
        assert!(slab.fail.attr.nth_armed(), "neither counted");
        assert!(slab.kmalloc(8, GFP_ATOMIC, CpuId::of(1)).is_none());
        slab.fail.attr.set_probability(100, 2, 1);
        assert!(slab.kmalloc(8, GFP_ATOMIC, CpuId::of(1)).is_none());
        assert!(slab.kmalloc(8, GFP_ATOMIC, CpuId::of(1)).is_none());
        let c = slab.kmalloc(8, GFP_ATOMIC, CpuId::of(1)).expect("times exhausted");
        assert_eq!(slab.fail.attr.injected(), 4);
        slab.fail.attr.disarm();
        // SAFETY: live objects, freed once.
        unsafe {
            for p in [a, b, big, nofail, c] {
                slab.kfree(p.as_ptr(), CpuId::of(0));
            }
        }
        leak_check(slab, pages);
    });
}

/// `kmem_cache_shrink` gives back every empty slab and says how many pages that was;
/// slabs with a live object stay, and a second shrink has nothing to give.
#[test]
fn kmem_cache_shrink_returns_the_pages_of_its_empty_slabs() {
    // Order-0 slabs of 200-byte objects, larger ones of 3000-byte objects.
    for (debug, size) in [(false, 200), (true, 200), (false, 3000), (true, 3000)] {
        with_slab(18, debug, |slab, pages, _| {
            assert_eq!(slab.debug(), debug);
            let id = slab.kmem_cache_create("shrinkme", size, 8, SlabFlags::NONE, None).unwrap();
            let per = slab.cache_stats(id).unwrap().objperslab;
            assert_eq!(slab.cache_stats(id).unwrap().pagesperslab > 1, size == 3000);
            let objs: Vec<_> =
                (0..3 * per).map(|_| slab.kmem_cache_alloc(id, GFP_KERNEL, CpuId::of(0)).unwrap()).collect();
            let st = slab.cache_stats(id).unwrap();
            assert_eq!(st.num_slabs, 3);
            let in_use = pages.pages_in_use();
            // Keep one object: its slab stays.
            for &o in &objs[1..] {
                // SAFETY: live objects of this cache, freed once.
                unsafe { slab.kmem_cache_free(id, o, CpuId::of(0)) };
            }
            slab.drain_all();
            let drained = slab.cache_stats(id).unwrap();
            assert_eq!(drained.active_slabs, 1, "one slab holds the kept object");
            assert_eq!(drained.num_slabs, 3, "the two empty slabs wait for the shrink");
            let freed = slab.kmem_cache_shrink(id);
            // Up to a page, a cache without debugging took a page for its shared array
            // when it grew its second slab; the shrink gives that back too.
            assert_eq!(st.shared_pages, usize::from(!debug && size <= PAGE_SIZE), "{st:?}");
            assert_eq!(freed, 2 * st.pagesperslab + st.shared_pages, "two empty slabs and the shared array");
            assert_eq!(pages.pages_in_use(), in_use - freed);
            assert_eq!(slab.kmem_cache_shrink(id), 0);
            // SAFETY: the last live object.
            unsafe { slab.kmem_cache_free(id, objs[0], CpuId::of(0)) };
            assert_eq!(slab.kmem_cache_shrink(id), st.pagesperslab);
            slab.kmem_cache_destroy(id).unwrap();
            leak_check(slab, pages);
            // Every page of the released slabs stopped naming the cache.
            for o in &objs {
                let base = o.as_ptr() as usize & !(st.pagesperslab * PAGE_SIZE - 1);
                for i in 0..st.pagesperslab {
                    let pa = pages.virt_to_phys(VirtAddr::new((base + i * PAGE_SIZE) as u64)).unwrap();
                    assert_eq!(pages.page_owner(pa), 0, "page {i} of a released slab");
                }
            }
        });
    }
}

/// `Slab:` counts the pages of every slab: the sum over the caches of slabs times pages
/// per slab, in bytes, exactly what the page source handed the slabs.
#[test]
fn slab_bytes_is_the_pages_of_every_slab() {
    with_slab(16, false, |slab, pages, _| {
        let base = pages.pages_in_use();
        assert_eq!(slab.slab_bytes(), base * PAGE_SIZE, "the caches' first slabs");
        let objs: Vec<_> = (0..300).map(|i| slab.kmalloc(64 << (i % 7), GFP_KERNEL, CpuId::of(0)).unwrap()).collect();
        assert_eq!(slab.slab_bytes(), pages.pages_in_use() * PAGE_SIZE);
        assert!(pages.pages_in_use() > base + 8);
        for p in objs {
            // SAFETY: live objects, freed once.
            unsafe { slab.kfree(p.as_ptr(), CpuId::of(0)) };
        }
        leak_check(slab, pages);
    });
}

/// The global allocator's rule (Linux's kmalloc alignment guarantee): an alignment above
/// 8 that the size's cache does not give (96 and 192 are not powers of two) rounds the
/// size up to a power of two; otherwise, and above the caches, the size stays.
#[test]
fn layout_size_rounds_only_for_alignment_the_cache_lacks() {
    use std::alloc::Layout;
    let l = |size, align| SlabAllocator::layout_size(Layout::from_size_align(size, align).unwrap());
    assert_eq!(l(96, 8), 96);
    assert_eq!(l(96, 16), 128);
    assert_eq!(l(96, 32), 128);
    assert_eq!(l(192, 64), 256);
    assert_eq!(l(128, 64), 128);
    assert_eq!(l(8, 64), 64);
    assert_eq!(l(0, 1), 1);
    assert_eq!(l(3 * 8192, 64), 3 * 8192, "above the caches: the page allocator aligns");
}
