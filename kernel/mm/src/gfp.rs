//! GFP ("get free pages") flags: how an allocation may behave, as a typed set.
//!
//! Bit values are Linux 5.10's (the kernel of the lab in `shared/seeds`), so that a
//! `mode:0xa20(GFP_ATOMIC)` printed here means what it means in a Linux log.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// A set of GFP flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Gfp(u32);

macro_rules! gfp_bits {
    ($($(#[$m:meta])* $name:ident = $val:expr;)*) => {
        impl Gfp {
            $($(#[$m])* pub const $name: Gfp = Gfp($val);)*
        }
        /// Single-bit flags with their Linux names, lowest bit first.
        const BIT_NAMES: &[(&str, u32)] = &[$((concat!("__", stringify!($name)), $val)),*];
    };
}

gfp_bits! {
    /// Allocate from the DMA zone.
    GFP_DMA = 0x01;
    /// Highmem allowed (no highmem on arm64: accepted and ignored).
    GFP_HIGHMEM = 0x02;
    /// DMA32 zone.
    GFP_DMA32 = 0x04;
    /// The pages can be migrated: MIGRATE_MOVABLE free lists.
    GFP_MOVABLE = 0x08;
    /// The pages can be reclaimed: MIGRATE_RECLAIMABLE free lists.
    GFP_RECLAIMABLE = 0x10;
    /// High priority: may use part of the reserve below the min watermark.
    GFP_HIGH = 0x20;
    /// May start I/O.
    GFP_IO = 0x40;
    /// May call into the filesystem.
    GFP_FS = 0x80;
    /// Return zeroed memory.
    GFP_ZERO = 0x100;
    /// Caller cannot sleep or reclaim, and may dip further into reserves.
    GFP_ATOMIC = 0x200;
    /// May sleep to reclaim directly.
    GFP_DIRECT_RECLAIM = 0x400;
    /// May wake kswapd.
    GFP_KSWAPD_RECLAIM = 0x800;
    /// Page will be written (dirty balancing hint).
    GFP_WRITE = 0x1000;
    /// Do not print an allocation-failure report.
    GFP_NOWARN = 0x2000;
    /// Try hard, but fail rather than OOM-kill.
    GFP_RETRY_MAYFAIL = 0x4000;
    /// Never fail (honoured by looping in callers that can).
    GFP_NOFAIL = 0x8000;
    /// Do not retry.
    GFP_NORETRY = 0x1_0000;
    /// Access to all reserves.
    GFP_MEMALLOC = 0x2_0000;
    /// Compound page: higher-order allocation handled as one unit.
    GFP_COMP = 0x4_0000;
    /// Forbid reserves.
    GFP_NOMEMALLOC = 0x8_0000;
    /// Enforce cpuset memory policy.
    GFP_HARDWALL = 0x10_0000;
    /// No fallback to other nodes.
    GFP_THISNODE = 0x20_0000;
    /// Account to memcg.
    GFP_ACCOUNT = 0x40_0000;
}

/// Both reclaim bits.
pub const __GFP_RECLAIM: Gfp = Gfp(0x400 | 0x800);
/// Normal kernel allocation: may sleep and reclaim, stops at the low watermark.
pub const GFP_KERNEL: Gfp = Gfp(0x400 | 0x800 | 0x40 | 0x80);
/// Cannot sleep, high priority: may dip below the min watermark.
pub const GFP_ATOMIC: Gfp = Gfp(0x20 | 0x200 | 0x800);
/// Cannot sleep, no special priority.
pub const GFP_NOWAIT: Gfp = Gfp(0x800);
/// From the DMA zone (used together with GFP_KERNEL or GFP_ATOMIC).
pub const GFP_DMA: Gfp = Gfp::GFP_DMA;
/// User pages.
pub const GFP_USER: Gfp = Gfp(0x400 | 0x800 | 0x40 | 0x80 | 0x10_0000);
/// User pages that may live in highmem.
pub const GFP_HIGHUSER: Gfp = Gfp(0x400 | 0x800 | 0x40 | 0x80 | 0x10_0000 | 0x02);
/// User pages that can be migrated: MIGRATE_MOVABLE.
pub const GFP_HIGHUSER_MOVABLE: Gfp = Gfp(0x400 | 0x800 | 0x40 | 0x80 | 0x10_0000 | 0x02 | 0x08);

/// Composite names tried first when printing, like Linux's `%pGg`.
const COMPOSITE_NAMES: &[(&str, Gfp)] = &[
    ("GFP_HIGHUSER_MOVABLE", GFP_HIGHUSER_MOVABLE),
    ("GFP_HIGHUSER", GFP_HIGHUSER),
    ("GFP_USER", GFP_USER),
    ("GFP_KERNEL", GFP_KERNEL),
    ("GFP_ATOMIC", GFP_ATOMIC),
    ("GFP_NOWAIT", GFP_NOWAIT),
];

impl Gfp {
    /// The empty set.
    pub const EMPTY: Gfp = Gfp(0);

    /// Flags from raw bits; bits Linux does not define are refused.
    pub const fn from_bits(bits: u32) -> Option<Gfp> {
        if bits & !0x7f_ffff != 0 {
            None
        } else {
            Some(Gfp(bits))
        }
    }
    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Gfp) -> bool {
        self.0 & other.0 != 0
    }
    /// The union.
    pub const fn union(self, other: Gfp) -> Gfp {
        Gfp(self.0 | other.0)
    }
    /// `self` without the flags of `other`.
    pub const fn without(self, other: Gfp) -> Gfp {
        Gfp(self.0 & !other.0)
    }
    /// Whether the caller may sleep (direct reclaim allowed).
    pub const fn may_sleep(self) -> bool {
        self.contains(Gfp::GFP_DIRECT_RECLAIM)
    }

    /// Every name [`Gfp::parse`] knows: the composite ones (`GFP_KERNEL`...), then the
    /// single flags (`__GFP_ZERO`...), for Tab completion.
    pub fn names() -> impl Iterator<Item = &'static str> {
        COMPOSITE_NAMES.iter().map(|&(n, _)| n).chain(["GFP_DMA"]).chain(BIT_NAMES.iter().map(|&(n, _)| n))
    }

    /// Parses a flag expression such as `GFP_KERNEL`, `GFP_ATOMIC|__GFP_ZERO`,
    /// `gfp_kernel` or `0xcc0`.
    pub fn parse(s: &str) -> Option<Gfp> {
        let mut acc = Gfp::EMPTY;
        for part in s.split('|') {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            let flag = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                Gfp::from_bits(u32::from_str_radix(hex, 16).ok()?)?
            } else {
                COMPOSITE_NAMES
                    .iter()
                    .map(|&(n, g)| (n, g))
                    .chain(BIT_NAMES.iter().map(|&(n, b)| (n, Gfp(b))))
                    .chain([("GFP_DMA", GFP_DMA)])
                    .find(|(n, _)| n.eq_ignore_ascii_case(part))?
                    .1
            };
            acc |= flag;
        }
        Some(acc)
    }
}

impl BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}
impl BitOrAssign for Gfp {
    fn bitor_assign(&mut self, rhs: Gfp) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for Gfp {
    type Output = Gfp;
    fn bitand(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 & rhs.0)
    }
}
impl Not for Gfp {
    type Output = Gfp;
    fn not(self) -> Gfp {
        Gfp(!self.0 & 0x7f_ffff)
    }
}

