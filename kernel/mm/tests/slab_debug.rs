//! Debug mode: every error type is detected, reported Linux-style and refused.

use mm::cpu::CpuId;
use std::ptr::NonNull;
use std::sync::Mutex;

use mm::addr::PAGE_SIZE;
use mm::gfp::GFP_KERNEL;
use mm::slab::debug::{POISON_END, POISON_FREE, POISON_INUSE, SLUB_RED_ACTIVE};
use mm::slab::host::HostPages;
use mm::slab::{SlabAllocator, SlabError, SlabErrorKind, SlabFix, SlabFlags, SlabReporter};

#[derive(Default)]
struct Rec(Mutex<Vec<SlabError>>);
impl SlabReporter for Rec {
    fn report(&self, e: &SlabError) {
        self.0.lock().unwrap().push(*e);
    }
}
impl Rec {
    fn take(&self) -> Vec<SlabError> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn with_slab(debug: bool, f: impl FnOnce(&SlabAllocator<'_>, &Rec)) {
    let pages = HostPages::new(12);
    let rep = Rec::default();
    let slab: Box<SlabAllocator<'_>> = Box::default();
    slab.init(&pages, &rep, 16, debug, 7);
    let (mm, offset) = pages.mem_map();
    slab.set_mem_map(mm, offset);
    f(&slab, &rep);
}

fn byte(p: *const u8, off: usize) -> u8 {
    // SAFETY: tests only read inside slab pages of the host arena.
    unsafe { p.add(off).read() }
}

fn poke(p: *mut u8, off: usize, v: u8) {
    // SAFETY: tests only write inside slab pages of the host arena (deliberate corruption).
    unsafe { p.add(off).write(v) }
}

#[test]
fn poison_and_redzone_values() {
    with_slab(true, |slab, rep| {
        let p = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        assert!((0..64).all(|i| byte(p, i) == POISON_INUSE));
        assert_eq!(byte(p, 64), SLUB_RED_ACTIVE);
        // SAFETY: the left red zone directly precedes the object, inside the slab.
        assert_eq!(unsafe { p.sub(1).read() }, SLUB_RED_ACTIVE);
        // SAFETY: live object.
        unsafe { slab.kfree(p, CpuId::of(0)) };
        assert!((0..63).all(|i| byte(p, i) == POISON_FREE));
        assert_eq!(byte(p, 63), POISON_END);
        assert!(rep.take().is_empty());
    });
}

#[test]
fn double_free_reported_and_refused() {
    with_slab(true, |slab, rep| {
        let p = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        // SAFETY: debug mode detects the second free.
        unsafe {
            slab.kfree(p, CpuId::of(0));
            slab.kfree(p, CpuId::of(1));
        }
        let errs = rep.take();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, SlabErrorKind::DoubleFree);
        assert_eq!(errs[0].object, p as usize);
        let text = errs[0].to_string();
        assert!(text.contains("BUG kmalloc-64 (Not tainted): Object already free"), "{}", text);
        assert!(text.contains(&format!("INFO: Object {:#x} @offset=", p as usize)), "{}", text);
        // The object was not queued twice: two allocations give two objects.
        let a = slab.kmalloc(64, GFP_KERNEL, CpuId::of(1)).unwrap();
        let b = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap();
        assert_ne!(a, b);
        assert!(rep.take().is_empty());
    });
}

#[test]
fn redzone_overwrite_reported_on_free() {
    with_slab(true, |slab, rep| {
        let p = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        poke(p, 64, 0x41); // one byte past the end
                           // SAFETY: debug mode checks the red zone before accepting the free.
        unsafe { slab.kfree(p, CpuId::of(0)) };
        let errs = rep.take();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].kind,
            SlabErrorKind::RedzoneOverwritten { first: p as usize + 64, value: 0x41, expected: SLUB_RED_ACTIVE }
        );
        let text = errs[0].to_string();
        assert!(text.contains("BUG kmalloc-64 (Not tainted): Redzone overwritten"), "{}", text);
        assert!(text.contains("First byte 0x41 instead of 0xcc"), "{}", text);
        assert_eq!(errs[0].fix, SlabFix::RestoredAndFreed);
        // Repaired and freed: the red zone is inactive again, nothing is lost.
        assert_eq!(byte(p, 64), mm::slab::debug::SLUB_RED_INACTIVE);
        let st = slab.cache_stats(slab.kmalloc_cache(64).unwrap()).unwrap();
        assert_eq!((st.errors, st.quarantined, st.active_objs - st.cpu_cached), (1, 0, 0));
        assert_eq!(slab.validate_all(), 0);
        assert!(rep.take().is_empty());
    });
}

