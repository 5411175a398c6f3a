//! Zone types and migrate types: which free lists a request is served from.
//!
//! Linux groups free pages by *migratetype* so that unmovable kernel allocations do not
//! scatter across memory that could otherwise be compacted; we keep the same types (CMA
//! included, no isolation type) and the same fallback order between them.

use crate::gfp::Gfp;

/// Number of migrate types.
pub const MIGRATE_TYPES: usize = 5;
/// Types that have per-CPU lists (Linux's `MIGRATE_PCPTYPES`).
pub const MIGRATE_PCPTYPES: usize = 3;

/// Linux's `enum migratetype` (same order and values).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MigrateType {
    /// Kernel allocations that cannot move.
    Unmovable = 0,
    /// Pages that could be migrated (user pages).
    Movable = 1,
    /// Pages the kernel could reclaim (caches).
    Reclaimable = 2,
    /// Pageblocks reserved for high-order atomic allocations.
    HighAtomic = 3,
    /// Pageblocks of the contiguous memory area (`cma=`): only movable allocations may
    /// borrow them, so that `cma_alloc` can migrate every borrowed page out.
    Cma = 4,
}

impl MigrateType {
    /// All types, in index order.
    pub const ALL: [MigrateType; MIGRATE_TYPES] =
        [Self::Unmovable, Self::Movable, Self::Reclaimable, Self::HighAtomic, Self::Cma];

    /// From an index (the low three bits are used; 5..=7 never occur and read as Cma).
    pub const fn from_index(i: usize) -> MigrateType {
        match i & 7 {
            0 => Self::Unmovable,
            1 => Self::Movable,
            2 => Self::Reclaimable,
            3 => Self::HighAtomic,
            _ => Self::Cma,
        }
    }
    /// Index into the free lists.
    pub const fn index(self) -> usize {
        self as usize
    }
    /// Which per-CPU list a free block of this pageblock type goes on: its own, except
    /// HighAtomic and Cma, which have none (Linux frees them to the Movable list's place;
    /// only movable requests are served from it, and a drain returns each block to its
    /// pageblock's list).
    #[inline(always)]
    pub const fn pcp_list(self) -> usize {
        match self {
            Self::HighAtomic | Self::Cma => Self::Movable as usize,
            t => t as usize,
        }
    }
    /// Linux's `migratetype_names[]`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unmovable => "Unmovable",
            Self::Movable => "Movable",
            Self::Reclaimable => "Reclaimable",
            Self::HighAtomic => "HighAtomic",
            Self::Cma => "CMA",
        }
    }
    /// The letter `show_free_areas` prints (`show_migration_types`).
    pub const fn letter(self) -> char {
        match self {
            Self::Unmovable => 'U',
            Self::Movable => 'M',
            Self::Reclaimable => 'E',
            Self::HighAtomic => 'H',
            Self::Cma => 'C',
        }
    }
    /// Linux's `fallbacks[]`: where a request of this type may steal from, in order. Cma
    /// is nobody's fallback (movable requests borrow it without stealing, see
    /// `Zone::rmqueue`), and nothing is stolen for it.
    pub const fn fallbacks(self) -> &'static [MigrateType] {
        match self {
            Self::Unmovable => &[Self::Reclaimable, Self::Movable],
            Self::Movable => &[Self::Reclaimable, Self::Unmovable],
            Self::Reclaimable => &[Self::Unmovable, Self::Movable],
            Self::HighAtomic | Self::Cma => &[],
        }
    }
}

/// Linux's `gfp_migratetype`: `__GFP_MOVABLE` -> Movable, `__GFP_RECLAIMABLE` ->
/// Reclaimable, anything else Unmovable.
pub const fn gfp_migratetype(gfp: Gfp) -> MigrateType {
    if gfp.contains(Gfp::GFP_MOVABLE) {
        MigrateType::Movable
    } else if gfp.contains(Gfp::GFP_RECLAIMABLE) {
        MigrateType::Reclaimable
    } else {
        MigrateType::Unmovable
    }
}

/// Number of zones.
pub const MAX_NR_ZONES: usize = 2;

/// Memory zones. The Pi 3 only needs `Normal` (every device can reach all ARM RAM), but the
/// allocator is written for a `Dma` zone below it, which may be empty.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ZoneType {
    /// Low memory reachable by limited DMA masters.
    Dma = 0,
    /// Everything else.
    Normal = 1,
}

impl ZoneType {
    /// All zones, lowest first.
    pub const ALL: [ZoneType; MAX_NR_ZONES] = [Self::Dma, Self::Normal];
    /// Index (Linux's `zone_idx`).
    pub const fn index(self) -> usize {
        self as usize
    }
    /// The name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dma => "DMA",
            Self::Normal => "Normal",
        }
    }
    /// Linux's `gfp_zone`: the highest zone a request may use.
    pub const fn from_gfp(gfp: Gfp) -> ZoneType {
        if gfp.contains(Gfp::GFP_DMA) {
            Self::Dma
        } else {
            Self::Normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::{GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL};

    #[test]
    fn from_gfp() {
        assert_eq!(gfp_migratetype(GFP_KERNEL), MigrateType::Unmovable);
        assert_eq!(gfp_migratetype(GFP_ATOMIC), MigrateType::Unmovable);
        assert_eq!(gfp_migratetype(GFP_HIGHUSER_MOVABLE), MigrateType::Movable);
        assert_eq!(gfp_migratetype(GFP_KERNEL | Gfp::GFP_RECLAIMABLE), MigrateType::Reclaimable);
        assert_eq!(ZoneType::from_gfp(GFP_KERNEL | Gfp::GFP_DMA), ZoneType::Dma);
        assert_eq!(ZoneType::from_gfp(GFP_KERNEL), ZoneType::Normal);
        let letters: String = MigrateType::ALL.iter().map(|m| m.letter()).collect();
        assert_eq!(letters, "UMEHC");
        for m in MigrateType::ALL {
            assert_eq!(MigrateType::from_index(m.index()), m);
        }
    }
}
