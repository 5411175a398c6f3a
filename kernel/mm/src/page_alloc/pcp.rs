//! Per-CPU page lists (Linux's `per_cpu_pages`): blocks of orders 0..=3 cached per CPU and zone so
//! that the common allocation and free take only an uncontended per-CPU lock, moving
//! pages to and from the zone in batches of `batch` and draining when `count >= high`.

use super::migratetype::MIGRATE_PCPTYPES;
use super::page::{MemMap, NIL};

pub use crate::NR_CPUS;

/// Highest order cached on the per-CPU lists (as Linux 5.13+: orders up to
/// `PAGE_ALLOC_COSTLY_ORDER`).
pub const PCP_MAX_ORDER: u32 = 3;
const PCP_ORDERS: usize = PCP_MAX_ORDER as usize + 1;

/// One CPU's cached blocks for one zone: singly linked LIFO lists per order and
/// migratetype (hot pages are reused first), through the descriptors' `next` word.
#[derive(Debug)]
pub struct PerCpuPages {
    /// Pages (not blocks) on the lists.
    pub count: u64,
    /// Drain a batch when `count` reaches this.
    pub high: u64,
    /// Pages moved per refill or drain.
    pub batch: u64,
    lists: [[u32; MIGRATE_PCPTYPES]; PCP_ORDERS],
}

impl PerCpuPages {
    /// Empty lists (batch 1, high 0 until the zone size is known).
    pub const fn new() -> PerCpuPages {
        PerCpuPages { count: 0, high: 0, batch: 1, lists: [[NIL; MIGRATE_PCPTYPES]; PCP_ORDERS] }
    }
    #[inline]
    pub(crate) fn push(&mut self, mm: &MemMap, idx: u32, order: u32, list: usize) {
        let head = &mut self.lists[order as usize][list];
        let p = mm.at(idx);
        p.set_next(*head);
        p.set_prev(0);
        *head = idx;
        self.count += 1 << order;
    }
    #[inline]
    pub(crate) fn pop(&mut self, mm: &MemMap, order: u32, list: usize) -> Option<u32> {
        let head = &mut self.lists[order as usize][list];
        let idx = *head;
        if idx == NIL {
            return None;
        }
        *head = mm.at(idx).next();
        mm.at(idx).set_next(0);
        self.count -= 1 << order;
        Some(idx)
    }
    /// Pops a block from any list, emptying the lists one after the other from `start`
    /// (the cursor stays on a list while it has blocks, so a bulk free does not rescan
    /// empty lists per page); returns it with its order.
    pub(crate) fn pop_any(&mut self, mm: &MemMap, start: &mut usize) -> Option<(u32, u32)> {
        const N: usize = MIGRATE_PCPTYPES * PCP_ORDERS;
        while *start < N {
            let l = *start;
            let order = (l / MIGRATE_PCPTYPES) as u32;
            if let Some(i) = self.pop(mm, order, l % MIGRATE_PCPTYPES) {
                return Some((i, order));
            }
            *start += 1;
        }
        None
    }
    pub(crate) fn lists_head(&self, order: u32, list: usize) -> u32 {
        self.lists[order as usize][list]
    }
}

impl Default for PerCpuPages {
    fn default() -> Self {
        Self::new()
    }
}

/// Linux's `zone_batchsize`: about a quarter of a per-mille of the zone, at most 1 MiB
/// worth, rounded to `2^n - 1` to avoid cache aliasing; `high = 6 * batch`.
pub const fn zone_batchsize(managed_pages: u64) -> (u64, u64) {
    let mut batch = managed_pages / 1024;
    if batch * crate::addr::PAGE_SIZE as u64 > 1024 * 1024 {
        batch = (1024 * 1024) / crate::addr::PAGE_SIZE as u64;
    }
    batch /= 4;
    if batch < 1 {
        batch = 1;
    }
    let x = batch + batch / 2;
    let pow = 1u64 << (63 - x.leading_zeros());
    let batch = pow - 1;
    let high = 6 * batch;
    (high, if batch < 1 { 1 } else { batch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_batch() {
        // 1 GiB zone: batch 63, high 378 (what a Pi shows in /proc/zoneinfo).
        assert_eq!(zone_batchsize(262_144), (378, 63));
        assert_eq!(zone_batchsize(16_384), (18, 3));
        assert_eq!(zone_batchsize(100), (0, 1));
    }
}
