//! Building the kernel's tables as boot does: bump-allocated tables, linear map with
//! blocks, kernel image sections, read-only text alias, per-CPU stacks with guards.

mod common;

use common::Sim;
use mm::addr::{PhysAddr, VirtAddr};
use mm::pgtable::boot::{map_kimage, map_linear, map_stack, protect_linear_alias, BumpTables};
use mm::pgtable::layout::{stack_slot, KIMAGE_VADDR, PAGE_OFFSET, STACK_SLOT_SIZE};
use mm::pgtable::{PageTable, Prot, PtConfig, PtError, TableAlloc};

const K: u64 = 4096;

fn pa(x: u64) -> PhysAddr {
    PhysAddr::new(x)
}

#[test]
fn kernel_layout_at_boot() {
    let sim = Sim::new(32);
    let first = sim.alloc_frame().unwrap();
    for _ in 1..24 {
        sim.alloc_frame().unwrap();
    }
    let mut bump = BumpTables::new(pa(first), pa(first + 24 * K));
    let mut pt = PageTable::create(&mut bump, PtConfig::KERNEL_39, &sim, &sim).unwrap();
    // Raspberry Pi 3: 948 MiB of RAM for the ARM, kernel loaded at 0x80000.
    let ram_end = 0x3b40_0000;
    map_linear(&mut pt, &mut bump, pa(0), pa(ram_end)).unwrap();
    let (text, rodata, data, end) = (0x8_0000, 0x12_0000, 0x16_0000, 0x20_0000);
    let sections = [
        (pa(text), pa(rodata), Prot::KERNEL_RX),
        (pa(rodata), pa(data), Prot::KERNEL_RO),
        (pa(data), pa(end), Prot::KERNEL_RW),
    ];
    map_kimage(&mut pt, &mut bump, &sections).unwrap();
    protect_linear_alias(&mut pt, &mut bump, pa(text), pa(rodata), Prot::KERNEL_RO).unwrap();
    let mut tops = Vec::new();
    for cpu in 0..4 {
        tops.push(map_stack(&mut pt, &mut bump, cpu, pa(0x3000_0000 + cpu * STACK_SLOT_SIZE)).unwrap());
    }
    let t = pt.translate(VirtAddr::new(KIMAGE_VADDR + 0x9_0000)).unwrap();
    assert_eq!((t.pa, t.prot), (pa(0x9_0000), Prot::KERNEL_RX));
    assert_eq!(pt.translate(VirtAddr::new(KIMAGE_VADDR + data)).unwrap().prot, Prot::KERNEL_RW);
    assert_eq!(pt.translate(VirtAddr::new(PAGE_OFFSET + text)).unwrap().prot, Prot::KERNEL_RO);
    assert_eq!(pt.translate(VirtAddr::new(PAGE_OFFSET + rodata)).unwrap().prot, Prot::KERNEL_RW);
    assert_eq!(pt.translate(VirtAddr::new(PAGE_OFFSET + 0x4000_0000 - K)), None);
    assert_eq!(pt.translate(VirtAddr::new(PAGE_OFFSET + 0x1000_0000)).unwrap().level, 2);
    assert_eq!(tops[1].as_u64(), stack_slot(2));
    assert_eq!(pt.translate(VirtAddr::new(tops[0].as_u64() - 8)).unwrap().pa, pa(0x3000_0000 + 0xeff8));
    assert_eq!(
        pt.fault_info(VirtAddr::new(stack_slot(1) + 100)).to_string(),
        "level 3 translation fault",
        "stack guard page mapped"
    );
    // Root; linear map: one L2 of 2 MiB blocks (948 MiB is 2 MiB aligned); kernel image:
    // L2 + L3; text alias: one L3 from splitting its block; stacks: L2 + L3.
    assert_eq!(bump.in_use(), 1 + 1 + 2 + 1 + 2);
    assert_eq!(pt.count_tables(), bump.in_use());
    let mut dump = String::new();
    pt.dump(&mut dump, VirtAddr::new(KIMAGE_VADDR), 0x20_0000).unwrap();
    assert_eq!(dump.lines().count(), 3, "{dump}");
}

#[test]
fn bump_allocator_runs_dry_and_reuses() {
    let mut b = BumpTables::new(pa(0x1001), pa(0x4000));
    assert_eq!(b.alloc_table(), Some(pa(0x2000)));
    assert_eq!(b.alloc_table(), Some(pa(0x3000)));
    assert_eq!(b.alloc_table(), None);
    b.free_table(pa(0x2000));
    assert_eq!(b.alloc_table(), Some(pa(0x2000)));
    assert_eq!((b.in_use(), b.next_free()), (2, pa(0x4000)));
    // The reuse list holds 8 pages; more given back are lost (still reserved), and
    // counted for paging_init's warning.
    let mut b = BumpTables::new(pa(0x10000), pa(0x20000));
    let got: Vec<PhysAddr> = (0..10).map(|_| b.alloc_table().unwrap()).collect();
    assert_eq!(b.lost(), 0);
    for &p in &got {
        b.free_table(p);
    }
    assert_eq!((b.in_use(), b.lost()), (0, 2));
    // The eight kept come back, the last kept first, then fresh pages.
    let again: Vec<PhysAddr> = (0..9).map(|_| b.alloc_table().unwrap()).collect();
    assert_eq!(again[..8], got[..8].iter().rev().copied().collect::<Vec<_>>()[..]);
    assert_eq!(again[8], pa(0x1a000));
    let sim = Sim::new(4);
    let first = sim.alloc_frame().unwrap();
    sim.alloc_frame().unwrap();
    let mut b = BumpTables::new(pa(first), pa(first + 2 * K));
    let mut pt = PageTable::create(&mut b, PtConfig::KERNEL_39, &sim, &sim).unwrap();
    // Needs an L2 and an L3 table, only one left: nothing stays mapped or allocated.
    let r = pt.map(&mut b, VirtAddr::new(PAGE_OFFSET + K), pa(K), K, Prot::KERNEL_RW, true);
    assert_eq!(r, Err(PtError::NoTableMemory));
    assert_eq!((b.in_use(), pt.count_tables()), (1, 1));
}
