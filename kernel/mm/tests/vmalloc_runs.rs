//! vmalloc with 4 KiB pages taken as blocks ("runs") from the page allocator, checked
//! against an independent model: every allocation the page source made is replayed in VA
//! order into the page descriptors it must have produced (a run's head tagged with its
//! order, the rest as run tails, single pages untagged), and the page tables are read back
//! by a walk of their own (raw descriptors, not the library's cursor). Areas cross page
//! table and 2 MiB boundaries; vfree must give back exactly the allocated blocks, each once
//! with its order, after the one TLB invalidation; a failure at any allocation must leave
//! nothing mapped and nothing allocated.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use common::{Ev, Sim};
use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_source::PageSource;
use mm::pgtable::desc::{run_head, Desc, PTE_RUN_MASK, RUN_TAIL};
use mm::pgtable::layout::{IOREMAP_END, IOREMAP_START, VMALLOC_END, VMALLOC_START};
use mm::pgtable::{Frames, PageTable, PhysMemory, Prot, PtError};
use mm::vmalloc::Vmalloc;

const K: u64 = PAGE_SIZE as u64;

/// [`Sim`] as a page source that also serves blocks up to `max_order` and records every
/// allocation and free in order.
struct RunSim {
    sim: Sim,
    max_order: Cell<u32>,
    /// (pa, order) of every allocation, in order.
    allocs: RefCell<Vec<(u64, u32)>>,
    /// (order, flags) of every `alloc_pages` call, in order (those that failed too).
    asked: RefCell<Vec<(u32, Gfp)>>,
    /// (pa, order, trace position) of every free.
    frees: RefCell<Vec<(u64, u32, usize)>>,
}

impl RunSim {
    fn new(frames: usize, max_order: u32) -> RunSim {
        RunSim {
            sim: Sim::new(frames),
            max_order: Cell::new(max_order),
            allocs: RefCell::new(Vec::new()),
            asked: RefCell::new(Vec::new()),
            frees: RefCell::new(Vec::new()),
        }
    }
}

impl PageSource for RunSim {
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr> {
        self.asked.borrow_mut().push((order, gfp));
        if order > self.max_order.get() {
            return None;
        }
        let pa = self.sim.alloc_block(gfp, order)?;
        self.allocs.borrow_mut().push((pa, order));
        Some(PhysAddr::new(pa))
    }
    fn free_pages(&self, pa: PhysAddr, order: u32) {
        self.frees.borrow_mut().push((pa.as_u64(), order, self.sim.log.borrow().len()));
        self.sim.free_pages(pa, order)
    }
    page_source_passthrough!(sim);
}

/// The raw level-3 descriptor of `va` and the tables on its path, read without the
/// library (the kernel regime: 39-bit VA, root at level 1); `None` where a table is
/// missing.
fn raw_pte(sim: &Sim, root: u64, va: u64) -> Option<(u64, [u64; 2])> {
    let idx = |level: u32| ((va >> (12 + 9 * (3 - level))) & 511) as usize;
    let l1 = sim.read_entry(PhysAddr::new(root), idx(1));
    if l1 & 3 != 3 {
        return None;
    }
    let l2t = l1 & 0x0000_ffff_ffff_f000;
    let l2 = sim.read_entry(PhysAddr::new(l2t), idx(2));
    if l2 & 3 != 3 {
        return None;
    }
    let l3t = l2 & 0x0000_ffff_ffff_f000;
    Some((sim.read_entry(PhysAddr::new(l3t), idx(3)), [l2t, l3t]))
}

/// The descriptors the model expects for an area, from the frames allocated for it (in
/// allocation order, table pages left out).
fn expected_ptes(frames: &[(u64, u32)]) -> Vec<u64> {
    let mut v = Vec::new();
    for &(pa, order) in frames {
        for j in 0..1u64 << order {
            let tag = match (order, j) {
                (0, _) => 0,
                (_, 0) => run_head(order),
                _ => RUN_TAIL,
            };
            v.push(Desc::leaf(pa + j * K, Prot::KERNEL_RW, 3).0 | tag);
        }
    }
    v
}

