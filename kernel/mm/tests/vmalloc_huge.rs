//! Huge vmalloc mappings on simulated memory: 2 MiB-aligned areas, level-2 block
//! descriptors where an order-9 block is available, pages for the rest, and the recorded
//! order of descriptor writes, invalidations and frees on map and vfree.

mod common;

use std::cell::{Cell, RefCell};

use common::{Ev, Sim};
use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_source::PageSource;
use mm::pgtable::desc::PTE_ADDR_MASK;
use mm::pgtable::layout::{IOREMAP_END, IOREMAP_START, VMALLOC_END, VMALLOC_START};
use mm::pgtable::{Access, PageTable, PhysMemory};
use mm::vmalloc::{VmHit, Vmalloc, VmallocFail};

const K: u64 = 4096;
const M2: u64 = 2 << 20;
const BLOCK_PAGES: usize = 512;

/// [`Sim`] plus a pool of 2 MiB blocks (order 9) carved from its first frames, with a
/// trace position recorded for every free.
struct HugeSim {
    sim: Sim,
    blocks: RefCell<Vec<u64>>,
    nr_blocks: usize,
    /// (pa, order, log length) of every free.
    frees: RefCell<Vec<(u64, u32, usize)>>,
    bulk_calls: Cell<usize>,
}

impl HugeSim {
    /// `blocks` order-9 blocks and `pages` more order-0 frames.
    fn new(blocks: usize, pages: usize) -> HugeSim {
        let sim = Sim::new(blocks * BLOCK_PAGES + pages);
        let mut pool = Vec::new();
        for b in 0..blocks {
            let first = sim.alloc_frame().unwrap();
            assert_eq!(first, sim.base_pa + b as u64 * M2, "fresh frames come out in order");
            assert!(first.is_multiple_of(M2));
            for _ in 1..BLOCK_PAGES {
                sim.alloc_frame().unwrap();
            }
            pool.push(first);
        }
        pool.reverse();
        HugeSim {
            sim,
            blocks: RefCell::new(pool),
            nr_blocks: blocks,
            frees: RefCell::new(Vec::new()),
            bulk_calls: Cell::new(0),
        }
    }
    fn free_blocks(&self) -> usize {
        self.blocks.borrow().len()
    }
    fn pt(&self) -> PageTable<&Sim, &Sim> {
        self.sim.kernel_pt()
    }
}

impl PageSource for HugeSim {
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr> {
        match order {
            0 => self.sim.alloc_pages(gfp, 0),
            9 => self.blocks.borrow_mut().pop().map(|pa| {
                // Dirty it, as Sim dirties pages: zeroing must be vmalloc's doing.
                // SAFETY: the block's 512 frames are contiguous in the host allocation.
                unsafe { std::ptr::write_bytes(self.sim.host(pa), 0xa5, M2 as usize) };
                PhysAddr::new(pa)
            }),
            _ => None,
        }
    }
    fn free_pages(&self, pa: PhysAddr, order: u32) {
        self.frees.borrow_mut().push((pa.as_u64(), order, self.sim.log.borrow().len()));
        match order {
            0 => self.sim.free_pages(pa, 0),
            9 => {
                let mut b = self.blocks.borrow_mut();
                assert!(!b.contains(&pa.as_u64()), "double free of block {pa:#x}");
                assert!(b.len() < self.nr_blocks);
                b.push(pa.as_u64());
            }
            _ => panic!("order {order} never allocated"),
        }
    }
    fn alloc_pages_bulk(&self, gfp: Gfp, out: &mut [PhysAddr]) -> usize {
        assert!(out.len() <= 64, "bulk rounds are bounded");
        self.bulk_calls.set(self.bulk_calls.get() + 1);
        let mut n = 0;
        for slot in out.iter_mut() {
            match self.alloc_pages(gfp, 0) {
                Some(pa) => *slot = pa,
                None => break,
            }
            n += 1;
        }
        n
    }
    page_source_passthrough!(sim);
}

fn new_vm() -> Vmalloc {
    // The range starts one page past a 2 MiB boundary: a huge area must skip ahead.
    Vmalloc::with_ranges(VMALLOC_START + K, VMALLOC_END, IOREMAP_START, IOREMAP_END)
}