#[test]
fn write_after_free_detected_on_reallocation() {
    with_slab(true, |slab, rep| {
        let p = slab.kmalloc(128, GFP_KERNEL, CpuId::of(2)).unwrap().as_ptr();
        // SAFETY: live object.
        unsafe { slab.kfree(p, CpuId::of(2)) };
        poke(p, 3, 0x00);
        // The poisoned object is on top of CPU 2's array: the next allocation checks it,
        // reports, restores its poison, gives it back to its slab and returns another.
        let q = slab.kmalloc(128, GFP_KERNEL, CpuId::of(2)).unwrap().as_ptr();
        assert_ne!(q, p);
        let errs = rep.take();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].fix, SlabFix::RestoredFree);
        assert_eq!(byte(p, 3), POISON_FREE, "poison restored");
        assert_eq!(slab.validate_all(), 0, "nothing left damaged");
        assert_eq!(
            errs[0].kind,
            SlabErrorKind::PoisonOverwritten { first: p as usize + 3, value: 0, expected: POISON_FREE }
        );
        assert!(errs[0].to_string().contains("BUG kmalloc-128 (Not tainted): Poison overwritten"));
        // Overwriting the POISON_END byte is caught too.
        // SAFETY: live object.
        unsafe { slab.kfree(q, CpuId::of(2)) };
        poke(q, 127, 0x6b);
        assert_ne!(slab.kmalloc(128, GFP_KERNEL, CpuId::of(2)).unwrap().as_ptr(), q);
        assert!(matches!(rep.take()[0].kind, SlabErrorKind::PoisonOverwritten { expected: POISON_END, .. }));
    });
}

