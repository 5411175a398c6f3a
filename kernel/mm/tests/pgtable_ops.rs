//! Page-table library on simulated RAM: mapping, permissions, blocks, splits,
//! break-before-make order, rollback.

mod common;

use common::{Ev, Sim};
use mm::addr::{PhysAddr, VirtAddr};
use mm::pgtable::desc::PTE_ADDR_MASK;
use mm::pgtable::layout::{PAGE_OFFSET, VMALLOC_START};
use mm::pgtable::walk::Access;
use mm::pgtable::{FaultInfo, PageMove, PageTable, Prot, PtConfig, PtError, MIGRATE_BATCH};

const K: u64 = 4096;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

fn va(x: u64) -> VirtAddr {
    VirtAddr::new(x)
}
fn pa(x: u64) -> PhysAddr {
    PhysAddr::new(x)
}

#[test]
fn map_translate_unmap_pages() {
    let sim = Sim::new(64);
    let free0 = sim.nr_free();
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let base = VMALLOC_START + 0x1000;
    pt.map(&mut t, va(base), pa(0x8010_0000), 3 * K, Prot::KERNEL_RW, true).unwrap();
    for i in 0..3 {
        let tr = pt.translate(va(base + i * K + 0x123)).unwrap();
        assert_eq!(tr.pa, pa(0x8010_0000 + i * K + 0x123));
        assert_eq!(tr.level, 3);
        assert_eq!(tr.prot, Prot::KERNEL_RW);
    }
    assert_eq!(pt.translate(va(base - K)), None);
    assert_eq!(pt.fault_info(va(base + 3 * K)).to_string(), "level 3 translation fault");
    assert_eq!(pt.fault_info(va(base + M2)).to_string(), "level 2 translation fault");
    assert_eq!(pt.fault_info(va(base + G1)).to_string(), "level 1 translation fault");
    assert_eq!(pt.fault_info(va(0x1000)), FaultInfo::OutOfRange);
    assert_eq!(pt.count_tables(), 3);
    let u = pt.unmap(&mut t, va(base), 3 * K).unwrap();
    assert_eq!((u.bytes, u.leaves, u.tables_freed), (3 * K, 3, 2));
    assert_eq!(pt.translate(va(base)), None);
    assert_eq!(pt.count_tables(), 1);
    assert_eq!(sim.nr_free(), free0 - 1, "only the root remains");
}

#[test]
fn permissions_are_encoded_and_checked() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    pt.map(&mut t, va(v), pa(0x1000), K, Prot::KERNEL_RO, false).unwrap();
    pt.map(&mut t, va(v + K), pa(0x2000), K, Prot::KERNEL_RX, false).unwrap();
    pt.map(&mut t, va(v + 2 * K), pa(0x3f20_0000), K, Prot::DEVICE, false).unwrap();
    pt.map(&mut t, va(v + 3 * K), pa(0x3000), K, Prot::KERNEL_RW_NC, false).unwrap();
    let mut raw = Vec::new();
    pt.for_each_leaf(va(v), 4 * K, &mut |l| raw.push((l.pa, l.prot)));
    assert_eq!(
        raw,
        [
            (pa(0x1000), Prot::KERNEL_RO),
            (pa(0x2000), Prot::KERNEL_RX),
            (pa(0x3f20_0000), Prot::DEVICE),
            (pa(0x3000), Prot::KERNEL_RW_NC)
        ]
    );
    assert_eq!(pt.access_fault(va(v), Access::Write).to_string(), "level 3 permission fault");
    assert_eq!(pt.access_fault(va(v), Access::Exec).to_string(), "level 3 permission fault");
    assert!(matches!(pt.access_fault(va(v), Access::Read), FaultInfo::Mapped(_)));
    assert!(matches!(pt.access_fault(va(v + K), Access::Exec), FaultInfo::Mapped(_)));
    assert!(matches!(pt.access_fault(va(v + 2 * K), Access::Exec), FaultInfo::Permission { level: 3 }));
}

#[test]
fn two_maps_in_one_2m_share_the_l3_table() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    pt.map(&mut t, va(VMALLOC_START), pa(0x10_0000), K, Prot::KERNEL_RW, true).unwrap();
    let after_first = t.allocated;
    pt.map(&mut t, va(VMALLOC_START + 100 * K), pa(0x20_0000), 8 * K, Prot::KERNEL_RW, true).unwrap();
    assert_eq!(t.allocated, after_first, "second map allocated a table");
    assert_eq!(pt.count_tables(), 3);
    // Unmapping the first keeps the shared table: it still holds the second.
    let u = pt.unmap(&mut t, va(VMALLOC_START), K).unwrap();
    assert_eq!(u.tables_freed, 0);
    assert!(pt.translate(va(VMALLOC_START + 100 * K)).is_some());
}