fn info(vm: &Vmalloc) -> String {
    let mut s = String::new();
    vm.vmallocinfo(&mut s).unwrap();
    s
}

#[test]
fn blocks_where_available_pages_for_the_rest() {
    let hs = HugeSim::new(2, 1200);
    let mut pt = hs.pt();
    let mut vm = new_vm();
    let free0 = hs.sim.nr_free();
    // 5 MiB + 12 KiB: two whole 2 MiB pieces, then 259 pages.
    let size = 5 * (1 << 20) + 3 * K as usize;
    let va = vm.vzalloc(size, "huge_test", &hs, &mut pt).unwrap();
    let v = va.as_u64();
    assert!(v.is_multiple_of(M2), "huge area 2 MiB-aligned: {v:#x}");
    let t0 = pt.translate(va).unwrap();
    let t1 = pt.translate(VirtAddr::new(v + M2 + 5 * K)).unwrap();
    assert_eq!((t0.level, t1.level), (2, 2));
    assert_eq!(t0.prot, mm::pgtable::Prot::KERNEL_RW);
    assert_eq!(pt.translate(VirtAddr::new(v + 2 * M2)).unwrap().level, 3);
    assert_eq!(pt.translate(VirtAddr::new(v + size as u64 - 1)).unwrap().level, 3);
    assert_eq!(pt.translate(VirtAddr::new(v + size as u64)), None, "guard page");
    // vmalloc_to_page inside a block is the block's page.
    let p = vm.vmalloc_to_page(VirtAddr::new(v + M2 + 5 * K + 7), &pt).unwrap();
    assert_eq!(p, t1.pa);
    assert_eq!(p.as_u64() & (M2 - 1), 5 * K);
    // Zeroed once, blocks included (the pool dirtied them).
    for off in [0, M2 - 1, M2 + 4242, 2 * M2 + 17, size as u64 - 1] {
        let pa = pt.translate(VirtAddr::new(v + off)).unwrap().pa;
        assert_eq!(hs.sim.read_byte(pa.as_u64()), 0, "byte at +{off:#x}");
    }
    assert_eq!(vm.nr_huge_blocks(), 2);
    assert_eq!(vm.nr_vmalloc_pages(), size.div_ceil(PAGE_SIZE));
    // Pages came in bounded bulk rounds: 259 pages, 64 at a time.
    assert_eq!(hs.bulk_calls.get(), 5);
    let line = info(&vm);
    assert!(line.ends_with(&format!(" huge_test pages={} vmalloc huge=2\n", size.div_ceil(PAGE_SIZE))), "{line}");
    // One L2 and one L3 table: no L3 under the blocks.
    assert_eq!(vm.nr_table_pages(), 2);
    vm.vfree(va, &hs, &mut pt).unwrap();
    assert_eq!(hs.free_blocks(), 2);
    assert_eq!(hs.sim.nr_free(), free0, "every page back");
    assert_eq!((vm.nr_huge_blocks(), vm.nr_vmalloc_pages(), vm.nr_table_pages()), (0, 0, 0));
    assert_eq!(pt.count_tables(), 1);
}

#[test]
fn no_blocks_means_pages_and_small_areas_stay_unaligned() {
    let hs = HugeSim::new(0, 1200);
    let mut pt = hs.pt();
    let mut vm = new_vm();
    let small = vm.vmalloc(8 * K as usize, GFP_KERNEL, "small", &hs, &mut pt).unwrap();
    assert_eq!(small.as_u64(), VMALLOC_START + K, "below 2 MiB: no alignment");
    let va = vm.vmalloc(M2 as usize, GFP_KERNEL, "no_blocks", &hs, &mut pt).unwrap();
    assert!(va.as_u64().is_multiple_of(M2));
    assert_eq!(pt.translate(va).unwrap().level, 3);
    assert_eq!(vm.nr_huge_blocks(), 0);
    assert!(info(&vm).contains(" no_blocks pages=512 vmalloc\n"), "{}", info(&vm));
    // The head left by the alignment is still usable.
    let head = vm.vmalloc(4 * K as usize, GFP_KERNEL, "head", &hs, &mut pt).unwrap();
    assert_eq!(head.as_u64(), VMALLOC_START + 10 * K, "best fit: the head left by the alignment");
    for a in [small, va, head] {
        vm.vfree(a, &hs, &mut pt).unwrap();
    }
    assert_eq!(vm.vmalloc_areas().nr_free_ranges(), 1, "everything merged back");
    // Turned off, a large vmalloc is pages even with blocks available.
    let hs = HugeSim::new(1, 600);
    let mut pt = hs.pt();
    let mut vm = new_vm();
    vm.set_allow_huge(false);
    let va = vm.vmalloc(M2 as usize, GFP_KERNEL, "off", &hs, &mut pt).unwrap();
    assert_eq!((pt.translate(va).unwrap().level, hs.free_blocks()), (3, 1));
}

