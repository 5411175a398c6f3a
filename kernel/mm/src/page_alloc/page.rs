//! Page descriptors (`struct page`): 16 bytes per 4 KiB frame, in the `mem_map` array.
//!
//! A descriptor's words mean different things in different states (as in Linux):
//! - free on a buddy or per-CPU list: `next`/`prev` are list links, as `u32` indices into
//!   `mem_map` (so the descriptor stays 16 bytes), and `flags` holds order, migratetype and
//!   `PageBuddy` (or "on a pcp list");
//! - allocated: `next`/`prev` together are the 64-bit owner word of
//!   [`PageSource::set_page_owner`](crate::page_source::PageSource::set_page_owner), and
//!   `flags` marks the head of the allocation (with its order) and compound tails.
//!
//! Fields are atomics with `Relaxed` ordering: the zone and per-CPU locks order the
//! accesses; atomics only make the shared `&'static [Page]` `Sync` without `unsafe`.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::migratetype::{MigrateType, ZoneType};

/// Link value meaning "none".
pub(crate) const NIL: u32 = u32::MAX;

// Flag word layout.
const ORDER_MASK: u32 = 0x1f;
const MT_SHIFT: u32 = 5;
const MT_MASK: u32 = 0x3 << MT_SHIFT;
/// Head of a free block on a buddy free list (`PageBuddy`).
pub(crate) const PG_BUDDY: u32 = 1 << 8;
/// Free, on a per-CPU list.
pub(crate) const PG_PCP: u32 = 1 << 9;
/// First page of a live allocation (order in the low bits).
pub(crate) const PG_HEAD: u32 = 1 << 10;
/// The allocation is compound (`__GFP_COMP`).
pub(crate) const PG_COMP: u32 = 1 << 11;
/// Tail page of a compound allocation.
pub(crate) const PG_TAIL: u32 = 1 << 12;
/// Never handed to the allocator (hole, kernel image, firmware, mem_map itself...).
pub(crate) const PG_RESERVED: u32 = 1 << 13;
/// On a head: an owner word was stored in one of its tail pages, so the free must clear
/// the tails' owner words (without it every tail already has owner 0 and flags 0).
pub(crate) const PG_TAIL_OWNER: u32 = 1 << 14;

// Info word: pageblock migratetype (meaningful on a pageblock's first page) and zone.
const INFO_ZONE_SHIFT: u32 = 4;

/// One page frame's descriptor.
#[derive(Debug)]
pub struct Page {
    next: AtomicU32,
    prev: AtomicU32,
    flags: AtomicU32,
    info: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<Page>() <= 16);

impl Default for Page {
    fn default() -> Self {
        Self::new()
    }
}

impl Page {
    /// A blank descriptor (reserved until the allocator is initialised with it free).
    pub const fn new() -> Page {
        Page {
            next: AtomicU32::new(0),
            prev: AtomicU32::new(0),
            flags: AtomicU32::new(PG_RESERVED),
            info: AtomicU32::new(0),
        }
    }
    pub(crate) fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }
    pub(crate) fn set_flags(&self, f: u32) {
        self.flags.store(f, Relaxed)
    }
    /// Atomically moves from `old` flags to `new`; false if the page was not in `old`.
    pub(crate) fn cas_flags(&self, old: u32, new: u32) -> bool {
        self.flags.compare_exchange(old, new, Relaxed, Relaxed).is_ok()
    }
    /// Sets bits in the flag word (one atomic read-modify-write).
    pub(crate) fn or_flags(&self, bits: u32) {
        self.flags.fetch_or(bits, Relaxed);
    }
    pub(crate) fn next(&self) -> u32 {
        self.next.load(Relaxed)
    }
    pub(crate) fn prev(&self) -> u32 {
        self.prev.load(Relaxed)
    }
    pub(crate) fn set_next(&self, v: u32) {
        self.next.store(v, Relaxed)
    }
    pub(crate) fn set_prev(&self, v: u32) {
        self.prev.store(v, Relaxed)
    }
    /// The owner word (meaningful while allocated).
    pub fn owner(&self) -> u64 {
        (self.next() as u64) | ((self.prev() as u64) << 32)
    }
    /// Stores the owner word (meaningful while allocated).
    pub fn set_owner(&self, w: u64) {
        self.set_next(w as u32);
        self.set_prev((w >> 32) as u32);
    }
    pub(crate) fn zone(&self) -> ZoneType {
        ZoneType::ALL[((self.info.load(Relaxed) >> INFO_ZONE_SHIFT) & 1) as usize]
    }
    pub(crate) fn init_info(&self, zone: ZoneType, mt: MigrateType) {
        self.info.store(((zone as u32) << INFO_ZONE_SHIFT) | mt as u32, Relaxed)
    }
    pub(crate) fn block_mt(&self) -> MigrateType {
        MigrateType::from_index(self.info.load(Relaxed) as usize)
    }
    pub(crate) fn set_block_mt(&self, mt: MigrateType) {
        let i = self.info.load(Relaxed);
        self.info.store((i & !3) | mt as u32, Relaxed)
    }
    /// The zone the page belongs to (Linux's `page_zonenum`).
    pub fn page_zone(&self) -> ZoneType {
        self.zone()
    }
    /// The migratetype of the page's pageblock (Linux's `get_pageblock_migratetype`).
    pub fn pageblock_migratetype(&self) -> MigrateType {
        self.block_mt()
    }
    /// Whether the page is the head of a free buddy block.
    pub fn is_buddy(&self) -> bool {
        self.flags() & PG_BUDDY != 0
    }
    /// Whether the page is free on a per-CPU list.
    pub fn is_pcp(&self) -> bool {
        self.flags() & PG_PCP != 0
    }
    /// Whether the page is the head of a live allocation.
    pub fn is_head(&self) -> bool {
        self.flags() & PG_HEAD != 0
    }
    /// Whether the page is a compound tail.
    pub fn is_tail(&self) -> bool {
        self.flags() & PG_TAIL != 0
    }
    /// Whether the page is reserved (never managed by the allocator).
    pub fn is_reserved(&self) -> bool {
        self.flags() & PG_RESERVED != 0
    }
}

