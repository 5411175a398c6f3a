//! What a cache is created with: its flags (Linux's `SLAB_*`) and object constructor.

/// An object constructor, run once on each object when its slab is created (SLUB
/// semantics: objects must be freed back in their constructed state).
///
/// # Safety
/// Called with a pointer to `object_size` writable bytes owned by the cache.
pub type Ctor = unsafe fn(obj: *mut u8);

/// Cache creation flags (Linux's `SLAB_*` values).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SlabFlags(pub u32);

impl SlabFlags {
    /// No flags.
    pub const NONE: SlabFlags = SlabFlags(0);
    /// Check frees for validity (`SLAB_CONSISTENCY_CHECKS`).
    pub const CONSISTENCY_CHECKS: SlabFlags = SlabFlags(0x100);
    /// Red zones around objects (`SLAB_RED_ZONE`).
    pub const RED_ZONE: SlabFlags = SlabFlags(0x400);
    /// Poison free and fresh objects (`SLAB_POISON`).
    pub const POISON: SlabFlags = SlabFlags(0x800);
    /// Align objects to cache lines (`SLAB_HWCACHE_ALIGN`).
    pub const HWCACHE_ALIGN: SlabFlags = SlabFlags(0x2000);
    /// Everything the runtime debug switch turns on (`slub_debug=FZP`).
    pub const DEBUG: SlabFlags = SlabFlags(0x100 | 0x400 | 0x800);

    /// Whether any flag of `o` is set.
    pub const fn intersects(self, o: SlabFlags) -> bool {
        self.0 & o.0 != 0
    }
    /// The union.
    pub const fn union(self, o: SlabFlags) -> SlabFlags {
        SlabFlags(self.0 | o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_the_three_debug_flags_and_union_is_idempotent() {
        let three = SlabFlags::CONSISTENCY_CHECKS.union(SlabFlags::RED_ZONE).union(SlabFlags::POISON);
        assert_eq!(SlabFlags::DEBUG, three);
        assert_eq!(SlabFlags::DEBUG.union(SlabFlags::DEBUG), SlabFlags::DEBUG);
        assert_eq!(SlabFlags::POISON.union(SlabFlags::HWCACHE_ALIGN), SlabFlags(0x2800));
        assert!(SlabFlags::DEBUG.intersects(SlabFlags::RED_ZONE));
        assert!(!SlabFlags::DEBUG.intersects(SlabFlags::HWCACHE_ALIGN));
    }
}