#[test]
fn invalid_frees_reported_and_ignored() {
    with_slab(true, |slab, rep| {
        let p = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        // SAFETY: debug mode validates the pointer before touching anything.
        unsafe { slab.kfree(p.add(8), CpuId::of(0)) };
        assert_eq!(rep.take()[0].kind, SlabErrorKind::InvalidPointer);
        let mut local = [0u8; 16];
        // SAFETY: as above; the pointer is outside the page source.
        unsafe { slab.kfree(local.as_mut_ptr(), CpuId::of(0)) };
        let e = rep.take()[0];
        assert_eq!(e.kind, SlabErrorKind::NotSlabObject);
        assert!(e.to_string().contains("BUG kmalloc (Not tainted): Invalid free of a non-slab pointer"));
        let big = slab.kmalloc(20000, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        // SAFETY: as above; interior of a compound block.
        unsafe { slab.kfree(big.add(100), CpuId::of(0)) };
        assert_eq!(rep.take()[0].kind, SlabErrorKind::NotSlabObject);
        // SAFETY: the real objects.
        unsafe {
            slab.kfree(big, CpuId::of(0));
            slab.kfree(p, CpuId::of(0));
        }
        assert!(rep.take().is_empty());
        // A second free of a compound block finds no owner any more.
        // SAFETY: debug mode reports the stale pointer.
        unsafe { slab.kfree(big, CpuId::of(0)) };
        assert_eq!(rep.take()[0].kind, SlabErrorKind::NotSlabObject);
    });
}

#[test]
fn wrong_cache_reported() {
    with_slab(true, |slab, rep| {
        let id = slab.kmem_cache_create("inode_cache", 64, 8, SlabFlags::NONE, None).unwrap();
        let p = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap();
        // SAFETY: the cache check runs before anything is touched.
        unsafe { slab.kmem_cache_free(id, p, CpuId::of(0)) };
        let e = rep.take()[0];
        assert_eq!(e.kind, SlabErrorKind::WrongCache { other: "kmalloc-64" });
        let text = e.to_string();
        assert!(text.contains("BUG inode_cache (Not tainted): Wrong slab cache"), "{}", text);
        assert!(text.contains("INFO: inode_cache but object is from kmalloc-64"), "{}", text);
        // SAFETY: the real owner frees it.
        unsafe { slab.kfree(p.as_ptr(), CpuId::of(0)) };
        assert!(rep.take().is_empty());
    });
}

/// Two `size`-byte objects `a` and `b` freed (after 40 more were allocated) and drained,
/// so that `b` heads its slab's freelist and points to `a`; the 40 stay live.
fn two_freed_at_the_head(slab: &SlabAllocator<'_>, size: usize) -> (*mut u8, *mut u8, Vec<NonNull<u8>>) {
    let a = slab.kmalloc(size, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
    let b = slab.kmalloc(size, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
    let rest: Vec<_> = (0..40).map(|_| slab.kmalloc(size, GFP_KERNEL, CpuId::of(0)).unwrap()).collect();
    // SAFETY: live objects, freed once.
    unsafe {
        slab.kfree(a, CpuId::of(0));
        slab.kfree(b, CpuId::of(0));
    }
    slab.drain_all();
    (a, b, rest)
}

#[test]
fn freepointer_corruption_abandons_freelist() {
    // kmalloc-96's slots are not a power of two apart: an object start is found by
    // reciprocal multiplication, not by a mask.
    for (debug, size) in [(false, 64), (true, 64), (false, 96), (true, 96)] {
        with_slab(debug, |slab, rep| {
            let (a, b, rest) = two_freed_at_the_head(slab, size);
            // `b` is now the head of its slab's freelist and points to `a`. Overwrite the
            // stored free pointer (after the object and its red zone in debug mode, at
            // offset 0 otherwise) with a plausible-looking raw address.
            let fp_off = if debug { size + 8 } else { 0 };
            // SAFETY: deliberate corruption of a free object inside the host arena.
            unsafe { b.add(fp_off).cast::<usize>().write_unaligned(a as usize + 8) };
            let c = slab.kmalloc(size, GFP_KERNEL, CpuId::of(1)).unwrap().as_ptr();
            let errs = rep.take();
            assert_eq!(errs.len(), 1, "{:?}", errs);
            assert!(matches!(errs[0].kind, SlabErrorKind::FreepointerCorrupt { .. }));
            assert!(errs[0].to_string().contains(&format!("BUG kmalloc-{size} (Not tainted): Freepointer corrupt")));
            // `a + 8` was never handed out, and allocation goes on.
            let more: Vec<_> =
                (0..100).map(|_| slab.kmalloc(size, GFP_KERNEL, CpuId::of(1)).unwrap().as_ptr()).collect();
            assert!(more.iter().chain([&c]).all(|&q| q as usize != a as usize + 8));
            drop(rest);
        });
    }
}

#[test]
fn freelist_longer_than_the_free_count_is_cut_not_followed_into_a_live_object() {
    for debug in [false, true] {
        with_slab(debug, |slab, rep| {
            let a = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
            let b = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
            let live = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
            let rest: Vec<_> = (0..40).map(|_| slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap()).collect();
            // SAFETY: live objects.
            unsafe {
                slab.kfree(a, CpuId::of(0));
                slab.kfree(b, CpuId::of(0));
            }
            slab.drain_all();
            // `b` heads its slab's freelist and points to `a`: its stored word gives away
            // the secret (stored = next ^ secret ^ swab(address of the word)).
            let fp_off = if debug { 64 + 8 } else { 0 };
            let word = |o: *mut u8| o as usize + fp_off;
            // SAFETY: the free pointer of an object of this slab inside the host arena.
            let read = |o: *mut u8| unsafe { (word(o) as *const usize).read_unaligned() };
            // SAFETY: as above, deliberately rewritten as a corrupting write would.
            let write = |o: *mut u8, v: usize| unsafe { (word(o) as *mut usize).write_unaligned(v) };
            let secret = read(b) ^ a as usize ^ word(b).swap_bytes();
            let encode = |ptr: usize, o: *mut u8| ptr ^ secret ^ word(o).swap_bytes();
            // Walk to the tail, then append `live` (a live object of the same slab) with a
            // correctly encoded end: every pointer valid, one object too many.
            let mut tail = b;
            let mut steps = 0;
            loop {
                let next = read(tail) ^ secret ^ word(tail).swap_bytes();
                if next == 0 {
                    break;
                }
                tail = next as *mut u8;
                steps += 1;
                assert!(steps < 64, "no end to the freelist");
            }
            write(tail, encode(live as usize, tail));
            write(live, encode(0, live));
            let got: Vec<_> = (0..100).map(|_| slab.kmalloc(64, GFP_KERNEL, CpuId::of(1)).unwrap().as_ptr()).collect();
            assert!(got.iter().all(|&q| q != live), "a live object was handed out again");
            let errs = rep.take();
            assert_eq!(errs.len(), 1, "{:?}", errs);
            assert!(matches!(errs[0].kind, SlabErrorKind::FreepointerCorrupt { fp } if fp == live as usize));
            drop(rest);
        });
    }
}

/// A free pointer correctly encoded but naming the middle of an object of the same slab
/// (a corrupting write that knows the secret) stops the walk: no object is handed out
/// at an address that is not an object start, in caches whose stride is a power of two
/// (a mask) and in those whose stride is not (a reciprocal).
#[test]
fn freepointer_into_the_middle_of_an_object_is_refused() {
    for (debug, size) in [(false, 64), (true, 64), (false, 96), (true, 96), (false, 192)] {
        with_slab(debug, |slab, rep| {
            let (a, b, rest) = two_freed_at_the_head(slab, size);
            let fp_off = if debug { size + 8 } else { 0 };
            let word = b as usize + fp_off;
            // SAFETY: `b`'s free pointer inside the host arena: read, then deliberately
            // rewritten (stored = next ^ secret ^ swab(address of the word)).
            unsafe {
                let secret = (word as *const usize).read_unaligned() ^ a as usize ^ word.swap_bytes();
                (word as *mut usize).write_unaligned((a as usize + 16) ^ secret ^ word.swap_bytes());
            }
            let got: Vec<_> =
                (0..100).map(|_| slab.kmalloc(size, GFP_KERNEL, CpuId::of(1)).unwrap().as_ptr()).collect();
            assert!(got.iter().all(|&q| q as usize != a as usize + 16), "the middle of an object was handed out");
            let errs = rep.take();
            assert_eq!(errs.len(), 1, "{:?}", errs);
            assert!(matches!(errs[0].kind, SlabErrorKind::FreepointerCorrupt { fp } if fp == a as usize + 16));
            // The slab's free objects past the bad pointer (all but `b`) are withheld for
            // good: counted in use and quarantined, once.
            let id = slab.kmalloc_cache(size).unwrap();
            let st = slab.cache_stats(id).unwrap();
            let slab_of = |p: usize| p & !(st.pagesperslab * PAGE_SIZE - 1);
            let live_in_a = rest.iter().filter(|p| slab_of(p.as_ptr() as usize) == slab_of(a as usize)).count();
            let lost = st.objperslab - live_in_a - 1;
            for p in got.iter().copied().chain(rest.iter().map(|p| p.as_ptr())) {
                // SAFETY: live objects, freed once.
                unsafe { slab.kfree(p, CpuId::of(0)) };
            }
            slab.drain_all();
            let st = slab.cache_stats(id).unwrap();
            assert_eq!((st.errors, st.quarantined, st.active_objs), (1, lost, lost), "{st:?}");
            assert!(rep.take().is_empty());
        });
    }
}

#[test]
fn debug_off_fast_path_has_no_poison() {
    with_slab(false, |slab, rep| {
        assert!(!slab.debug());
        let p = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        let st = slab.cache_stats(slab.kmalloc_cache(64).unwrap()).unwrap();
        assert_eq!(st.size, 64, "no metadata without debug");
        // SAFETY: live object.
        unsafe { slab.kfree(p, CpuId::of(0)) };
        // Bytes 0..8 hold the encoded freelist pointer (any value); past it nothing was poisoned.
        assert!((8..64).any(|i| byte(p, i) != POISON_FREE));
        assert!(rep.take().is_empty());
    });
}

#[test]
fn validate_finds_write_after_free_and_bad_freelists() {
    with_slab(true, |slab, rep| {
        let id = slab.kmalloc_cache(256).unwrap();
        let objs: Vec<_> = (0..10).map(|_| slab.kmalloc(256, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr()).collect();
        assert_eq!(slab.validate_all(), 0);
        // SAFETY: live objects.
        unsafe {
            slab.kfree(objs[0], CpuId::of(0));
            slab.kfree(objs[1], CpuId::of(1));
        }
        poke(objs[0], 100, 1); // in CPU 0's array
        assert_eq!(slab.kmem_cache_validate(id), 1);
        let e = rep.take()[0];
        assert_eq!(
            e.kind,
            SlabErrorKind::PoisonOverwritten { first: objs[0] as usize + 100, value: 1, expected: POISON_FREE }
        );
        assert_eq!(e.fix, SlabFix::RestoredFree);
        assert_eq!(byte(objs[0], 100), POISON_FREE, "validation repaired it");
        assert_eq!(slab.kmem_cache_validate(id), 0);
        slab.drain_all();
        // Now both are on slab freelists; corrupt the free pointer of the head (`objs[1]`,
        // drained last), which lies after the object and its 8-byte red zone.
        // SAFETY: deliberate corruption inside the host arena.
        unsafe { objs[1].add(256 + 8).cast::<usize>().write_unaligned(0x1234) };
        assert_eq!(slab.kmem_cache_validate(id), 1);
        assert!(matches!(rep.take()[0].kind, SlabErrorKind::FreepointerCorrupt { .. }));
        assert_eq!(slab.cache_stats(id).unwrap().errors, 2);
    });
}

#[test]
fn write_after_free_repaired_every_page_comes_back() {
    // The crash use-after-free loop: kmalloc, kfree, write into the freed object,
    // validate. Nothing may stay damaged and, once drained, every slab page comes back.
    let pages = HostPages::new(12);
    let rep = Rec::default();
    let slab: Box<SlabAllocator<'_>> = Box::default();
    slab.init(&pages, &rep, 16, true, 7);
    let (mm, offset) = pages.mem_map();
    slab.set_mem_map(mm, offset);
    slab.shrink_all();
    let used0 = pages.pages_in_use();
    for i in 0..100 {
        let p = slab.kmalloc(64, GFP_KERNEL, CpuId::of(i % 4)).unwrap().as_ptr();
        // SAFETY: live object, then a deliberate write after free.
        unsafe { slab.kfree(p, CpuId::of(i % 4)) };
        poke(p, 8, 0x42);
        assert_eq!(slab.validate_all(), 1, "round {i}");
        assert_eq!(slab.validate_all(), 0, "round {i}: repaired");
        // The double free of the same loop: refused, changes nothing.
        let d = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        // SAFETY: the second free is detected and refused in debug mode.
        unsafe {
            slab.kfree(d, CpuId::of(0));
            slab.kfree(d, CpuId::of(0));
        }
    }
    assert_eq!(rep.take().len(), 200);
    let st = slab.cache_stats(slab.kmalloc_cache(64).unwrap()).unwrap();
    assert_eq!(st.quarantined, 0);
    slab.shrink_all();
    assert_eq!(pages.pages_in_use(), used0, "a slab page stayed behind");
}

#[test]
fn validate_reports_a_freelist_cycle_and_stops() {
    with_slab(true, |slab, rep| {
        let a = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        let b = slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr();
        let rest: Vec<_> = (0..40).map(|_| slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap()).collect();
        // SAFETY: live objects.
        unsafe {
            slab.kfree(a, CpuId::of(0));
            slab.kfree(b, CpuId::of(0));
        }
        slab.drain_all();
        assert_eq!(slab.validate_all(), 0, "a sound freelist");
        // `b` heads the freelist and points to `a` (see the test above for the encoding).
        let word = |o: *mut u8| o as usize + 64 + 8;
        // SAFETY: the free pointer of an object of this slab inside the host arena.
        let read = |o: *mut u8| unsafe { (word(o) as *const usize).read_unaligned() };
        // SAFETY: as above, deliberately rewritten as a corrupting write would.
        let write = |o: *mut u8, v: usize| unsafe { (word(o) as *mut usize).write_unaligned(v) };
        let secret = read(b) ^ a as usize ^ word(b).swap_bytes();
        let encode = |ptr: usize, o: *mut u8| ptr ^ secret ^ word(o).swap_bytes();
        let mut tail = b;
        loop {
            let next = read(tail) ^ secret ^ word(tail).swap_bytes();
            if next == 0 {
                break;
            }
            tail = next as *mut u8;
        }
        // The tail points back to the head: every pointer valid, the list endless.
        write(tail, encode(b as usize, tail));
        assert_eq!(slab.validate_all(), 1, "the cycle reported once, the walk bounded");
        let errs = rep.take();
        assert_eq!(errs.len(), 1, "{errs:?}");
        // Reported where the walk gave up: after as many objects as the slab holds.
        assert!(matches!(errs[0].kind, SlabErrorKind::FreepointerCorrupt { .. }), "{errs:?}");
        assert_eq!(errs[0].fix, SlabFix::Isolated);
        write(tail, encode(0, tail));
        assert_eq!(slab.validate_all(), 0);
        drop(rest);
    });
}

/// A debugging cache takes the held (slow) paths for every operation; slabinfo's hit and
/// miss counters still account for each one: every allocation is a hit or a miss, every
/// free too, a miss refills or flushes a batch.
#[test]
fn debug_cache_counts_every_hit_and_miss() {
    with_slab(true, |slab, rep| {
        let id = slab.kmalloc_cache(64).unwrap();
        let st0 = slab.cache_stats(id).unwrap();
        let n = 2 * st0.limit + 3;
        let objs: Vec<_> = (0..n).map(|_| slab.kmalloc(64, GFP_KERNEL, CpuId::of(0)).unwrap().as_ptr()).collect();
        let st1 = slab.cache_stats(id).unwrap();
        let (hit, miss) = (st1.allochit - st0.allochit, st1.allocmiss - st0.allocmiss);
        assert_eq!(hit + miss, n as u64, "each allocation a hit or a miss");
        assert!(miss >= 1 && hit >= (n as u64) / 2, "refills of a batch: {hit} hits, {miss} misses");
        for &p in &objs {
            // SAFETY: live objects of this test, freed once.
            unsafe { slab.kfree(p, CpuId::of(0)) };
        }
        let st2 = slab.cache_stats(id).unwrap();
        let (hit, miss) = (st2.freehit - st1.freehit, st2.freemiss - st1.freemiss);
        assert_eq!(hit + miss, n as u64, "each free a hit or a miss");
        assert!(miss >= 1, "{n} frees overflow an array of {}", st0.limit);
        assert!(hit >= st0.limit as u64, "{hit} hits");
        assert!(rep.take().is_empty());
    });
}
