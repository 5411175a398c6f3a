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

// Flag word layout: the encoding of [`PageState`], private to this module.
const ORDER_MASK: u32 = 0x1f;
const MT_SHIFT: u32 = 5;
const MT_MASK: u32 = 0x7 << MT_SHIFT;
/// Head of a free block on a buddy free list (`PageBuddy`).
const PG_BUDDY: u32 = 1 << 8;
/// Free, on a per-CPU list.
const PG_PCP: u32 = 1 << 9;
/// First page of a live allocation (order in the low bits).
const PG_HEAD: u32 = 1 << 10;
/// The allocation is compound (`__GFP_COMP`).
const PG_COMP: u32 = 1 << 11;
/// Tail page of a compound allocation.
const PG_TAIL: u32 = 1 << 12;
/// Never handed to the allocator (hole, kernel image, firmware, mem_map itself...).
const PG_RESERVED: u32 = 1 << 13;
/// On a head: an owner word was stored in one of its tail pages, so the free must clear
/// the tails' owner words (without it every tail already has owner 0 and flags 0).
const PG_TAIL_OWNER: u32 = 1 << 14;

// The order field holds every order the allocator uses.
const _: () = assert!(super::MAX_PAGE_ORDER <= ORDER_MASK);
// The migratetype field holds every type.
const _: () = assert!(super::MIGRATE_TYPES as u32 <= (MT_MASK >> MT_SHIFT) + 1);
// The state bits, order and migratetype fields do not overlap.
const _: () = assert!(
    (ORDER_MASK & MT_MASK) == 0
        && ((ORDER_MASK | MT_MASK) & (PG_BUDDY | PG_PCP | PG_HEAD | PG_COMP | PG_TAIL | PG_RESERVED | PG_TAIL_OWNER))
            == 0
);

/// What a page frame is, as far as the page allocator knows (Linux's page types and
/// `PageBuddy`/`PageHead`/`PageTail`/`PageReserved`, as one value instead of bit tests).
///
/// Stored in the descriptor's flag word by [`Page::state`] / `Page::set_state` /
/// `Page::transition`; the bit layout is private to this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// No state of its own: a page inside a block (free or allocated, not its head and not
    /// a compound tail), or a block head taken off a list and not yet handed out.
    Unmarked,
    /// Never handed to the allocator (hole, kernel image, firmware, `mem_map` itself...).
    Reserved,
    /// Head of a free block of `2^order` pages on the buddy free list of `mt` (`PageBuddy`).
    Buddy {
        /// Block order.
        order: u32,
        /// Free list it is on.
        mt: MigrateType,
    },
    /// Head of a free block on a per-CPU list.
    Pcp {
        /// Block order.
        order: u32,
        /// Migratetype of its pageblock when it was listed.
        mt: MigrateType,
    },
    /// Head of a live allocation of `2^order` pages.
    Head {
        /// Allocation order.
        order: u32,
        /// Compound (`__GFP_COMP`): its other pages are [`PageState::Tail`].
        compound: bool,
        /// An owner word was stored on one of its other pages, so the free clears them.
        tail_owner: bool,
    },
    /// Tail page of a compound allocation.
    Tail,
}