struct Area {
    va: u64,
    pages: usize,
    frames: Vec<(u64, u32)>,
}

/// vmalloc of `pages` pages, checked against the model; returns the area with its frames.
fn vmalloc_checked(rs: &RunSim, vm: &mut Vmalloc, pt: &mut PageTable<&Sim, &Sim>, pages: usize) -> Area {
    let first = rs.allocs.borrow().len();
    let va = vm.vmalloc(pages * PAGE_SIZE, GFP_KERNEL, "runs", rs, pt).unwrap().as_u64();
    let root = pt.root().as_u64();
    let mut tables = BTreeSet::new();
    let mut ptes = Vec::new();
    for i in 0..pages as u64 {
        let (pte, path) = raw_pte(&rs.sim, root, va + i * K).expect("page of the area without a table");
        tables.extend(path);
        ptes.push(pte);
    }
    // The allocations of this call, less the table pages it created.
    let frames: Vec<(u64, u32)> =
        rs.allocs.borrow()[first..].iter().copied().filter(|(pa, _)| !tables.contains(pa)).collect();
    assert_eq!(ptes, expected_ptes(&frames), "descriptors of the {pages}-page area at {va:#x}");
    // No run crosses the end of a page table.
    let mut i = 0u64;
    for &(_, order) in &frames {
        assert!(((va >> 12) + i) % 512 + (1 << order) <= 512, "run over a table end at page {i}");
        i += 1 << order;
    }
    // The guard page after the area is not mapped.
    if let Some((g, _)) = raw_pte(&rs.sim, root, va + pages as u64 * K) {
        assert_eq!(g, 0, "guard page mapped");
    }
    Area { va, pages, frames }
}

/// vfree of `a`, checked: its frames come back exactly (each block once, with its order),
/// the other frees are page-table pages, and every free follows the last invalidation.
fn vfree_checked(rs: &RunSim, vm: &mut Vmalloc, pt: &mut PageTable<&Sim, &Sim>, a: &Area) {
    let root = pt.root().as_u64();
    let mut tables = BTreeSet::new();
    for i in 0..a.pages as u64 {
        tables.extend(raw_pte(&rs.sim, root, a.va + i * K).unwrap().1);
    }
    tables.insert(root);
    let f0 = rs.frees.borrow().len();
    rs.sim.log.borrow_mut().clear();
    rs.sim.tracing.set(true);
    vm.vfree(VirtAddr::new(a.va), rs, pt).unwrap();
    rs.sim.tracing.set(false);
    let log = rs.sim.take_log();
    let frees = rs.frees.borrow()[f0..].to_vec();
    let mut got: BTreeMap<(u64, u32), usize> = BTreeMap::new();
    for &(pa, order, _) in &frees {
        if order == 0 && tables.contains(&pa) {
            continue;
        }
        *got.entry((pa, order)).or_default() += 1;
    }
    let want: BTreeMap<(u64, u32), usize> = a.frames.iter().map(|&f| (f, 1)).collect();
    assert_eq!(got, want, "frames given back by vfree of {} pages", a.pages);
    // One invalidation for the area: a full one from 8 pages, else one per page.
    let flushes: Vec<usize> =
        log.iter().enumerate().filter(|(_, e)| matches!(e, Ev::FlushAll | Ev::FlushVa(_))).map(|(i, _)| i).collect();
    if a.pages >= 8 {
        assert_eq!(flushes.len(), 1, "one full invalidation");
        assert_eq!(log[flushes[0]], Ev::FlushAll);
    } else {
        assert_eq!(flushes.len(), a.pages);
    }
    let last = *flushes.last().unwrap();
    assert!(log[last + 1] == Ev::Sync, "the invalidation is completed");
    assert!(frees.iter().all(|&(_, _, at)| at > last + 1), "a frame or table freed before the TLB forgot it");
    // Nothing of the area is mapped any more.
    for i in 0..a.pages as u64 {
        if let Some((pte, _)) = raw_pte(&rs.sim, root, a.va + i * K) {
            assert_eq!(pte, 0, "page {i} still has a descriptor");
        }
    }
}