#[test]
fn map_writes_a_block_once_and_vfree_invalidates_before_freeing_it() {
    let hs = HugeSim::new(1, 64);
    let mut pt = hs.pt();
    let mut vm = new_vm();
    hs.sim.tracing.set(true);
    let va = vm.vmalloc(M2 as usize, GFP_KERNEL, "trace", &hs, &mut pt).unwrap();
    let log = hs.sim.take_log();
    let t = pt.translate(va).unwrap();
    assert_eq!(t.level, 2);
    let block = t.pa.as_u64();
    let l2_link = pt.root().as_u64();
    let l2 = hs.sim.read_entry(PhysAddr::new(l2_link), ((va.as_u64() >> 30) & 511) as usize) & PTE_ADDR_MASK;
    let idx = ((va.as_u64() >> 21) & 511) as usize;
    // Map: the new L2 table is zeroed and made visible before it is linked; the block
    // entry is written once (invalid -> valid: nothing to invalidate), then a barrier.
    let writes: Vec<_> = log.iter().filter(|e| matches!(e, Ev::Write { table, .. } if *table == l2)).collect();
    assert_eq!(writes.len(), 512 + 1);
    let set = log
        .iter()
        .position(|e| matches!(e, Ev::Write { table, idx: i, val } if *table == l2 && *i == idx && *val != 0))
        .unwrap();
    assert_eq!(log[set], Ev::Write { table: l2, idx, val: block | 0x0060_0000_0000_0701 });
    assert_eq!(log.last(), Some(&Ev::Sync));
    assert!(!log.iter().any(|e| matches!(e, Ev::FlushVa(_) | Ev::FlushAll)));

    hs.frees.borrow_mut().clear();
    vm.vfree(va, &hs, &mut pt).unwrap();
    let log = hs.sim.take_log();
    let clear = log
        .iter()
        .position(|e| matches!(e, Ev::Write { table, idx: i, val } if *table == l2 && *i == idx && val & 1 == 0))
        .expect("block entry never cleared");
    // 512 pages: one full invalidation between two barriers, before the block is freed.
    let flush = log[clear..].iter().position(|e| *e == Ev::FlushAll).unwrap() + clear;
    assert!(log[clear..flush].contains(&Ev::Sync));
    assert_eq!(log[flush + 1], Ev::Sync);
    let frees = hs.frees.borrow();
    let (pa, order, at) = frees.iter().find(|f| f.1 == 9).copied().expect("block not freed as order 9");
    assert_eq!((pa, order), (block, 9));
    assert!(at > flush + 1, "block freed before the TLB forgot it");
    assert!(frees.iter().all(|f| f.1 == 9 || f.2 > flush), "tables freed before the invalidation");
}

