//! Batches of single pages in one round: Linux's `alloc_pages_bulk` (5.13+) and a
//! batched free, for callers that want many order-0 pages at once (vmalloc's order-0
//! remainder, through [`crate::page_source::PageSource::alloc_pages_bulk`]). The zone
//! lock is taken once for the whole batch, as the per-CPU refills (`rmqueue_bulk`) and
//! drains (`free_pcppages_bulk`) do.

use core::sync::atomic::Ordering::Relaxed;

use super::page::PageState;
use super::watermark::AllocFlags;
use super::{gfp_migratetype, AllocFailure, FreeError, PageAllocator, ZoneType, MAX_NR_ZONES};
use crate::addr::Pfn;
use crate::cpu::CpuId;
use crate::gfp::Gfp;

impl PageAllocator {
    /// Allocates up to `out.len()` single pages (order 0) in one round, as Linux's
    /// `alloc_pages_bulk`: what this CPU's list holds, then the rest from the zone under
    /// one zone lock, as far as the low watermark allows. Returns how many it stored at
    /// the front of `out`. When it can take none (low memory, fault injection armed, a
    /// `__GFP_DMA` or `__GFP_COMP` request, an interrupt that found this CPU's lists
    /// busy), it falls back to one [`Self::alloc_pages`], as Linux does, so that the
    /// caller sees the same failures and reserves.
    pub fn alloc_pages_bulk(&self, gfp: Gfp, cpu: CpuId, out: &mut [Pfn]) -> Result<usize, AllocFailure> {
        let mut n = 0;
        self.alloc_pages_bulk_with(gfp, cpu, out.len(), |pfn| {
            out[n] = pfn;
            n += 1;
        })
    }

    /// [`Self::alloc_pages_bulk`] handing each page to `put` (at most `nr` calls) instead
    /// of storing it, for callers that keep pages in another form.
    pub fn alloc_pages_bulk_with(
        &self,
        gfp: Gfp,
        cpu: CpuId,
        nr: usize,
        mut put: impl FnMut(Pfn),
    ) -> Result<usize, AllocFailure> {
        if nr == 0 {
            return Ok(0);
        }
        let n = self.alloc_bulk_fast(gfp, cpu, nr, &mut put);
        if n > 0 {
            return Ok(n);
        }
        put(self.alloc_pages(gfp, 0, cpu)?);
        Ok(1)
    }

    fn alloc_bulk_fast(&self, gfp: Gfp, cpu: CpuId, nr: usize, put: &mut impl FnMut(Pfn)) -> usize {
        if gfp.intersects(Gfp::GFP_DMA.union(Gfp::GFP_COMP)) || self.fail.attr.armed() {
            return 0;
        }
        let Some(mm) = self.mem_map.get() else { return 0 };
        let mm = &mm;
        let zi = ZoneType::Normal.index();
        let meta = &self.meta[zi];
        let mt = gfp_migratetype(gfp);
        let head = PageState::Head { order: 0, compound: false, tail_owner: false };
        let Some(pcp) = self.try_local_pcp(cpu, zi) else { return 0 };
        let mut n = 0;
        while n < nr {
            let Some(idx) = pcp.pop(mm, 0, mt.index()) else {
                break;
            };
            mm.at(idx).set_state(head);
            put(Pfn(mm.base_pfn + idx as u64));
            n += 1;
        }
        // The rest straight from the zone, as far as the low watermark allows, by the one
        // rule in its cached form (`alloc_fast`'s): a page passes while the headroom is at
        // least 1 (`watermark::fits(h, 0)`), and each page taken lowers it by one.
        let headroom = meta.fast_headroom[AllocFlags::low(gfp).cma as usize].load(Relaxed);
        let want = ((nr - n) as u64).min(headroom.max(0) as u64);
        if want > 0 {
            n += self.rmqueue_bulk(zi, 0, mt, want, |pfn| {
                mm.at(mm.idx(pfn)).set_state(head);
                put(Pfn(pfn));
            }) as usize;
        }
        pcp.count_alloc(n as u64);
        n
    }

    /// Frees single pages (order 0) in one round (Linux's `free_pages_bulk` idea, as
    /// `release_pages` does with a page vector): each is checked as by
    /// [`Self::free_pages`] (a refusal goes to `refused` and changes nothing), the good
    /// ones go onto this CPU's list, and the list is drained to the zone at most once,
    /// under one zone lock, at the end.
    pub fn free_pages_bulk(&self, pfns: impl IntoIterator<Item = Pfn>, cpu: CpuId, mut refused: impl FnMut(FreeError)) {
        let Some(mm) = self.mem_map.get() else {
            pfns.into_iter().for_each(|_| refused(FreeError::NotInitialized));
            return;
        };
        let mm = &mm;
        let mut drain = [false; MAX_NR_ZONES];
        for pfn in pfns {
            let fast = mm.pfn_to_page(pfn.0).and_then(|page| Some((page, page.live_head(0).ok()?)));
            let held = match fast {
                Some((page, f)) if !f.touched_tails() => {
                    let (zone, mt) = page.zone_mt();
                    self.try_local_pcp(cpu, zone.index()).map(|pcp| {
                        page.set_state(PageState::Pcp { order: 0, mt });
                        pcp.push(mm, mm.idx(pfn.0), 0, mt.pcp_list());
                        pcp.count_free(1);
                        drain[zone.index()] |= pcp.must_drain();
                    })
                }
                _ => None,
            };
            if held.is_none() {
                if let Err(e) = self.free_pages_slow(pfn.0, 0, cpu) {
                    refused(e);
                }
            }
        }
        for (zi, _) in drain.iter().enumerate().filter(|(_, d)| **d) {
            let Some(pcp) = self.try_local_pcp(cpu, zi) else { continue };
            let high = pcp.high();
            if pcp.take_drain_request() {
                self.free_pcppages_bulk(mm, zi, &pcp, pcp.count());
            } else if pcp.count() >= high {
                // Down to high - batch, as a run of single frees would leave it.
                let n = pcp.count() - high + pcp.batch();
                self.free_pcppages_bulk(mm, zi, &pcp, n);
            }
        }
    }
}