#[test]
fn blocks_where_aligned_pages_elsewhere() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    // The linear map of a 1 GiB + 2 MiB + 4 KiB RAM.
    let size = G1 + M2 + K;
    pt.map(&mut t, va(PAGE_OFFSET), pa(0), size, Prot::KERNEL_RW, true).unwrap();
    let mut levels = Vec::new();
    pt.for_each_leaf(va(PAGE_OFFSET), size, &mut |l| levels.push(l.level));
    assert_eq!(levels, [1, 2, 3]);
    assert_eq!(pt.translate(va(PAGE_OFFSET + G1 + 5)).unwrap().pa, pa(G1 + 5));
    // Misaligned by one page: pages up to the first 2 MiB boundary, then a block.
    let v = VMALLOC_START + M2 - K;
    pt.map(&mut t, va(v), pa(0x4000_0000 - K), M2 + K, Prot::KERNEL_RO, true).unwrap();
    let mut leaves = Vec::new();
    pt.for_each_leaf(va(v), M2 + K, &mut |l| leaves.push((l.level, l.size)));
    assert_eq!(leaves, [(3, K), (2, M2)]);
    // Blocks refused: pages only.
    let mut n = 0;
    pt.map(&mut t, va(VMALLOC_START + G1), pa(0), M2, Prot::KERNEL_RW, false).unwrap();
    pt.for_each_leaf(va(VMALLOC_START + G1), M2, &mut |l| {
        assert_eq!(l.level, 3);
        n += 1
    });
    assert_eq!(n, 512);
    let mut out = String::new();
    pt.dump(&mut out, va(PAGE_OFFSET), size).unwrap();
    assert_eq!(
        out,
        "0xffffff8000000000-0xffffff8040000000           1G PUD     RW NX SHD AF    UXN MEM/NORMAL\n\
         0xffffff8040000000-0xffffff8040200000           2M PMD     RW NX SHD AF    UXN MEM/NORMAL\n\
         0xffffff8040200000-0xffffff8040201000           4K PTE     RW NX SHD AF    UXN MEM/NORMAL\n"
    );
}

/// Positions of the events making up one break-before-make of `table[idx]`.
fn assert_bbm(log: &[Ev], table: u64, idx: usize, flushed: &[u64]) {
    let clear = log.iter().position(|e| *e == Ev::Write { table, idx, val: 0 }).expect("entry never invalidated");
    let set = log[clear..]
        .iter()
        .position(|e| matches!(e, Ev::Write { table: t, idx: i, val } if *t == table && *i == idx && *val != 0))
        .map(|p| p + clear)
        .expect("entry never rewritten");
    let between = &log[clear + 1..set];
    assert_eq!(between.first(), Some(&Ev::Sync), "no barrier after the invalidation");
    assert_eq!(between.last(), Some(&Ev::Sync), "no barrier after the TLB flush");
    let fl: Vec<u64> = between
        .iter()
        .filter_map(|e| match e {
            Ev::FlushVa(v) => Some(*v),
            _ => None,
        })
        .collect();
    assert!(between.contains(&Ev::FlushAll) || fl == flushed, "flushed {fl:x?}");
    assert!(!between.iter().any(|e| matches!(e, Ev::Write { .. })));
}

fn entry_of(pt: &PageTable<&Sim, &Sim>, sim: &Sim, v: u64, level: u32) -> (u64, usize) {
    use mm::pgtable::PhysMemory;
    let mut table = pt.root().as_u64();
    for l in 1..level {
        let i = ((v >> (12 + 9 * (3 - l))) & 511) as usize;
        table = sim.read_entry(pa(table), i) & PTE_ADDR_MASK;
    }
    (table, ((v >> (12 + 9 * (3 - level))) & 511) as usize)
}

#[test]
fn protect_is_break_before_make() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + 7 * K;
    pt.map(&mut t, va(v), pa(0x5000), 2 * K, Prot::KERNEL_RW, false).unwrap();
    sim.tracing.set(true);
    pt.protect(&mut t, va(v), K, Prot::KERNEL_RO).unwrap();
    let log = sim.take_log();
    let (table, idx) = entry_of(&pt, &sim, v, 3);
    assert_bbm(&log, table, idx, &[v]);
    assert_eq!(pt.translate(va(v)).unwrap().prot, Prot::KERNEL_RO);
    assert_eq!(pt.translate(va(v + K)).unwrap().prot, Prot::KERNEL_RW);
    assert_eq!(pt.protect(&mut t, va(v), 3 * K, Prot::KERNEL_RO), Err(PtError::NotMapped(va(v + 2 * K))));
    assert_eq!(pt.translate(va(v + K)).unwrap().prot, Prot::KERNEL_RW, "changed before refusing");
    // Entries that already have the protection are left alone: no write, no
    // invalidation, and a block is not split for part of it.
    let b = VMALLOC_START + 4 * M2;
    pt.map(&mut t, va(b), pa(0x40_0000), M2, Prot::KERNEL_RW, true).unwrap();
    let tables = pt.count_tables();
    sim.take_log();
    pt.protect(&mut t, va(v), K, Prot::KERNEL_RO).unwrap();
    pt.protect(&mut t, va(b + K), K, Prot::KERNEL_RW).unwrap();
    assert_eq!(sim.take_log(), [], "nothing to change");
    assert_eq!(pt.count_tables(), tables, "the block was split");
}

/// A batch of migrations is one break-before-make: every entry invalid, a barrier, the
/// invalidation of every page (through `flush_vas`), a barrier, then each page copied
/// and its new entry written, and a last barrier.
#[test]
fn a_migration_batch_is_break_before_make_for_all_its_pages() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + 3 * K;
    pt.map(&mut t, va(v), pa(0x9000), 3 * K, Prot::KERNEL_RW, false).unwrap();
    let moves: Vec<PageMove> =
        (0..3).map(|i| PageMove { va: va(v + i * K), old: pa(0x9000 + i * K), new: pa(0x20000 + i * K) }).collect();
    let mut result = [Ok(()); 3];
    sim.tracing.set(true);
    let (tr, log_len) = (&sim, |sim: &Sim| sim.log.borrow().len());
    let mut copies = Vec::new();
    pt.migrate_pages(&moves, &mut |i| copies.push((i, log_len(tr))), &mut result);
    let log = sim.take_log();
    assert_eq!(result, [Ok(()), Ok(()), Ok(())]);
    let (table, idx) = entry_of(&pt, &sim, v, 3);
    let write = |i: usize, val: u64| Ev::Write { table, idx: idx + i, val };
    let invalid: Vec<Ev> = (0..3).map(|i| write(i, 0)).collect();
    assert_eq!(log[..3], invalid[..], "{log:?}");
    let flushes: Vec<Ev> = (0..3).map(|i| Ev::FlushVa(v + i as u64 * K)).collect();
    assert_eq!(log[3], Ev::Sync);
    assert_eq!(log[4..7], flushes[..], "every page invalidated");
    assert_eq!(log[7], Ev::Sync);
    assert_eq!(copies.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(copies[0].1 >= 8, "a copy before the invalidation completed");
    assert_eq!(log.last(), Some(&Ev::Sync));
    for (i, m) in moves.iter().enumerate() {
        assert_eq!(pt.translate(m.va).unwrap().pa, m.new, "page {i}");
    }
}

