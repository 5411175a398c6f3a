//! Migration and compaction against a model: owners of two kinds that hold blocks in
//! tables (as the kernel's handle table and page array do) over simulated page contents.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::addr::PAGE_SIZE;
use crate::gfp::{GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};
use crate::owner::{movable_owner, set_movable_owner};

pub(super) fn cpu() -> CpuId {
    CpuId::of(0)
}

pub(super) fn make(n: u64) -> &'static PageAllocator {
    let a: &'static PageAllocator = Box::leak(Box::new(PageAllocator::new()));
    let map: &'static [Page] = Box::leak((0..n).map(|_| Page::new()).collect());
    let pa = |p: u64| crate::addr::PhysAddr::new(p << crate::addr::PAGE_SHIFT);
    a.init(map, Pfn(0), pa(0), [(pa(0), n * PAGE_SIZE as u64)], [(pa(0), n * PAGE_SIZE as u64)]).unwrap();
    a.set_min_free_kbytes(0);
    a
}

/// A table of (pfn, order) blocks by index.
pub(super) type Table = Mutex<Vec<Option<(u64, u32)>>>;

/// The model's first kind of owner (a table of handles).
pub(super) const KIND_A: MovableKind = MovableKind(1);
/// Its second kind (an array of pages).
pub(super) const KIND_B: MovableKind = MovableKind(3);
/// A kind with no operations registered: its blocks never move.
pub(super) const STRANGER: MovableKind = MovableKind(5);

/// Owners of two kinds ([`KIND_A`], [`KIND_B`]) and the pages' contents: one 64-bit
/// pattern per page frame stands for its 4 KiB.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) table_a: Table,
    pub(super) table_b: Table,
    pub(super) mem: Mutex<HashMap<u64, u64>>,
}

impl Model {
    /// A model for the rest of the test run (the allocator keeps its operations).
    pub(super) fn new() -> &'static Model {
        Box::leak(Box::default())
    }
    /// Registers the model as the operations of both its kinds with `a`.
    pub(super) fn register(&'static self, a: &PageAllocator) {
        register_both(a, self);
    }
    pub(super) fn table(&self, o: MovableOwner) -> Option<(&Table, usize)> {
        match o.kind {
            KIND_A => Some((&self.table_a, o.private as usize)),
            KIND_B => Some((&self.table_b, o.private as usize)),
            _ => None,
        }
    }
    /// Allocates a movable block for an owner of [`KIND_B`] (`in_b`) or [`KIND_A`], fills
    /// it with a pattern.
    pub(super) fn alloc(&self, a: &PageAllocator, order: u32, in_b: bool) -> Option<MovableOwner> {
        self.alloc_on(a, GFP_HIGHUSER_MOVABLE, order, in_b, cpu())
    }
    /// [`Self::alloc`] with a movable `gfp` of the caller's, on `on`.
    pub(super) fn alloc_on(
        &self,
        a: &PageAllocator,
        gfp: Gfp,
        order: u32,
        in_b: bool,
        on: CpuId,
    ) -> Option<MovableOwner> {
        let pfn = a.alloc_pages(gfp | Gfp::GFP_NOWARN, order, on).ok()?;
        let t = if in_b { &self.table_b } else { &self.table_a };
        let mut t = t.lock().unwrap();
        t.push(Some((pfn.0, order)));
        let i = (t.len() - 1) as u64;
        let o = MovableOwner::new(if in_b { KIND_B } else { KIND_A }, i);
        assert!(set_movable_owner(&a.mem_map().unwrap(), pfn, o));
        let mut m = self.mem.lock().unwrap();
        for p in 0..1u64 << order {
            m.insert(pfn.0 + p, pattern(o, p));
        }
        Some(o)
    }
    /// Allocates blocks of `order` into `held` until the allocator refuses (the two kinds
    /// in turn), then drains the per-CPU lists.
    pub(super) fn fill(&self, a: &PageAllocator, order: u32, held: &mut Vec<MovableOwner>) {
        while let Some(o) = self.alloc(a, order, held.len() % 2 == 1) {
            held.push(o);
        }
        a.drain_all();
    }
    pub(super) fn free(&self, a: &PageAllocator, o: MovableOwner) {
        let (t, i) = self.table(o).unwrap();
        let (pfn, order) = t.lock().unwrap()[i].take().unwrap();
        let mut m = self.mem.lock().unwrap();
        for p in 0..1u64 << order {
            m.remove(&(pfn + p));
        }
        a.free_pages(Pfn(pfn), order, cpu()).unwrap();
    }
    /// Frees every owner's block, drains the per-CPU lists and checks that `free` pages
    /// are free again (no leak).
    pub(super) fn free_all(&self, a: &PageAllocator, owners: impl IntoIterator<Item = MovableOwner>, free: u64) {
        for o in owners {
            self.free(a, o);
        }
        a.drain_all();
        assert_eq!(a.snapshot().nr_free_pages(), free, "pages leaked");
    }
    pub(super) fn at(&self, o: MovableOwner) -> (u64, u32) {
        let (t, i) = self.table(o).unwrap();
        t.lock().unwrap()[i].unwrap()
    }
    /// Every live block has its own pattern, and its head names its owner.
    pub(super) fn check(&self, a: &PageAllocator) {
        let m = self.mem.lock().unwrap();
        let mut live = 0;
        for (kind, t) in [(KIND_A, &self.table_a), (KIND_B, &self.table_b)] {
            for (i, e) in t.lock().unwrap().iter().enumerate() {
                let Some((pfn, order)) = *e else { continue };
                let o = MovableOwner::new(kind, i as u64);
                assert_eq!(movable_owner(&a.mem_map().unwrap(), Pfn(pfn)), Some((o, order)));
                for p in 0..1u64 << order {
                    assert_eq!(m.get(&(pfn + p)), Some(&pattern(o, p)), "contents of {o:?} page {p}");
                }
                live += 1u64 << order;
            }
        }
        assert_eq!(m.len() as u64, live, "no stale contents");
    }
}