fn new_vm() -> Vmalloc {
    let mut vm = Vmalloc::with_ranges(VMALLOC_START, VMALLOC_END, IOREMAP_START, IOREMAP_END);
    vm.set_allow_huge(false);
    vm
}

#[test]
fn runs_match_the_model_across_table_and_2mib_boundaries() {
    for max_order in [8, 5, 3, 0] {
        let rs = RunSim::new(12_000, max_order);
        let free0 = rs.sim.nr_free();
        let mut pt = rs.sim.kernel_pt();
        let mut vm = new_vm();
        // Live together, so later areas start at every kind of offset in a table and cross
        // 2 MiB boundaries (512 pages) at different points.
        let sizes = [1, 7, 8, 9, 255, 256, 257, 511, 512, 513, 700, 1027, 1500, 3];
        let areas: Vec<Area> = sizes.iter().map(|&n| vmalloc_checked(&rs, &mut vm, &mut pt, n)).collect();
        assert!(areas.iter().any(|a| (a.va >> 12) % 512 + a.pages as u64 > 512), "some area crosses a table");
        if max_order >= 3 {
            assert!(areas.iter().flat_map(|a| &a.frames).any(|f| f.1 == max_order), "runs of order {max_order}");
        } else {
            assert!(areas.iter().flat_map(|a| &a.frames).all(|f| f.1 == 0));
        }
        assert_eq!(vm.nr_vmalloc_pages(), sizes.iter().sum::<usize>());
        // Freed out of order, each against the model.
        for i in [3, 0, 12, 5, 7, 1, 13, 9, 2, 11, 4, 10, 6, 8] {
            vfree_checked(&rs, &mut vm, &mut pt, &areas[i]);
        }
        assert_eq!(vm.nr_vmalloc_pages(), 0);
        assert_eq!(pt.count_tables(), 1, "only the root is left");
        assert_eq!(rs.sim.nr_free(), free0 - 1, "everything but the root given back");
    }
}

#[test]
fn a_failure_at_any_allocation_maps_nothing_and_leaks_nothing() {
    for max_order in [8, 4] {
        let rs = RunSim::new(4_000, max_order);
        let mut pt = rs.sim.kernel_pt();
        let mut vm = new_vm();
        // A first area, so that the one that fails starts at page 401 of its table and
        // crosses two table boundaries.
        let first = vmalloc_checked(&rs, &mut vm, &mut pt, 400);
        let (free0, tables0, nt0) = (rs.sim.nr_free(), pt.count_tables(), vm.nr_table_pages());
        let pages = 700;
        let mut n = 1;
        loop {
            rs.sim.fail_after(n);
            let r = vm.vmalloc(pages * PAGE_SIZE, GFP_KERNEL | Gfp::GFP_NOWARN, "fail", &rs, &mut pt);
            rs.sim.no_fail();
            match r {
                Ok(va) => {
                    assert!(n > 4, "succeeded despite failing allocation {n}");
                    vm.vfree(va, &rs, &mut pt).unwrap();
                    break;
                }
                Err(e) => {
                    assert!(e.allocated_bytes <= (pages * PAGE_SIZE) as u64);
                    assert_eq!(rs.sim.nr_free(), free0, "allocation {n} failed: frames leaked");
                    assert_eq!((pt.count_tables(), vm.nr_table_pages()), (tables0, nt0), "allocation {n}: tables");
                    assert_eq!(vm.vmalloc_areas().nr_areas(), 1, "allocation {n}: area not released");
                    let root = pt.root().as_u64();
                    let start = first.va + (first.pages as u64 + 1) * K;
                    for i in 0..pages as u64 {
                        if let Some((pte, _)) = raw_pte(&rs.sim, root, start + i * K) {
                            assert_eq!(pte, 0, "allocation {n} failed: page {i} left mapped");
                        }
                    }
                }
            }
            n += 1;
            assert!(n < 2_000, "never succeeded");
        }
        vfree_checked(&rs, &mut vm, &mut pt, &first);
    }
}