/// Every move of a batch is checked before anything changes and gets its own result: a
/// page mapped to another frame than the move says, an address outside the table, an
/// entry moved twice in one round, and a 2 MiB block are refused and left as they were;
/// the others move and have their contents copied, in rounds of `MIGRATE_BATCH` (a round
/// with nothing to move writes nothing).
#[test]
fn each_move_of_a_batch_is_checked_and_answered() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    let n = MIGRATE_BATCH as u64 + 8;
    pt.map(&mut t, va(v), pa(0x10_0000), n * K, Prot::KERNEL_RW, false).unwrap();
    let block = VMALLOC_START + 4 * M2;
    pt.map(&mut t, va(block), pa(0x40_0000), M2, Prot::KERNEL_RW, true).unwrap();
    let old = |i: u64| pa(0x10_0000 + i * K);
    let new = |i: u64| pa(0x80_0000 + i * K);
    let mut moves: Vec<PageMove> = (0..n).map(|i| PageMove { va: va(v + i * K), old: old(i), new: new(i) }).collect();
    moves[3].old = old(4); // page 3 is not at page 4's frame
    moves[5] = PageMove { va: va(v + 6 * K), old: old(6), new: new(5) }; // page 6 twice in round 0
    moves[MIGRATE_BATCH + 1].va = va(PAGE_OFFSET - K); // outside the table
    moves.push(PageMove { va: va(block), old: pa(0x40_0000), new: new(n) });
    // Round 2: nothing but refusals.
    moves.extend((0..MIGRATE_BATCH - 7).map(|_| PageMove { va: va(v + 7 * K), old: old(8), new: new(0) }));
    let mut result = vec![Ok(()); moves.len()];
    let mut copied = Vec::new();
    sim.take_log();
    sim.tracing.set(true);
    pt.migrate_pages(&moves, &mut |k| copied.push(k), &mut result);
    sim.tracing.set(false);
    let refused: Vec<(usize, PtError)> =
        result.iter().enumerate().filter_map(|(k, r)| r.err().map(|e| (k, e))).collect();
    let mut want = vec![
        (3, PtError::NotMapped(va(v + 3 * K))),
        (6, PtError::Overlap(va(v + 6 * K))),
        (MIGRATE_BATCH + 1, PtError::OutOfRange(va(PAGE_OFFSET - K))),
        (n as usize, PtError::NotMapped(va(block))),
    ];
    want.extend((n as usize + 1..moves.len()).map(|k| (k, PtError::NotMapped(va(v + 7 * K)))));
    assert_eq!(refused, want);
    let moved: Vec<usize> = (0..moves.len()).filter(|k| result[*k].is_ok()).collect();
    assert_eq!(copied, moved, "one copy per move that went, in order");
    for i in 0..n {
        let now = pt.translate(va(v + i * K)).unwrap().pa;
        let want = match i {
            3 | 5 => old(i),
            6 => new(5),
            _ if i as usize == MIGRATE_BATCH + 1 => old(i),
            _ => new(i),
        };
        assert_eq!(now, want, "page {i}");
    }
    assert_eq!(pt.translate(va(block)).unwrap().pa, pa(0x40_0000));
    // Two rounds wrote: each ends with one barrier; the round of refusals wrote nothing.
    let log = sim.take_log();
    let writes = log.iter().filter(|e| matches!(e, Ev::Write { .. })).count();
    assert_eq!(writes, 2 * moved.len(), "an invalid and a new entry per move");
    assert_eq!(log.iter().filter(|e| **e == Ev::Sync).count(), 2 * 3);
    // One move alone answers the same way.
    let mut copies = 0;
    assert_eq!(
        pt.migrate_page(va(v + 3 * K), old(4), new(3), &mut || copies += 1),
        Err(PtError::NotMapped(va(v + 3 * K)))
    );
    assert_eq!(pt.migrate_page(va(v + 3 * K), old(3), new(3), &mut || copies += 1), Ok(()));
    assert_eq!((copies, pt.translate(va(v + 3 * K)).unwrap().pa), (1, new(3)));
}

