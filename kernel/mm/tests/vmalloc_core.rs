//! vmalloc on simulated memory: fault injection at every allocation, no leaks, exact
//! vmallocinfo, zeroing, capacity, vmap and ioremap.

mod common;

use common::Sim;
use mm::addr::{PhysAddr, VirtAddr};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::pgtable::layout::{IOREMAP_END, IOREMAP_START, VMALLOC_END, VMALLOC_START};
use mm::pgtable::{Access, PageTable, Prot};
use mm::vmalloc::{AreaError, VmError, VmHit, Vmalloc, VmallocFail};

const K: u64 = 4096;
const M2: u64 = 2 << 20;

type Pt<'a> = PageTable<&'a Sim, &'a Sim>;

fn leaves(pt: &Pt<'_>, start: u64, size: u64) -> usize {
    let mut n = 0;
    pt.for_each_leaf(VirtAddr::new(start), size, &mut |_| n += 1);
    n
}

#[test]
fn every_failure_point_unwinds_completely() {
    let sim = Sim::new(256);
    let mut pt = sim.kernel_pt();
    // The range starts 32 pages before a 2 MiB boundary: 64 pages need two L3 tables.
    let start = VMALLOC_START + M2 - 32 * K;
    let mut vm = Vmalloc::with_ranges(start, VMALLOC_END, IOREMAP_START, IOREMAP_END);
    let free0 = sim.nr_free();
    // Allocation order: L2 table, L3 table, pages 0..64 in one bulk round (the area's
    // pages, at most 64 at a time), L3 table.
    for n in 1..=68 {
        sim.fail_after(n);
        let r = vm.vmalloc(64 * K as usize, GFP_KERNEL, "fault_test", &sim, &mut pt);
        sim.no_fail();
        if n == 68 {
            let va = r.unwrap();
            assert_eq!(va.as_u64(), start);
            assert_eq!(vm.nr_table_pages(), 3);
            assert_eq!(vm.nr_vmalloc_pages(), 64);
            vm.vfree(va, &sim, &mut pt).unwrap();
        } else {
            let e = r.unwrap_err();
            let (reason, pages) = match n {
                1 | 2 => (VmallocFail::NoTablePages, 0),
                3..=34 => (VmallocFail::NoPages, n - 3),
                // The first L3 table is full (32 pages); the rest of the bulk waits.
                _ => (VmallocFail::NoTablePages, 32),
            };
            assert_eq!((e.reason, e.allocated_bytes), (reason, pages as u64 * K), "n = {n}");
            assert_eq!(e.requested_bytes, 64 * K);
        }
        assert_eq!(sim.nr_free(), free0, "n = {n}: pages leaked");
        assert_eq!(vm.nr_table_pages(), 0, "n = {n}");
        assert_eq!(vm.nr_vmalloc_pages(), 0, "n = {n}");
        assert_eq!(leaves(&pt, start, 66 * K), 0, "n = {n}: entries left");
        assert_eq!(pt.count_tables(), 1, "n = {n}: tables left");
        assert_eq!(vm.vmalloc_areas().nr_areas(), 0);
        assert_eq!(vm.vmalloc_areas().nr_free_ranges(), 1, "n = {n}: area kept");
    }
}

#[test]
fn failure_reports_read_like_linux() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    sim.fail_after(5); // L2, L3, two pages, then nothing.
    let e = vm.vmalloc(16 * K as usize, GFP_KERNEL, "t", &sim, &mut pt).unwrap_err();
    sim.no_fail();
    assert_eq!(e.to_string(), "vmalloc: allocation failure, allocated 8192 of 65536 bytes, mode:0xcc0(GFP_KERNEL)");
    let mut small = Vmalloc::with_ranges(VMALLOC_START, VMALLOC_START + 16 * K, IOREMAP_START, IOREMAP_END);
    let e = small.vmalloc(16 * K as usize, GFP_KERNEL, "t", &sim, &mut pt).unwrap_err();
    assert_eq!(e.reason, VmallocFail::NoVirtualSpace(AreaError::Exhausted(17 * K)));
    assert_eq!(e.to_string(), "vmalloc: allocation failure: 65536 bytes, mode:0xcc0(GFP_KERNEL)");
    let e = vm.vmalloc(0, GFP_KERNEL, "t", &sim, &mut pt).unwrap_err();
    assert_eq!(e.reason, VmallocFail::ZeroSize);
    let e = vm.vmalloc(usize::MAX, GFP_KERNEL, "t", &sim, &mut pt).unwrap_err();
    assert!(matches!(e.reason, VmallocFail::NoVirtualSpace(_)));
}