impl PageState {
    /// The flag word of the state.
    #[inline(always)]
    const fn encode(self) -> u32 {
        match self {
            PageState::Unmarked => 0,
            PageState::Reserved => PG_RESERVED,
            PageState::Buddy { order, mt } => PG_BUDDY | (order & ORDER_MASK) | ((mt as u32) << MT_SHIFT),
            PageState::Pcp { order, mt } => PG_PCP | (order & ORDER_MASK) | ((mt as u32) << MT_SHIFT),
            PageState::Head { order, compound, tail_owner } => {
                PG_HEAD
                    | (order & ORDER_MASK)
                    | if compound { PG_COMP } else { 0 }
                    | if tail_owner { PG_TAIL_OWNER } else { 0 }
            }
            PageState::Tail => PG_TAIL,
        }
    }
    /// The state of a flag word (every word [`Self::encode`] writes decodes to its state).
    #[inline]
    const fn decode(f: u32) -> PageState {
        let order = f & ORDER_MASK;
        let mt = MigrateType::from_index(((f & MT_MASK) >> MT_SHIFT) as usize);
        if f & PG_HEAD != 0 {
            PageState::Head { order, compound: f & PG_COMP != 0, tail_owner: f & PG_TAIL_OWNER != 0 }
        } else if f & PG_PCP != 0 {
            PageState::Pcp { order, mt }
        } else if f & PG_BUDDY != 0 {
            PageState::Buddy { order, mt }
        } else if f & PG_RESERVED != 0 {
            PageState::Reserved
        } else if f & PG_TAIL != 0 {
            PageState::Tail
        } else {
            PageState::Unmarked
        }
    }
    /// Whether the page heads a block (free or allocated); its order.
    pub const fn block_order(self) -> Option<u32> {
        match self {
            PageState::Buddy { order, .. } | PageState::Pcp { order, .. } | PageState::Head { order, .. } => {
                Some(order)
            }
            _ => None,
        }
    }
    /// Whether the page may carry an owner word: allocated (not free, not reserved).
    pub const fn may_own(self) -> bool {
        !matches!(self, PageState::Buddy { .. } | PageState::Pcp { .. } | PageState::Reserved)
    }
}

/// The flag word of a live allocation's head, as [`Page::live_head`] loaded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LiveHead(u32);

impl LiveHead {
    /// Compound (`__GFP_COMP`): the other pages are [`PageState::Tail`].
    #[inline]
    pub(crate) const fn compound(self) -> bool {
        self.0 & PG_COMP != 0
    }
    /// Whether the free must walk the other pages (compound tails or tail owner words).
    #[inline]
    pub(crate) const fn touched_tails(self) -> bool {
        self.0 & (PG_COMP | PG_TAIL_OWNER) != 0
    }
    /// The state it encodes.
    #[cfg(test)]
    pub(crate) const fn state(self) -> PageState {
        PageState::decode(self.0)
    }
}

// Info word: pageblock migratetype (meaningful on a pageblock's first page) at the flag
// word's migratetype position, the per-CPU list of that type (`MigrateType::pcp_list`),
// and the zone: a free onto a per-CPU list reads all three from one load, arithmetic only.
const INFO_LIST_MASK: u32 = 0x3;
const INFO_ZONE_SHIFT: u32 = 4;
const INFO_MT_SHIFT: u32 = MT_SHIFT;
const INFO_MT_MASK: u32 = MT_MASK;
const _: () = assert!(super::migratetype::MIGRATE_PCPTYPES as u32 <= INFO_LIST_MASK + 1);
const _: () = assert!(INFO_LIST_MASK < 1 << INFO_ZONE_SHIFT && INFO_ZONE_SHIFT < INFO_MT_SHIFT);
const _: () = assert!(super::MAX_NR_ZONES <= 2);

/// The info word of a page of `zone` in a pageblock of type `mt`.
const fn info_word(zone: ZoneType, mt: MigrateType) -> u32 {
    ((zone as u32) << INFO_ZONE_SHIFT) | ((mt as u32) << INFO_MT_SHIFT) | mt.pcp_list() as u32
}

/// Where a free block goes on the per-CPU lists, from one load of its head's info word
/// ([`Page::pcp_slot`]): the zone, the list, and the migratetype its `Pcp` state records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PcpSlot(u32);