/// A TTBR0 (lower half) table covers [0, 2^39): an address at or above its end is out of
/// range for every operation, a range running past the end is refused, and a walk from
/// its last page stops there instead of wrapping round to address 0.
#[test]
fn a_lower_half_table_ends_at_its_span() {
    let sim = Sim::new(16);
    let mut t = sim.tables();
    let cfg = PtConfig { va_bits: 39, upper: false };
    let mut pt = PageTable::create(&mut t, cfg, &sim, &sim).unwrap();
    let end = 1u64 << 39;
    assert!(pt.in_range(va(0)) && pt.in_range(va(end - 1)));
    assert!(!pt.in_range(va(end)) && !pt.in_range(va(!(K - 1))));
    assert_eq!(pt.map(&mut t, va(end), pa(0x9000), K, Prot::KERNEL_RW, false), Err(PtError::OutOfRange(va(end))));
    assert_eq!(
        pt.map(&mut t, va(end - K), pa(0x9000), 2 * K, Prot::KERNEL_RW, false),
        Err(PtError::OutOfRange(va(end + K)))
    );
    pt.map(&mut t, va(0), pa(0x8000), K, Prot::KERNEL_RW, false).unwrap();
    pt.map(&mut t, va(end - K), pa(0x9000), K, Prot::KERNEL_RW, false).unwrap();
    let mut leaves = Vec::new();
    pt.for_each_leaf(va(end - K), 2 * K, &mut |l| leaves.push((l.va, l.pa)));
    assert_eq!(leaves, [(va(end - K), pa(0x9000))], "the walk went past the end");
    leaves.clear();
    for outside in [end, end + K] {
        pt.for_each_leaf(va(outside), K, &mut |l| leaves.push((l.va, l.pa)));
    }
    assert_eq!(leaves, [], "a walk from outside the range");
    pt.for_each_leaf(va(0), 0, &mut |l| leaves.push((l.va, l.pa)));
    assert_eq!(leaves, [], "an empty range");
}

#[test]
fn unmap_invalidates_before_the_frames_are_returned() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    pt.map(&mut t, va(v), pa(0x9000), 2 * K, Prot::KERNEL_RW, false).unwrap();
    pt.map(&mut t, va(v + 10 * K), pa(0xa000), K, Prot::KERNEL_RW, false).unwrap();
    sim.tracing.set(true);
    let mut seen = Vec::new();
    let log_len = |sim: &Sim| sim.log.borrow().len();
    pt.unmap_with(&mut t, va(v), 2 * K, &mut |a, p, s| seen.push((a, p, s, log_len(&sim)))).unwrap();
    let log = sim.take_log();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1, pa(0x9000));
    let (table, idx) = entry_of(&pt, &sim, v, 3);
    // Cleared: made invalid (its address kept until the frame is reported, then zeroed).
    let clear = log
        .iter()
        .position(|e| matches!(e, Ev::Write { table: t, idx: i, val } if (*t, *i) == (table, idx) && val & 1 == 0))
        .unwrap();
    let f0 = log.iter().position(|e| *e == Ev::FlushVa(v)).unwrap();
    let f1 = log.iter().position(|e| *e == Ev::FlushVa(v + K)).unwrap();
    assert!(clear < f0 && f0 < f1);
    assert!(log[clear..f0].contains(&Ev::Sync));
    // The callback ran after the flushes and a completing barrier.
    assert!(seen[0].3 > f1 && log[f1..seen[0].3].contains(&Ev::Sync));
}

#[test]
fn partial_unmap_splits_a_block_break_before_make() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + 4 * M2;
    pt.map(&mut t, va(v), pa(0x4020_0000), M2, Prot::KERNEL_RX, true).unwrap();
    assert_eq!(pt.translate(va(v)).unwrap().level, 2);
    let (l2, l2i) = entry_of(&pt, &sim, v, 2);
    sim.tracing.set(true);
    let u = pt.unmap(&mut t, va(v + 3 * K), K).unwrap();
    let log = sim.take_log();
    assert_eq!((u.splits, u.leaves, u.bytes), (1, 1, K));
    let pages: Vec<u64> = (0..512).map(|i| v + i * K).collect();
    assert_bbm(&log, l2, l2i, &pages);
    // The new table was fully written before it was linked.
    let link = log
        .iter()
        .rposition(|e| matches!(e, Ev::Write { table, idx, val } if *table == l2 && *idx == l2i && *val != 0))
        .unwrap();
    let child_writes = log[..link].iter().filter(|e| matches!(e, Ev::Write { table, .. } if *table != l2)).count();
    assert_eq!(child_writes, 512);
    for i in 0..512 {
        let tr = pt.translate(va(v + i * K));
        if i == 3 {
            assert_eq!(tr, None);
        } else {
            let tr = tr.unwrap();
            assert_eq!((tr.pa, tr.prot, tr.level), (pa(0x4020_0000 + i * K), Prot::KERNEL_RX, 3));
        }
    }
    // 1 GiB block split twice for a single page (kernel image / linear alias case).
    pt.map(&mut t, va(PAGE_OFFSET), pa(0), G1, Prot::KERNEL_RW, true).unwrap();
    let u = pt.unmap(&mut t, va(PAGE_OFFSET + M2 + K), K).unwrap();
    assert_eq!(u.splits, 2);
    assert_eq!(pt.translate(va(PAGE_OFFSET + 5 * M2)).unwrap().level, 2);
    assert_eq!(pt.translate(va(PAGE_OFFSET + M2)).unwrap().level, 3);
    // protect of a part splits too, attributes elsewhere kept.
    pt.protect(&mut t, va(PAGE_OFFSET + 8 * M2), K, Prot::KERNEL_RO).unwrap();
    assert_eq!(pt.translate(va(PAGE_OFFSET + 8 * M2)).unwrap().prot, Prot::KERNEL_RO);
    assert_eq!(pt.translate(va(PAGE_OFFSET + 8 * M2 + K)).unwrap().prot, Prot::KERNEL_RW);
}

