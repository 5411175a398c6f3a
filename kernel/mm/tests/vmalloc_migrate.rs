//! Migration of `__GFP_MOVABLE` vmalloc pages on simulated memory: the pages are tagged
//! with the VA they are mapped at, a move copies the page while its entry is invalid
//! (break-before-make, the copy between the invalidation and the new entry), and
//! anything else is refused unchanged.

mod common;

use std::cell::Cell;

use common::{Ev, Sim};
use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_alloc::{MigrateError, MovableOwner};
use mm::page_source::PageSource;
use mm::pgtable::{PageTable, PtConfig};
use mm::vmalloc::Vmalloc;

const K: u64 = PAGE_SIZE as u64;

fn fill(sim: &Sim, pa: PhysAddr, byte: u8) {
    // SAFETY: a whole simulated frame.
    unsafe { std::ptr::write_bytes(sim.host(pa.as_u64()), byte, PAGE_SIZE) };
}

fn all_bytes(sim: &Sim, pa: PhysAddr, byte: u8) -> bool {
    (0..K).all(|i| sim.read_byte(pa.as_u64() + i) == byte)
}

fn frame_at(pt: &PageTable<&Sim, &Sim>, va: VirtAddr) -> PhysAddr {
    pt.translate(va).unwrap().pa
}

#[test]
fn movable_vmalloc_pages_are_tagged_and_move_with_their_contents() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let va = vm.vmalloc(4 * K as usize, GFP_KERNEL | Gfp::GFP_MOVABLE, "t", &sim, &mut pt).unwrap();
    let plain = vm.vmalloc(K as usize, GFP_KERNEL, "t", &sim, &mut pt).unwrap();
    assert_eq!(sim.page_owner(frame_at(&pt, plain)), 0, "not movable without __GFP_MOVABLE");
    for i in 0..4 {
        let v = va.add(i * K);
        let pa = frame_at(&pt, v);
        assert_eq!(MovableOwner::decode(sim.page_owner(pa)), Some(MovableOwner::Vmalloc(v.as_u64())));
        fill(&sim, pa, 0x10 + i as u8);
    }
    // Move page 2.
    let v = va.add(2 * K);
    let old = frame_at(&pt, v);
    let new = sim.alloc_pages(GFP_KERNEL, 0).unwrap();
    fill(&sim, new, 0xee);
    sim.take_log();
    sim.tracing.set(true);
    vm.migrate_page(v, old, new, &sim, &mut pt).unwrap();
    sim.tracing.set(false);
    assert_eq!(frame_at(&pt, v), new);
    assert!(all_bytes(&sim, new, 0x12), "contents copied");
    // Break-before-make: invalid, sync, invalidate, sync, (copy), new entry, sync.
    let log = sim.take_log();
    assert!(matches!(log[0], Ev::Write { val: 0, .. }), "{log:?}");
    assert!(matches!(log[1], Ev::Sync));
    assert!(matches!(log[2], Ev::FlushVa(x) if x == v.as_u64()));
    assert!(matches!(log[3], Ev::Sync));
    assert!(matches!(log[4], Ev::Write { val, .. } if val & 0x0000_ffff_ffff_f000 == new.as_u64()));
    assert!(matches!(log[5], Ev::Sync));
    assert_eq!(log.len(), 6);
    sim.free_pages(old, 0);
    // Refused, unchanged: the wrong old frame, an address outside any area.
    let other = sim.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_eq!(vm.migrate_page(v, old, other, &sim, &mut pt), Err(MigrateError::Gone));
    assert_eq!(frame_at(&pt, v), new);
    assert_eq!(vm.migrate_page(va.add(64 * K), old, other, &sim, &mut pt), Err(MigrateError::Gone), "no area there");
    sim.free_pages(other, 0);
    for i in [0u64, 1, 3] {
        assert!(all_bytes(&sim, frame_at(&pt, va.add(i * K)), 0x10 + i as u8));
    }
    // vfree gives back the new frame, not the old one (the Sim panics on a double free).
    let before = sim.nr_free();
    vm.vfree(va, &sim, &mut pt).unwrap();
    vm.vfree(plain, &sim, &mut pt).unwrap();
    assert!(sim.nr_free() >= before + 5, "the five pages (and emptied tables) back");
}

#[test]
fn the_copy_runs_while_the_entry_is_invalid() {
    let sim = Sim::new(32);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let va = vm.vmalloc(K as usize, GFP_KERNEL | Gfp::GFP_MOVABLE, "t", &sim, &mut pt).unwrap();
    let old = frame_at(&pt, va);
    let new = sim.alloc_pages(GFP_KERNEL, 0).unwrap();
    let seen = Cell::new(None);
    // A second view of the same tables, as another CPU's walker would see them.
    let probe = PageTable::new(pt.root(), PtConfig::KERNEL_39, &sim, &sim);
    pt.migrate_page(va, old, new, &mut || seen.set(Some(probe.translate(va).map(|t| t.pa)))).unwrap();
    assert_eq!(seen.get(), Some(None), "nothing mapped at the VA during the copy");
    assert_eq!(frame_at(&pt, va), new);
    sim.free_pages(old, 0);
    vm.vfree(va, &sim, &mut pt).unwrap();
}