impl PcpSlot {
    /// The zone's index.
    #[inline(always)]
    pub(crate) const fn zone_index(self) -> usize {
        ((self.0 >> INFO_ZONE_SHIFT) & 1) as usize
    }
    /// The per-CPU list ([`MigrateType::pcp_list`] of the pageblock's type).
    #[inline(always)]
    pub(crate) const fn list(self) -> usize {
        (self.0 & INFO_LIST_MASK) as usize
    }
    /// The pageblock's migratetype.
    #[cfg(test)]
    pub(crate) const fn mt(self) -> MigrateType {
        MigrateType::from_index(((self.0 & INFO_MT_MASK) >> INFO_MT_SHIFT) as usize)
    }
}

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
    /// The page's state.
    #[inline]
    pub fn state(&self) -> PageState {
        PageState::decode(self.flags.load(Relaxed))
    }
    /// Sets the page's state (the caller owns the page: under the zone or pcp lock, or
    /// holding the allocation).
    #[inline]
    pub(crate) fn set_state(&self, s: PageState) {
        self.flags.store(s.encode(), Relaxed)
    }
    /// Atomically moves the page from `from` to `to`; false (nothing changed) if it was
    /// not in `from`.
    #[cfg(test)]
    pub(crate) fn transition(&self, from: PageState, to: PageState) -> bool {
        self.flags.compare_exchange(from.encode(), to.encode(), Relaxed, Relaxed).is_ok()
    }
    /// Whether the page is the head of a live allocation of exactly `order`: the valid
    /// free, tested in one compare on the flag word loaded once. Returns that word (as a
    /// [`LiveHead`]) to pass to [`Self::transition_from`], so the free path neither
    /// reloads nor decodes it.
    #[inline]
    pub(crate) fn live_head(&self, order: u32) -> Result<LiveHead, PageState> {
        let f = self.flags.load(Relaxed);
        if f & (PG_BUDDY | PG_PCP | PG_RESERVED | PG_TAIL | PG_HEAD | ORDER_MASK) == PG_HEAD | (order & ORDER_MASK) {
            Ok(LiveHead(f))
        } else {
            Err(PageState::decode(f))
        }
    }
    /// Atomically moves a live head, whose flag word [`Self::live_head`] returned, to
    /// `to`; false (nothing changed) if the word changed since.
    #[inline]
    pub(crate) fn transition_from(&self, from: LiveHead, to: PageState) -> bool {
        self.flags.compare_exchange(from.0, to.encode(), Relaxed, Relaxed).is_ok()
    }
    /// Marks a live head: an owner word was stored in one of its tail pages.
    pub(crate) fn mark_tail_owner(&self) {
        if self.flags.load(Relaxed) & PG_TAIL_OWNER == 0 {
            self.flags.fetch_or(PG_TAIL_OWNER, Relaxed);
        }
    }
    #[inline(always)]
    pub(crate) fn next(&self) -> u32 {
        self.next.load(Relaxed)
    }
    #[inline(always)]
    pub(crate) fn prev(&self) -> u32 {
        self.prev.load(Relaxed)
    }
    #[inline(always)]
    pub(crate) fn set_next(&self, v: u32) {
        self.next.store(v, Relaxed)
    }
    #[inline(always)]
    pub(crate) fn set_prev(&self, v: u32) {
        self.prev.store(v, Relaxed)
    }
    /// The owner word (meaningful while allocated).
    #[inline(always)]
    pub fn owner(&self) -> u64 {
        (self.next() as u64) | ((self.prev() as u64) << 32)
    }
    /// The owner word's high 32 bits, in one load (`kfree`'s fast path).
    #[inline(always)]
    pub(crate) fn owner_high(&self) -> u32 {
        self.prev()
    }
    /// Stores the owner word (meaningful while allocated).
    #[inline(always)]
    pub fn set_owner(&self, w: u64) {
        self.set_next(w as u32);
        self.set_prev((w >> 32) as u32);
    }
    #[inline(always)]
    pub(crate) fn zone(&self) -> ZoneType {
        ZoneType::ALL[((self.info.load(Relaxed) >> INFO_ZONE_SHIFT) & 1) as usize]
    }
    pub(crate) fn init_info(&self, zone: ZoneType, mt: MigrateType) {
        self.info.store(info_word(zone, mt), Relaxed)
    }
    /// Zone and pageblock migratetype from one load of the info word.
    #[inline(always)]
    pub(crate) fn zone_mt(&self) -> (ZoneType, MigrateType) {
        let i = self.info.load(Relaxed);
        (
            ZoneType::ALL[((i >> INFO_ZONE_SHIFT) & 1) as usize],
            MigrateType::from_index(((i & INFO_MT_MASK) >> INFO_MT_SHIFT) as usize),
        )
    }
    /// Where a free of the block this page heads goes on the per-CPU lists (one load).
    #[inline(always)]
    pub(crate) fn pcp_slot(&self) -> PcpSlot {
        PcpSlot(self.info.load(Relaxed))
    }
    /// `set_state(PageState::Pcp { order, mt })` with `mt` the type of `slot` (this page's
    /// [`Self::pcp_slot`]), without decoding it.
    #[inline(always)]
    pub(crate) fn set_pcp(&self, order: u32, slot: PcpSlot) {
        self.flags.store(PG_PCP | (order & ORDER_MASK) | (slot.0 & INFO_MT_MASK), Relaxed)
    }
    /// Whether the page heads a live allocation of exactly `order` whose other pages were
    /// never touched (not compound, no tail owner word): the flag word is exactly that
    /// head's (the free fast path's whole check, one compare).
    #[inline(always)]
    pub(crate) fn is_plain_head(&self, order: u32) -> bool {
        self.flags.load(Relaxed) == PageState::Head { order, compound: false, tail_owner: false }.encode()
    }
    #[inline(always)]
    pub(crate) fn block_mt(&self) -> MigrateType {
        MigrateType::from_index(((self.info.load(Relaxed) & INFO_MT_MASK) >> INFO_MT_SHIFT) as usize)
    }
    pub(crate) fn set_block_mt(&self, mt: MigrateType) {
        let i = self.info.load(Relaxed);
        let zone = ZoneType::ALL[((i >> INFO_ZONE_SHIFT) & 1) as usize];
        self.info.store(info_word(zone, mt), Relaxed)
    }
    /// The zone the page belongs to (Linux's `page_zonenum`).
    pub fn page_zone(&self) -> ZoneType {
        self.zone()
    }
    /// The migratetype of the page's pageblock (Linux's `get_pageblock_migratetype`).
    pub fn pageblock_migratetype(&self) -> MigrateType {
        self.block_mt()
    }
    /// Whether the page is the head of a live allocation.
    pub fn is_head(&self) -> bool {
        matches!(self.state(), PageState::Head { .. })
    }
    /// Whether the page is a compound tail.
    pub fn is_tail(&self) -> bool {
        matches!(self.state(), PageState::Tail)
    }
}

