//! The lockless per-CPU fast path against an independent model: random kmalloc/kfree
//! sequences on four CPUs with remote frees, drains, and "interrupts" that run a few
//! allocations and frees on the same CPU inside a fast operation's window (between its
//! read of the array and its compare-exchange, [`crate::slab::percpu::irq`]). The model is
//! a map of live objects with their sizes and fill bytes: no address is handed out twice
//! while live, no object's bytes change under its owner, every counter adds up, and
//! nothing leaks. A second test runs four threads as four CPUs with remote frees while a
//! fifth drains their arrays.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use proptest::prelude::*;

use super::*;
use crate::gfp::GFP_KERNEL;
use crate::slab::debug::NullReporter;
use crate::slab::host::HostPages;
use crate::slab::percpu::irq;

#[derive(Clone, Debug)]
enum Inner {
    Alloc(usize),
    /// Frees the live object at this position (modulo the count).
    Free(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        cpu: usize,
        size: usize,
    },
    Free {
        cpu: usize,
        pick: usize,
    },
    Drain {
        cpu: usize,
    },
    /// `outer` on `cpu` with `inner` run as an interrupt on the same CPU in the window of
    /// the next fast operation.
    Irq {
        cpu: usize,
        outer: Box<Op>,
        inner: Vec<Inner>,
    },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=64, 65usize..=1024, Just(64usize)]
}

fn simple(cpu: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => size().prop_map(move |size| Op::Alloc { cpu, size }),
        3 => any::<usize>().prop_map(move |pick| Op::Free { cpu, pick }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let inner =
        prop::collection::vec(prop_oneof![size().prop_map(Inner::Alloc), any::<usize>().prop_map(Inner::Free)], 1..5);
    prop_oneof![
        6 => (0usize..4).prop_flat_map(simple),
        1 => (0usize..4).prop_map(|cpu| Op::Drain { cpu }),
        3 => (0usize..4, inner).prop_flat_map(|(cpu, inner)| {
            simple(cpu).prop_map(move |o| Op::Irq { cpu, outer: Box::new(o), inner: inner.clone() })
        }),
    ]
}

/// The model: live objects by address, with their size and fill byte; calls per cache.
#[derive(Default)]
struct Model {
    live: HashMap<usize, (usize, u8)>,
    order: Vec<usize>,
    allocs: HashMap<usize, u64>,
    frees: HashMap<usize, u64>,
    next_fill: u8,
}

impl Model {
    fn alloc(&mut self, slab: &SlabAllocator<'_>, cpu: usize, size: usize) {
        let p = slab.kmalloc(size, GFP_KERNEL, CpuId::of(cpu)).expect("memory").as_ptr() as usize;
        assert!(slab.ksize(p as *const u8) >= size);
        let fill = self.next_fill;
        self.next_fill = self.next_fill.wrapping_add(1);
        assert!(self.live.insert(p, (size, fill)).is_none(), "{p:#x} handed out twice");
        self.order.push(p);
        // SAFETY: a fresh object of `size` bytes.
        unsafe { core::ptr::write_bytes(p as *mut u8, fill, size) };
        *self.allocs.entry(kmalloc_index(size)).or_default() += 1;
    }

    fn free(&mut self, slab: &SlabAllocator<'_>, cpu: usize, pick: usize) {
        if self.order.is_empty() {
            return;
        }
        let p = self.order.swap_remove(pick % self.order.len());
        let (size, fill) = self.live.remove(&p).expect("live");
        // SAFETY: a live object of `size` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, size) };
        assert!(bytes.iter().all(|&b| b == fill), "object {p:#x} changed under its owner");
        // SAFETY: live, freed once.
        unsafe { slab.kfree(p as *mut u8, CpuId::of(cpu)) };
        *self.frees.entry(kmalloc_index(size)).or_default() += 1;
    }

    fn run(model: &Rc<RefCell<Model>>, slab: &'static SlabAllocator<'static>, op: Op) {
        match op {
            Op::Alloc { cpu, size } => model.borrow_mut().alloc(slab, cpu, size),
            Op::Free { cpu, pick } => model.borrow_mut().free(slab, cpu, pick),
            Op::Drain { cpu } => slab.drain_cpu(CpuId::of(cpu)),
            Op::Irq { cpu, outer, inner } => {
                let m = Rc::clone(model);
                irq::arm(move || {
                    for i in inner {
                        match i {
                            Inner::Alloc(size) => m.borrow_mut().alloc(slab, cpu, size),
                            Inner::Free(pick) => m.borrow_mut().free(slab, cpu, pick),
                        }
                    }
                });
                // The outer operation's own borrow ends before its fast path runs the
                // handler only if it is not held across the call: take the object first.
                match *outer {
                    Op::Alloc { cpu, size } => {
                        let p = slab.kmalloc(size, GFP_KERNEL, CpuId::of(cpu)).expect("memory").as_ptr();
                        let mut m = model.borrow_mut();
                        let fill = m.next_fill;
                        m.next_fill = m.next_fill.wrapping_add(1);
                        assert!(m.live.insert(p as usize, (size, fill)).is_none(), "{p:?} handed out twice");
                        m.order.push(p as usize);
                        // SAFETY: a fresh object of `size` bytes.
                        unsafe { core::ptr::write_bytes(p, fill, size) };
                        *m.allocs.entry(kmalloc_index(size)).or_default() += 1;
                    }
                    Op::Free { cpu, pick } => {
                        let p = {
                            let mut m = model.borrow_mut();
                            if m.order.is_empty() {
                                None
                            } else {
                                let n = m.order.len();
                                let p = m.order.swap_remove(pick % n);
                                let (size, fill) = m.live.remove(&p).expect("live");
                                // SAFETY: a live object of `size` bytes.
                                let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, size) };
                                assert!(bytes.iter().all(|&b| b == fill), "object {p:#x} changed under its owner");
                                *m.frees.entry(kmalloc_index(size)).or_default() += 1;
                                Some(p)
                            }
                        };
                        if let Some(p) = p {
                            // SAFETY: removed from the model: live, freed once.
                            unsafe { slab.kfree(p as *mut u8, CpuId::of(cpu)) };
                        }
                    }
                    other => Model::run(model, slab, other),
                }
                // A handler that found no window (the outer call took the slow path) is
                // dropped unrun.
                irq::disarm();
            }
        }
    }
}

