//! Page migration (Linux's `mm/migrate.c`): move an allocated block to another block and
//! repoint whoever refers to it, so that compaction and CMA can empty a range.
//!
//! A block is movable when its head's owner word names a [`MovableOwner`]: a kind and the
//! kind's own reference to the block. Each kind registers its [`MovableOps`] with the
//! page allocator once (Linux's `movable_operations`, registered per page type): the one
//! party that holds the only reference to such a block and can repoint it under its own
//! lock. The page allocator knows no owner's data structures, nor which kinds exist: the
//! mm core's vmalloc registers one, the kernel its others, the host tests a model.
//!
//! [`Migrator::migrate_page`] is the one migration step: get a target block, tag it
//! with the same owner, let the owner's operations copy and repoint
//! ([`MovableOps::migrate_page`]), then free the old block. Any failure before the owner
//! repointed leaves everything as it was (the target is freed, the old block and its
//! contents untouched). [`Migrator::migrate_pages`] does the same for a batch
//! (Linux's `migrate_pages` takes a list): each kind gets its blocks of the batch at once
//! ([`MovableOps::migrate_pages`]), so vmalloc can move a run of pages under one lock
//! round and one TLB invalidation. Isolation (Linux's `isolate_page`) is the owner's
//! check, under its lock, that it still holds exactly the block; a block whose move
//! failed needs no putback: it never left its owner.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{PageAllocator, MAX_PAGE_ORDER};
use crate::addr::Pfn;
use crate::cpu::CpuId;
use crate::owner::{movable_owner, set_movable_owner};
pub use crate::owner::{MovableKind, MovableOwner, MAX_MOVABLE_KINDS};

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

/// Most blocks of one [`Migrator::migrate_pages`] call that compaction collects
/// (Linux's `COMPACT_CLUSTER_MAX`): the vmalloc lock is held for one batch's copies.
pub const MIGRATE_BATCH: usize = crate::pgtable::MIGRATE_BATCH;

/// How a migration runs: whether it may wait for an owner's lock, and the CPU it runs on
/// (whose per-CPU lists the targets come from and the old blocks go to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrateCtx {
    /// Wait for owners' locks or not.
    pub mode: MigrateMode,
    /// The CPU running the migration.
    pub cpu: CpuId,
}

impl MigrateCtx {
    /// A migration that takes the owners' locks ([`MigrateMode::Sync`]) on `cpu`.
    pub const fn sync(cpu: CpuId) -> Self {
        Self { mode: MigrateMode::Sync, cpu }
    }
    /// A migration that fails a busy owner's block ([`MigrateMode::Async`]) on `cpu`.
    pub const fn async_on(cpu: CpuId) -> Self {
        Self { mode: MigrateMode::Async, cpu }
    }
}

/// One block of a batch handed to [`MovableOps::migrate_pages`].
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

/// A placeholder of the batch arrays.
const NO_MOVE: BlockMove =
    BlockMove { owner: MovableOwner::new(MovableKind(0), 0), old: Pfn(0), new: Pfn(0), order: 0 };

/// Blocks the migrate scanner collected for one [`Migrator::migrate_pages`] call.
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

/// The operations of one kind of movable block's owner (Linux's `movable_operations`),
/// registered with [`MovableRegistry::register`].
pub trait MovableOps: Sync + core::fmt::Debug {
    /// Copies the `2^order` pages at `m.old` to `m.new` and repoints `m.owner`'s
    /// reference from `old` to `new`, under the owner's lock (a try-lock in
    /// [`MigrateMode::Async`]: busy is [`MigrateError::Busy`]), checking first that the
    /// owner still holds exactly that block. On `Err` nothing changed (the copy may have
    /// been made, but the owner still uses `old`).
    fn migrate_page(&self, m: &BlockMove, mode: MigrateMode) -> Result<(), MigrateError>;

    /// [`Self::migrate_page`] for each of `moves` (`result[k]` for `moves[k]`, each with
    /// the same meaning), as one batch: an owner may take its lock once for all of them
    /// (vmalloc: one TLB invalidation for a run of pages). The default moves them one by
    /// one.
    fn migrate_pages(&self, moves: &[BlockMove], mode: MigrateMode, result: &mut [Result<(), MigrateError>]) {
        for (m, r) in moves.iter().zip(result.iter_mut()) {
            *r = self.migrate_page(m, mode);
        }
    }
}

