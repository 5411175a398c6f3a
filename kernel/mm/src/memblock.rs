//! Early boot memory allocator (Linux's memblock): the RAM regions and the reserved ones
//! (kernel image, DTB, firmware, early allocations) in fixed-capacity sorted arrays, so it
//! works before any heap or page allocator. Its free ranges (memory minus reserved) are
//! what the buddy allocator is initialised with.

use core::fmt;

use crate::addr::PhysAddr;

/// Capacity of each region array (Linux's `INIT_MEMBLOCK_REGIONS`).
pub const MEMBLOCK_REGIONS: usize = 128;

/// A physical range `[base, base + size)` with a name (reserved regions only).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes (never 0).
    pub size: u64,
    /// What it is (`"memory"` for RAM regions).
    pub name: &'static str,
}

impl Region {
    const EMPTY: Region = Region { base: 0, size: 0, name: "" };
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// A refused memblock operation (the state is unchanged).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MemblockError {
    /// Zero-sized range.
    ZeroSize,
    /// `base + size` overflows.
    Overflow,
    /// The region array is full.
    OutOfCapacity,
    /// `align` is not a power of two.
    BadAlign,
}

impl fmt::Display for MemblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroSize => "memblock: zero-sized range",
            Self::Overflow => "memblock: range overflows the address space",
            Self::OutOfCapacity => "memblock: region array full",
            Self::BadAlign => "memblock: alignment not a power of two",
        })
    }
}

/// A sorted array of disjoint regions.
#[derive(Clone, Debug)]
struct Regions {
    r: [Region; MEMBLOCK_REGIONS],
    n: usize,
}

impl Regions {
    const fn new() -> Regions {
        Regions { r: [Region::EMPTY; MEMBLOCK_REGIONS], n: 0 }
    }
    fn as_slice(&self) -> &[Region] {
        &self.r[..self.n]
    }
    /// Inserts `[base, end)`, merging with overlapping regions, and with adjacent ones
    /// when `merge_adjacent(existing)` says so.
    fn insert(
        &mut self,
        base: u64,
        end: u64,
        name: &'static str,
        merge_adjacent: impl Fn(&Region) -> bool,
    ) -> Result<(), MemblockError> {
        let joins =
            |r: &Region| (r.base < end && base < r.end()) || ((r.end() == base || r.base == end) && merge_adjacent(r));
        let first = self.as_slice().iter().position(joins);
        let (lo, hi, mut s, mut e, mut nm) = match first {
            Some(i) => {
                let mut j = i;
                while j < self.n && joins(&self.r[j]) {
                    j += 1;
                }
                (i, j, base.min(self.r[i].base), end.max(self.r[j - 1].end()), self.r[i].name)
            }
            None => {
                let i = self.as_slice().iter().position(|r| r.base > base).unwrap_or(self.n);
                (i, i, base, end, name)
            }
        };
        if lo == hi && self.n == MEMBLOCK_REGIONS {
            return Err(MemblockError::OutOfCapacity);
        }
        if lo == hi {
            nm = name;
        }
        s = s.min(base);
        e = e.max(end);
        // Replace r[lo..hi] by one region.
        let removed = hi - lo;
        if removed == 0 {
            self.r.copy_within(lo..self.n, lo + 1);
            self.n += 1;
        } else {
            self.r.copy_within(hi..self.n, lo + 1);
            self.n -= removed - 1;
        }
        self.r[lo] = Region { base: s, size: e - s, name: nm };
        Ok(())
    }
    fn total(&self) -> u64 {
        self.as_slice().iter().map(|r| r.size).sum()
    }
}

/// The early allocator.
#[derive(Clone, Debug)]
pub struct Memblock {
    memory: Regions,
    reserved: Regions,
}

impl Default for Memblock {
    fn default() -> Self {
        Self::new()
    }
}

