//! Read-only cursor walks: translation, fault classification (for Linux-like fault
//! reports), leaf iteration and a ptdump-style dump.

use core::fmt;

use crate::addr::{PhysAddr, VirtAddr};

use super::cursor::Cursor;
use super::desc::{DescKind, Prot};
use super::table::{level_size, PageTable};
use super::{PhysMemory, TlbMaint};

/// Where a VA leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the VA itself (page offset included).
    pub pa: PhysAddr,
    /// Attributes of the leaf.
    pub prot: Prot,
    /// Level of the leaf: 3 page, 2 2 MiB block, 1 1 GiB block.
    pub level: u32,
}

/// One leaf descriptor, as [`PageTable::for_each_leaf`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// First VA the leaf maps.
    pub va: VirtAddr,
    /// First PA.
    pub pa: PhysAddr,
    /// Bytes mapped.
    pub size: u64,
    /// Level (3 = page).
    pub level: u32,
    /// Attributes.
    pub prot: Prot,
}

/// How the hardware walk of a VA ends, for fault reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultInfo {
    /// The VA is mapped: no translation fault.
    Mapped(Translation),
    /// The walk found an invalid (or reserved) descriptor at `level`.
    Translation {
        /// Level of the table holding the invalid entry.
        level: u32,
    },
    /// Mapped, but the access is not allowed by the leaf at `level`.
    Permission {
        /// Level of the leaf.
        level: u32,
    },
    /// The VA is outside the range of this table (TxSZ): a level-0 translation fault.
    OutOfRange,
}

/// The kind of access for [`PageTable::access_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Exec,
}

impl FaultInfo {
    /// The ESR_ELx.DFSC/IFSC code the hardware would report (`None` if mapped): 0x04 + level
    /// for translation faults, 0x0c + level for permission faults.
    pub const fn fsc(&self) -> Option<u32> {
        match self {
            FaultInfo::Mapped(_) => None,
            FaultInfo::Translation { level } => Some(0x04 + *level),
            FaultInfo::Permission { level } => Some(0x0c + *level),
            FaultInfo::OutOfRange => Some(0x04),
        }
    }
}

/// `level 2 translation fault` / `level 3 permission fault`, as Linux's ESR decoding says.
impl fmt::Display for FaultInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultInfo::Mapped(t) => write!(f, "mapped at level {} to {:#x}", t.level, t.pa),
            FaultInfo::Translation { level } => write!(f, "level {level} translation fault"),
            FaultInfo::Permission { level } => write!(f, "level {level} permission fault"),
            FaultInfo::OutOfRange => f.write_str("level 0 translation fault"),
        }
    }
}

/// Linux's names of the table levels (4-level naming).
pub const fn level_name(level: u32) -> &'static str {
    match level {
        0 => "PGD",
        1 => "PUD",
        2 => "PMD",
        _ => "PTE",
    }
}

impl<M: PhysMemory, T: TlbMaint> PageTable<M, T> {
    /// Walks like the hardware does and says where it stops.
    pub fn fault_info(&self, va: VirtAddr) -> FaultInfo {
        if !self.in_range(va) {
            return FaultInfo::OutOfRange;
        }
        let mut c = Cursor::new(self, va.as_u64(), 1);
        let d = c.read_leaf();
        let level = c.level();
        match d.kind(level) {
            DescKind::Block | DescKind::Page => {
                let off = va.as_u64() & (level_size(level) - 1);
                FaultInfo::Mapped(Translation { pa: PhysAddr::new(d.addr() + off), prot: d.prot(), level })
            }
            _ => FaultInfo::Translation { level },
        }
    }

    /// [`Self::fault_info`], plus the permission check of `access` at EL1.
    pub fn access_fault(&self, va: VirtAddr, access: Access) -> FaultInfo {
        match self.fault_info(va) {
            FaultInfo::Mapped(t) => {
                let ok = match access {
                    Access::Read => true,
                    Access::Write => t.prot.is_writable(),
                    Access::Exec => t.prot.is_executable(),
                };
                if ok {
                    FaultInfo::Mapped(t)
                } else {
                    FaultInfo::Permission { level: t.level }
                }
            }
            other => other,
        }
    }

    /// The PA and attributes `va` translates to, if mapped.
    pub fn translate(&self, va: VirtAddr) -> Option<Translation> {
        match self.fault_info(va) {
            FaultInfo::Mapped(t) => Some(t),
            _ => None,
        }
    }

