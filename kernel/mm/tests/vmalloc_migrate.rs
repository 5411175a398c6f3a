//! Migration of `__GFP_MOVABLE` vmalloc pages on simulated memory: the pages are tagged
//! with the VA they are mapped at, a move copies the page while its entry is invalid
//! (break-before-make, the copy between the invalidation and the new entry), and
//! anything else is refused unchanged. A batch makes all its entries invalid, invalidates
//! their TLB entries together, then copies and maps each page again.

mod common;

use std::cell::Cell;

use common::{Ev, Sim};
use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_alloc::{MigrateError, MovableOwner};
use mm::page_source::PageSource;
use mm::pgtable::{PageMove, PageTable, Prot, PtConfig};
use mm::vmalloc::movable_owner;
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
        assert_eq!(MovableOwner::decode(sim.page_owner(pa)), Some(movable_owner(v)));
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

/// A movable vmalloc of `n` pages, page `i` filled with `0x20 + i`, and `n` fresh frames
/// (filled with 0xee) to move them to.
fn batch_setup(sim: &Sim, pt: &mut PageTable<&Sim, &Sim>, vm: &mut Vmalloc, n: u64) -> (VirtAddr, Vec<PageMove>) {
    let va = vm.vmalloc((n * K) as usize, GFP_KERNEL | Gfp::GFP_MOVABLE, "t", sim, pt).unwrap();
    let moves = (0..n)
        .map(|i| {
            let v = va.add(i * K);
            let old = frame_at(pt, v);
            fill(sim, old, 0x20 + i as u8);
            let new = sim.alloc_pages(GFP_KERNEL, 0).unwrap();
            fill(sim, new, 0xee);
            PageMove { va: v, old, new }
        })
        .collect();
    (va, moves)
}

#[test]
fn a_batch_is_break_before_make_for_every_page_with_one_invalidation_round() {
    let sim = Sim::new(128);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let n = 8;
    let (va, moves) = batch_setup(&sim, &mut pt, &mut vm, n);
    let mut res = vec![Err(MigrateError::NotMovable); n as usize];
    sim.take_log();
    sim.tracing.set(true);
    vm.migrate_pages(&moves, &sim, &mut pt, &mut res);
    sim.tracing.set(false);
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    // Every entry invalid, sync, every page's TLB entries invalidated, sync, then every
    // new entry (each after its copy), one final sync.
    let log = sim.take_log();
    let n = n as usize;
    assert_eq!(log.len(), 3 * n + 3, "{log:?}");
    let mut entries = Vec::new();
    for e in &log[..n] {
        let Ev::Write { table, idx, val: 0 } = *e else { panic!("not an invalid entry: {log:?}") };
        entries.push((table, idx));
    }
    assert_eq!(log[n], Ev::Sync);
    for (i, m) in moves.iter().enumerate() {
        assert_eq!(log[n + 1 + i], Ev::FlushVa(m.va.as_u64()), "{log:?}");
    }
    assert_eq!(log[2 * n + 1], Ev::Sync);
    for (i, m) in moves.iter().enumerate() {
        let Ev::Write { table, idx, val } = log[2 * n + 2 + i] else { panic!("{log:?}") };
        assert_eq!((table, idx), entries[i], "the entry made invalid is the one written");
        assert_eq!(val & 0x0000_ffff_ffff_f000, m.new.as_u64());
    }
    assert_eq!(log[3 * n + 2], Ev::Sync);
    for (i, m) in moves.iter().enumerate() {
        assert_eq!(frame_at(&pt, m.va), m.new);
        assert!(all_bytes(&sim, m.new, 0x20 + i as u8), "page {i} copied");
        sim.free_pages(m.old, 0);
    }
    vm.vfree(va, &sim, &mut pt).unwrap();
}

#[test]
fn every_page_of_a_batch_is_unmapped_while_it_is_copied() {
    let sim = Sim::new(128);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let (va, moves) = batch_setup(&sim, &mut pt, &mut vm, 5);
    let probe = PageTable::new(pt.root(), PtConfig::KERNEL_39, &sim, &sim);
    let seen = std::cell::RefCell::new(Vec::new());
    let mut res = vec![Ok(()); moves.len()];
    pt.migrate_pages(
        &moves,
        &mut |k| {
            // While page k is copied, it and every page after it are unmapped; the pages
            // before it are mapped to their new frames already.
            let now: Vec<_> = moves.iter().map(|m| probe.translate(m.va).map(|t| t.pa)).collect();
            seen.borrow_mut().push((k, now));
        },
        &mut res,
    );
    assert!(res.iter().all(|r| r.is_ok()));
    let seen = seen.into_inner();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2, 3, 4], "each page copied once, in order");
    for (k, now) in seen {
        for (j, m) in moves.iter().enumerate() {
            assert_eq!(now[j], if j < k { Some(m.new) } else { None }, "page {j} while copying page {k}");
        }
    }
    for m in &moves {
        sim.free_pages(m.old, 0);
    }
    vm.vfree(va, &sim, &mut pt).unwrap();
}

