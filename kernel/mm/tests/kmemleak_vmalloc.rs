//! kmemleak's vmalloc roots on simulated memory: an object referenced only from a
//! vmalloc area is not a leak while the area lives, and is one once it is freed; guard
//! pages, device mappings and skipped areas are never read.

mod common;

use common::Sim;
use mm::addr::{PhysAddr, VirtAddr};
use mm::debug::kmemleak::{leaks_of, vmalloc_ranges, LeakSlot, Object, ObjectTable, ScanBuffers};
use mm::gfp::GFP_KERNEL;
use mm::pgtable::{PageTable, Prot};
use mm::vmalloc::Vmalloc;
use std::collections::{BTreeSet, HashMap};

const K: u64 = 4096;

type Pt<'a> = PageTable<&'a Sim, &'a Sim>;

/// Tracked objects live at these made-up addresses; their words are in `heap`.
const OBJ_BASE: u64 = 0xffff_ff90_0000_0000;

struct World<'a> {
    sim: &'a Sim,
    heap: HashMap<u64, u64>,
}

impl World<'_> {
    /// A word of an object or of simulated RAM; anything else (device memory, guard
    /// pages) must never be asked for.
    fn read(&self, a: u64) -> Option<u64> {
        if a >= OBJ_BASE {
            return self.heap.get(&a).copied();
        }
        let ram = self.sim.base_pa..self.sim.base_pa + self.sim.nframes as u64 * K;
        assert!(ram.contains(&a), "the scan read {a:#x}, which is not RAM");
        // SAFETY: inside the simulated RAM, 8-byte aligned.
        Some(unsafe { (self.sim.host(a) as *const u64).read_unaligned() })
    }
}

/// Writes `v` at `va` through the page table (as the kernel writes to a vmalloc area).
fn poke(sim: &Sim, pt: &Pt<'_>, va: u64, v: u64) {
    let pa = pt.translate(VirtAddr::new(va)).unwrap().pa.as_u64();
    // SAFETY: a mapped page of the simulated RAM.
    unsafe { (sim.host(pa) as *mut u64).write_unaligned(v) };
}

/// The ranges in batches of `batch`, as the kernel takes them (lock dropped between).
fn all_ranges(vm: &Vmalloc, pt: &Pt<'_>, skip: &dyn Fn(u64) -> bool, batch: usize) -> Vec<(u64, u64)> {
    let (mut v, mut from) = (vec![], 0);
    loop {
        let mut out = vec![(0, 0); batch];
        let (n, next) = vmalloc_ranges(vm, pt, from, skip, &mut out);
        v.extend_from_slice(&out[..n]);
        match next {
            Some(f) => {
                assert!(f > from, "no progress");
                from = f;
            }
            None => return v,
        }
    }
}

fn pages_of(ranges: &[(u64, u64)]) -> BTreeSet<u64> {
    ranges.iter().flat_map(|&(s, e)| (s..e).step_by(K as usize)).collect()
}

/// The leaks a scan over the vmalloc roots (in batches of `batch`) reports.
fn leaks(t: &ObjectTable<'_>, w: &World<'_>, vm: &Vmalloc, pt: &Pt<'_>, skip: &dyn Fn(u64) -> bool) -> Vec<u64> {
    let (mut o, mut m, mut g) = (vec![Object::EMPTY; 16], vec![false; 16], vec![0u32; 16]);
    let mut buf = ScanBuffers { objects: &mut o, marked: &mut m, gray: &mut g };
    let r = t.scan_with(
        &mut |sink| {
            for (s, e) in all_ranges(vm, pt, skip, 2) {
                sink(s, e)
            }
        },
        &|a| w.read(a),
        &mut buf,
    );
    leaks_of(&buf, &r).map(|o| o.addr).collect()
}

#[test]
fn an_object_referenced_from_a_vmalloc_area_is_no_leak_until_the_area_is_freed() {
    let sim = Sim::new(256);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let t = ObjectTable::new(Box::leak((0..64).map(|_| LeakSlot::EMPTY).collect()));
    let mut w = World { sim: &sim, heap: HashMap::new() };
    let (a, b, c, d) = (OBJ_BASE, OBJ_BASE + 0x100, OBJ_BASE + 0x200, OBJ_BASE + 0x300);
    for o in [a, b, c, d] {
        t.insert(o, 32, 1, 0, 0);
        for k in 0..4 {
            w.heap.insert(o + 8 * k, 0);
        }
    }
    // a: referenced from the third page of a vmalloc area; b: from a (a chain through
    // the area); c: only from an area the caller skips (KFENCE's pool); d: from nowhere.
    let area = vm.vmalloc(3 * K as usize, GFP_KERNEL | mm::gfp::Gfp::GFP_ZERO, "holder", &sim, &mut pt).unwrap();
    poke(&sim, &pt, area.as_u64() + 2 * K + 0x18, a + 8);
    w.heap.insert(a + 16, b);
    let skipped = vm.vmalloc(K as usize, GFP_KERNEL | mm::gfp::Gfp::GFP_ZERO, "pool", &sim, &mut pt).unwrap();
    poke(&sim, &pt, skipped.as_u64(), c);
    // A device mapping (a vmap of RAM as Device memory, and an ioremap of registers)
    // and unmapped guard pages: never read (World::read asserts it).
    let frame = PhysAddr::new(sim.alloc_frame().unwrap());
    let dev = vm.vmap(&[frame], Prot::DEVICE, "dev", &sim, &mut pt).unwrap();
    vm.ioremap(PhysAddr::new(0x3f20_0000), K, "gpio", &sim, &mut pt).unwrap();
    let skip = |s: u64| s == skipped.as_u64();
    // The roots are exactly the mapped Normal pages of the areas not skipped.
    let want: BTreeSet<u64> = (0..3).map(|p| pt.translate(area.add(p * K)).unwrap().pa.as_u64()).collect();
    for batch in [1, 2, 64] {
        let got = all_ranges(&vm, &pt, &skip, batch);
        assert_eq!(pages_of(&got), want, "batch {batch}");
        assert!(got.iter().all(|&(s, e)| s < e && s % K == 0 && e % K == 0));
    }
    assert!(!pages_of(&all_ranges(&vm, &pt, &|_| false, 4)).contains(&frame.as_u64()), "device memory is no root");
    assert_eq!(leaks(&t, &w, &vm, &pt, &skip), vec![c, d]);
    assert_eq!(leaks(&t, &w, &vm, &pt, &|_| false), vec![d], "the skipped area is a root when not skipped");
    // The area freed: a, and b through it, are leaks now.
    vm.vfree(area, &sim, &mut pt).unwrap();
    assert_eq!(leaks(&t, &w, &vm, &pt, &skip), vec![a, b, c, d]);
    vm.vunmap(dev, &sim, &mut pt).unwrap();
    sim.free_frame(frame.as_u64());
}