#[test]
fn overlap_is_refused_and_rolled_back() {
    let sim = Sim::new(32);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + 600 * K;
    pt.map(&mut t, va(v), pa(0x7000), K, Prot::KERNEL_RW, false).unwrap();
    let free = sim.nr_free();
    // Starts in the previous L3 table, runs into the existing page.
    let r = pt.map(&mut t, va(v - 200 * K), pa(0x10_0000), 300 * K, Prot::KERNEL_RO, true);
    assert_eq!(r, Err(PtError::Overlap(va(v))));
    assert_eq!(sim.nr_free(), free, "tables of the failed map were not freed");
    let mut n = 0;
    pt.for_each_leaf(va(v - 200 * K), 300 * K, &mut |_| n += 1);
    assert_eq!(n, 1);
    assert_eq!(pt.translate(va(v)).unwrap().pa, pa(0x7000));
    // A block over existing pages, and pages under an existing block.
    assert_eq!(
        pt.map(&mut t, va(VMALLOC_START + M2), pa(0), M2, Prot::KERNEL_RW, true),
        Err(PtError::Overlap(va(VMALLOC_START + M2)))
    );
    pt.map(&mut t, va(PAGE_OFFSET), pa(0), M2, Prot::KERNEL_RW, true).unwrap();
    assert_eq!(
        pt.map(&mut t, va(PAGE_OFFSET + K), pa(0), K, Prot::KERNEL_RW, true),
        Err(PtError::Overlap(va(PAGE_OFFSET)))
    );
}

#[test]
fn bad_arguments_are_errors() {
    let sim = Sim::new(8);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    let p = Prot::KERNEL_RW;
    assert_eq!(pt.map(&mut t, va(v + 1), pa(0), K, p, true), Err(PtError::UnalignedVirt(va(v + 1))));
    assert_eq!(pt.map(&mut t, va(v), pa(5), K, p, true), Err(PtError::UnalignedPhys(pa(5))));
    assert_eq!(pt.map(&mut t, va(v), pa(0), 0, p, true), Err(PtError::BadSize(0)));
    assert_eq!(pt.map(&mut t, va(v), pa(0), 100, p, true), Err(PtError::BadSize(100)));
    assert_eq!(pt.map(&mut t, va(0x4000), pa(0), K, p, true), Err(PtError::OutOfRange(va(0x4000))));
    assert!(matches!(pt.map(&mut t, va(u64::MAX - K + 1), pa(0), 2 * K, p, true), Err(PtError::OutOfRange(_))));
    assert!(matches!(pt.map(&mut t, va(v), pa(1 << 48), K, p, true), Err(PtError::PhysOutOfRange(_))));
    assert_eq!(pt.unmap(&mut t, va(v + 3), K), Err(PtError::UnalignedVirt(va(v + 3))));
    // The very last page of the address space is fine.
    pt.map(&mut t, va(u64::MAX - K + 1), pa(0), K, p, true).unwrap();
    assert_eq!(pt.translate(va(u64::MAX)).unwrap().pa, pa(0xfff));
    assert_eq!(PtError::Overlap(va(v)).to_string(), "0xffffffa000000000 is already mapped");
}

#[test]
fn table_allocation_failure_rolls_back_every_step() {
    let sim = Sim::new(64);
    let mut pt = sim.kernel_pt();
    let v = VMALLOC_START + M2 - 3 * K;
    let size = 2 * M2 + 6 * K; // four L3 tables, one L2 table
    for fail in 1..=5 {
        let free = sim.nr_free();
        let mut t = sim.tables();
        sim.fail_after(fail);
        let r = pt.map(&mut t, va(v), pa(0x100_0000), size, Prot::KERNEL_RW, false);
        sim.no_fail();
        assert_eq!(r, Err(PtError::NoTableMemory), "fail at table {fail}");
        assert_eq!(sim.nr_free(), free, "fail at {fail}: tables leaked");
        assert_eq!(pt.count_tables(), 1);
        let mut n = 0;
        pt.for_each_leaf(va(v), size, &mut |_| n += 1);
        assert_eq!(n, 0);
    }
    let mut t = sim.tables();
    pt.map(&mut t, va(v), pa(0x100_0000), size, Prot::KERNEL_RW, false).unwrap();
    assert_eq!(t.allocated, 5);
}

#[test]
fn split_failure_leaves_the_block_mapped() {
    let sim = Sim::new(8);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    pt.map(&mut t, va(PAGE_OFFSET), pa(0), M2, Prot::KERNEL_RW, true).unwrap();
    sim.fail_after(1);
    assert_eq!(pt.unmap(&mut t, va(PAGE_OFFSET + K), K), Err(PtError::NoTableMemory));
    sim.no_fail();
    assert_eq!(pt.translate(va(PAGE_OFFSET + K)).unwrap().level, 2);
    assert_eq!(pt.split_to(&mut t, va(PAGE_OFFSET), 3), Ok(1));
    assert_eq!(pt.translate(va(PAGE_OFFSET + K)).unwrap().level, 3);
}

#[test]
fn four_level_configuration() {
    let sim = Sim::new(16);
    let mut t = sim.tables();
    let mut pt = PageTable::create(&mut t, PtConfig::KERNEL_48, &sim, &sim).unwrap();
    let v = 0xFFFF_0000_0020_0000;
    pt.map(&mut t, va(v), pa(0x8000), K, Prot::KERNEL_RW, true).unwrap();
    assert_eq!(pt.count_tables(), 4);
    assert_eq!(pt.translate(va(v)).unwrap().pa, pa(0x8000));
    assert_eq!(pt.fault_info(va(0xFFFF_8000_0000_0000)).to_string(), "level 0 translation fault");
    assert_eq!(pt.fault_info(va(0xFFFF_0000_4000_0000)).to_string(), "level 1 translation fault");
    pt.map(&mut t, va(0xFFFF_0000_4000_0000), pa(G1), G1, Prot::KERNEL_RW, true).unwrap();
    assert_eq!(pt.translate(va(0xFFFF_0000_4000_0000)).unwrap().level, 1);
    pt.unmap(&mut t, va(v), K).unwrap();
    pt.unmap(&mut t, va(0xFFFF_0000_4000_0000), G1).unwrap();
    assert_eq!(pt.count_tables(), 1);
}