#[test]
fn vzalloc_zeroes_and_pages_are_found_in_the_tables() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let z = vm.vzalloc(3 * K as usize - 100, "z", &sim, &mut pt).unwrap();
    let d = vm.vmalloc(K as usize, GFP_KERNEL, "d", &sim, &mut pt).unwrap();
    assert!(vm.is_vmalloc_addr(z) && !vm.is_vmalloc_addr(VirtAddr::new(IOREMAP_START)));
    for i in 0..3 {
        let pa = vm.vmalloc_to_page(z.add(i * K + 5), &pt).unwrap();
        assert!(pa.is_page_aligned());
        assert_eq!(pt.translate(z.add(i * K)).unwrap().prot, Prot::KERNEL_RW);
        assert!((0..K).all(|b| sim.read_byte(pa.as_u64() + b) == 0));
    }
    let pa = vm.vmalloc_to_page(d, &pt).unwrap();
    assert_eq!(sim.read_byte(pa.as_u64()), 0xa5, "GFP_KERNEL without __GFP_ZERO zeroed");
    assert_eq!(vm.vmalloc_to_page(z.add(3 * K), &pt), None, "guard page mapped");
    assert_eq!(vm.nr_vmalloc_pages(), 4);
}

#[test]
fn vfree_refuses_what_is_not_an_area_start() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let free0 = sim.nr_free();
    let a = vm.vmalloc(2 * K as usize, GFP_KERNEL, "a", &sim, &mut pt).unwrap();
    assert_eq!(vm.vfree(a.add(K), &sim, &mut pt), Err(VmError::NotAnArea(a.add(K))));
    let frame = PhysAddr::new(sim.alloc_frame().unwrap());
    let m = vm.vmap(&[frame], Prot::KERNEL_RO, "m", &sim, &mut pt).unwrap();
    assert_eq!(vm.vfree(m, &sim, &mut pt), Err(VmError::NotAnArea(m)));
    vm.vfree(a, &sim, &mut pt).unwrap();
    let e = vm.vfree(a, &sim, &mut pt).unwrap_err();
    assert_eq!(e.to_string(), "Trying to vfree() nonexistent vm area (0xffffffa000000000)");
    assert_eq!(vm.vmalloc_to_page(m, &pt), Some(frame));
    assert_eq!(pt.translate(m).unwrap().prot, Prot::KERNEL_RO);
    vm.vunmap(m, &sim, &mut pt).unwrap();
    assert_eq!(vm.vmalloc_to_page(m, &pt), None);
    sim.free_frame(frame.as_u64());
    assert_eq!(sim.nr_free(), free0);
    assert_eq!(vm.nr_table_pages(), 0);
}

#[test]
fn vmallocinfo_is_linux_format() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    vm.vmalloc(2 * K as usize, GFP_KERNEL, "load_module+0x1c4/0x2a0", &sim, &mut pt).unwrap();
    let frame = PhysAddr::new(sim.alloc_frame().unwrap());
    vm.vmap(&[frame], Prot::KERNEL_RW, "vmap_test", &sim, &mut pt).unwrap();
    let io = vm.ioremap(PhysAddr::new(0x3f20_0040), 0x100, "bcm2835_gpio_probe", &sim, &mut pt).unwrap();
    assert_eq!(io.as_u64(), IOREMAP_START + 0x40);
    let mut s = String::new();
    vm.vmallocinfo(&mut s).unwrap();
    assert_eq!(
        s,
        "0xffffffa000000000-0xffffffa000003000   12288 load_module+0x1c4/0x2a0 pages=2 vmalloc\n\
         0xffffffa000003000-0xffffffa000005000    8192 vmap_test vmap\n\
         0xffffffb000000000-0xffffffb000002000    8192 bcm2835_gpio_probe phys=0x000000003f200000 ioremap\n"
    );
}