#[test]
fn failures_unwind_blocks_and_pages() {
    // One block, then pages run out in the remainder: everything goes back.
    let hs = HugeSim::new(1, 700);
    let mut pt = hs.pt();
    let mut vm = new_vm();
    let free0 = hs.sim.nr_free();
    let size = (M2 + 300 * K) as usize;
    for n in 1..=8 {
        hs.sim.fail_after(n);
        let r = vm.vmalloc(size, GFP_KERNEL, "unwind", &hs, &mut pt);
        hs.sim.no_fail();
        let e = r.unwrap_err();
        assert!(matches!(e.reason, VmallocFail::NoPages | VmallocFail::NoTablePages), "{e:?}");
        assert_eq!(hs.free_blocks(), 1, "n = {n}: block leaked");
        assert_eq!(hs.sim.nr_free(), free0, "n = {n}: pages leaked");
        assert_eq!((vm.nr_table_pages(), vm.nr_huge_blocks(), vm.vmalloc_areas().nr_areas()), (0, 0, 0));
        assert_eq!(pt.count_tables(), 1);
    }
    let va = vm.vmalloc(size, GFP_KERNEL, "unwind", &hs, &mut pt).unwrap();
    vm.vfree(va, &hs, &mut pt).unwrap();
    assert_eq!((hs.free_blocks(), hs.sim.nr_free()), (1, free0));
}

#[test]
fn fault_reports_name_huge_areas_and_their_guard_page() {
    let hs = HugeSim::new(2, 64);
    let mut pt = hs.pt();
    let mut vm = new_vm();
    let va = vm.vmalloc(2 * M2 as usize, GFP_KERNEL, "huge_guard", &hs, &mut pt).unwrap();
    let end = VirtAddr::new(va.as_u64() + 2 * M2);
    let mut s = String::new();
    vm.report_fault(&pt, end, Access::Write, &mut s).unwrap();
    assert!(s.contains("FSC = 0x06: level 2 translation fault"), "{s}");
    assert!(s.contains("is in the guard page after huge vmalloc area"), "{s}");
    match vm.lookup(VirtAddr::new(va.as_u64() + M2 + 3)) {
        Some(hit @ VmHit::Area(..)) => assert!(hit.to_string().contains("bytes inside huge vmalloc area")),
        other => panic!("{other:?}"),
    }
    let mut s = String::new();
    vm.report_fault(&pt, va, Access::Write, &mut s).unwrap();
    assert!(s.contains("no fault: mapped at level 2"), "{s}");
    vm.vfree(va, &hs, &mut pt).unwrap();
    assert!(vm
        .lookup(va)
        .unwrap()
        .to_string()
        .starts_with(&format!("access to freed huge vmalloc area [{:#x}", va.as_u64())));
}

#[test]
fn huge_mappings_need_fewer_table_pages() {
    // Four blocks and 200 pages: with blocks, 4 x 512 + 190 pages fit (one L2 and one L3
    // table, none under the blocks); pages only, the blocks cannot serve at all.
    let try_size = |huge: bool, pages: usize| {
        let hs = HugeSim::new(4, 200);
        let mut pt = hs.pt();
        let mut vm = new_vm();
        vm.set_allow_huge(huge);
        let r = vm.vmalloc(pages * PAGE_SIZE, GFP_KERNEL, "cap", &hs, &mut pt);
        let tables = vm.nr_table_pages();
        if let Ok(va) = r {
            vm.vfree(va, &hs, &mut pt).unwrap();
        }
        (r.is_ok(), tables)
    };
    assert_eq!(try_size(true, 4 * BLOCK_PAGES + 190), (true, 2));
    assert!(!try_size(false, 4 * BLOCK_PAGES + 190).0);
    assert!(!try_size(true, 4 * BLOCK_PAGES + 199).0, "more pages than there are");
}

#[test]
fn blocks_unaligned_from_a_broken_source_are_refused() {
    use mm::pgtable::{Frames, PtError};
    struct Bad;
    impl Frames for Bad {
        fn block(&mut self, _: VirtAddr) -> Option<PhysAddr> {
            Some(PhysAddr::new(0x8000_1000))
        }
        fn pages(&mut self, _: VirtAddr, _: usize) -> Option<(PhysAddr, u32)> {
            None
        }
        fn release(&mut self, _: VirtAddr, _: PhysAddr, size: u64) {
            assert_eq!(size, M2);
        }
    }
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let r = pt.map_frames(&mut t, VirtAddr::new(VMALLOC_START), M2, mm::pgtable::Prot::KERNEL_RW, &mut Bad);
    assert_eq!(r, Err(PtError::UnalignedPhys(PhysAddr::new(0x8000_1000))));
    assert_eq!(pt.count_tables(), 1, "tables of the failed map freed");
}
