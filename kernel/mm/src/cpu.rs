//! [`CpuId`]: a CPU number checked once, where it enters the allocators, against
//! [`NR_CPUS`], so that every per-CPU array of the page allocator and the slab is indexed
//! without a runtime failure and no call can name a CPU that does not exist.

use core::fmt;

use crate::NR_CPUS;

/// A CPU number below [`NR_CPUS`] (Linux's `smp_processor_id()` value, with the range
/// check done when it is made instead of at every use).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CpuId(u8);

/// A CPU number at or above [`NR_CPUS`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BadCpu(pub usize);

impl fmt::Display for BadCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu {} out of range (NR_CPUS {})", self.0, NR_CPUS)
    }
}

// The number fits the `u8` and the index mask below.
const _: () = assert!(NR_CPUS <= 256 && NR_CPUS.is_power_of_two());

impl CpuId {
    /// The boot CPU, 0.
    pub const BOOT: CpuId = CpuId(0);

    /// `n` as a CPU number; an error if `n >= NR_CPUS`.
    #[inline]
    pub const fn new(n: usize) -> Result<CpuId, BadCpu> {
        if n < NR_CPUS {
            Ok(CpuId(n as u8))
        } else {
            Err(BadCpu(n))
        }
    }

    /// `n` as a CPU number, for constants and tests; panics if `n >= NR_CPUS`.
    #[track_caller]
    pub const fn of(n: usize) -> CpuId {
        match Self::new(n) {
            Ok(c) => c,
            Err(_) => panic!("cpu number out of range"),
        }
    }

    /// The number, below [`NR_CPUS`]: an index into any `[T; NR_CPUS]`.
    #[inline(always)]
    pub const fn index(self) -> usize {
        // The mask is the identity (the number was checked); it tells the compiler the
        // range, so per-CPU array indexing needs no bounds check.
        self.0 as usize & (NR_CPUS - 1)
    }

    /// Every CPU, 0 to `NR_CPUS - 1`.
    pub fn all() -> impl Iterator<Item = CpuId> {
        (0..NR_CPUS).map(|n| CpuId(n as u8))
    }
}

impl TryFrom<usize> for CpuId {
    type Error = BadCpu;
    fn try_from(n: usize) -> Result<CpuId, BadCpu> {
        CpuId::new(n)
    }
}

impl From<CpuId> for usize {
    fn from(c: CpuId) -> usize {
        c.index()
    }
}

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_at_construction() {
        for n in 0..NR_CPUS {
            let c = CpuId::new(n).unwrap();
            assert_eq!(c.index(), n);
            assert_eq!(CpuId::try_from(n), Ok(c));
        }
        assert_eq!(CpuId::new(NR_CPUS), Err(BadCpu(NR_CPUS)));
        assert_eq!(CpuId::try_from(usize::MAX), Err(BadCpu(usize::MAX)));
        assert_eq!(CpuId::all().count(), NR_CPUS);
        assert_eq!(CpuId::BOOT, CpuId::of(0));
        assert_eq!(BadCpu(9).to_string(), format!("cpu 9 out of range (NR_CPUS {NR_CPUS})"));
    }

    #[test]
    #[should_panic]
    fn of_panics_out_of_range() {
        let _ = CpuId::of(NR_CPUS);
    }
}