#[test]
fn ioremap_maps_device_memory() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let free0 = sim.nr_free();
    let io = vm.ioremap(PhysAddr::new(0x3f00_b880), 0x2000, "mbox", &sim, &mut pt).unwrap();
    let t = pt.translate(io).unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x3f00_b880));
    assert_eq!(t.prot, Prot::DEVICE);
    assert_eq!(leaves(&pt, IOREMAP_START, 4 * K), 3, "offset + size spans three pages");
    assert_eq!(vm.ioremap(PhysAddr::new(0), 0, "z", &sim, &mut pt), Err(VmError::Area(AreaError::ZeroSize)));
    assert_eq!(
        vm.iounmap(VirtAddr::new(VMALLOC_START), &sim, &mut pt),
        Err(VmError::NotAnArea(VirtAddr::new(VMALLOC_START)))
    );
    vm.iounmap(io, &sim, &mut pt).unwrap();
    assert_eq!(pt.translate(io), None);
    assert_eq!(sim.nr_free(), free0);
    // Out of table pages: nothing stays reserved.
    sim.fail_after(1);
    assert!(matches!(vm.ioremap(PhysAddr::new(0x3f00_0000), K, "x", &sim, &mut pt), Err(VmError::Map(_))));
    sim.no_fail();
    assert_eq!(vm.ioremap_areas().nr_areas(), 0);
    assert_eq!(sim.nr_free(), free0);
}

#[test]
fn reports_for_guard_pages_and_freed_areas() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let a = vm.vmalloc(2 * K as usize, GFP_KERNEL, "alloc_netdev", &sim, &mut pt).unwrap();
    let b = vm.vmalloc(K as usize, GFP_KERNEL, "bpf_prog_alloc", &sim, &mut pt).unwrap();
    assert_eq!(
        vm.lookup(a.add(K + 8)).unwrap().to_string(),
        "0xffffffa000001008 is 4104 bytes inside vmalloc area [0xffffffa000000000-0xffffffa000002000] allocated by alloc_netdev"
    );
    let g = vm.lookup(a.add(2 * K)).unwrap();
    assert!(matches!(g, VmHit::Guard(_, x) if x.caller == "alloc_netdev"));
    assert_eq!(pt.fault_info(a.add(2 * K)).to_string(), "level 3 translation fault");
    vm.vfree(b, &sim, &mut pt).unwrap();
    assert_eq!(
        vm.lookup(b).unwrap().to_string(),
        "access to freed vmalloc area [0xffffffa000003000-0xffffffa000004000] allocated by bpf_prog_alloc"
    );
    assert_eq!(vm.lookup(VirtAddr::new(VMALLOC_START + M2)), None);
    let mut r = String::new();
    vm.report_fault(&pt, a.add(2 * K + 16), Access::Read, &mut r).unwrap();
    assert_eq!(
        r,
        "Unable to handle kernel paging request at virtual address ffffffa000002010\n  \
         FSC = 0x07: level 3 translation fault\n  \
         0xffffffa000002010 is in the guard page after vmalloc area \
         [0xffffffa000000000-0xffffffa000002000] allocated by alloc_netdev\n"
    );
    r.clear();
    vm.report_fault(&pt, a, Access::Exec, &mut r).unwrap();
    assert!(r.ends_with("  FSC = 0x0f: level 3 permission fault\n  0xffffffa000000000 is 0 bytes inside vmalloc area [0xffffffa000000000-0xffffffa000002000] allocated by alloc_netdev\n"), "{r}");
}

#[test]
fn one_vmalloc_can_take_nearly_all_memory() {
    let sim = Sim::new(1024);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let free0 = sim.nr_free();
    // One L2 table and one L3 table per 512 pages are the only overhead.
    let pages = free0 - 1 - free0.div_ceil(512);
    assert!(pages * 100 >= free0 * 99, "{pages} of {free0}");
    let e = vm.vmalloc((pages + 1) * K as usize, GFP_KERNEL, "big", &sim, &mut pt).unwrap_err();
    assert_eq!(e.reason, VmallocFail::NoPages);
    assert_eq!(sim.nr_free(), free0);
    let va = vm.vmalloc(pages * K as usize, GFP_KERNEL | Gfp::GFP_NOWARN, "big", &sim, &mut pt).unwrap();
    assert_eq!(sim.nr_free(), 0);
    assert_eq!(vm.nr_table_pages(), 3);
    vm.vfree(va, &sim, &mut pt).unwrap();
    assert_eq!(sim.nr_free(), free0);
    assert_eq!(vm.nr_table_pages(), 0);
}