#[test]
fn protect_keeps_runs_and_vfree_still_frees_blocks_whole() {
    let rs = RunSim::new(4_000, 8);
    let mut pt = rs.sim.kernel_pt();
    let mut vm = new_vm();
    let a = vmalloc_checked(&rs, &mut vm, &mut pt, 600);
    assert!(a.frames.iter().any(|f| f.1 > 0));
    let mut t = rs.sim.tables();
    pt.protect(&mut t, VirtAddr::new(a.va), a.pages as u64 * K, Prot::KERNEL_RO).unwrap();
    let root = pt.root().as_u64();
    for (i, want) in expected_ptes(&a.frames).into_iter().enumerate() {
        let (pte, _) = raw_pte(&rs.sim, root, a.va + i as u64 * K).unwrap();
        assert_eq!(pte & PTE_RUN_MASK, want & PTE_RUN_MASK, "run bits of page {i}");
        assert_eq!(Desc(pte).prot(), Prot::KERNEL_RO);
    }
    vfree_checked(&rs, &mut vm, &mut pt, &a);
}

#[test]
fn zeroed_runs_are_zero_and_movable_areas_get_single_pages() {
    let rs = RunSim::new(4_000, 8);
    let mut pt = rs.sim.kernel_pt();
    let mut vm = new_vm();
    let va = vm.vzalloc(300 * PAGE_SIZE, "z", &rs, &mut pt).unwrap();
    for i in 0..300u64 {
        let pa = vm.vmalloc_to_page(VirtAddr::new(va.as_u64() + i * K), &pt).unwrap();
        assert!((0..K).step_by(511).all(|o| rs.sim.read_byte(pa.as_u64() + o) == 0), "page {i} not zeroed");
    }
    vm.vfree(va, &rs, &mut pt).unwrap();
    let first = rs.allocs.borrow().len();
    let va = vm.vmalloc(300 * PAGE_SIZE, GFP_KERNEL | Gfp::GFP_MOVABLE, "m", &rs, &mut pt).unwrap();
    assert!(rs.allocs.borrow()[first..].iter().all(|f| f.1 == 0), "a movable vmalloc took a block");
    vm.vfree(va, &rs, &mut pt).unwrap();
}

/// Runs from a [`Frames`] supplier that may be broken.
struct Supplier {
    runs: Vec<(u64, u32)>,
    released: Vec<(u64, u64, u64)>,
}

impl Frames for Supplier {
    fn pages(&mut self, _va: VirtAddr, _max: usize) -> Option<(PhysAddr, u32)> {
        if self.runs.is_empty() {
            return None;
        }
        let (pa, order) = self.runs.remove(0);
        Some((PhysAddr::new(pa), order))
    }
    fn release(&mut self, va: VirtAddr, pa: PhysAddr, size: u64) {
        self.released.push((va.as_u64(), pa.as_u64(), size));
    }
}