fn range(base: PhysAddr, size: u64) -> Result<(u64, u64), MemblockError> {
    if size == 0 {
        return Err(MemblockError::ZeroSize);
    }
    let end = base.as_u64().checked_add(size).ok_or(MemblockError::Overflow)?;
    Ok((base.as_u64(), end))
}

impl Memblock {
    /// Empty (a `const fn`, so it can be a `static`).
    pub const fn new() -> Memblock {
        Memblock { memory: Regions::new(), reserved: Regions::new() }
    }
    /// Linux's `memblock_add`: registers RAM (overlapping or adjacent regions merge).
    pub fn add(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        let (s, e) = range(base, size)?;
        self.memory.insert(s, e, "memory", |_| true)
    }
    /// Linux's `memblock_reserve`: marks a range in use. Overlapping reservations merge
    /// (the first name stays); adjacent ones merge only if they have the same name.
    pub fn reserve(&mut self, base: PhysAddr, size: u64, name: &'static str) -> Result<(), MemblockError> {
        let (s, e) = range(base, size)?;
        self.reserved.insert(s, e, name, |r| r.name == name)
    }
    /// Linux's `memblock_phys_alloc`: the highest free `size` bytes aligned to `align`
    /// (top-down), reserved as `"memblock"`. `None` if nothing fits.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<PhysAddr> {
        self.alloc_named(size, align, "memblock").ok().flatten()
    }
    /// [`Self::alloc`] with a reservation name and errors for bad arguments.
    pub fn alloc_named(
        &mut self,
        size: u64,
        align: u64,
        name: &'static str,
    ) -> Result<Option<PhysAddr>, MemblockError> {
        if size == 0 {
            return Err(MemblockError::ZeroSize);
        }
        if !align.is_power_of_two() {
            return Err(MemblockError::BadAlign);
        }
        let mut best = None;
        for (s, e) in self.free_ranges() {
            if let Some(top) = e.checked_sub(size) {
                let cand = top & !(align - 1);
                if cand >= s {
                    best = Some(cand); // ranges come in ascending order: keep the last
                }
            }
        }
        let Some(b) = best else { return Ok(None) };
        self.reserve(PhysAddr::new(b), size, name)?;
        Ok(Some(PhysAddr::new(b)))
    }
    /// RAM regions, sorted and disjoint.
    pub fn memory(&self) -> &[Region] {
        self.memory.as_slice()
    }
    /// Reserved regions, sorted and disjoint.
    pub fn reserved(&self) -> &[Region] {
        self.reserved.as_slice()
    }
    /// Total RAM in bytes.
    pub fn memory_total(&self) -> u64 {
        self.memory.total()
    }
    /// Total reserved bytes (including reservations outside RAM).
    pub fn reserved_total(&self) -> u64 {
        self.reserved.total()
    }
    /// Free ranges `[start, end)` (memory minus reserved), ascending (Linux's
    /// `for_each_free_mem_range`).
    pub fn free_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mem = self.memory.as_slice();
        let res = self.reserved.as_slice();
        let (mut mi, mut pos, mut ri) = (0usize, 0u64, 0usize);
        core::iter::from_fn(move || loop {
            let m = mem.get(mi)?;
            let start = pos.max(m.base);
            if start >= m.end() {
                mi += 1;
                continue;
            }
            while ri < res.len() && res[ri].end() <= start {
                ri += 1;
            }
            match res.get(ri) {
                Some(r) if r.base <= start => {
                    pos = r.end();
                }
                other => {
                    let end = other.map_or(m.end(), |r| r.base.min(m.end()));
                    pos = end;
                    return Some((start, end));
                }
            }
        })
    }
    /// Total free bytes.
    pub fn free_total(&self) -> u64 {
        self.free_ranges().map(|(s, e)| e - s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pa(x: u64) -> PhysAddr {
        PhysAddr::new(x)
    }

    #[test]
    fn add_merges() {
        let mut mb = Memblock::new();
        mb.add(pa(0x1000), 0x1000).unwrap();
        mb.add(pa(0x4000), 0x1000).unwrap();
        mb.add(pa(0x2000), 0x1000).unwrap(); // adjacent to the first
        assert_eq!(mb.memory().len(), 2);
        mb.add(pa(0x1800), 0x3000).unwrap(); // overlaps both
        assert_eq!(mb.memory(), &[Region { base: 0x1000, size: 0x4000, name: "memory" }]);
        assert_eq!(mb.memory_total(), 0x4000);
        mb.add(pa(0), 0x800).unwrap();
        assert_eq!(mb.memory()[0].base, 0);
        assert_eq!(mb.memory().len(), 2);
    }

    #[test]
    fn reserve_and_free_ranges() {
        let mut mb = Memblock::new();
        mb.add(pa(0), 0x10000).unwrap();
        mb.add(pa(0x20000), 0x10000).unwrap();
        mb.reserve(pa(0), 0x1000, "firmware").unwrap();
        mb.reserve(pa(0x8000), 0x2000, "kernel").unwrap();
        mb.reserve(pa(0x9000), 0x2000, "dtb").unwrap(); // overlap: merges, keeps "kernel"
        mb.reserve(pa(0xb000), 0x1000, "kernel").unwrap(); // adjacent, same name
        mb.reserve(pa(0xc000), 0x1000, "initrd").unwrap(); // adjacent, other name
        mb.reserve(pa(0x1f000), 0x2000, "spans a hole").unwrap();
        assert_eq!(mb.reserved().len(), 4);
        assert_eq!(mb.reserved()[1], Region { base: 0x8000, size: 0x4000, name: "kernel" });
        let free: Vec<_> = mb.free_ranges().collect();
        assert_eq!(free, [(0x1000, 0x8000), (0xd000, 0x10000), (0x21000, 0x30000)]);
        assert_eq!(mb.free_total(), 0x7000 + 0x3000 + 0xf000);
        assert_eq!(mb.reserved_total(), 0x1000 + 0x4000 + 0x1000 + 0x2000);
    }

    #[test]
    fn alloc_top_down() {
        let mut mb = Memblock::new();
        mb.add(pa(0), 0x10000).unwrap();
        mb.reserve(pa(0xf000), 0x1000, "top").unwrap();
        assert_eq!(mb.alloc(0x1000, 0x1000), Some(pa(0xe000)));
        assert_eq!(mb.alloc(0x100, 0x4000), Some(pa(0xc000)));
        assert_eq!(mb.alloc(0x10000, 0x1000), None);
        assert_eq!(mb.alloc_named(0, 8, "x"), Err(MemblockError::ZeroSize));
        assert_eq!(mb.alloc_named(8, 3, "x"), Err(MemblockError::BadAlign));
        assert!(mb.reserved().iter().any(|r| r.name == "memblock"));
        // Everything allocated lies in RAM and is reserved.
        assert_eq!(mb.free_total() + mb.reserved_total(), 0x10000);
    }

    #[test]
    fn bad_input_is_refused_unchanged() {
        let mut mb = Memblock::new();
        assert_eq!(mb.add(pa(0), 0), Err(MemblockError::ZeroSize));
        assert_eq!(mb.add(pa(u64::MAX), 2), Err(MemblockError::Overflow));
        assert_eq!(mb.reserve(pa(u64::MAX - 1), 5, "x"), Err(MemblockError::Overflow));
        for i in 0..MEMBLOCK_REGIONS as u64 {
            mb.add(pa(i * 0x2000), 0x1000).unwrap();
        }
        let before = mb.clone();
        assert_eq!(mb.add(pa(0x10_0000_0000), 0x1000), Err(MemblockError::OutOfCapacity));
        assert_eq!(mb.memory(), before.memory());
        // Merging into existing regions still works when full.
        mb.add(pa(0x1000), 0x1000).unwrap();
        assert_eq!(mb.memory().len(), MEMBLOCK_REGIONS - 1);
        assert_eq!(MemblockError::Overflow.to_string(), "memblock: range overflows the address space");
    }
}