fn pattern(o: MovableOwner, page: u64) -> u64 {
    o.encode() ^ (page << 20) ^ 0x5a5a
}

/// Registers `ops` for both of the model's kinds with `a`.
pub(super) fn register_both(a: &PageAllocator, ops: &'static dyn MovableOps) {
    for kind in [KIND_A, KIND_B] {
        a.movable_ops.register(kind, ops).unwrap();
    }
}

impl MovableOps for Model {
    fn migrate_page(&self, m: &BlockMove, mode: MigrateMode) -> Result<(), MigrateError> {
        let (old, new, order) = (m.old, m.new, m.order);
        let (t, i) = self.table(m.owner).ok_or(MigrateError::Gone)?;
        let mut t = match mode {
            MigrateMode::Sync => t.lock().unwrap(),
            MigrateMode::Async => t.try_lock().map_err(|_| MigrateError::Busy)?,
        };
        if t.get(i).copied().flatten() != Some((old.0, order)) {
            return Err(MigrateError::Gone);
        }
        let mut m = self.mem.lock().unwrap();
        for p in 0..1u64 << order {
            let v = m.remove(&(old.0 + p)).unwrap();
            assert!(m.insert(new.0 + p, v).is_none(), "target page {} was in use", new.0 + p);
        }
        t[i] = Some((new.0, order));
        Ok(())
    }
}

pub(super) fn max_free_order(a: &PageAllocator) -> Option<u32> {
    let mut best = None;
    memmap::for_each_free_block(a, |_, _, o, _| best = best.max(Some(o)));
    best
}

#[test]
fn migration_of_each_kind_updates_the_owner_and_frees_the_old_block() {
    let a = make(1024);
    let m = Model::new();
    m.register(a);
    let kinds: Vec<_> =
        (0..4u32).map(|o| m.alloc(a, o, false).unwrap()).chain((0..4).map(|o| m.alloc(a, o, true).unwrap())).collect();
    let census = check_invariants(a).unwrap();
    for &o in &kinds {
        let (old, order) = m.at(o);
        let new = Migrator::new(a, MigrateCtx::sync(cpu()))
            .migrate_page(Pfn(old), &mut |ord| a.alloc_pages(GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, ord, cpu()).ok())
            .unwrap();
        assert_ne!(new.0, old);
        assert_eq!(m.at(o), (new.0, order), "the reference follows");
        assert_eq!(movable_owner(&a.mem_map().unwrap(), Pfn(old)), None, "the old block is no longer theirs");
        m.check(a);
    }
    a.drain_all();
    assert_eq!(check_invariants(a).unwrap().allocated, census.allocated, "no leak");
    assert_eq!(a.snapshot().migrate.pgmigrate_success, kinds.len() as u64);
    // A page without a movable owner is refused, unchanged.
    let k = a.alloc_pages(GFP_KERNEL, 0, cpu()).unwrap();
    let r = Migrator::new(a, MigrateCtx::sync(cpu())).migrate_page(k, &mut |_| panic!("no target wanted"));
    assert_eq!(r, Err(MigrateError::NotMovable));
    a.free_pages(k, 0, cpu()).unwrap();
    m.free_all(a, kinds, 1024);
}

#[test]
fn target_allocation_failing_at_each_step_rolls_back() {
    let a = make(1024);
    let m = Model::new();
    m.register(a);
    let owners: Vec<_> = (0..6).map(|i| m.alloc(a, i % 3, i % 2 == 0).unwrap()).collect();
    let free_before = a.snapshot().nr_free_pages();
    for step in 1..=owners.len() as u64 {
        a.fail.fail_nth(step);
        let mut done = Vec::new();
        for &o in &owners {
            let (old, _) = m.at(o);
            let r = Migrator::new(a, MigrateCtx::sync(cpu())).migrate_page(Pfn(old), &mut |ord| {
                a.alloc_pages(GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, ord, cpu()).ok()
            });
            done.push(r.is_ok());
            if r.is_err() {
                assert_eq!(r, Err(MigrateError::NoTarget));
                assert_eq!(m.at(o).0, old, "the owner still has its block");
            }
            m.check(a);
        }
        let failed: Vec<_> = done.iter().enumerate().filter(|(_, ok)| !**ok).map(|(i, _)| i as u64 + 1).collect();
        assert_eq!(failed, [step], "exactly the armed allocation failed");
        assert_eq!(a.snapshot().nr_free_pages(), free_before, "nothing leaked or lost");
    }
    // The owner no longer holding the block (or busy) also rolls back: the target is freed.
    let o = owners[0];
    let (old, order) = m.at(o);
    let (t, i) = m.table(o).unwrap();
    t.lock().unwrap()[i] = Some((old + 1, order));
    let r = Migrator::new(a, MigrateCtx::sync(cpu()))
        .migrate_page(Pfn(old), &mut |ord| a.alloc_pages(GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, ord, cpu()).ok());
    assert_eq!(r, Err(MigrateError::Gone));
    t.lock().unwrap()[i] = Some((old, order));
    let held = t.lock().unwrap();
    let r = Migrator::new(a, MigrateCtx::async_on(cpu()))
        .migrate_page(Pfn(old), &mut |ord| a.alloc_pages(GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, ord, cpu()).ok());
    drop(held);
    assert_eq!(r, Err(MigrateError::Busy));
    assert_eq!(a.snapshot().nr_free_pages(), free_before);
    m.check(a);
    m.free_all(a, owners, 1024);
}

