//! The free path: Linux's `__free_pages`. Every free is checked first (a double free, a
//! wrong order, a tail page, a reserved or unknown frame is refused and changes nothing);
//! the fast path puts a plain block on this CPU's list (see [`super::pcp`]) with no lock
//! and no atomic read-modify-write, and a list at `high` goes back to the zone in one
//! zone-lock round (`free_pcppages_bulk`).

use core::sync::atomic::Ordering::Relaxed;

use super::page::{LiveHead, MemMap, PageState, PcpSlot};
use super::{FreeError, PageAllocator, PerCpuPages, MAX_PAGE_ORDER, PCP_MAX_ORDER};
use crate::addr::Pfn;
use crate::cpu::CpuId;

type Refused = Result<(), FreeError>;

/// free_pages_prepare for the pages after the head: owner words and compound tails.
///
/// Only a block whose tails were touched needs the walk: compound tails are
/// [`PageState::Tail`] (head `compound`), and [`crate::owner::set_page_owner`] on a tail
/// marks the head `tail_owner`. Every other tail already has flags 0 and owner 0, since the buddy and
/// per-CPU lists use only a block's head for links and clear them when they take it off
/// (`FreeArea::del`, `PerCpuPages::pop`), and `init` starts every page at owner 0.
#[inline]
fn clear_block(mm: &MemMap, idx: u32, order: u32, head: LiveHead) {
    if !head.touched_tails() {
        return;
    }
    let compound = head.compound();
    let i = idx as usize;
    for p in &mm.pages[i + 1..i + (1usize << order)] {
        p.set_owner(0);
        if compound {
            p.set_state(PageState::Unmarked);
        }
    }
}

/// Why a page in state `s` cannot be freed as a block of `order` (`Ok` if it can).
pub(super) fn classify(pfn: u64, order: u32, s: PageState) -> Refused {
    match s {
        PageState::Head { order: o, .. } if o == order => Ok(()),
        PageState::Head { order: allocated, .. } => Err(FreeError::WrongOrder { pfn, order, allocated }),
        PageState::Buddy { .. } | PageState::Pcp { .. } => Err(FreeError::DoubleFree { pfn, order }),
        PageState::Reserved => Err(FreeError::Reserved { pfn }),
        PageState::Tail => Err(FreeError::TailPage { pfn }),
        PageState::Unmarked => Err(FreeError::NotAllocated { pfn, order }),
    }
}

impl PageAllocator {
    /// Frees a block from [`Self::alloc_pages`] (Linux's `__free_pages`), checking first
    /// that it is one: a bad request is refused and changes nothing. `cpu` is the CPU the
    /// caller runs on; the block goes to its per-CPU list whichever CPU allocated it.
    #[inline(always)]
    pub fn free_pages(&self, pfn: Pfn, order: u32, cpu: CpuId) -> Result<(), FreeError> {
        if self.free_fast(pfn.0, order, cpu) {
            return Ok(());
        }
        self.free_pages_slow(pfn.0, order, cpu)
    }

    /// The fast path, Linux's `free_unref_page`: a live head of exactly `order` (one
    /// load of its flag word, the same test that refuses a double free on the slow path)
    /// whose tails were never touched, of a per-CPU order, goes onto this CPU's list with
    /// the lists held (the local lock); no lock, no atomic read-modify-write. Heads are
    /// naturally aligned, so the head test also proves `pfn` aligned. Anything else
    /// returns false, and the slow path checks it again and refuses or frees it.
    #[inline(always)]
    fn free_fast(&self, pfn: u64, order: u32, cpu: CpuId) -> bool {
        if order > PCP_MAX_ORDER {
            return false;
        }
        // A copy: its fields stay in registers across the stores below. Empty before
        // init, when the index's bounds test below fails.
        let mm = self.mem_map.load();
        // `pfn_to_page` in one compare: below `base_pfn` the difference wraps to an
        // index `get` refuses.
        let Ok(i) = usize::try_from(pfn.wrapping_sub(mm.base_pfn)) else { return false };
        let Some(page) = mm.pages.get(i) else { return false };
        if !page.is_plain_head(order) {
            return false;
        }
        let slot = page.pcp_slot();
        let Some(pcp) = self.try_local_pcp(cpu, slot.zone_index()) else { return false };
        page.set_pcp(order, slot);
        let count = pcp.push_page(page, mm.idx(pfn), order, slot.list());
        pcp.count_free(super::pcp::pcp_pages(order));
        if pcp.must_drain_at(count) {
            self.pcp_overflow_slot(slot, &pcp);
        }
        true
    }