#[test]
fn many_areas_then_vfree_all_returns_every_page() {
    let sim = Sim::new(512);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let free0 = sim.nr_free();
    let mut v = Vec::new();
    for i in 0..40 {
        v.push(vm.vmalloc(((i % 7) + 1) * 3000, GFP_KERNEL, "many", &sim, &mut pt).unwrap());
    }
    for (i, va) in v.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        vm.vfree(*va, &sim, &mut pt).unwrap_or_else(|e| panic!("{i}: {e}"));
    }
    for va in v.iter().skip(1).step_by(2) {
        vm.vfree(*va, &sim, &mut pt).unwrap();
    }
    assert_eq!(sim.nr_free(), free0);
    assert_eq!(vm.nr_table_pages(), 0);
    assert_eq!(pt.count_tables(), 1);
}

/// A burst over a hole between two lasting areas can leave the hole's node in a chunk of
/// the burst (see `VmapAreas::shrink_nodes`); `shrink_nodes` gives such chunks back in
/// both ranges, vmalloc's and ioremap's, and says how many. `allow_huge` reads back.
#[test]
fn shrink_nodes_gives_back_spare_node_chunks_of_both_ranges() {
    let sim = Sim::new(256);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::with_ranges(VMALLOC_START, VMALLOC_END, IOREMAP_START, IOREMAP_END);
    // The areas' node chunk holds 32: p, q, the hole, the tail and 28 fillers fill it.
    macro_rules! spread_the_hole {
        ($alloc:expr, $free:expr) => {{
            let _p = $alloc(K);
            let hole = $alloc(3 * K);
            let _q = $alloc(K);
            $free(hole);
            let fill: Vec<VirtAddr> = (0..28).map(|_| $alloc(4 * K)).collect();
            let (x1, x2) = ($alloc(K), $alloc(K));
            assert_eq!(x1, hole, "best fit");
            $free(x1);
            $free(x2);
            for f in fill {
                $free(f);
            }
        }};
    }
    spread_the_hole!(|size: u64| vm.vmalloc(size as usize, GFP_KERNEL, "t", &sim, &mut pt).unwrap(), |va| vm
        .vfree(va, &sim, &mut pt)
        .unwrap());
    let mut next_pa = 0x3f00_0000u64;
    spread_the_hole!(
        |size: u64| {
            next_pa += size;
            vm.ioremap(PhysAddr::new(next_pa - size), size, "t", &sim, &mut pt).unwrap()
        },
        |va| vm.iounmap(va, &sim, &mut pt).unwrap()
    );
    assert_eq!(vm.shrink_nodes(), 2, "one chunk in each range");
    assert_eq!(vm.shrink_nodes(), 0);
    vm.set_allow_huge(false);
    assert!(!vm.allow_huge());
    vm.set_allow_huge(true);
    assert!(vm.allow_huge());
}

/// `vunmap` takes only what `vmap` made and `iounmap` only ioremaps: a vmalloc area given
/// to either is refused and stays mapped. An ioremap covers the whole pages of its range,
/// and no more.
#[test]
fn unmaps_take_only_their_own_kind_and_ioremap_covers_its_pages() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::with_ranges(VMALLOC_START, VMALLOC_END, IOREMAP_START, IOREMAP_END);
    let v = vm.vmalloc(2 * K as usize, GFP_KERNEL, "t", &sim, &mut pt).unwrap();
    assert_eq!(vm.vunmap(v, &sim, &mut pt), Err(VmError::NotAnArea(v)));
    assert_eq!(vm.iounmap(v, &sim, &mut pt), Err(VmError::NotAnArea(v)));
    assert_eq!(vm.vmalloc_areas().nr_areas(), 1);
    assert_eq!(leaves(&pt, v.as_u64(), 2 * K), 2);
    vm.vfree(v, &sim, &mut pt).unwrap();
    for (pa, size, pages) in
        [(0x3f00_0000, K, 1), (0x3f00_1000, 2 * K, 2), (0x3f00_0ff8, 16, 2), (0x3f00_0010, K - 16, 1)]
    {
        let io = vm.ioremap(PhysAddr::new(pa), size, "t", &sim, &mut pt).unwrap();
        let start = io.as_u64() & !(K - 1);
        assert_eq!(vm.ioremap_areas().get(VirtAddr::new(start)).unwrap().size, pages * K, "{pa:#x}+{size:#x}");
        vm.iounmap(io, &sim, &mut pt).unwrap();
    }
}