/// Fills the zone with single movable pages and frees every other one: no free block
/// above order 0 remains.
pub(super) fn checkerboard(a: &PageAllocator, m: &Model) -> Vec<MovableOwner> {
    let mut all = Vec::new();
    while let Some(o) = m.alloc(a, 0, true) {
        all.push(o);
    }
    a.drain_all();
    let mut kept = Vec::new();
    for o in all {
        if m.at(o).0.is_multiple_of(2) {
            m.free(a, o);
        } else {
            kept.push(o);
        }
    }
    a.drain_all();
    kept
}

#[test]
fn compaction_rebuilds_a_top_order_block_from_a_checkerboard() {
    let n = 4096;
    let a = make(n);
    let m = Model::new();
    m.register(a);
    let kept = checkerboard(a, m);
    assert!(kept.len() as u64 > n / 2 - 8, "{} kept", kept.len());
    // (The allocator keeps the last few pages back: at most an order-2 block.)
    assert!(max_free_order(a) <= Some(2));
    let low = kept.iter().filter(|&&o| m.at(o).0 < n / 2).count() as u64;
    assert!(a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 3, cpu()).is_err());
    assert!(extfrag_index(a, ZoneType::Normal.index(), 11) > compaction::EXTFRAG_THRESHOLD);
    let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
    assert_eq!(r.migrated, low, "{r:?}: the low half's movable pages all moved up");
    assert_eq!(r.failed, 0);
    assert!(r.migrate_scanned > 0 && r.free_scanned > 0);
    m.check(a);
    // The low half of the zone is one free order-11 block: half of it, the top order a
    // half-full zone can have.
    assert_eq!(max_free_order(a), Some(11));
    assert_eq!(extfrag_index(a, ZoneType::Normal.index(), 11), -1000);
    let big = a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 11, cpu()).unwrap();
    a.free_pages(big, 11, cpu()).unwrap();
    let e = a.snapshot().migrate;
    assert_eq!((e.compact_migrate_scanned, e.compact_free_scanned), (r.migrate_scanned, r.free_scanned));
    m.free_all(a, kept, n);
    assert_eq!(max_free_order(a), Some(12));
}

#[test]
fn direct_compaction_for_high_order_kernel_requests_only() {
    let n = 2048;
    let a = make(n);
    let m = Model::new();
    m.register(a);
    let kept = checkerboard(a, m);
    assert!(a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 6, cpu()).is_err(), "atomic never compacts");
    assert!(a.alloc_pages(GFP_KERNEL | Gfp::GFP_NORETRY | Gfp::GFP_NOWARN, 6, cpu()).is_err());
    assert_eq!(a.snapshot().migrate.compact_stall, 0);
    let p = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 6, cpu()).unwrap();
    let e = a.snapshot().migrate;
    assert_eq!((e.compact_stall, e.compact_success, e.compact_fail), (1, 1, 0));
    assert!(e.pgmigrate_success >= 32, "at least a block's worth moved");
    assert!(e.pgmigrate_success < n / 4, "stopped once the block was free");
    m.check(a);
    a.free_pages(p, 6, cpu()).unwrap();
    m.free_all(a, kept, n);
}

/// A high-order request that fails for want of memory, not for fragmentation (one free
/// page: the fragmentation index below the threshold), does not compact (Linux's
/// `compaction_suitable`).
#[test]
fn no_direct_compaction_when_memory_is_short_rather_than_fragmented() {
    let n = 2048;
    let a = make(n);
    let m = Model::new();
    m.register(a);
    let kept = checkerboard(a, m);
    let mut held: Vec<_> = std::iter::from_fn(|| a.alloc_pages(GFP_ATOMIC | Gfp::GFP_NOWARN, 0, cpu()).ok()).collect();
    a.drain_all();
    assert_eq!(a.snapshot().nr_free_pages(), 0);
    a.free_pages(held.pop().unwrap(), 0, cpu()).unwrap();
    a.drain_all();
    assert!(extfrag_index(a, ZoneType::Normal.index(), 6) <= 500);
    assert!(a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 6, cpu()).is_err());
    assert_eq!(a.snapshot().migrate.compact_stall, 0, "compaction cannot help");
    for p in held {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    m.free_all(a, kept, n);
}