/// Prints like Linux's `%#x(%pGg)`: `0xa20(GFP_ATOMIC)`, `0x2cc0(GFP_KERNEL|__GFP_NOWARN)`.
impl fmt::Display for Gfp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}(", self.0)?;
        let mut rest = self.0;
        let mut first = true;
        let sep = |f: &mut fmt::Formatter<'_>, first: &mut bool| {
            if !*first {
                f.write_str("|")?;
            }
            *first = false;
            Ok::<(), fmt::Error>(())
        };
        if let Some(&(name, g)) = COMPOSITE_NAMES.iter().find(|(_, g)| self.contains(*g) && g.0 != 0) {
            sep(f, &mut first)?;
            f.write_str(name)?;
            rest &= !g.0;
        }
        for &(name, bit) in BIT_NAMES {
            if rest & bit != 0 {
                sep(f, &mut first)?;
                f.write_str(name)?;
            }
        }
        if self.0 == 0 {
            f.write_str("none")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Gfp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_values() {
        assert_eq!(GFP_ATOMIC.bits(), 0xa20);
        assert_eq!(GFP_KERNEL.bits(), 0xcc0);
        assert_eq!(GFP_HIGHUSER_MOVABLE.bits(), 0x100cca);
        assert!(GFP_KERNEL.may_sleep());
        assert!(!GFP_ATOMIC.may_sleep());
    }

    #[test]
    fn display_like_linux() {
        assert_eq!(GFP_ATOMIC.to_string(), "0xa20(GFP_ATOMIC)");
        assert_eq!((GFP_KERNEL | Gfp::GFP_NOWARN).to_string(), "0x2cc0(GFP_KERNEL|__GFP_NOWARN)");
        assert_eq!(GFP_HIGHUSER_MOVABLE.to_string(), "0x100cca(GFP_HIGHUSER_MOVABLE)");
        assert_eq!(Gfp::EMPTY.to_string(), "0x0(none)");
    }

    #[test]
    fn every_name_parses() {
        let names: Vec<_> = Gfp::names().collect();
        assert!(names.contains(&"GFP_KERNEL") && names.contains(&"__GFP_ZERO") && names.contains(&"GFP_DMA"));
        for n in names {
            assert!(Gfp::parse(n).is_some(), "{n}");
        }
    }

    #[test]
    fn parse_names_and_hex() {
        assert_eq!(Gfp::parse("GFP_KERNEL"), Some(GFP_KERNEL));
        assert_eq!(Gfp::parse("gfp_atomic|__gfp_zero"), Some(GFP_ATOMIC | Gfp::GFP_ZERO));
        assert_eq!(Gfp::parse("0xcc0"), Some(GFP_KERNEL));
        assert_eq!(Gfp::parse("GFP_DMA"), Some(GFP_DMA));
        assert_eq!(Gfp::parse("GFP_BOGUS"), None);
        assert_eq!(Gfp::parse("0x80000000"), None);
        assert_eq!(Gfp::parse("GFP_KERNEL|"), None);
    }
}
