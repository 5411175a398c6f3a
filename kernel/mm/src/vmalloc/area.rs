//! The vmap area allocator: free virtual space over [start, end) in O(log n).
//!
//! Free space is kept twice: by start (to coalesce neighbours on release) and by
//! (size, start) (best fit, lowest address among equals). Every area is followed by one
//! unmapped guard page that belongs to its reservation but not to its size, so running off
//! the end of an area faults instead of reaching the next one.

use alloc::collections::{BTreeMap, BTreeSet};
use core::fmt;

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// The unmapped page after every area.
pub const GUARD_SIZE: u64 = PAGE_SIZE as u64;
/// How many recently freed areas are remembered for use-after-free reports.
pub const FREED_RING: usize = 8;

/// What an area was created for (Linux's VM_ALLOC / VM_MAP / VM_IOREMAP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmKind {
    /// Pages allocated and owned by vmalloc.
    Vmalloc,
    /// Caller's pages mapped by vmap.
    Vmap,
    /// Device memory mapped by ioremap.
    Ioremap,
}

/// One reserved area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmArea {
    /// First VA.
    pub start: VirtAddr,
    /// Usable bytes (page multiple), guard page excluded.
    pub size: u64,
    /// Who asked for it: a function name, as Linux prints `%pS` of the caller.
    pub caller: &'static str,
    /// Pages mapped (vmalloc, vmap); 0 for ioremap.
    pub nr_pages: usize,
    /// What the area is for.
    pub kind: VmKind,
    /// First physical address of an ioremap area.
    pub phys_addr: Option<PhysAddr>,
}

impl VmArea {
    /// End of the usable part (exclusive), i.e. the guard page.
    pub const fn end(&self) -> VirtAddr {
        VirtAddr::new(self.start.as_u64() + self.size)
    }
    /// Bytes reserved: size plus the guard page (what Linux prints in vmallocinfo).
    pub const fn reserved(&self) -> u64 {
        self.size + GUARD_SIZE
    }
    /// Whether `va` is in the usable part.
    pub const fn contains(&self, va: VirtAddr) -> bool {
        va.as_u64() >= self.start.as_u64() && va.as_u64() - self.start.as_u64() < self.size
    }
    /// Whether `va` is in the guard page.
    pub const fn guard_contains(&self, va: VirtAddr) -> bool {
        va.as_u64() >= self.end().as_u64() && va.as_u64() - self.end().as_u64() < GUARD_SIZE
    }
}

/// Why an area could not be reserved or released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaError {
    /// Zero bytes asked.
    ZeroSize,
    /// Size plus guard overflows.
    Overflow,
    /// No free range large enough (the size asked, guard included).
    Exhausted(u64),
    /// No live area starts at this address.
    NotFound(VirtAddr),
}

impl fmt::Display for AreaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AreaError::ZeroSize => f.write_str("zero-size area"),
            AreaError::Overflow => f.write_str("area size overflows"),
            AreaError::Exhausted(n) => write!(f, "no free virtual range of {n} bytes"),
            AreaError::NotFound(va) => write!(f, "no area starts at {va:#x}"),
        }
    }
}

/// Free and busy areas of one virtual range.
pub struct VmapAreas {
    start: u64,
    end: u64,
    inited: bool,
    free_by_start: BTreeMap<u64, u64>,
    free_by_size: BTreeSet<(u64, u64)>,
    busy: BTreeMap<u64, VmArea>,
    freed: [Option<VmArea>; FREED_RING],
    freed_next: usize,
}