/// No movable owner registered: nothing could move, so a high-order request that fails
/// for fragmentation does not compact (`MovableRegistry::any`); and the registry's
/// refusals say what they are.
#[test]
fn no_direct_compaction_without_movable_owners() {
    let n = 2048;
    let a = make(n);
    let held: Vec<_> = std::iter::from_fn(|| a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, cpu()).ok()).collect();
    let (freed, kept): (Vec<_>, Vec<_>) = held.into_iter().partition(|p| p.0 % 2 == 0);
    for p in freed {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    a.drain_all();
    assert!(extfrag_index(a, ZoneType::Normal.index(), 6) > 500, "fragmented");
    assert!(a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 6, cpu()).is_err());
    assert_eq!(a.snapshot().migrate.compact_stall, 0);
    for p in kept {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    assert_eq!(super::RegisterError::BadKind.to_string(), "movable kind out of range");
    assert_eq!(super::RegisterError::Taken.to_string(), "movable kind registered by another owner");
}

/// An allocator of 4096 pages with a 4 MiB CMA area (pfns 3072..4096) wholly borrowed by
/// the model's movable pages, and every other page outside the area free again (targets).
fn cma_borrowed(m: &Model) -> (&'static PageAllocator, Vec<MovableOwner>) {
    let a = make(4096);
    assert_eq!(Cma::new(a).declare(4 << 20).unwrap().base, Pfn(3072));
    let mut held = Vec::new();
    for _ in 0..2 {
        m.fill(a, 0, &mut held);
    }
    // (The low watermark keeps a page or two of it back.)
    assert!(Cma::new(a).stats().unwrap().free < 8, "the area is borrowed");
    let mut kept = Vec::new();
    for (i, o) in held.into_iter().enumerate() {
        if m.at(o).0 < 3072 && i % 2 == 0 {
            m.free(a, o);
        } else {
            kept.push(o);
        }
    }
    a.drain_all();
    (a, kept)
}

#[test]
fn cma_alloc_migrates_every_borrower_out_and_release_gives_the_area_back() {
    let m = Model::new();
    let (a, kept) = cma_borrowed(m);
    m.register(a);
    let borrowed = kept.iter().filter(|&&o| m.at(o).0 >= 3072).count() as u64;
    assert!(borrowed > 1000, "{borrowed}");
    let before = check_invariants(a).unwrap();
    let mut st = CmaAllocStats::default();
    assert_eq!(Cma::new(a).alloc(1024, 10, cpu(), &mut st), Ok(Pfn(3072)));
    assert_eq!((st.migrated, st.failed, st.ranges_tried), (borrowed, 0, 1));
    // Contents preserved, every reference updated, nothing of the model left in the area.
    m.check(a);
    assert!(kept.iter().all(|&o| m.at(o).0 < 3072));
    // The targets were movable allocations: no pageblock outside the area changed type.
    let types: Vec<_> = (0..3072)
        .step_by(PAGEBLOCK_NR_PAGES as usize)
        .map(|p| a.pfn_to_page(Pfn(p)).unwrap().pageblock_migratetype())
        .collect();
    assert!(types.iter().all(|&t| t == MigrateType::Movable), "{types:?}");
    a.drain_all();
    let after = check_invariants(a).unwrap();
    assert_eq!(after.allocated, before.allocated + 1024, "the range, and the moved pages once each");
    assert_eq!(Cma::new(a).stats().unwrap().free, 0);
    // Neither a page outside a range nor one released twice is taken back.
    assert_eq!(Cma::new(a).release(Pfn(3000), 1), Err(CmaError::NotAllocated));
    assert_eq!(Cma::new(a).release(Pfn(3072), 0), Err(CmaError::NotAllocated), "no pages");
    assert_eq!(Cma::new(a).release(Pfn(3072), 1025), Err(CmaError::NotAllocated));
    assert_eq!(Cma::new(a).release(Pfn(3072), 1024), Ok(()));
    assert_eq!(Cma::new(a).release(Pfn(3072), 1), Err(CmaError::NotAllocated));
    // An ordinary order-0 allocation in the area is not a cma_alloc page either.
    let mut taken = Vec::new();
    while taken.last().is_none_or(|&o| m.at(o).0 < 3072) {
        taken.push(m.alloc(a, 0, false).expect("a movable page in the area"));
    }
    let q = m.at(*taken.last().unwrap()).0;
    assert_eq!(Cma::new(a).release(Pfn(q), 1), Err(CmaError::NotAllocated));
    for o in taken {
        m.free(a, o);
    }
    a.drain_all();
    let back = check_invariants(a).unwrap();
    assert_eq!(back.allocated, before.allocated, "no leak");
    assert_eq!(Cma::new(a).stats().unwrap().free, 1024);
    let mut blocks = Vec::new();
    memmap::for_each_free_block(a, |_, p, o, mt| blocks.push((p, o, mt)));
    assert!(blocks.contains(&(3072, 10, MigrateType::Cma)), "merged back whole");
    m.free_all(a, kept, 4096);
}