#[test]
fn map_refuses_bad_runs_and_unmap_reports_each_run_once() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + 508 * K;
    // Misaligned for its order, then longer than the rest of the table: both refused and
    // handed back, the good run before them unmapped and handed back too.
    for bad in [(0x4000_1000, 2), (0x4010_0000, 3)] {
        let mut s = Supplier { runs: vec![(0x4000_0000, 1), bad], released: Vec::new() };
        let r = pt.map_frames(&mut t, VirtAddr::new(v), 8 * K, Prot::KERNEL_RW, &mut s);
        assert_eq!(r, Err(PtError::UnalignedPhys(PhysAddr::new(bad.0))));
        assert_eq!(s.released, vec![(v + 2 * K, bad.0, K << bad.1), (v, 0x4000_0000, 2 * K)]);
        assert_eq!(pt.count_tables(), 1, "tables of the failed map freed");
    }
    // Runs of 2 and 2 pages in one table, then 1 and a run of 2 in the next, one page
    // short: NoPageMemory, everything handed back.
    let mut s = Supplier { runs: vec![(0x4000_0000, 1), (0x4000_2000, 1), (0x5000_0000, 0)], released: Vec::new() };
    assert_eq!(pt.map_frames(&mut t, VirtAddr::new(v), 8 * K, Prot::KERNEL_RW, &mut s), Err(PtError::NoPageMemory));
    s.released.sort();
    assert_eq!(s.released, vec![(v, 0x4000_0000, 2 * K), (v + 2 * K, 0x4000_2000, 2 * K), (v + 4 * K, 0x5000_0000, K)]);
    assert_eq!(pt.count_tables(), 1);
    // Mapped whole: each run reported once at its head with its size, single pages alone.
    let runs = vec![(0x4000_0000, 1), (0x4000_2000, 1), (0x5000_0000, 0), (0x6000_0000, 0), (0x6000_4000, 2)];
    let mut s = Supplier { runs, released: Vec::new() };
    pt.map_frames(&mut t, VirtAddr::new(v), 10 * K, Prot::KERNEL_RW, &mut s).unwrap();
    let mut seen = Vec::new();
    let u = pt
        .unmap_with(&mut t, VirtAddr::new(v), 10 * K, &mut |a, p, sz| seen.push((a.as_u64(), p.as_u64(), sz)))
        .unwrap();
    let want = vec![
        (v, 0x4000_0000, 2 * K),
        (v + 2 * K, 0x4000_2000, 2 * K),
        (v + 4 * K, 0x5000_0000, K),
        (v + 5 * K, 0x6000_0000, K),
        (v + 6 * K, 0x6000_4000, 4 * K),
    ];
    assert_eq!(seen, want);
    assert_eq!((u.leaves, u.bytes), (10, 10 * K));
}

