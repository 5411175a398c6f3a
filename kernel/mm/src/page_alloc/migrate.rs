//! Page migration (Linux's `mm/migrate.c`): move an allocated block to another block and
//! repoint whoever refers to it, so that compaction and CMA can empty a range.
//!
//! A block is movable when its head's owner word names a [`MovableOwner`]: the one party
//! that holds the only reference to it and can repoint that reference under its own lock.
//! The page allocator does not know the owners' data structures; the kernel implements
//! [`MovableOwners`] for them (the console's handle table, vmalloc's page table) and the
//! host tests implement it over a model.
//!
//! [`PageAllocator::migrate_page`] is the one migration step: get a target block, tag it
//! with the same owner, let the owner copy and repoint ([`MovableOwners::move_block`]),
//! then free the old block. Any failure before the owner repointed leaves everything as
//! it was (the target is freed, the old block and its contents untouched).
//! [`PageAllocator::migrate_pages`] does the same for a batch (Linux's `migrate_pages`
//! takes a list): the owners get the whole batch at once ([`MovableOwners::move_blocks`]),
//! so vmalloc can move a run of pages under one lock round and one TLB invalidation.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::page::PageState;
use super::{PageAllocator, MAX_PAGE_ORDER};
use crate::addr::{Pfn, PAGE_SHIFT};
use crate::cpu::CpuId;

/// Tag in the top 16 bits of the owner word: a console `alloc pages` handle.
const TAG_CONSOLE: u64 = 0x3c01;
/// Tag: a page of a movable vmalloc area, mapped at the VA in the low 48 bits.
const TAG_VMALLOC: u64 = 0x3c02;
/// Tag: an entry of the fragmentation lab's page array (the boot sweep).
const TAG_LAB: u64 = 0x3c03;
const TAG_SHIFT: u32 = 48;
const LOW_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// Who holds a movable block and can repoint it (stored in the head page's owner word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MovableOwner {
    /// Slot `n` of the console's handle table (`alloc pages N GFP_HIGHUSER_MOVABLE`).
    Console(u32),
    /// The vmalloc page mapped at this page-aligned kernel VA (order 0 only).
    Vmalloc(u64),
    /// Entry `n` of the fragmentation lab's page array.
    Lab(u32),
}

impl MovableOwner {
    /// The owner word to store.
    pub const fn encode(self) -> u64 {
        match self {
            MovableOwner::Console(slot) => (TAG_CONSOLE << TAG_SHIFT) | slot as u64,
            MovableOwner::Vmalloc(va) => (TAG_VMALLOC << TAG_SHIFT) | ((va >> PAGE_SHIFT) & LOW_MASK),
            MovableOwner::Lab(i) => (TAG_LAB << TAG_SHIFT) | i as u64,
        }
    }
    /// The owner a word names; `None` for any other word (slab, 0, list links).
    pub const fn decode(w: u64) -> Option<MovableOwner> {
        match w >> TAG_SHIFT {
            TAG_CONSOLE if w & LOW_MASK <= u32::MAX as u64 => Some(MovableOwner::Console(w as u32)),
            // Kernel VAs have all top bits set: sign-extend the page number back.
            TAG_VMALLOC => {
                let high = !((LOW_MASK << PAGE_SHIFT) | ((1 << PAGE_SHIFT) - 1));
                Some(MovableOwner::Vmalloc(((w & LOW_MASK) << PAGE_SHIFT) | high))
            }
            TAG_LAB if w & LOW_MASK <= u32::MAX as u64 => Some(MovableOwner::Lab(w as u32)),
            _ => None,
        }
    }
}

/// Linux's `enum migrate_mode`, the two kinds we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateMode {
    /// Never wait for an owner's lock (direct compaction, which may run inside an
    /// allocation made with such a lock held): a busy owner fails the page.
    Async,
    /// Take the owner's lock (the `compact` command, CMA, the sweep).
    Sync,
}

/// Why one block was not migrated (nothing changed in every case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateError {
    /// The page is not the head of a live block with a movable owner.
    NotMovable,
    /// No target block (allocation failed or the free scanner found none).
    NoTarget,
    /// The owner no longer holds this block (freed meanwhile) or holds it differently.
    Gone,
    /// The owner's lock was busy ([`MigrateMode::Async`]).
    Busy,
}