/// Why [`MovableRegistry::register`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The kind is not below [`MAX_MOVABLE_KINDS`].
    BadKind,
    /// Other operations are registered for the kind.
    Taken,
}

impl core::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RegisterError::BadKind => "movable kind out of range",
            RegisterError::Taken => "movable kind registered by another owner",
        })
    }
}

/// The registered [`MovableOps`], by kind (the page allocator's `movable_ops`), and the
/// one copy-owner hook.
#[derive(Debug)]
pub struct MovableRegistry {
    ops: [spin::Once<&'static dyn MovableOps>; MAX_MOVABLE_KINDS],
    copy_owner: spin::Once<CopyOwnerHook>,
}

/// Called with `(old, new, order)` for every block migrated: page_owner's
/// `folio_copy_owner` (the new block gets the old one's allocation record).
pub type CopyOwnerHook = fn(Pfn, Pfn, u32);

impl MovableRegistry {
    pub(super) const fn new() -> Self {
        Self { ops: [const { spin::Once::new() }; MAX_MOVABLE_KINDS], copy_owner: spin::Once::new() }
    }

    /// Registers `ops` as the operations of movable blocks of `kind` (at boot; again with
    /// the same `ops` is no change). A block of a kind with none registered does not
    /// move ([`MigrateError::Gone`]); direct compaction runs once any kind is registered.
    pub fn register(&self, kind: MovableKind, ops: &'static dyn MovableOps) -> Result<(), RegisterError> {
        let slot = self.ops.get(kind.0 as usize).ok_or(RegisterError::BadKind)?;
        let have = *slot.call_once(|| ops);
        if core::ptr::addr_eq(have, ops) {
            Ok(())
        } else {
            Err(RegisterError::Taken)
        }
    }

    /// Registers `hook`, called for every migrated block after its owner moved to the
    /// new block and before the old one is freed (at boot, once: false if another hook
    /// is registered, which stays).
    pub fn register_copy_owner(&self, hook: CopyOwnerHook) -> bool {
        let have = *self.copy_owner.call_once(|| hook);
        core::ptr::fn_addr_eq(have, hook)
    }

    fn get(&self, kind: MovableKind) -> Option<&'static dyn MovableOps> {
        self.ops.get(kind.0 as usize)?.get().copied()
    }

    /// Whether operations of any kind are registered (else there is nothing to migrate).
    pub(super) fn any(&self) -> bool {
        self.ops.iter().any(|o| o.is_completed())
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
    /// The counters, read (for [`PageAllocator::snapshot`]).
    pub(super) fn read(&self) -> MigrateEvents {
        MigrateEvents {
            pgmigrate_success: self.pgmigrate_success.load(Relaxed),
            pgmigrate_fail: self.pgmigrate_fail.load(Relaxed),
            compact_migrate_scanned: self.compact_migrate_scanned.load(Relaxed),
            compact_free_scanned: self.compact_free_scanned.load(Relaxed),
            compact_isolated: self.compact_isolated.load(Relaxed),
            compact_stall: self.compact_stall.load(Relaxed),
            compact_fail: self.compact_fail.load(Relaxed),
            compact_success: self.compact_success.load(Relaxed),
        }
    }

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

/// The counters of [`MigrateStats`], read ([`PageAllocator::snapshot`]; `/proc/vmstat`
/// prints them).
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

/// The migration driver (Linux's `migrate_pages` and its helpers): borrows the page
/// allocator for the targets and the old blocks, and runs with one [`MigrateCtx`].
#[derive(Debug)]
pub struct Migrator<'a> {
    pub(super) pages: &'a PageAllocator,
    pub(super) ctx: MigrateCtx,
}

impl<'a> Migrator<'a> {
    /// A driver over `pages` running as `ctx` says.
    pub const fn new(pages: &'a PageAllocator, ctx: MigrateCtx) -> Self {
        Self { pages, ctx }
    }

    /// Migrates the live movable block headed at `pfn` (Linux's `migrate_pages` for one
    /// folio): `target(order)` supplies the new block (a live allocation of that order),
    /// the owner copies and repoints, the old block is freed. Returns the new block.
    ///
    /// On any error nothing changed: the target (if any) was freed again, the old block
    /// is still the owner's, with its contents.
    pub fn migrate_page(&self, pfn: Pfn, target: &mut dyn FnMut(u32) -> Option<Pfn>) -> Result<Pfn, MigrateError> {
        let mut r = [Err(MigrateError::NotMovable)];
        self.migrate_pages(&[pfn], target, &mut r);
        r[0]
    }