#[test]
fn cma_alloc_gives_up_a_range_whose_borrower_cannot_move() {
    let m = Model::new();
    let (a, kept) = cma_borrowed(m);
    m.register(a);
    // One borrowed page changes hands to an owner that refuses to move it.
    let victim = *kept.iter().find(|&&o| m.at(o).0 >= 3584).unwrap();
    let pinned = Pfn(m.at(victim).0);
    let (t, i) = m.table(victim).unwrap();
    t.lock().unwrap()[i] = None;
    m.mem.lock().unwrap().remove(&pinned.0);
    assert!(set_movable_owner(&a.mem_map().unwrap(), pinned, MovableOwner::new(STRANGER, 0)));
    let before = check_invariants(a).unwrap();
    let mut st = CmaAllocStats::default();
    assert_eq!(Cma::new(a).alloc(1024, 0, cpu(), &mut st), Err(CmaError::NoRange));
    assert!(st.failed >= 1 && st.ranges_tried == 1, "{st:?}");
    m.check(a);
    assert_eq!(movable_owner(&a.mem_map().unwrap(), pinned), Some((MovableOwner::new(STRANGER, 0), 0)));
    a.drain_all();
    assert_eq!(check_invariants(a).unwrap().allocated, before.allocated, "a refused cma_alloc leaks nothing");
    // The half without the pinned page can be had; the area lends again afterwards.
    let mut st = CmaAllocStats::default();
    assert_eq!(Cma::new(a).alloc(512, 9, cpu(), &mut st), Ok(Pfn(3072)));
    assert_eq!(Cma::new(a).alloc(512, 9, cpu(), &mut st), Err(CmaError::NoRange));
    assert_eq!(Cma::new(a).alloc(0, 0, cpu(), &mut st), Err(CmaError::BadRequest));
    assert_eq!(Cma::new(a).alloc(2048, 0, cpu(), &mut st), Err(CmaError::BadRequest));
    m.check(a);
    Cma::new(a).release(Pfn(3072), 512).unwrap();
    a.drain_all();
    check_invariants(a).unwrap();
    assert_eq!(Cma::new(make(64)).alloc(1, 0, cpu(), &mut st), Err(CmaError::NoArea));
}