/// Flag word for a state with an order and migratetype.
pub(crate) const fn mk(state: u32, order: u32, mt: MigrateType) -> u32 {
    state | (order & ORDER_MASK) | ((mt as u32) << MT_SHIFT)
}
/// Order stored in a flag word.
pub(crate) const fn flag_order(f: u32) -> u32 {
    f & ORDER_MASK
}
/// Whether a flag word is that of the head of a live allocation of `order` (and nothing
/// that would refuse a free: free, reserved, tail).
pub(crate) const fn is_live_head(f: u32, order: u32) -> bool {
    f & (PG_BUDDY | PG_PCP | PG_RESERVED | PG_TAIL | PG_HEAD | ORDER_MASK) == PG_HEAD | (order & ORDER_MASK)
}
/// Migratetype stored in a flag word.
pub(crate) const fn flag_mt(f: u32) -> MigrateType {
    MigrateType::from_index(((f & MT_MASK) >> MT_SHIFT) as usize)
}

/// The descriptor array, with the pfn of its first entry.
#[derive(Clone, Copy, Debug)]
pub struct MemMap {
    /// One descriptor per frame from `base_pfn` on.
    pub pages: &'static [Page],
    /// Frame number of `pages[0]`.
    pub base_pfn: u64,
}

impl MemMap {
    /// Linux's `pfn_to_page`; `None` outside the array.
    pub fn pfn_to_page(&self, pfn: u64) -> Option<&'static Page> {
        let i = pfn.checked_sub(self.base_pfn)?;
        self.pages.get(usize::try_from(i).ok()?)
    }
    /// Linux's `page_to_pfn`; `None` if `page` is not an element of the array.
    pub fn page_to_pfn(&self, page: &Page) -> Option<u64> {
        let base = self.pages.as_ptr() as usize;
        let off = (page as *const Page as usize).checked_sub(base)?;
        let i = off / core::mem::size_of::<Page>();
        (i < self.pages.len() && off % core::mem::size_of::<Page>() == 0).then_some(self.base_pfn + i as u64)
    }
    /// Index of a pfn known to be inside.
    pub(crate) fn idx(&self, pfn: u64) -> u32 {
        (pfn - self.base_pfn) as u32
    }
    pub(crate) fn at(&self, idx: u32) -> &'static Page {
        &self.pages[idx as usize]
    }
    pub(crate) fn contains(&self, pfn: u64) -> bool {
        pfn >= self.base_pfn && pfn - self.base_pfn < self.pages.len() as u64
    }
}

/// Descriptor overhead for the boot log: (bytes per page, total bytes for `nr_pages`).
pub const fn mem_map_overhead(nr_pages: usize) -> (usize, usize) {
    let per = core::mem::size_of::<Page>();
    (per, per * nr_pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_owner_word() {
        assert_eq!(core::mem::size_of::<Page>(), 16);
        assert_eq!(mem_map_overhead(1024), (16, 16384));
        let p = Page::new();
        p.set_owner(0xdead_beef_1234_5678);
        assert_eq!(p.owner(), 0xdead_beef_1234_5678);
        let f = mk(PG_BUDDY, 7, MigrateType::Reclaimable);
        assert_eq!(flag_order(f), 7);
        assert_eq!(flag_mt(f), MigrateType::Reclaimable);
        p.init_info(ZoneType::Normal, MigrateType::Movable);
        assert_eq!(p.zone(), ZoneType::Normal);
        assert_eq!(p.block_mt(), MigrateType::Movable);
        p.set_block_mt(MigrateType::HighAtomic);
        assert_eq!(p.zone(), ZoneType::Normal);
        assert_eq!(p.block_mt(), MigrateType::HighAtomic);
    }

    #[test]
    fn pfn_page_round_trip() {
        let pages: &'static [Page] = Box::leak((0..8).map(|_| Page::new()).collect());
        let mm = MemMap { pages, base_pfn: 0x100 };
        let p = mm.pfn_to_page(0x103).unwrap();
        assert_eq!(mm.page_to_pfn(p), Some(0x103));
        assert!(mm.pfn_to_page(0xff).is_none());
        assert!(mm.pfn_to_page(0x108).is_none());
        assert_eq!(mm.page_to_pfn(&Page::new()), None);
    }
}