    /// [`Self::migrate_page`] for a batch of block heads (Linux's `migrate_pages` on a
    /// list): a target for each from `target` (in order; once it gives none, the rest are
    /// not asked for and fail with [`MigrateError::NoTarget`], not counted in
    /// `pgmigrate_fail` as they were not tried), then each kind's operations move its
    /// blocks of the batch ([`MovableOps::migrate_pages`]), then each old block (or, where the
    /// move failed, its target) is freed. `result[k]` is `pfns[k]`'s outcome; a failed
    /// block is left exactly as it was, with its contents, whatever happened to the others.
    ///
    /// # Panics
    ///
    /// If `result` is shorter than `pfns`.
    pub fn migrate_pages(
        &self,
        pfns: &[Pfn],
        target: &mut dyn FnMut(u32) -> Option<Pfn>,
        result: &mut [Result<Pfn, MigrateError>],
    ) {
        let ctx = self.ctx;
        let cpu = ctx.cpu;
        assert!(result.len() >= pfns.len(), "one result per block");
        let mut out_of_targets = false;
        for (round, chunk) in pfns.chunks(MIGRATE_BATCH).enumerate() {
            let base = round * MIGRATE_BATCH;
            let mut moves = [NO_MOVE; MIGRATE_BATCH];
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
                self.move_by_kind(&moves[..n], ctx.mode, &mut moved[..n]);
            }
            for j in 0..n {
                let m = &moves[j];
                if let Err(e) = moved[j] {
                    self.clear_owner(m.new);
                    let _ = self.pages.free_pages(m.new, m.order, cpu);
                    result[from[j]] = Err(e);
                } else {
                    // The owner uses `new` now: the old block is ours to free.
                    if let Some(copy_owner) = self.pages.movable_ops.copy_owner.get() {
                        copy_owner(m.old, m.new, m.order);
                    }
                    self.clear_owner(m.old);
                    let _ = self.pages.free_pages(m.old, m.order, cpu);
                }
            }
            for (k, r) in result[base..base + chunk.len()].iter().enumerate() {
                if untried[k] && *r == Err(MigrateError::NoTarget) {
                    continue;
                }
                let c =
                    if r.is_ok() { &self.pages.migrate.pgmigrate_success } else { &self.pages.migrate.pgmigrate_fail };
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Hands each kind's blocks of `moves` (at most [`MIGRATE_BATCH`]) to its registered
    /// operations as one batch, the kinds in number order; a kind with none registered
    /// fails its blocks with [`MigrateError::Gone`].
    fn move_by_kind(&self, moves: &[BlockMove], mode: MigrateMode, result: &mut [Result<(), MigrateError>]) {
        let mut seen = [false; MAX_MOVABLE_KINDS];
        for m in moves {
            seen[m.owner.kind.0 as usize % MAX_MOVABLE_KINDS] = true;
        }
        for (kind, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
            let kind = MovableKind(kind as u8);
            let mut sub = [NO_MOVE; MIGRATE_BATCH];
            let mut from = [0usize; MIGRATE_BATCH];
            let mut n = 0;
            for (j, m) in moves.iter().enumerate().filter(|(_, m)| m.owner.kind == kind) {
                sub[n] = *m;
                from[n] = j;
                n += 1;
            }
            let mut done = [Err(MigrateError::Gone); MIGRATE_BATCH];
            if let Some(ops) = self.pages.movable_ops.get(kind) {
                ops.migrate_pages(&sub[..n], mode, &mut done[..n]);
            }
            for j in 0..n {
                result[from[j]] = done[j];
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
        let mm = &self.pages.mem_map.get().ok_or(MigrateError::NotMovable)?;
        let (owner, order) = movable_owner(mm, pfn).ok_or(MigrateError::NotMovable)?;
        debug_assert!(order <= MAX_PAGE_ORDER);
        if *out_of_targets {
            return Err(MigrateError::NoTarget);
        }
        let Some(new) = target(order) else {
            *out_of_targets = true;
            return Err(MigrateError::NoTarget);
        };
        if !set_movable_owner(mm, new, owner) {
            let _ = self.pages.free_pages(new, order, cpu);
            return Err(MigrateError::NoTarget);
        }
        Ok(BlockMove { owner, old: pfn, new, order })
    }

    fn clear_owner(&self, pfn: Pfn) {
        if let Some(p) = self.pages.pfn_to_page(pfn) {
            p.set_owner(0);
        }
    }
}