    /// [`Self::pcp_overflow`] for [`Self::free_fast`], which has the zone as part of the
    /// page's info word only: decoding it here keeps the decode off the fast path, which
    /// needs only the zone's lists' address. The descriptor array is read again here, so
    /// that the fast path's copy stays in registers (a reference would put it in memory).
    #[cold]
    #[inline(never)]
    fn pcp_overflow_slot(&self, slot: PcpSlot, pcp: &PerCpuPages) {
        self.pcp_overflow(&self.mem_map.load(), slot.zone_index(), pcp)
    }

    /// Every free [`Self::free_fast`] does not take: refusals, compound blocks and
    /// blocks with tail owner words, orders above the per-CPU ones.
    #[cold]
    #[inline(never)]
    pub(super) fn free_pages_slow(&self, pfn: u64, order: u32, cpu: CpuId) -> Result<(), FreeError> {
        let mm = &self.mem_map.get().ok_or(FreeError::NotInitialized)?;
        if order > MAX_PAGE_ORDER {
            return Err(FreeError::OrderTooLarge { pfn, order });
        }
        let page = mm.pfn_to_page(pfn).ok_or(FreeError::OutsideMemMap { pfn })?;
        if pfn & ((1 << order) - 1) != 0 {
            return Err(FreeError::Unaligned { pfn, order });
        }
        let f = match page.live_head(order) {
            Ok(f) => f,
            Err(s) => return classify(pfn, order, s),
        };
        let idx = mm.idx(pfn);
        let (zone, mt) = page.zone_mt();
        let zi = zone.index();
        let pcp = if order <= PCP_MAX_ORDER { self.try_local_pcp(cpu, zi) } else { None };
        if let Some(pcp) = pcp {
            if !page.transition_from(f, PageState::Pcp { order, mt }) {
                return classify(pfn, order, page.state()).and(Err(FreeError::DoubleFree { pfn, order }));
            }
            if order > 0 {
                clear_block(mm, idx, order, f);
            }
            pcp.push(mm, idx, order, mt.pcp_list());
            pcp.count_free(1 << order);
            if pcp.must_drain() {
                self.pcp_overflow(mm, zi, &pcp);
            }
            return Ok(());
        }
        // Above the per-CPU orders, or from an interrupt that found the lists busy:
        // straight to the zone.
        if !page.transition_from(f, PageState::Unmarked) {
            return classify(pfn, order, page.state()).and(Err(FreeError::DoubleFree { pfn, order }));
        }
        match self.try_local_pcp(cpu, zi) {
            Some(p) => p.count_free(1 << order),
            None => {
                self.meta[zi].pgfree.fetch_add(1 << order, Relaxed);
            }
        }
        clear_block(mm, idx, order, f);
        mm.at(idx).set_owner(0);
        let mut z = self.lock_zone(zi);
        z.free_one(pfn, order, mt);
        Ok(())
    }

    /// Gives at least `count` pages (whole blocks) from a per-CPU list back to the zone,
    /// in one zone-lock round (Linux's `free_pcppages_bulk`).
    pub(super) fn free_pcppages_bulk(&self, mm: &MemMap, zi: usize, pcp: &PerCpuPages, count: u64) {
        let mut z = self.lock_zone(zi);
        let mut rr = 0;
        let mut freed = 0;
        while freed < count {
            let Some((idx, order)) = pcp.pop_any(mm, &mut rr) else {
                break;
            };
            let p = mm.at(idx);
            let PageState::Pcp { mt, .. } = p.state() else { unreachable!("page on a pcp list not in the pcp state") };
            p.set_state(PageState::Unmarked);
            z.free_one(mm.base_pfn + idx as u64, order, mt);
            freed += 1 << order;
        }
    }

    /// A free left this CPU's list at `high`, or a drain was asked for while it was busy
    /// ([`PerCpuPages::must_drain`]): everything (a drain request) or a batch (at `high`)
    /// goes back to the zone.
    #[cold]
    pub(super) fn pcp_overflow(&self, mm: &MemMap, zi: usize, pcp: &PerCpuPages) {
        if pcp.take_drain_request() {
            self.free_pcppages_bulk(mm, zi, pcp, pcp.count());
        } else if pcp.count() >= pcp.high() {
            self.free_pcppages_bulk(mm, zi, pcp, pcp.batch());
        }
    }
}