#[test]
fn map_pages_rolls_back_in_live_and_new_tables() {
    let sim = Sim::new(32);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + M2 - 4 * K;
    pt.map(&mut t, va(v - K), pa(0x1000), K, Prot::KERNEL_RW, false).unwrap();
    let free = sim.nr_free();
    for fail_at in [2, 6, 9] {
        let mut given = 0u64;
        let mut released = Vec::new();
        let r = pt.map_pages(
            &mut t,
            va(v),
            8,
            Prot::KERNEL_RW,
            &mut |_| {
                given += 1;
                (given < fail_at).then(|| pa(0x10_0000 + given * K))
            },
            &mut |p| released.push(p),
        );
        if fail_at == 9 {
            r.unwrap();
            assert!(released.is_empty());
            break;
        }
        assert_eq!(r, Err(PtError::NoPageMemory));
        assert_eq!(released.len() as u64, fail_at - 1, "frames not handed back");
        assert_eq!(leaves(&pt, v, 8 * K), 0);
        assert_eq!(sim.nr_free(), free, "new L3 table not freed");
    }
    // Overlap in the live table: everything written before it is released.
    let mut released = 0;
    let r = pt.map_pages(&mut t, va(v - 3 * K), 3, Prot::KERNEL_RW, &mut |_| Some(pa(0x5000)), &mut |_| released += 1);
    assert_eq!(r, Err(PtError::Overlap(va(v - K))));
    assert_eq!(released, 2);
    assert_eq!(leaves(&pt, v - 3 * K, 2 * K), 0);
}

fn leaves(pt: &PageTable<&Sim, &Sim>, start: u64, size: u64) -> usize {
    let mut n = 0;
    pt.for_each_leaf(va(start), size, &mut |_| n += 1);
    n
}

#[test]
fn unmapping_a_whole_table_unhooks_it_first() {
    let sim = Sim::new(16);
    let free0 = sim.nr_free();
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + 2 * M2;
    pt.map(&mut t, va(v - K), pa(0x40_0000), M2 + 2 * K, Prot::KERNEL_RW, false).unwrap();
    let (l2, l2i) = entry_of(&pt, &sim, v, 2);
    let (l3, _) = entry_of(&pt, &sim, v, 3);
    sim.tracing.set(true);
    let mut first_report = None;
    let u = pt
        .unmap_with(&mut t, va(v - K), M2 + 2 * K, &mut |a, _, _| {
            if a == va(v) && first_report.is_none() {
                first_report = Some(sim.log.borrow().len());
            }
        })
        .unwrap();
    let log = sim.take_log();
    assert_eq!((u.leaves, u.bytes, u.tables_freed), (514, M2 + 2 * K, 4));
    let unhook = log
        .iter()
        .position(|e| matches!(e, Ev::Write { table, idx, val } if (*table, *idx) == (l2, l2i) && val & 1 == 0))
        .unwrap();
    // A whole 2 MiB table is 512 pages, past TLB_FLUSH_ALL_PAGES: one full invalidation.
    let last_flush = log.iter().rposition(|e| *e == Ev::FlushAll).unwrap();
    assert!(unhook < last_flush && last_flush < first_report.unwrap());
    assert_eq!(log[last_flush + 1], Ev::Sync);
    // No entry of the unhooked table was written: it was read and freed.
    assert!(!log.iter().any(|e| matches!(e, Ev::Write { table, .. } if *table == l3)));
    let cleared = log.iter().filter(|e| matches!(e, Ev::Write { val, .. } if val & 1 == 0)).count();
    // Made invalid: two pages, three L2 entries, one L1 entry; then each of them zeroed
    // (the covered table's entries are never written: it is read and freed whole).
    assert_eq!(cleared, 2 * (2 + 3 + 1));
    assert_eq!(sim.nr_free(), free0 - 1);
}

/// The physical range check: a range that ends past the 48-bit output address space is
/// refused even when it starts inside it; one that ends exactly at its end is mapped.
#[test]
fn physical_range_ends_at_the_output_address_limit() {
    const LIMIT: u64 = 1 << 48;
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    let p = Prot::KERNEL_RW;
    assert_eq!(pt.map(&mut t, va(v), pa(LIMIT - K), 2 * K, p, false), Err(PtError::PhysOutOfRange(pa(LIMIT - K))));
    assert_eq!(pt.map(&mut t, va(v), pa(LIMIT), K, p, false), Err(PtError::PhysOutOfRange(pa(LIMIT))));
    assert_eq!(leaves(&pt, v, 2 * K), 0);
    pt.map(&mut t, va(v), pa(LIMIT - K), K, p, false).unwrap();
    assert_eq!(pt.translate(va(v + 0x10)).unwrap().pa, pa(LIMIT - K + 0x10));
}

/// `map_pages` never maps a block, even over a whole, aligned 2 MiB entry: every page is
/// the frame its supplier gave for it.
#[test]
fn map_pages_over_a_whole_2m_entry_maps_each_supplied_page() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + M2;
    let frame = |x: VirtAddr| pa(0x4000_0000 + (x.as_u64() - v) / K * 3 * K);
    pt.map_pages(&mut t, va(v), 512, Prot::KERNEL_RW, &mut |x| Some(frame(x)), &mut |_| panic!("nothing to release"))
        .unwrap();
    for i in [0, 1, 255, 511] {
        let tr = pt.translate(va(v + i * K)).unwrap();
        assert_eq!((tr.level, tr.pa), (3, frame(va(v + i * K))), "page {i}");
    }
}