/// An area in the middle of memory, borrowed whole, with the only free pages above it:
/// `cma_alloc` must take every target there, the first page past the area's end among
/// them (the test that keeps targets out of the area must not refuse it).
#[test]
fn cma_alloc_takes_its_targets_from_above_an_area_in_the_middle() {
    let m = Model::new();
    let a = make(4096);
    m.register(a);
    let mut held = Vec::new();
    while let Ok(p) = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, cpu()) {
        held.push(p);
    }
    // (An unmovable request leaves the last few pages free: above the area-to-be.)
    assert!(held.len() > 4080 && held.iter().all(|p| p.0 < 4092), "{}", held.len());
    let (area, rest): (Vec<_>, Vec<_>) = held.into_iter().partition(|p| (2048..3072).contains(&p.0));
    for p in area {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    a.drain_all();
    assert_eq!(Cma::new(a).declare(4 << 20).unwrap().base, Pfn(2048));
    let mut borrowers = Vec::new();
    for _ in 0..2 {
        m.fill(a, 0, &mut borrowers);
    }
    assert_eq!(borrowers.len(), 1024, "the area is borrowed whole");
    let (above, below): (Vec<_>, Vec<_>) = rest.into_iter().partition(|p| p.0 >= 3072);
    for p in above {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    a.drain_all();
    let mut st = CmaAllocStats::default();
    assert_eq!(Cma::new(a).alloc(1024, 10, cpu(), &mut st), Ok(Pfn(2048)));
    assert_eq!((st.migrated, st.failed), (1024, 0));
    let mut at: Vec<u64> = borrowers.iter().map(|&o| m.at(o).0).collect();
    at.sort_unstable();
    assert_eq!(at, (3072..4096).collect::<Vec<_>>(), "every page above the area is a target");
    m.check(a);
    Cma::new(a).release(Pfn(2048), 1024).unwrap();
    for p in below {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    m.free_all(a, borrowers, 4096);
}

/// Borrowers of order 2 and only scattered order-0 pages free outside the area: no
/// target can be had, and `cma_alloc` must give up without starting a direct compaction
/// of its own from the target allocation (`__GFP_NORETRY`), leaking nothing.
#[test]
fn cma_alloc_without_targets_gives_up_and_compacts_nothing() {
    let m = Model::new();
    let a = make(4096);
    m.register(a);
    assert_eq!(Cma::new(a).declare(4 << 20).unwrap().base, Pfn(3072));
    let mut held = Vec::new();
    while let Ok(p) = a.alloc_pages(GFP_KERNEL | Gfp::GFP_NOWARN, 0, cpu()) {
        held.push(p);
    }
    a.drain_all();
    let mut borrowers = Vec::new();
    // (NORETRY: the failure that ends the loop must not start or defer compaction.)
    let gfp = GFP_HIGHUSER_MOVABLE | Gfp::GFP_NORETRY;
    while let Some(o) = m.alloc_on(a, gfp, 2, borrowers.len() % 2 == 1, cpu()) {
        borrowers.push(o);
    }
    let in_area = borrowers.iter().filter(|&&o| m.at(o).0 >= 3072).count();
    assert!(in_area > 250, "{in_area} of {} borrowers in the area", borrowers.len());
    // Single pages borrow what the blocks left of the area: no free block of order 2
    // in it, so the fragmentation index alone would not rule a compaction out.
    while let Some(o) = m.alloc_on(a, gfp | Gfp::GFP_MEMALLOC, 0, false, cpu()) {
        borrowers.push(o);
    }
    a.drain_all();
    let (free, kept): (Vec<_>, Vec<_>) = held.into_iter().partition(|p| p.0 % 2 == 0);
    for &p in &free {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    a.drain_all();
    let before = check_invariants(a).unwrap();
    let mut st = CmaAllocStats::default();
    assert_eq!(Cma::new(a).alloc(1024, 10, cpu(), &mut st), Err(CmaError::NoRange));
    assert!(st.failed >= 1 && st.migrated <= 2, "{st:?}");
    assert_eq!(a.snapshot().migrate.compact_stall, 0, "a target allocation compacted");
    m.check(a);
    a.drain_all();
    assert_eq!(check_invariants(a).unwrap().allocated, before.allocated, "a refused cma_alloc leaks nothing");
    for p in kept {
        a.free_pages(p, 0, cpu()).unwrap();
    }
    m.free_all(a, borrowers, 4096);
}

/// The model's owners, watching the CMA area from inside each migration `cma_alloc`
/// asks of them: the area must say it is isolating, and a second `cma_alloc` meanwhile
/// must be refused as busy.
#[derive(Debug)]
struct WatchingCma {
    m: &'static Model,
    a: std::sync::OnceLock<&'static PageAllocator>,
    seen: Mutex<Vec<Seen>>,
}

/// What [`WatchingCma`] saw in one migration: whether the area was isolating, a nested
/// `cma_alloc`'s answer, the area's memory-map cell.
type Seen = (bool, Result<Pfn, CmaError>, memmap::CellCount);

impl MovableOps for WatchingCma {
    fn migrate_page(&self, mv: &BlockMove, mode: MigrateMode) -> Result<(), MigrateError> {
        let a = self.a.get().unwrap();
        let mut st = CmaAllocStats::default();
        let nested = Cma::new(a).alloc(1, 0, cpu(), &mut st);
        // The memory map of the area meanwhile: one cell of its 1024 pages.
        let mut cell = memmap::CellCount::default();
        memmap::memmap_walk(a, Pfn(3072), 1024, 1, |_, c| cell = *c);
        self.seen.lock().unwrap().push((Cma::new(a).isolating(), nested, cell));
        self.m.migrate_page(mv, mode)
    }
}

#[test]
fn cma_alloc_isolates_the_area_while_it_runs_and_refuses_a_second_one() {
    let m = Model::new();
    let (a, kept) = cma_borrowed(m);
    let w: &'static WatchingCma =
        Box::leak(Box::new(WatchingCma { m, a: std::sync::OnceLock::new(), seen: Mutex::new(Vec::new()) }));
    w.a.set(a).unwrap();
    register_both(a, w);
    assert!(!Cma::new(a).isolating(), "no cma_alloc is running");
    // Before: the borrowed pages are the area's used pages, none isolated.
    let mut before = memmap::CellCount::default();
    memmap::memmap_walk(a, Pfn(3072), 1024, 1, |_, c| before = *c);
    assert!(before.used[MigrateType::Cma.index()] > 1000 && before.isolated == 0, "{before:?}");
    let mut st = CmaAllocStats::default();
    assert_eq!(Cma::new(a).alloc(256, 8, cpu(), &mut st), Ok(Pfn(3072)));
    let seen = std::mem::take(&mut *w.seen.lock().unwrap());
    assert_eq!(seen.len() as u64, st.migrated, "one look per block moved");
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|&(iso, nested, _)| iso && nested == Err(CmaError::Busy)), "{seen:?}");
    // The map shows the area's allocated pages as isolated, none as Cma used.
    for (_, _, c) in &seen {
        assert!(c.isolated > 0 && c.used[MigrateType::Cma.index()] == 0, "{c:?}");
        assert_eq!(c.total(), 1024);
    }
    assert!(!Cma::new(a).isolating(), "the area is open again");
    // A refused request leaves it open too.
    assert_eq!(Cma::new(a).alloc(0, 0, cpu(), &mut st), Err(CmaError::BadRequest));
    assert!(!Cma::new(a).isolating());
    m.check(a);
    Cma::new(a).release(Pfn(3072), 256).unwrap();
    a.drain_all();
    check_invariants(a).unwrap();
    m.free_all(a, kept, 4096);
}

/// Batch migration ([`Migrator::migrate_pages`](super::Migrator::migrate_pages), [`MovableOps::migrate_pages`])
/// against the same model.
mod batch {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use super::*;

    /// The model's owners, counting the batches they are handed.
    #[derive(Debug)]
    struct Counting<'a> {
        m: &'a Model,
        batches: AtomicU64,
        largest: AtomicU64,
    }

    impl<'a> Counting<'a> {
        fn new(m: &'a Model) -> Self {
            Self { m, batches: AtomicU64::new(0), largest: AtomicU64::new(0) }
        }
    }

    impl MovableOps for Counting<'_> {
        fn migrate_page(&self, m: &BlockMove, mode: MigrateMode) -> Result<(), MigrateError> {
            self.m.migrate_page(m, mode)
        }
        fn migrate_pages(&self, moves: &[BlockMove], mode: MigrateMode, result: &mut [Result<(), MigrateError>]) {
            self.batches.fetch_add(1, Relaxed);
            self.largest.fetch_max(moves.len() as u64, Relaxed);
            self.m.migrate_pages(moves, mode, result);
        }
    }

    /// Migrates `owners`' blocks as one batch with targets from the allocator; the results.
    fn migrate_batch(
        a: &PageAllocator,
        c: &Counting,
        owners: &[MovableOwner],
        mode: MigrateMode,
    ) -> Vec<Result<Pfn, MigrateError>> {
        let pfns: Vec<_> = owners.iter().map(|&o| Pfn(c.m.at(o).0)).collect();
        migrate_pfns(a, &pfns, mode)
    }

    /// Migrates the blocks at `pfns` as one batch with targets from the allocator.
    /// More blocks than one batch holds: each result belongs to its own block, in the
    /// second batch as in the first.
    #[test]
    fn results_of_a_second_batch_land_at_their_own_blocks() {
        let a = make(1024);
        let m = Model::new();
        m.register(a);
        let n = MIGRATE_BATCH + 8;
        let owners: Vec<_> = (0..n).map(|i| m.alloc(a, 0, i % 2 == 1).unwrap()).collect();
        let pfns: Vec<_> = owners.iter().map(|&o| Pfn(m.at(o).0)).collect();
        let res = migrate_pfns(a, &pfns, MigrateMode::Sync);
        for (k, &o) in owners.iter().enumerate() {
            assert_eq!(res[k], Ok(Pfn(m.at(o).0)), "block {k}");
            assert_ne!(res[k], Ok(pfns[k]));
        }
        m.check(a);
        m.free_all(a, owners, 1024);
    }

    fn migrate_pfns(a: &PageAllocator, pfns: &[Pfn], mode: MigrateMode) -> Vec<Result<Pfn, MigrateError>> {
        let mut res = vec![Err(MigrateError::NotMovable); pfns.len()];
        Migrator::new(a, MigrateCtx { mode, cpu: cpu() }).migrate_pages(
            pfns,
            &mut |ord| a.alloc_pages(GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, ord, cpu()).ok(),
            &mut res,
        );
        res
    }

    #[test]
    fn a_batch_with_its_target_allocation_failing_at_each_position_rolls_back_the_rest() {
        let a = make(1024);
        let m = Model::new();
        let c: &'static Counting = Box::leak(Box::new(Counting::new(m)));
        register_both(a, c);
        let owners: Vec<_> = (0..6).map(|i| m.alloc(a, i % 3, i % 2 == 0).unwrap()).collect();
        let free_before = a.snapshot().nr_free_pages();
        for step in 1..=owners.len() {
            let before: Vec<_> = owners.iter().map(|&o| m.at(o)).collect();
            let (batches, fails) = (c.batches.load(Relaxed), a.snapshot().migrate.pgmigrate_fail);
            a.fail.fail_nth(step as u64);
            let res = migrate_batch(a, c, &owners, MigrateMode::Sync);
            for (i, r) in res.iter().enumerate() {
                if i + 1 < step {
                    assert_eq!(r.map(|p| p.0), Ok(m.at(owners[i]).0), "block {i} moved before the failure");
                    assert_ne!(m.at(owners[i]), before[i]);
                } else {
                    // The failed target and every block after it (not tried: no targets).
                    assert_eq!(*r, Err(MigrateError::NoTarget), "block {i}, failure at {step}");
                    assert_eq!(m.at(owners[i]), before[i], "the owner still has its block");
                }
            }
            m.check(a);
            // Each kind's blocks go to its operations as one batch (the kinds alternate).
            let kinds = owners[..step - 1].iter().map(|o| o.kind).collect::<std::collections::BTreeSet<_>>();
            assert_eq!(c.batches.load(Relaxed), batches + kinds.len() as u64, "one batch per kind");
            assert_eq!(a.snapshot().migrate.pgmigrate_fail, fails + 1, "only the block tried counts as failed");
            assert_eq!(a.snapshot().nr_free_pages(), free_before, "nothing leaked or lost");
        }
        // An owner that lost its block (at each position) or a busy owner: that block's
        // target is freed, the others move.
        for bad in 0..owners.len() {
            let o = owners[bad];
            let (old, order) = m.at(o);
            let (t, i) = m.table(o).unwrap();
            let pfns: Vec<_> = owners.iter().map(|&o| Pfn(m.at(o).0)).collect();
            t.lock().unwrap()[i] = Some((old + 1, order));
            let res = migrate_pfns(a, &pfns, MigrateMode::Sync);
            t.lock().unwrap()[i] = Some((old, order));
            for (j, r) in res.iter().enumerate() {
                assert_eq!(r.is_ok(), j != bad, "{res:?}");
            }
            assert_eq!(res[bad], Err(MigrateError::Gone));
            assert_eq!(m.at(o), (old, order));
            m.check(a);
            assert_eq!(a.snapshot().nr_free_pages(), free_before);
        }
        let pfns: Vec<_> = owners.iter().map(|&o| Pfn(m.at(o).0)).collect();
        let held = (m.table_a.lock().unwrap(), m.table_b.lock().unwrap());
        let res = migrate_pfns(a, &pfns, MigrateMode::Async);
        drop(held);
        assert!(res.iter().all(|r| *r == Err(MigrateError::Busy)), "{res:?}");
        assert_eq!(a.snapshot().nr_free_pages(), free_before);
        m.check(a);
        m.free_all(a, owners, 1024);
    }

    #[test]
    fn compaction_hands_the_owners_batches() {
        let n = 4096;
        let a = make(n);
        let m = Model::new();
        let c: &'static Counting = Box::leak(Box::new(Counting::new(m)));
        register_both(a, c);
        let kept = checkerboard(a, m);
        let r = Compactor::new(a, MigrateCtx::sync(cpu())).compact_memory();
        assert!(r.migrated > 1000 && r.failed == 0, "{r:?}");
        m.check(a);
        let batches = c.batches.load(Relaxed);
        assert_eq!(c.largest.load(Relaxed), MIGRATE_BATCH as u64);
        // Batches end at pageblock boundaries: at most one short batch per pageblock.
        let blocks = n / PAGEBLOCK_NR_PAGES;
        assert!(batches <= r.migrated / MIGRATE_BATCH as u64 + blocks, "{batches} batches for {r:?}");
        m.free_all(a, kept, n);
    }
}