#[test]
fn a_refused_move_at_each_position_of_a_batch_changes_nothing_and_the_rest_move() {
    let sim = Sim::new(160);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let n = 6;
    for bad in 0..n {
        let (va, mut moves) = batch_setup(&sim, &mut pt, &mut vm, n as u64);
        // The bad move names a frame its VA is not mapped to (the owner moved or freed
        // the page meanwhile): refused.
        let wrong = sim.alloc_pages(GFP_KERNEL, 0).unwrap();
        let real_old = moves[bad].old;
        moves[bad].old = wrong;
        let mut res = vec![Ok(()); n];
        sim.take_log();
        sim.tracing.set(true);
        vm.migrate_pages(&moves, &sim, &mut pt, &mut res);
        sim.tracing.set(false);
        let log = sim.take_log();
        assert_eq!(log.iter().filter(|e| matches!(e, Ev::Write { val: 0, .. })).count(), n - 1, "{log:?}");
        assert!(!log.contains(&Ev::FlushVa(moves[bad].va.as_u64())), "the refused page is not touched");
        assert_eq!(log.len(), 3 * (n - 1) + 3);
        for (i, m) in moves.iter().enumerate() {
            if i == bad {
                assert_eq!(res[i], Err(MigrateError::Gone));
                assert_eq!(frame_at(&pt, m.va), real_old, "still mapped to its frame");
                assert!(all_bytes(&sim, real_old, 0x20 + i as u8), "contents intact");
                sim.free_pages(m.new, 0);
            } else {
                assert_eq!(res[i], Ok(()));
                assert_eq!(frame_at(&pt, m.va), m.new);
                assert!(all_bytes(&sim, m.new, 0x20 + i as u8));
                sim.free_pages(m.old, 0);
            }
        }
        sim.free_pages(wrong, 0);
        vm.vfree(va, &sim, &mut pt).unwrap();
    }
    // The same page twice in one batch: moved once (its old frame must not be freed
    // twice), the second refused; an address outside any area refused too, and a page
    // of a vmap area (its frames are the caller's, not vmalloc's to move).
    let before = sim.nr_free();
    let (va, moves) = batch_setup(&sim, &mut pt, &mut vm, 2);
    let again = PageMove { new: sim.alloc_pages(GFP_KERNEL, 0).unwrap(), ..moves[0] };
    let outside = PageMove { va: va.add(64 * K), ..moves[1] };
    let frame = sim.alloc_pages(GFP_KERNEL, 0).unwrap();
    let mapped = vm.vmap(&[frame], Prot::KERNEL_RW, "vmap", &sim, &mut pt).unwrap();
    let vmapped = PageMove { va: mapped, old: frame, new: sim.alloc_pages(GFP_KERNEL, 0).unwrap() };
    let batch = [moves[0], again, outside, vmapped, moves[1]];
    let mut res = vec![Ok(()); 5];
    vm.migrate_pages(&batch, &sim, &mut pt, &mut res);
    let gone = Err(MigrateError::Gone);
    assert_eq!(res, [Ok(()), gone, gone, gone, Ok(())]);
    assert_eq!(frame_at(&pt, moves[0].va), moves[0].new);
    assert_eq!(frame_at(&pt, mapped), frame, "the vmap area's page stays");
    assert!(all_bytes(&sim, moves[0].new, 0x20) && all_bytes(&sim, moves[1].new, 0x21));
    vm.vunmap(mapped, &sim, &mut pt).unwrap();
    for pa in [moves[0].old, moves[1].old, again.new, frame, vmapped.new] {
        sim.free_pages(pa, 0);
    }
    vm.vfree(va, &sim, &mut pt).unwrap();
    assert_eq!(sim.nr_free(), before, "nothing leaked");
}

#[test]
fn batches_longer_than_a_round_are_done_in_rounds() {
    let sim = Sim::new(256);
    let mut pt = sim.kernel_pt();
    let mut vm = Vmalloc::new();
    let n = mm::pgtable::MIGRATE_BATCH as u64 + 3;
    let (va, moves) = batch_setup(&sim, &mut pt, &mut vm, n);
    let mut res = vec![Err(MigrateError::NotMovable); n as usize];
    sim.take_log();
    sim.tracing.set(true);
    vm.migrate_pages(&moves, &sim, &mut pt, &mut res);
    sim.tracing.set(false);
    let log = sim.take_log();
    assert!(res.iter().all(|r| r.is_ok()));
    // Two rounds, each: invalid entries, sync, invalidations, sync, new entries, sync.
    assert_eq!(log.iter().filter(|e| **e == Ev::Sync).count(), 6);
    assert_eq!(log.iter().filter(|e| matches!(e, Ev::FlushVa(_))).count(), n as usize);
    let first_new = log.iter().position(|e| matches!(e, Ev::Write { val, .. } if *val != 0)).unwrap();
    assert_eq!(first_new, 2 * mm::pgtable::MIGRATE_BATCH + 2, "the first round is a full one");
    for (i, m) in moves.iter().enumerate() {
        assert!(all_bytes(&sim, m.new, 0x20 + i as u8));
        sim.free_pages(m.old, 0);
    }
    vm.vfree(va, &sim, &mut pt).unwrap();
}