/// What each frame and table is asked with: a 2 MiB block and the runs quietly and
/// without retrying (pages in bulk follow where there is none), a block never movable,
/// nothing with `__GFP_ZERO` (vmalloc zeroes once itself); a table with the caller's
/// reclaim behaviour but no zone modifier, `__GFP_ZERO` or `__GFP_COMP`. A huge vmalloc of
/// 600 pages is one block and runs of 64, 16 and 8 pages; a failure after the block
/// reports its 2 MiB; a failed run caps the run orders until a vfree of 8 pages or more.
#[test]
fn frames_and_tables_are_asked_with_the_right_flags() {
    let rs = RunSim::new(4096, 9);
    let mut pt = rs.sim.kernel_pt();
    let mut vm = Vmalloc::with_ranges(VMALLOC_START, VMALLOC_END, IOREMAP_START, IOREMAP_END);
    let quiet = GFP_KERNEL | Gfp::GFP_NOWARN | Gfp::GFP_NORETRY;
    let asked = |rs: &RunSim| std::mem::take(&mut *rs.asked.borrow_mut());
    let va = vm.vmalloc(600 * PAGE_SIZE, GFP_KERNEL | Gfp::GFP_ZERO, "flags", &rs, &mut pt).unwrap();
    let got = asked(&rs);
    let frames: Vec<(u32, Gfp)> = got.iter().copied().filter(|&(o, _)| o > 0).collect();
    assert_eq!(frames, [(9, quiet), (6, quiet), (4, quiet), (3, quiet)]);
    let tables: Vec<Gfp> = got.iter().filter(|&&(o, _)| o == 0).map(|&(_, g)| g).collect();
    assert_eq!(tables, vec![GFP_KERNEL; vm.nr_table_pages()], "one per table, as the caller asked");
    assert_eq!(vm.nr_huge_blocks(), 1);
    vm.vfree(va, &rs, &mut pt).unwrap();
    // After a block the pages still wanted, 5, are asked for, not a whole bulk round.
    let tables0 = vm.nr_table_pages();
    let va = vm.vmalloc(517 * PAGE_SIZE, GFP_KERNEL, "flags", &rs, &mut pt).unwrap();
    let got = asked(&rs);
    let singles = got.iter().filter(|&&(o, _)| o == 0).count();
    assert_eq!(got.iter().filter(|&&(o, _)| o == 9).count(), 1);
    assert_eq!(singles, vm.nr_table_pages() - tables0 + 5, "{got:?}");
    vm.vfree(va, &rs, &mut pt).unwrap();
    // A failure after the block: the report counts the block's 2 MiB, and nothing leaks.
    let free0 = rs.sim.nr_free();
    let reported: Vec<u64> = (1..8)
        .map(|n| {
            rs.sim.fail_after(n);
            let r = vm.vmalloc(600 * PAGE_SIZE, GFP_KERNEL, "flags", &rs, &mut pt);
            rs.sim.no_fail();
            assert_eq!(rs.sim.nr_free(), free0, "after {n} allocations");
            r.unwrap_err().allocated_bytes
        })
        .collect();
    assert!(reported.contains(&(2 << 20)), "{reported:?}");
    asked(&rs);
    // A failed run lowered the cap on run orders (the injected failures above): pages
    // come singly until a vfree of at least 8 pages lifts it again; a smaller one does not.
    vm.set_allow_huge(false);
    let orders = |rs: &RunSim| asked(rs).iter().map(|&(o, _)| o).collect::<Vec<u32>>();
    let small = vm.vmalloc(4 * PAGE_SIZE, GFP_KERNEL, "flags", &rs, &mut pt).unwrap();
    vm.vfree(small, &rs, &mut pt).unwrap();
    asked(&rs);
    let va = vm.vmalloc(1100 * PAGE_SIZE, GFP_KERNEL, "flags", &rs, &mut pt).unwrap();
    assert!(orders(&rs).iter().all(|&o| o == 0), "runs under a lowered cap");
    vm.vfree(va, &rs, &mut pt).unwrap();
    // Huge mappings off: no block is asked for, even where a 2 MiB entry is covered whole.
    let va = vm.vmalloc(1100 * PAGE_SIZE, GFP_KERNEL, "flags", &rs, &mut pt).unwrap();
    let got = orders(&rs);
    assert!(got.contains(&8) && !got.contains(&9), "{got:?}");
    vm.vfree(va, &rs, &mut pt).unwrap();
    vm.set_allow_huge(true);
    // Movable (no runs, no blocks) and with zone modifiers: the tables lose them.
    let gfp = GFP_KERNEL | Gfp::GFP_MOVABLE | Gfp::GFP_HIGHMEM | Gfp::GFP_COMP | Gfp::GFP_ZERO;
    let va = vm.vmalloc(40 * PAGE_SIZE, gfp, "flags", &rs, &mut pt).unwrap();
    let got = asked(&rs);
    let page = gfp.without(Gfp::GFP_ZERO);
    assert!(got.iter().all(|&(o, g)| o == 0 && (g == GFP_KERNEL || g == page)), "{got:?}");
    let tables = got.iter().filter(|&&(_, g)| g == GFP_KERNEL).count();
    assert_eq!((tables, got.len() - tables), (vm.nr_table_pages(), 40), "{got:?}");
    vm.vfree(va, &rs, &mut pt).unwrap();
}