    /// Calls `f` for every leaf intersecting [va, va + size), in VA order.
    pub fn for_each_leaf(&self, va: VirtAddr, size: u64, f: &mut dyn FnMut(Leaf)) {
        if size == 0 || !self.in_range(va) {
            return;
        }
        let room = self.config().va_span() - (va.as_u64() - self.config().va_base());
        let mut c = Cursor::new(self, va.as_u64(), size.min(room));
        while !c.done() {
            let d = c.read_leaf();
            let level = c.level();
            match d.kind(level) {
                DescKind::Block | DescKind::Page => f(Leaf {
                    va: VirtAddr::new(c.base()),
                    pa: PhysAddr::new(d.addr()),
                    size: c.entry_size(),
                    level,
                    prot: d.prot(),
                }),
                _ => {}
            }
            c.advance();
        }
    }

    /// Number of tables in the tree, root included.
    pub fn count_tables(&self) -> usize {
        let cfg = self.config();
        let mut c = Cursor::new(self, cfg.va_base(), cfg.va_span());
        let mut n = 1;
        while !c.done() {
            let d = c.read();
            if d.kind(c.level()) == DescKind::Table {
                n += 1;
                c.descend(d.addr());
            } else {
                c.advance();
            }
        }
        n
    }

    /// Prints the mappings of [va, va + size) like Linux's ptdump, one line per run of
    /// same-level, same-attribute leaves:
    /// `0xffffff8000000000-0xffffff8040000000           1G PMD     RW NX SHD AF    UXN MEM/NORMAL`.
    pub fn dump(&self, w: &mut dyn fmt::Write, va: VirtAddr, size: u64) -> fmt::Result {
        let mut run: Option<(u64, u64, u32, Prot)> = None;
        let mut res = Ok(());
        let emit = |w: &mut dyn fmt::Write, r: (u64, u64, u32, Prot)| -> fmt::Result {
            let (start, len, level, prot) = r;
            let end = start.wrapping_add(len);
            writeln!(w, "0x{start:016x}-0x{end:016x} {:>12} {} {prot}", Size(len), level_name(level))
        };
        self.for_each_leaf(va, size, &mut |l| {
            if res.is_err() {
                return;
            }
            match &mut run {
                Some((s, len, lv, p)) if *lv == l.level && *p == l.prot && s.wrapping_add(*len) == l.va.as_u64() => {
                    *len += l.size;
                }
                _ => {
                    if let Some(r) = run.take() {
                        res = emit(w, r);
                    }
                    run = Some((l.va.as_u64(), l.size, l.level, l.prot));
                }
            }
        });
        res?;
        match run {
            Some(r) => emit(w, r),
            None => Ok(()),
        }
    }
}

/// Sizes like ptdump: `4K`, `2M`, `1G`, `12K`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (v, unit) = if self.0.is_multiple_of(1 << 30) {
            (self.0 >> 30, "G")
        } else if self.0.is_multiple_of(1 << 20) {
            (self.0 >> 20, "M")
        } else {
            (self.0 >> 10, "K")
        };
        let mut buf = [0u8; 24];
        let mut n = 0;
        let mut x = v;
        loop {
            buf[n] = b'0' + (x % 10) as u8;
            n += 1;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        buf[..n].reverse();
        buf[n] = unit.as_bytes()[0];
        n += 1;
        // Only ASCII digits and a unit letter were written.
        f.pad(core::str::from_utf8(&buf[..n]).unwrap_or("?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault status codes the hardware reports (ESR_ELx.DFSC/IFSC, Arm ARM D17.2):
    /// translation faults 0b0001LL, permission faults 0b0011LL; an address outside the
    /// regime is a level-0 translation fault. Linux's level names.
    #[test]
    fn fault_codes_and_level_names_are_the_architectures() {
        let t = |level| FaultInfo::Translation { level }.fsc();
        let p = |level| FaultInfo::Permission { level }.fsc();
        assert_eq!([t(0), t(1), t(2), t(3)], [Some(0x04), Some(0x05), Some(0x06), Some(0x07)]);
        assert_eq!([p(1), p(2), p(3)], [Some(0x0d), Some(0x0e), Some(0x0f)]);
        assert_eq!(FaultInfo::OutOfRange.fsc(), Some(0x04));
        let mapped = Translation { pa: PhysAddr::new(0x1000), prot: Prot::KERNEL_RW, level: 3 };
        assert_eq!(FaultInfo::Mapped(mapped).fsc(), None);
        assert_eq!([0, 1, 2, 3].map(level_name), ["PGD", "PUD", "PMD", "PTE"]);
    }
}