/// Most blocks of one [`PageAllocator::migrate_pages`] call that compaction collects
/// (Linux's `COMPACT_CLUSTER_MAX`): the vmalloc lock is held for one batch's copies.
pub const MIGRATE_BATCH: usize = crate::pgtable::MIGRATE_BATCH;

/// One block of a batch handed to [`MovableOwners::move_blocks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMove {
    /// Who holds it.
    pub owner: MovableOwner,
    /// The block it holds now.
    pub old: Pfn,
    /// The target block (allocated, tagged with `owner`).
    pub new: Pfn,
    /// Order of both.
    pub order: u32,
}

/// Blocks the migrate scanner collected for one [`PageAllocator::migrate_pages`] call.
#[derive(Debug)]
pub struct MigrateBatch {
    pfns: [Pfn; MIGRATE_BATCH],
    n: usize,
}

impl MigrateBatch {
    /// An empty batch.
    pub const fn new() -> Self {
        Self { pfns: [Pfn(0); MIGRATE_BATCH], n: 0 }
    }
    /// Adds the head of a movable block; false (not added) when full.
    pub fn push(&mut self, pfn: Pfn) -> bool {
        if self.n == MIGRATE_BATCH {
            return false;
        }
        self.pfns[self.n] = pfn;
        self.n += 1;
        true
    }
    /// Whether another block fits.
    pub fn is_full(&self) -> bool {
        self.n == MIGRATE_BATCH
    }
    /// The blocks collected.
    pub fn pfns(&self) -> &[Pfn] {
        &self.pfns[..self.n]
    }
    /// Empties it.
    pub fn clear(&mut self) {
        self.n = 0;
    }
}

impl Default for MigrateBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// The owners of movable blocks, as the kernel (or a test) implements them.
pub trait MovableOwners: Sync + core::fmt::Debug {
    /// Copies the `2^order` pages at `old` to `new` and repoints `owner`'s reference from
    /// `old` to `new`, under the owner's lock, checking first that `owner` still holds
    /// exactly that block. On `Err` nothing changed (the copy may have been made, but
    /// the owner still uses `old`).
    fn move_block(
        &self,
        owner: MovableOwner,
        old: Pfn,
        new: Pfn,
        order: u32,
        mode: MigrateMode,
    ) -> Result<(), MigrateError>;

    /// [`Self::move_block`] for each of `moves` (`result[k]` for `moves[k]`, each with
    /// the same meaning), as one batch: an owner may take its lock once for all of them
    /// (vmalloc: one TLB invalidation for a run of pages). The default moves them one by
    /// one.
    fn move_blocks(&self, moves: &[BlockMove], mode: MigrateMode, result: &mut [Result<(), MigrateError>]) {
        for (m, r) in moves.iter().zip(result.iter_mut()) {
            *r = self.move_block(m.owner, m.old, m.new, m.order, mode);
        }
    }
}

/// Migration and compaction counters (Linux's `pgmigrate_*` and `compact_*` vm events).
#[derive(Debug)]
pub(super) struct MigrateStats {
    pub(super) pgmigrate_success: AtomicU64,
    pub(super) pgmigrate_fail: AtomicU64,
    pub(super) compact_migrate_scanned: AtomicU64,
    pub(super) compact_free_scanned: AtomicU64,
    pub(super) compact_isolated: AtomicU64,
    pub(super) compact_stall: AtomicU64,
    pub(super) compact_fail: AtomicU64,
    pub(super) compact_success: AtomicU64,
}

impl MigrateStats {
    pub(super) const fn new() -> Self {
        Self {
            pgmigrate_success: AtomicU64::new(0),
            pgmigrate_fail: AtomicU64::new(0),
            compact_migrate_scanned: AtomicU64::new(0),
            compact_free_scanned: AtomicU64::new(0),
            compact_isolated: AtomicU64::new(0),
            compact_stall: AtomicU64::new(0),
            compact_fail: AtomicU64::new(0),
            compact_success: AtomicU64::new(0),
        }
    }
}