/// Mapping into a page table that is already live, from its first entry and from its
/// second over its end: each page lands in its own entry, none past the table.
#[test]
fn map_pages_into_a_live_table_from_its_first_and_second_entries() {
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + 4 * M2;
    // Live tables: one page at entry 10 of the first, one at entry 0 of the second.
    pt.map(&mut t, va(v + 10 * K), pa(0x7000), K, Prot::KERNEL_RW, false).unwrap();
    pt.map(&mut t, va(v + M2), pa(0x8000), K, Prot::KERNEL_RW, false).unwrap();
    let at = |x: VirtAddr| pa(0x100_0000 + (x.as_u64() - v));
    let mut never = |_| panic!("nothing to release");
    pt.map_pages(&mut t, va(v), 10, Prot::KERNEL_RW, &mut |x| Some(at(x)), &mut never).unwrap();
    // From entry 11 of the first table to the end of the second's free run (511 + 600 pages).
    pt.map_pages(&mut t, va(v + 11 * K), 501, Prot::KERNEL_RW, &mut |x| Some(at(x)), &mut never).unwrap();
    pt.map_pages(&mut t, va(v + M2 + K), 600, Prot::KERNEL_RW, &mut |x| Some(at(x)), &mut never).unwrap();
    for i in (0..10).chain(11..512).chain(513..1113) {
        assert_eq!(pt.translate(va(v + i * K)).unwrap().pa, at(va(v + i * K)), "page {i}");
    }
    assert_eq!(pt.translate(va(v + 10 * K)).unwrap().pa, pa(0x7000));
    assert_eq!(pt.translate(va(v + M2)).unwrap().pa, pa(0x8000));
    assert_eq!(leaves(&pt, v, 1113 * K), 1113);
}

/// A supplier's run is checked before it is mapped: one not naturally aligned, or at or
/// past the output address limit, is refused and handed back whole, and nothing stays
/// mapped; a page supplier's frames come back exactly as given when a later one fails.
#[test]
fn bad_runs_are_refused_and_frames_come_back_as_given() {
    struct Offer {
        runs: Vec<(u64, u32)>,
        released: Vec<(u64, u64, u64)>,
    }
    impl mm::pgtable::Frames for Offer {
        fn pages(&mut self, _va: VirtAddr, _max: usize) -> Option<(PhysAddr, u32)> {
            (!self.runs.is_empty()).then(|| self.runs.remove(0)).map(|(p, o)| (pa(p), o))
        }
        fn release(&mut self, va: VirtAddr, p: PhysAddr, size: u64) {
            self.released.push((va.as_u64(), p.as_u64(), size));
        }
    }
    let sim = Sim::new(16);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    for (run, err) in [
        ((0x1000, 1), PtError::UnalignedPhys(pa(0x1000))), // 8 KiB run at a 4 KiB boundary
        ((0x6000, 2), PtError::UnalignedPhys(pa(0x6000))), // 16 KiB run at an 8 KiB boundary
        ((1 << 48, 0), PtError::UnalignedPhys(pa(1 << 48))),
    ] {
        let mut f = Offer { runs: vec![(0x20_0000, 0), (0x20_3000, 0), run], released: Vec::new() };
        assert_eq!(pt.map_frames(&mut t, va(v), 8 * K, Prot::KERNEL_RW, &mut f), Err(err));
        let size = K << run.1;
        // The bad run where it was offered, then each page mapped before it at its own VA.
        assert_eq!(f.released, [(v + 2 * K, run.0, size), (v, 0x20_0000, K), (v + K, 0x20_3000, K)], "{run:?}");
        assert_eq!(leaves(&pt, v, 8 * K), 0);
    }
    // map_pages: the frames mapped before the failure come back as given.
    let mut given = vec![0x30_0000, 0x31_3000, 0x7_0000];
    let mut released = Vec::new();
    let r = pt.map_pages(
        &mut t,
        va(v),
        4,
        Prot::KERNEL_RW,
        &mut |_| (!given.is_empty()).then(|| pa(given.remove(0))),
        &mut |p| released.push(p.as_u64()),
    );
    assert_eq!(r, Err(PtError::NoPageMemory));
    released.sort_unstable();
    assert_eq!(released, [0x7_0000, 0x30_0000, 0x31_3000]);
}