thread_local! {
    /// The page_owner table [`copy_owner_hook`] updates (each test thread its own).
    static OWNER_TABLE: std::cell::Cell<Option<&'static crate::debug::page_owner::PageOwner<'static>>> =
        const { std::cell::Cell::new(None) };
}

/// The migration's trace in [`copy_owner_hook`]'s records.
const MIGRATE_TRACE: crate::debug::stack_depot::Trace = [0xbeef; crate::debug::stack_depot::DEPOT_DEPTH];

fn copy_owner_hook(old: Pfn, new: Pfn, _order: u32) {
    OWNER_TABLE.with(|t| t.get().unwrap().copy_owner(old.0, new.0, 77, &MIGRATE_TRACE));
}

#[test]
fn migration_carries_the_page_owner_record_to_the_new_block() {
    use crate::debug::page_owner::{OwnerRecord, PageOwner};
    use crate::debug::stack_depot::{DepotSlot, StackDepot, DEPOT_DEPTH};
    let a = make(1024);
    let recs: &'static [OwnerRecord] = Box::leak((0..1024).map(|_| OwnerRecord::EMPTY).collect());
    let slots: &'static [DepotSlot] = Box::leak((0..64).map(|_| DepotSlot::EMPTY).collect());
    let po: &'static PageOwner<'static> = Box::leak(Box::new(PageOwner::new(0, recs, StackDepot::new(slots))));
    OWNER_TABLE.with(|t| t.set(Some(po)));
    assert!(a.movable_ops.register_copy_owner(copy_owner_hook));
    assert!(a.movable_ops.register_copy_owner(copy_owner_hook), "the same hook again");
    fn other(_: Pfn, _: Pfn, _: u32) {}
    assert!(!a.movable_ops.register_copy_owner(other), "a second hook is refused");
    let m = Model::new();
    m.register(a);
    let trace = |k: u64| {
        let mut t = [0u64; DEPOT_DEPTH];
        t[0] = 0x1000 + k;
        t
    };
    let owners: Vec<_> = (0..6u64).map(|k| m.alloc(a, (k % 3) as u32, k % 2 == 0).unwrap()).collect();
    for (k, &o) in owners.iter().enumerate() {
        let (pfn, order) = m.at(o);
        po.set_alloc(pfn, order, GFP_HIGHUSER_MOVABLE, 0, 10 + k as u32, &trace(k as u64));
    }
    for (k, &o) in owners.iter().enumerate() {
        let (old, order) = m.at(o);
        let new = Migrator::new(a, MigrateCtx::sync(cpu()))
            .migrate_page(Pfn(old), &mut |ord| a.alloc_pages(GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, ord, cpu()).ok())
            .unwrap();
        let n = po.lookup(new.0 + (1 << order) - 1).unwrap();
        assert_eq!(
            (n.head_pfn, n.order, n.allocated, n.migrated, n.ts_alloc_ms),
            (new.0, order, true, true, 10 + k as u32)
        );
        assert_eq!(po.depot.fetch(n.alloc_handle), Some(trace(k as u64)), "the new block's allocation trace");
        let o = po.lookup(old).unwrap();
        assert!(!o.allocated && o.migrated, "the old block is freed by the migration");
        assert_eq!(po.depot.fetch(o.free_handle), Some(MIGRATE_TRACE));
    }
    // A migration that fails (the owner no longer holds the block) copies nothing.
    let (held, _) = m.at(owners[0]);
    let stale = a.alloc_pages(GFP_HIGHUSER_MOVABLE, 0, cpu()).unwrap();
    assert!(set_movable_owner(&a.mem_map().unwrap(), stale, MovableOwner::new(STRANGER, 0)));
    po.set_alloc(stale.0, 0, GFP_HIGHUSER_MOVABLE, 0, 5, &trace(9));
    let before = po.lookup(stale.0).unwrap();
    let mut target = None;
    let r = Migrator::new(a, MigrateCtx::sync(cpu())).migrate_page(stale, &mut |ord| {
        target = a.alloc_pages(GFP_HIGHUSER_MOVABLE | Gfp::GFP_NOWARN, ord, cpu()).ok();
        target
    });
    assert_eq!(r, Err(MigrateError::Gone));
    assert_eq!(po.lookup(stale.0).unwrap(), before, "a failed migration leaves the record");
    assert!(po.lookup(target.unwrap().0).is_none_or(|i| i.alloc_handle != before.alloc_handle));
    assert!(po.lookup(held).unwrap().allocated);
    a.free_pages(stale, 0, cpu()).unwrap();
    m.free_all(a, owners, 1024);
}
