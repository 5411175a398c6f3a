//! The slab layer's detected errors ([`SlabError`]: what went wrong and what was done
//! about it) and where they go ([`SlabReporter`]).

use core::fmt;

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabErrorKind {
    /// The object was freed twice (its red zone says it is already free).
    DoubleFree,
    /// A red zone byte was overwritten (`first` is its address, `value` what was found).
    RedzoneOverwritten {
        /// Address of the first bad byte.
        first: usize,
        /// Value found there.
        value: u8,
        /// Value expected.
        expected: u8,
    },
    /// A free object's poison was overwritten: a write after free.
    PoisonOverwritten {
        /// Address of the first bad byte.
        first: usize,
        /// Value found there.
        value: u8,
        /// Value expected.
        expected: u8,
    },
    /// The pointer lies in a slab but not at the start of an object.
    InvalidPointer,
    /// The pointer is not in a slab page nor at the start of a kmalloc compound block.
    NotSlabObject,
    /// `kmem_cache_free` on one cache of an object of another (`other`).
    WrongCache {
        /// The cache the object really belongs to.
        other: &'static str,
    },
    /// A decoded free pointer is outside its slab or off an object boundary; the rest of
    /// that freelist is abandoned.
    FreepointerCorrupt {
        /// The decoded pointer.
        fp: usize,
    },
}

/// What the slab layer did about an error (Linux's `FIX <cache>: ...` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabFix {
    /// The free was refused: nothing changed (double free, invalid pointer, wrong cache).
    Refused,
    /// A free object's poison and red zones were restored; it stays free.
    RestoredFree,
    /// An object's red zones were restored and the free went ahead.
    RestoredAndFreed,
    /// The rest of a slab's freelist was isolated (its objects are never handed out).
    Isolated,
}

/// One detected error, with enough context for a Linux-like report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabError {
    /// What went wrong.
    pub kind: SlabErrorKind,
    /// Name of the cache (`kmalloc` when the pointer is in no cache).
    pub cache: &'static str,
    /// The object (or the bad pointer).
    pub object: usize,
    /// Start of the slab holding it (0 when unknown).
    pub slab: usize,
    /// What was done about it.
    pub fix: SlabFix,
}

/// `FIX kmalloc-64: Restoring Poison and Redzone of the free object 0x...; it stays free`.
pub struct FixLine<'a>(pub &'a SlabError);

impl fmt::Display for FixLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "FIX {}: ", e.cache)?;
        match e.fix {
            SlabFix::Refused => {
                write!(f, "Object at {:#x} not freed (the free was refused, nothing changed)", e.object)
            }
            SlabFix::RestoredFree => {
                write!(f, "Restoring Poison and Redzone of the free object {:#x}; it stays free", e.object)
            }
            SlabFix::RestoredAndFreed => write!(f, "Restoring Redzone of {:#x}; object freed", e.object),
            SlabFix::Isolated => write!(f, "Isolating the rest of the freelist of slab {:#x}", e.slab),
        }
    }
}

impl SlabError {
    /// Linux's one-line reason, as printed after `BUG <cache> (Not tainted): `.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            SlabErrorKind::DoubleFree => "Object already free",
            SlabErrorKind::RedzoneOverwritten { .. } => "Redzone overwritten",
            SlabErrorKind::PoisonOverwritten { .. } => "Poison overwritten",
            SlabErrorKind::InvalidPointer => "Invalid object pointer",
            SlabErrorKind::NotSlabObject => "Invalid free of a non-slab pointer",
            SlabErrorKind::WrongCache { .. } => "Wrong slab cache",
            SlabErrorKind::FreepointerCorrupt { .. } => "Freepointer corrupt",
        }
    }
}

/// The Linux-like report block (without the call trace, which the kernel appends).
impl fmt::Display for SlabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "=============================================================================")?;
        writeln!(f, "BUG {} (Not tainted): {}", self.cache, self.reason())?;
        writeln!(f, "-----------------------------------------------------------------------------")?;
        writeln!(f)?;
        match self.kind {
            SlabErrorKind::RedzoneOverwritten { first, value, expected }
            | SlabErrorKind::PoisonOverwritten { first, value, expected } => writeln!(
                f,
                "INFO: {:#x}-{:#x} @offset={}. First byte {:#x} instead of {:#x}",
                first,
                first,
                first.wrapping_sub(self.slab),
                value,
                expected
            )?,
            SlabErrorKind::WrongCache { other } => writeln!(f, "INFO: {} but object is from {}", self.cache, other)?,
            SlabErrorKind::FreepointerCorrupt { fp } => writeln!(f, "INFO: Freepointer {:#x}", fp)?,
            _ => {}
        }
        if self.slab != 0 {
            writeln!(f, "INFO: Slab {:#x}", self.slab)?;
            write!(f, "INFO: Object {:#x} @offset={}", self.object, self.object.wrapping_sub(self.slab))
        } else {
            write!(f, "INFO: Object {:#x}", self.object)
        }
    }
}

/// Where detected errors go. The kernel prints them (plus a call trace); tests record them.
pub trait SlabReporter: Sync {
    /// Reports one error; the slab layer has already refused the operation.
    fn report(&self, err: &SlabError);

    /// An allocation with flags `gfp` failed because `failslab` injected the failure (the
    /// kernel prints Linux's `FAULT_INJECTION` report); nothing by default.
    fn fault_injected(&self, _gfp: crate::gfp::Gfp) {}
}

/// A reporter that drops reports (for callers that only care that the operation is refused).
pub struct NullReporter;

impl SlabReporter for NullReporter {
    fn report(&self, _err: &SlabError) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: SlabErrorKind, fix: SlabFix) -> SlabError {
        SlabError { kind, cache: "kmalloc-64", object: 0x1040, slab: 0x1000, fix }
    }

    /// Each fix prints its own `FIX` line, and a corrupt free pointer names its value.
    #[test]
    fn fix_lines_and_the_freepointer_report() {
        let fix = |f| FixLine(&err(SlabErrorKind::DoubleFree, f)).to_string();
        assert_eq!(
            fix(SlabFix::Refused),
            "FIX kmalloc-64: Object at 0x1040 not freed (the free was refused, nothing changed)"
        );
        assert_eq!(
            fix(SlabFix::RestoredFree),
            "FIX kmalloc-64: Restoring Poison and Redzone of the free object 0x1040; it stays free"
        );
        assert_eq!(fix(SlabFix::RestoredAndFreed), "FIX kmalloc-64: Restoring Redzone of 0x1040; object freed");
        assert_eq!(fix(SlabFix::Isolated), "FIX kmalloc-64: Isolating the rest of the freelist of slab 0x1000");
        let report = err(SlabErrorKind::FreepointerCorrupt { fp: 0x1234 }, SlabFix::Isolated).to_string();
        let lines: Vec<_> = report.lines().collect();
        assert_eq!(lines[1], "BUG kmalloc-64 (Not tainted): Freepointer corrupt");
        assert_eq!(&lines[4..], ["INFO: Freepointer 0x1234", "INFO: Slab 0x1000", "INFO: Object 0x1040 @offset=64"]);
    }
}