fn leaked_slab() -> (&'static SlabAllocator<'static>, &'static HostPages) {
    let pages: &'static HostPages = Box::leak(Box::new(HostPages::new(14)));
    let slab: &'static SlabAllocator<'static> = Box::leak(Box::default());
    slab.init(pages, &NullReporter, 16, false, 99);
    let (mm, offset) = pages.mem_map();
    slab.set_mem_map(mm, offset);
    (slab, pages)
}

std::thread_local! {
    /// One allocator for every case of the property test (each case leaves it empty).
    static SHARED: (&'static SlabAllocator<'static>, &'static HostPages) = leaked_slab();
}

fn kmalloc_stats(slab: &SlabAllocator<'_>) -> Vec<CacheStats> {
    (0..KMALLOC_NAMES.len()).map(|i| slab.cache_stats(CacheId(i as u8)).expect("kmalloc cache")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_with_interrupts_and_remote_frees_matches_the_model(ops in prop::collection::vec(op(), 1..300)) {
        let (slab, pages) = SHARED.with(|s| *s);
        let before = kmalloc_stats(slab);
        let model = Rc::new(RefCell::new(Model::default()));
        for op in ops {
            Model::run(&model, slab, op);
        }
        // Every call was served and counted once: from an array (a hit), after a refill
        // (a miss), or (frees) into an array that had room or after a flush.
        let m = model.borrow();
        for (id, (st, b)) in kmalloc_stats(slab).iter().zip(&before).enumerate() {
            let live = m.live.values().filter(|(size, _)| kmalloc_index(*size) == id).count();
            prop_assert_eq!(st.active_objs - st.cpu_cached, live, "{}: objects in use", st.name);
            let allocs = (st.allochit + st.allocmiss) - (b.allochit + b.allocmiss);
            let frees = (st.freehit + st.freemiss) - (b.freehit + b.freemiss);
            prop_assert_eq!(allocs, m.allocs.get(&id).copied().unwrap_or(0), "{}: allocations", st.name);
            prop_assert_eq!(frees, m.frees.get(&id).copied().unwrap_or(0), "{}: frees", st.name);
        }
        drop(m);
        let n = model.borrow().order.len();
        for i in 0..n {
            model.borrow_mut().free(slab, i % 4, 0);
        }
        slab.drain_all();
        slab.shrink_all();
        prop_assert_eq!(pages.pages_in_use(), 0, "pages leaked");
    }
}

/// SLUB's ABA case: an interrupt inside a pop's window takes the top object and another,
/// then frees the first back and a third object on top, so `avail` and the top slot's
/// position are as the interrupted pop read them. Its swap must fail (the transaction id
/// moved), or it would hand out the object the interrupt put back below the top.
#[test]
fn an_interrupt_that_restores_avail_still_fails_the_interrupted_pop() {
    let (slab, _pages) = leaked_slab();
    let cpu = CpuId::of(0);
    // Warm the array: several free objects of kmalloc-64 on CPU 0.
    let warm: Vec<_> = (0..8).map(|_| slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize).collect();
    let extra = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize;
    for &p in &warm {
        // SAFETY: live, freed once.
        unsafe { slab.kfree(p as *mut u8, cpu) };
    }
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = Rc::clone(&got);
    irq::arm(move || {
        let x = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr();
        let w = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr();
        // SAFETY: `x` is live and freed once; `extra` is live and freed once.
        unsafe {
            slab.kfree(x, cpu);
            slab.kfree(extra as *mut u8, cpu);
        }
        g.borrow_mut().push(w as usize);
    });
    let outer = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize;
    assert!(!irq::pending(), "the interrupt ran in the window");
    let w = got.borrow()[0];
    assert_ne!(outer, w, "the interrupted pop returned the interrupt's object");
    // The rest of the array holds neither live object.
    let mut rest = Vec::new();
    for _ in 0..20 {
        rest.push(slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize);
    }
    assert!(!rest.contains(&outer) && !rest.contains(&w), "a live object was handed out again");
    let mut all = rest.clone();
    all.extend([outer, w]);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 22, "an object handed out twice");
}

/// The push side: a free into an array with room goes through the lockless path (the
/// interrupt armed for its window runs), and an interrupt in that window that pops the
/// top object and frees it back (`avail` as the push read it) fails the push's swap; the
/// freed object is not lost: the slow path puts it on top, the interrupt's object under it.
#[test]
fn an_interrupt_in_a_free_fails_the_interrupted_push_and_loses_nothing() {
    let (slab, _pages) = leaked_slab();
    let cpu = CpuId::of(0);
    let id = kmalloc_index(64);
    let warm: Vec<_> = (0..8).map(|_| slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize).collect();
    let outer = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize;
    for &p in &warm {
        // SAFETY: live, freed once.
        unsafe { slab.kfree(p as *mut u8, cpu) };
    }
    let before = kmalloc_stats(slab)[id];
    assert!(before.cpu_cached >= 8 && before.cpu_cached < 64, "room on the array: {before:?}");
    let got = Rc::new(RefCell::new(None));
    let g = Rc::clone(&got);
    irq::arm(move || {
        let x = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr();
        // SAFETY: live, freed once.
        unsafe { slab.kfree(x, cpu) };
        *g.borrow_mut() = Some(x as usize);
    });
    // SAFETY: live, freed once.
    unsafe { slab.kfree(outer as *mut u8, cpu) };
    assert!(!irq::pending(), "the free took the lockless path (the interrupt ran in its window)");
    let x = got.borrow().expect("the interrupt ran");
    let after = kmalloc_stats(slab)[id];
    assert_eq!(after.cpu_cached, before.cpu_cached + 1, "the free kept its object on the array");
    assert_eq!(after.freehit + after.freemiss, before.freehit + before.freemiss + 2, "two frees counted");
    // LIFO: the object the slow path pushed last comes out first, then the interrupt's.
    let a = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize;
    let b = slab.kmalloc(64, GFP_KERNEL, cpu).unwrap().as_ptr() as usize;
    assert_eq!((a, b), (outer, x), "the freed objects, hottest first");
}

/// Four threads as four CPUs allocate with remote frees (every other object is freed by
/// the next CPU) while a fifth drains their arrays, holding each in turn, and now and
/// then shrinks every cache (the shared arrays emptied and their pages given back while
/// the CPUs refill from them and flush to them): the lockless fast path meets a holder
/// on another CPU. No object is handed out twice or changed under its owner, and nothing
/// leaks.
#[test]
fn four_cpus_with_remote_frees_and_a_remote_drainer() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::mpsc;
    let (slab, pages) = leaked_slab();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let drainer = s.spawn(|| {
            let mut rounds = 0u64;
            while !done.load(Relaxed) {
                for cpu in CpuId::all() {
                    slab.drain_cpu(cpu);
                }
                if rounds % 8 == 7 {
                    slab.shrink_all();
                }
                rounds += 1;
            }
            rounds
        });
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..4).map(|_| mpsc::channel::<(usize, usize)>()).unzip();
        let workers: Vec<_> = rxs
            .into_iter()
            .enumerate()
            .map(|(cpu, rx)| {
                let txs = txs.clone();
                s.spawn(move || {
                    let check_free = |p: usize, size: usize| {
                        // SAFETY: a live object of `size` bytes filled with its size's low byte.
                        let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, size) };
                        assert!(bytes.iter().all(|&b| b == size as u8), "object {p:#x} changed");
                        // SAFETY: live, freed once.
                        unsafe { slab.kfree(p as *mut u8, CpuId::of(cpu)) };
                    };
                    let mut mine: Vec<(usize, usize)> = Vec::new();
                    let mut x = cpu as u64 * 7919 + 1;
                    for i in 0..20_000usize {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let size = (x >> 33) as usize % 300 + 1;
                        let p = slab.kmalloc(size, GFP_KERNEL, CpuId::of(cpu)).unwrap().as_ptr();
                        // SAFETY: a fresh object of `size` bytes.
                        unsafe { p.write_bytes(size as u8, size) };
                        if i % 2 == 0 {
                            txs[(cpu + 1) % 4].send((p as usize, size)).unwrap();
                        } else {
                            mine.push((p as usize, size));
                            if mine.len() > 64 {
                                let (q, n) = mine.swap_remove((x >> 20) as usize % mine.len());
                                check_free(q, n);
                            }
                        }
                        while let Ok((q, n)) = rx.try_recv() {
                            check_free(q, n);
                        }
                    }
                    for (q, n) in mine {
                        check_free(q, n);
                    }
                    drop(txs);
                    while let Ok((q, n)) = rx.recv() {
                        check_free(q, n);
                    }
                })
            })
            .collect();
        drop(txs);
        // Every worker joined before the drainer is stopped, and the drainer stopped
        // before a worker's panic is passed on (else the scope would wait for it forever).
        let joined: Vec<bool> = workers.into_iter().map(|w| w.join().is_ok()).collect();
        let all_ok = joined.iter().all(|&ok| ok);
        done.store(true, Relaxed);
        let rounds = drainer.join().unwrap();
        assert!(all_ok, "a worker panicked (see above)");
        assert!(rounds > 0);
    });
    slab.drain_all();
    slab.shrink_all();
    assert_eq!(pages.pages_in_use(), 0, "pages leaked");
}