impl VmapAreas {
    /// An allocator over [start, end) (page aligned); usable in a `static`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self {
            start,
            end,
            inited: false,
            free_by_start: BTreeMap::new(),
            free_by_size: BTreeSet::new(),
            busy: BTreeMap::new(),
            freed: [None; FREED_RING],
            freed_next: 0,
        }
    }

    /// The managed range.
    pub const fn range(&self) -> (VirtAddr, VirtAddr) {
        (VirtAddr::new(self.start), VirtAddr::new(self.end))
    }

    // `new` is const (no allocation), so the initial free range is inserted on first use.
    fn init(&mut self) {
        if !self.inited {
            self.inited = true;
            let (s, e) = (self.start & !(GUARD_SIZE - 1), self.end & !(GUARD_SIZE - 1));
            if e > s {
                self.insert_free(s, e - s);
            }
        }
    }

    fn insert_free(&mut self, s: u64, len: u64) {
        self.free_by_start.insert(s, len);
        self.free_by_size.insert((len, s));
    }

    fn remove_free(&mut self, s: u64, len: u64) {
        self.free_by_start.remove(&s);
        self.free_by_size.remove(&(len, s));
    }

    /// Reserves `size` bytes (rounded up to pages) plus a guard page, best fit.
    pub fn alloc(
        &mut self,
        size: u64,
        kind: VmKind,
        caller: &'static str,
        phys_addr: Option<PhysAddr>,
    ) -> Result<VmArea, AreaError> {
        if size == 0 {
            return Err(AreaError::ZeroSize);
        }
        let size = size.checked_add(GUARD_SIZE - 1).ok_or(AreaError::Overflow)? & !(GUARD_SIZE - 1);
        let need = size.checked_add(GUARD_SIZE).ok_or(AreaError::Overflow)?;
        self.init();
        let &(len, s) = self.free_by_size.range((need, 0)..).next().ok_or(AreaError::Exhausted(need))?;
        self.remove_free(s, len);
        if len > need {
            self.insert_free(s + need, len - need);
        }
        let nr_pages = match kind {
            VmKind::Ioremap => 0,
            _ => (size / PAGE_SIZE as u64) as usize,
        };
        let area = VmArea { start: VirtAddr::new(s), size, caller, nr_pages, kind, phys_addr };
        self.busy.insert(s, area);
        Ok(area)
    }

    /// Releases the area starting at `start` and remembers it for use-after-free reports.
    pub fn free(&mut self, start: VirtAddr) -> Result<VmArea, AreaError> {
        let area = self.release(start)?;
        self.freed[self.freed_next] = Some(area);
        self.freed_next = (self.freed_next + 1) % FREED_RING;
        Ok(area)
    }

    /// Releases without remembering (unwinding a failed allocation).
    pub fn release(&mut self, start: VirtAddr) -> Result<VmArea, AreaError> {
        let area = self.busy.remove(&start.as_u64()).ok_or(AreaError::NotFound(start))?;
        let (mut s, mut len) = (area.start.as_u64(), area.reserved());
        if let Some((&ps, &pl)) = self.free_by_start.range(..s).next_back() {
            if ps + pl == s {
                self.remove_free(ps, pl);
                s = ps;
                len += pl;
            }
        }
        if let Some(&nl) = self.free_by_start.get(&(s + len)) {
            self.remove_free(s + len, nl);
            len += nl;
        }
        self.insert_free(s, len);
        Ok(area)
    }

    /// The live area starting exactly at `start`.
    pub fn get(&self, start: VirtAddr) -> Option<&VmArea> {
        self.busy.get(&start.as_u64())
    }

    /// The live area whose usable part contains `va`.
    pub fn find(&self, va: VirtAddr) -> Option<&VmArea> {
        self.busy.range(..=va.as_u64()).next_back().map(|(_, a)| a).filter(|a| a.contains(va))
    }

    /// The live area whose guard page contains `va`.
    pub fn find_guard(&self, va: VirtAddr) -> Option<&VmArea> {
        self.busy.range(..=va.as_u64()).next_back().map(|(_, a)| a).filter(|a| a.guard_contains(va))
    }

    /// The most recently freed remembered area that contained `va`.
    pub fn find_freed(&self, va: VirtAddr) -> Option<&VmArea> {
        (1..=FREED_RING)
            .map(|k| (self.freed_next + FREED_RING - k) % FREED_RING)
            .filter_map(|i| self.freed[i].as_ref())
            .find(|a| a.contains(va))
    }

    /// Live areas in address order.
    pub fn iter(&self) -> impl Iterator<Item = &VmArea> {
        self.busy.values()
    }

    /// Number of live areas.
    pub fn nr_areas(&self) -> usize {
        self.busy.len()
    }

    /// Free bytes (all ranges).
    pub fn free_bytes(&self) -> u64 {
        if !self.inited {
            return (self.end - self.start) & !(GUARD_SIZE - 1);
        }
        self.free_by_start.values().sum()
    }

    /// Largest free range, guard room included.
    pub fn largest_free(&self) -> u64 {
        if !self.inited {
            return self.free_bytes();
        }
        self.free_by_size.iter().next_back().map_or(0, |&(l, _)| l)
    }

    /// Number of free ranges (fragmentation).
    pub fn nr_free_ranges(&self) -> usize {
        if !self.inited {
            return 1;
        }
        self.free_by_start.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 4096;
    const S: u64 = 0x1000_0000;

    #[test]
    fn guard_page_and_lookups() {
        let mut a = VmapAreas::new(S, S + 64 * K);
        let x = a.alloc(3 * K, VmKind::Vmalloc, "x", None).unwrap();
        let y = a.alloc(1, VmKind::Vmap, "y", None).unwrap();
        assert_eq!(x.start.as_u64(), S);
        assert_eq!((x.size, x.reserved(), x.nr_pages), (3 * K, 4 * K, 3));
        assert_eq!(y.start.as_u64(), S + 4 * K, "guard page skipped");
        assert_eq!(y.size, K);
        assert_eq!(a.find(VirtAddr::new(S + 2 * K + 7)).unwrap().caller, "x");
        assert!(a.find(VirtAddr::new(S + 3 * K)).is_none());
        assert_eq!(a.find_guard(VirtAddr::new(S + 3 * K)).unwrap().caller, "x");
        assert_eq!(a.find_guard(VirtAddr::new(S + 6 * K - 1)).unwrap().caller, "y");
        assert_eq!(a.free(VirtAddr::new(S + K)), Err(AreaError::NotFound(VirtAddr::new(S + K))));
        a.free(x.start).unwrap();
        assert_eq!(a.find_freed(VirtAddr::new(S + K)).unwrap().caller, "x");
        assert!(a.find(VirtAddr::new(S + K)).is_none());
        assert_eq!(a.nr_free_ranges(), 2);
        a.free(y.start).unwrap();
        assert_eq!((a.nr_free_ranges(), a.free_bytes()), (1, 64 * K));
    }

    #[test]
    fn errors_and_exhaustion() {
        let mut a = VmapAreas::new(S, S + 8 * K);
        assert_eq!(a.alloc(0, VmKind::Vmalloc, "z", None), Err(AreaError::ZeroSize));
        assert_eq!(a.alloc(u64::MAX - 10, VmKind::Vmalloc, "z", None), Err(AreaError::Overflow));
        assert_eq!(a.alloc(8 * K, VmKind::Vmalloc, "z", None), Err(AreaError::Exhausted(9 * K)));
        let v = a.alloc(7 * K, VmKind::Vmalloc, "z", None).unwrap();
        assert_eq!(a.alloc(K, VmKind::Vmalloc, "z", None), Err(AreaError::Exhausted(2 * K)));
        a.free(v.start).unwrap();
        assert_eq!(a.largest_free(), 8 * K);
    }

    #[test]
    fn best_fit_fills_holes() {
        let mut a = VmapAreas::new(S, S + 100 * K);
        let v: Vec<_> = (0..10).map(|i| a.alloc((i % 3 + 1) * K, VmKind::Vmalloc, "f", None).unwrap()).collect();
        // Holes of 2, 3 and 4 pages reserved (sizes 1, 2, 3 plus guard).
        a.free(v[0].start).unwrap(); // 2 pages
        a.free(v[4].start).unwrap(); // 3 pages
        a.free(v[2].start).unwrap(); // 4 pages
        let b = a.alloc(2 * K, VmKind::Vmalloc, "g", None).unwrap();
        assert_eq!(b.start, v[4].start, "best fit is the 3-page hole");
        let c = a.alloc(K, VmKind::Vmalloc, "g", None).unwrap();
        assert_eq!(c.start, v[0].start);
    }
}