/// The counters of [`MigrateStats`], read (`/proc/vmstat` prints them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MigrateEvents {
    /// Pages migrated.
    pub pgmigrate_success: u64,
    /// Pages a migration was tried on and failed.
    pub pgmigrate_fail: u64,
    /// Pages the migrate scanner looked at.
    pub compact_migrate_scanned: u64,
    /// Pages the free scanner looked at.
    pub compact_free_scanned: u64,
    /// Pages isolated (as targets and as sources).
    pub compact_isolated: u64,
    /// Direct compactions (an allocation that compacted before failing or succeeding).
    pub compact_stall: u64,
    /// Compactions that did not reach their goal.
    pub compact_fail: u64,
    /// Compactions that did.
    pub compact_success: u64,
}

impl PageAllocator {
    /// Registers the owners of movable blocks (once, at boot): compaction and CMA need
    /// them; without them nothing is migrated.
    pub fn set_movable_owners(&self, owners: &'static dyn MovableOwners) {
        self.owners.call_once(|| owners);
    }
    /// The registered owners.
    pub fn movable_owners(&self) -> Option<&'static dyn MovableOwners> {
        self.owners.get().copied()
    }

    /// Marks the live block headed at `pfn` as movable by `owner`; false (nothing stored)
    /// if `pfn` is not the head of a live non-compound block.
    pub fn set_movable_owner(&self, pfn: Pfn, owner: MovableOwner) -> bool {
        let Some(p) = self.pfn_to_page(pfn) else { return false };
        if !matches!(p.state(), PageState::Head { compound: false, .. }) {
            return false;
        }
        p.set_owner(owner.encode());
        true
    }

    /// The movable owner of the live block headed at `pfn`, with the block's order.
    pub fn movable_owner(&self, pfn: Pfn) -> Option<(MovableOwner, u32)> {
        let p = self.pfn_to_page(pfn)?;
        let PageState::Head { order, compound: false, .. } = p.state() else { return None };
        Some((MovableOwner::decode(p.owner())?, order))
    }

    /// Migrates the live movable block headed at `pfn` (Linux's `migrate_pages` for one
    /// folio): `target(order)` supplies the new block (a live allocation of that order),
    /// the owner copies and repoints, the old block is freed. Returns the new block.
    ///
    /// On any error nothing changed: the target (if any) was freed again, the old block
    /// is still the owner's, with its contents.
    pub fn migrate_page(
        &self,
        pfn: Pfn,
        owners: &dyn MovableOwners,
        mode: MigrateMode,
        cpu: CpuId,
        target: &mut dyn FnMut(u32) -> Option<Pfn>,
    ) -> Result<Pfn, MigrateError> {
        let mut r = [Err(MigrateError::NotMovable)];
        self.migrate_pages(&[pfn], owners, mode, cpu, target, &mut r);
        r[0]
    }

    /// [`Self::migrate_page`] for a batch of block heads (Linux's `migrate_pages` on a
    /// list): a target for each from `target` (in order; once it gives none, the rest are
    /// not asked for and fail with [`MigrateError::NoTarget`], not counted in
    /// `pgmigrate_fail` as they were not tried), then the owners move the
    /// whole batch ([`MovableOwners::move_blocks`]), then each old block (or, where the
    /// move failed, its target) is freed. `result[k]` is `pfns[k]`'s outcome; a failed
    /// block is left exactly as it was, with its contents, whatever happened to the others.
    ///
    /// # Panics
    ///
    /// If `result` is shorter than `pfns`.
    pub fn migrate_pages(
        &self,
        pfns: &[Pfn],
        owners: &dyn MovableOwners,
        mode: MigrateMode,
        cpu: CpuId,
        target: &mut dyn FnMut(u32) -> Option<Pfn>,
        result: &mut [Result<Pfn, MigrateError>],
    ) {
        assert!(result.len() >= pfns.len(), "one result per block");
        let mut out_of_targets = false;
        for (round, chunk) in pfns.chunks(MIGRATE_BATCH).enumerate() {
            let base = round * MIGRATE_BATCH;
            let none = BlockMove { owner: MovableOwner::Lab(0), old: Pfn(0), new: Pfn(0), order: 0 };
            let mut moves = [none; MIGRATE_BATCH];
            let mut from = [0usize; MIGRATE_BATCH];
            let mut n = 0;
            // Blocks not tried because the targets had run out: not counted as failures.
            let mut untried = [false; MIGRATE_BATCH];
            for (k, &pfn) in chunk.iter().enumerate() {
                untried[k] = out_of_targets;
                result[base + k] = match self.prepare_move(pfn, &mut out_of_targets, cpu, target) {
                    Ok(m) => {
                        moves[n] = m;
                        from[n] = base + k;
                        n += 1;
                        Ok(m.new)
                    }
                    Err(e) => Err(e),
                };
            }
            let mut moved = [Ok(()); MIGRATE_BATCH];
            if n > 0 {
                owners.move_blocks(&moves[..n], mode, &mut moved[..n]);
            }
            for j in 0..n {
                let m = &moves[j];
                if let Err(e) = moved[j] {
                    self.clear_owner(m.new);
                    let _ = self.free_pages(m.new, m.order, cpu);
                    result[from[j]] = Err(e);
                } else {
                    // The owner uses `new` now: the old block is ours to free.
                    self.clear_owner(m.old);
                    let _ = self.free_pages(m.old, m.order, cpu);
                }
            }
            for (k, r) in result[base..base + chunk.len()].iter().enumerate() {
                if untried[k] && *r == Err(MigrateError::NoTarget) {
                    continue;
                }
                let c = if r.is_ok() { &self.migrate.pgmigrate_success } else { &self.migrate.pgmigrate_fail };
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// A batch member's target, tagged with its owner.
    fn prepare_move(
        &self,
        pfn: Pfn,
        out_of_targets: &mut bool,
        cpu: CpuId,
        target: &mut dyn FnMut(u32) -> Option<Pfn>,
    ) -> Result<BlockMove, MigrateError> {
        let (owner, order) = self.movable_owner(pfn).ok_or(MigrateError::NotMovable)?;
        debug_assert!(order <= MAX_PAGE_ORDER);
        if *out_of_targets {
            return Err(MigrateError::NoTarget);
        }
        let Some(new) = target(order) else {
            *out_of_targets = true;
            return Err(MigrateError::NoTarget);
        };
        if !self.set_movable_owner(new, owner) {
            let _ = self.free_pages(new, order, cpu);
            return Err(MigrateError::NoTarget);
        }
        Ok(BlockMove { owner, old: pfn, new, order })
    }

    fn clear_owner(&self, pfn: Pfn) {
        if let Some(p) = self.pfn_to_page(pfn) {
            p.set_owner(0);
        }
    }

    /// The migration and compaction counters.
    pub fn migrate_events(&self) -> MigrateEvents {
        let m = &self.migrate;
        MigrateEvents {
            pgmigrate_success: m.pgmigrate_success.load(Relaxed),
            pgmigrate_fail: m.pgmigrate_fail.load(Relaxed),
            compact_migrate_scanned: m.compact_migrate_scanned.load(Relaxed),
            compact_free_scanned: m.compact_free_scanned.load(Relaxed),
            compact_isolated: m.compact_isolated.load(Relaxed),
            compact_stall: m.compact_stall.load(Relaxed),
            compact_fail: m.compact_fail.load(Relaxed),
            compact_success: m.compact_success.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_words_round_trip_and_foreign_words_are_not_movable() {
        for o in [
            MovableOwner::Console(0),
            MovableOwner::Console(1023),
            MovableOwner::Lab(123_456),
            MovableOwner::Vmalloc(0xffff_ff80_0000_0000),
            MovableOwner::Vmalloc(0xffff_ff80_1234_5000),
        ] {
            assert_eq!(MovableOwner::decode(o.encode()), Some(o));
        }
        assert_eq!(MovableOwner::decode(0), None);
        assert_eq!(MovableOwner::decode(0x51ab_0000_0000_0003), None, "a slab page");
        assert_eq!(MovableOwner::decode(0x0000_0001_0000_0002), None, "list links");
    }
}