/// Empty entries inside an unmapped range are skipped, whether the range covers them
/// whole (nothing reported for them) or only in part (no table below them to walk).
#[test]
fn unmap_skips_empty_entries_covered_whole_or_in_part() {
    let sim = Sim::new(32);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    // One block at v + 2 MiB between empty level-2 entries; a page further on keeps the
    // level-2 table alive.
    pt.map(&mut t, va(v + M2), pa(0x4000_0000), M2, Prot::KERNEL_RW, true).unwrap();
    pt.map(&mut t, va(v + 16 * M2), pa(0x5000), K, Prot::KERNEL_RW, false).unwrap();
    let mut got = Vec::new();
    let u = pt.unmap_with(&mut t, va(v), 4 * M2, &mut |x, p, s| got.push((x.as_u64(), p.as_u64(), s))).unwrap();
    assert_eq!((u.bytes, u.leaves, u.tables_freed), (M2, 1, 0));
    assert_eq!(got, [(v + M2, 0x4000_0000, M2)]);
    // Three pages inside the empty entry at v + 8 MiB: nothing there.
    got.clear();
    let mut rec = |x: VirtAddr, p: PhysAddr, s: u64| got.push((x.as_u64(), p.as_u64(), s));
    let u = pt.unmap_with(&mut t, va(v + 8 * M2 + K), 3 * K, &mut rec).unwrap();
    assert_eq!((u.bytes, u.leaves, u.tables_freed), (0, 0, 0));
    // A page at the end of the entry before it, unmapped with the empty entry's first
    // pages: the page and its table go, and no table is walked below the empty entry.
    pt.map(&mut t, va(v + 8 * M2 - K), pa(0x6000), K, Prot::KERNEL_RW, false).unwrap();
    let u = pt.unmap_with(&mut t, va(v + 8 * M2 - K), 3 * K, &mut rec).unwrap();
    assert_eq!((u.bytes, u.leaves, u.tables_freed), (K, 1, 1));
    // And the other way round: from the last pages of an empty entry into a page at the
    // start of the next.
    pt.map(&mut t, va(v + 10 * M2), pa(0x7000), K, Prot::KERNEL_RW, false).unwrap();
    let u = pt.unmap_with(&mut t, va(v + 10 * M2 - 2 * K), 3 * K, &mut rec).unwrap();
    assert_eq!((u.bytes, u.leaves, u.tables_freed), (K, 1, 1));
    assert_eq!(got, [(v + 8 * M2 - K, 0x6000, K), (v + 10 * M2, 0x7000, K)]);
    assert_eq!(pt.translate(va(v + 16 * M2)).unwrap().pa, pa(0x5000), "the page stays");
}

/// Unmapping whole 2 MiB blocks across the end of a level-2 table (a 1 GiB boundary)
/// unhooks each block in its own table and nothing past the table's last entry.
#[test]
fn unmap_blocks_across_a_1g_boundary() {
    let sim = Sim::new(32);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START + G1 - 4 * M2;
    let free = sim.nr_free();
    pt.map(&mut t, va(v), pa(0x4000_0000), 8 * M2, Prot::KERNEL_RW, true).unwrap();
    // A neighbour in the second level-2 table, past the range.
    pt.map(&mut t, va(v + 8 * M2), pa(0x7000_0000), M2, Prot::KERNEL_RW, true).unwrap();
    for i in 0..9 {
        assert_eq!(pt.translate(va(v + i * M2)).unwrap().level, 2);
    }
    let mut got = Vec::new();
    let u = pt.unmap_with(&mut t, va(v), 8 * M2, &mut |x, p, s| got.push((x.as_u64(), p.as_u64(), s))).unwrap();
    assert_eq!((u.bytes, u.leaves), (8 * M2, 8));
    // The first level-2 table held only the four blocks: unhooked whole and freed.
    assert_eq!(u.tables_freed, 1);
    got.sort_unstable();
    let want: Vec<_> = (0..8).map(|i| (v + i * M2, 0x4000_0000 + i * M2, M2)).collect();
    assert_eq!(got, want, "each block handed back with its own address");
    for i in 0..8 {
        assert_eq!(pt.translate(va(v + i * M2 + K)), None, "block {i}");
    }
    assert_eq!(pt.translate(va(v + 8 * M2)).unwrap().pa, pa(0x7000_0000), "the neighbour stays");
    pt.unmap(&mut t, va(v + 8 * M2), M2).unwrap();
    assert_eq!(sim.nr_free(), free, "every table freed");
}

/// A level-2 table the range covers whole is unhooked and released with everything under
/// it: each leaf handed back at its own address, whether it comes before, between or
/// after the page tables below it, and every table counted once.
#[test]
fn unmapping_a_whole_1g_entry_releases_blocks_and_tables_at_their_addresses() {
    let sim = Sim::new(32);
    let mut pt = sim.kernel_pt();
    let mut t = sim.tables();
    let v = VMALLOC_START;
    assert_eq!(v % G1, 0);
    let free = sim.nr_free();
    let p = Prot::KERNEL_RW;
    pt.map(&mut t, va(v), pa(0x10_0000), K, p, false).unwrap(); // entry 0: a page table
    pt.map(&mut t, va(v + M2), pa(0x40_0000), 2 * M2, p, true).unwrap(); // entries 1, 2: blocks
    pt.map(&mut t, va(v + 3 * M2 + K), pa(0x20_0000), K, p, false).unwrap(); // entry 3: a page table
    pt.map(&mut t, va(v + 4 * M2), pa(0x80_0000), M2, p, true).unwrap(); // entry 4: a block
    pt.map(&mut t, va(v + 9 * M2 + 5 * K), pa(0x30_0000), 2 * K, p, false).unwrap(); // entry 9
    let mut got = Vec::new();
    let u = pt.unmap_with(&mut t, va(v), G1, &mut |x, q, s| got.push((x.as_u64(), q.as_u64(), s))).unwrap();
    got.sort_unstable();
    assert_eq!(
        got,
        [
            (v, 0x10_0000, K),
            (v + M2, 0x40_0000, M2),
            (v + 2 * M2, 0x60_0000, M2),
            (v + 3 * M2 + K, 0x20_0000, K),
            (v + 4 * M2, 0x80_0000, M2),
            (v + 9 * M2 + 5 * K, 0x30_0000, K),
            (v + 9 * M2 + 6 * K, 0x30_1000, K),
        ]
    );
    assert_eq!((u.leaves, u.bytes), (7, 3 * M2 + 4 * K));
    assert_eq!(u.tables_freed, 4, "three page tables and the level-2 table");
    assert_eq!(sim.nr_free(), free);
}