/// The descriptor array, with the pfn of its first entry.
///
/// `base_pfn` first, then the array's address and length: both fast paths then load
/// their first two words with one paired load from the same address, so the compiler
/// keeps one register for the map's address across an alloc+free instead of building
/// a second address for the free's pair (`base_pfn` and the length).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct MemMap {
    /// Frame number of `pages[0]`.
    pub base_pfn: u64,
    /// One descriptor per frame from `base_pfn` on.
    pub pages: &'static [Page],
}

impl MemMap {
    /// Linux's `pfn_to_page`; `None` outside the array.
    #[inline(always)]
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
    #[inline(always)]
    pub(crate) fn idx(&self, pfn: u64) -> u32 {
        (pfn - self.base_pfn) as u32
    }
    #[inline(always)]
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
        let s = PageState::Buddy { order: 7, mt: MigrateType::Reclaimable };
        p.set_state(s);
        assert_eq!(p.state(), s);
        p.init_info(ZoneType::Normal, MigrateType::Movable);
        assert_eq!(p.zone(), ZoneType::Normal);
        assert_eq!(p.block_mt(), MigrateType::Movable);
        p.set_block_mt(MigrateType::HighAtomic);
        assert_eq!(p.zone(), ZoneType::Normal);
        assert_eq!(p.block_mt(), MigrateType::HighAtomic);
    }

    #[test]
    fn every_state_round_trips() {
        let p = Page::new();
        assert_eq!(p.state(), PageState::Reserved);
        let mut all = vec![PageState::Unmarked, PageState::Reserved, PageState::Tail];
        for order in 0..=crate::page_alloc::MAX_PAGE_ORDER {
            for mt in MigrateType::ALL {
                all.push(PageState::Buddy { order, mt });
                all.push(PageState::Pcp { order, mt });
            }
            for (compound, tail_owner) in [(false, false), (false, true), (true, false), (true, true)] {
                all.push(PageState::Head { order, compound, tail_owner });
            }
        }
        for &s in &all {
            p.set_state(s);
            assert_eq!(p.state(), s);
            for &t in &all {
                assert_eq!(p.transition(t, PageState::Unmarked), t == s, "{t:?} from {s:?}");
                p.set_state(s);
            }
        }
        let h = PageState::Head { order: 3, compound: false, tail_owner: false };
        p.set_state(h);
        assert_eq!(p.live_head(3).map(LiveHead::state), Ok(h));
        assert_eq!(p.live_head(2), Err(h));
        p.mark_tail_owner();
        let h = PageState::Head { order: 3, compound: false, tail_owner: true };
        assert_eq!(p.state(), h);
        let lh = p.live_head(3).unwrap();
        assert_eq!(lh.state(), h);
        assert!(lh.touched_tails() && !lh.compound());
        assert!(p.transition_from(lh, PageState::Unmarked));
        assert!(!p.transition_from(lh, PageState::Unmarked), "the word changed");
        p.set_state(h);
        p.set_state(PageState::Pcp { order: 3, mt: MigrateType::Movable });
        assert!(p.live_head(3).is_err());
    }

    /// The per-CPU slot and the raw `Pcp` store agree with the decoded state and with
    /// `MigrateType::pcp_list`, for every zone, type and per-CPU order; the plain-head
    /// test accepts exactly an untouched head of the order.
    #[test]
    fn pcp_slot_and_plain_head() {
        let p = Page::new();
        for zone in ZoneType::ALL {
            for mt in MigrateType::ALL {
                p.init_info(zone, mt);
                let slot = p.pcp_slot();
                assert_eq!((slot.zone_index(), slot.list(), slot.mt()), (zone.index(), mt.pcp_list(), mt));
                assert_eq!(p.zone_mt(), (zone, mt));
                for order in 0..=crate::page_alloc::PCP_MAX_ORDER {
                    p.set_pcp(order, slot);
                    assert_eq!(p.state(), PageState::Pcp { order, mt });
                }
                for other in MigrateType::ALL {
                    p.set_block_mt(other);
                    assert_eq!(p.zone_mt(), (zone, other));
                    assert_eq!(p.pcp_slot().list(), other.pcp_list());
                }
            }
        }
        for order in 0..=3 {
            for compound in [false, true] {
                for tail_owner in [false, true] {
                    p.set_state(PageState::Head { order, compound, tail_owner });
                    for o in 0..=3 {
                        assert_eq!(p.is_plain_head(o), o == order && !compound && !tail_owner);
                    }
                }
            }
            for s in [
                PageState::Unmarked,
                PageState::Reserved,
                PageState::Tail,
                PageState::Pcp { order, mt: MigrateType::Unmovable },
                PageState::Buddy { order, mt: MigrateType::Unmovable },
            ] {
                p.set_state(s);
                assert!(!p.is_plain_head(order), "{s:?}");
                assert!(!p.is_head(), "{s:?}");
            }
        }
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
        // The descriptor just past the array.
        let more: &'static [Page] = Box::leak((0..2).map(|_| Page::new()).collect());
        let one = MemMap { pages: &more[..1], base_pfn: 0x100 };
        assert_eq!(one.page_to_pfn(&more[0]), Some(0x100));
        assert_eq!(one.page_to_pfn(&more[1]), None);
    }
}
