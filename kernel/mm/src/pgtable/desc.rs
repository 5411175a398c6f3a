//! AArch64 stage-1 translation descriptors (4 KiB granule) and the [`Prot`] attribute set.
//!
//! Bit names follow Linux's `arch/arm64/include/asm/pgtable-hwdef.h`; the bits are defined
//! in `consts::pgtable_hwdef` (shared with boot's early tables) and re-exported here.

use core::fmt;

use super::layout::{MT_DEVICE_NGNRE, MT_NORMAL, MT_NORMAL_NC};

pub use consts::pgtable_hwdef::{
    attrindx, PTE_ADDR_MASK, PTE_AF, PTE_ATTRINDX_MASK, PTE_NG, PTE_PXN, PTE_RDONLY, PTE_SHARED, PTE_TABLE_BIT,
    PTE_USER, PTE_UXN, PTE_VALID,
};

/// Attribute bits a [`Prot`] may hold.
pub const PROT_MASK: u64 = PTE_ATTRINDX_MASK | PTE_USER | PTE_RDONLY | PTE_SHARED | PTE_AF | PTE_NG | PTE_PXN | PTE_UXN;

/// Software bits 58:55 of a page descriptor (ignored by the walker; Linux keeps its
/// software PTE flags there too): the page is part of a *run*, a naturally aligned block
/// of `2^order` physically contiguous frames mapped by consecutive page descriptors.
/// The first page holds [`run_head`] (`order`, 1..=14), the others [`RUN_TAIL`]. An
/// unmap reports a run once, at its head, with the run's size (the frames are one block
/// of the page allocator), so a run must be unmapped whole. Real hardware: the MMU ignores
/// bits 58:55 of a valid descriptor (reserved for software use in the Armv8-A stage-1
/// format; Cortex-A53 included), as it ignores every bit of an invalid one.
pub const PTE_RUN_MASK: u64 = 0xf << PTE_RUN_SHIFT;
/// First bit of [`PTE_RUN_MASK`].
pub const PTE_RUN_SHIFT: u32 = 55;
/// [`PTE_RUN_MASK`] value of a page inside a run but not its first.
pub const RUN_TAIL: u64 = 0xf << PTE_RUN_SHIFT;
/// Largest run order the encoding holds.
pub const RUN_ORDER_MAX: u32 = 14;

/// [`PTE_RUN_MASK`] value of the first page of a run of `2^order` pages (order 1..=14).
pub const fn run_head(order: u32) -> u64 {
    (order as u64 & 0xf) << PTE_RUN_SHIFT
}

/// The kind of a descriptor, as seen at a given level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescKind {
    /// Bit 0 clear: translation fault if walked.
    Invalid,
    /// Next-level table (levels 0-2).
    Table,
    /// Block (levels 1-2).
    Block,
    /// Page (level 3).
    Page,
    /// Bit 1 clear at level 3, or a block at level 0: reserved encoding.
    Reserved,
}

/// A raw descriptor with helpers.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Desc(pub u64);

impl Desc {
    /// The invalid descriptor.
    pub const INVALID: Desc = Desc(0);

    /// A table descriptor pointing to `pa`.
    pub const fn table(pa: u64) -> Desc {
        Desc((pa & PTE_ADDR_MASK) | PTE_TABLE_BIT | PTE_VALID)
    }
    /// A leaf (block at level 1-2, page at level 3) mapping `pa` with `prot`.
    pub const fn leaf(pa: u64, prot: Prot, level: u32) -> Desc {
        let ty = if level == 3 { PTE_TABLE_BIT } else { 0 };
        Desc((pa & PTE_ADDR_MASK) | prot.0 | ty | PTE_VALID)
    }
    /// Whether bit 0 is set.
    pub const fn is_valid(self) -> bool {
        self.0 & PTE_VALID != 0
    }
    /// Decodes the kind at `level`.
    pub const fn kind(self, level: u32) -> DescKind {
        if !self.is_valid() {
            DescKind::Invalid
        } else if level == 3 {
            if self.0 & PTE_TABLE_BIT != 0 {
                DescKind::Page
            } else {
                DescKind::Reserved
            }
        } else if self.0 & PTE_TABLE_BIT != 0 {
            DescKind::Table
        } else if level == 0 {
            DescKind::Reserved
        } else {
            DescKind::Block
        }
    }
    /// Output (or next-table) address.
    pub const fn addr(self) -> u64 {
        self.0 & PTE_ADDR_MASK
    }
    /// Attributes of a leaf.
    pub const fn prot(self) -> Prot {
        Prot(self.0 & PROT_MASK)
    }
    /// The same descriptor with the run bits ([`PTE_RUN_MASK`]) of `from`.
    pub const fn with_run_of(self, from: Desc) -> Desc {
        Desc((self.0 & !PTE_RUN_MASK) | (from.0 & PTE_RUN_MASK))
    }
    /// Frames a page descriptor stands for when it is unmapped: `Some(order)` for a
    /// single page (0) or the head of a run of `2^order` pages, `None` for a run's other
    /// pages (reported with their head).
    pub const fn run_order(self) -> Option<u32> {
        match self.0 & PTE_RUN_MASK {
            RUN_TAIL => None,
            r => Some((r >> PTE_RUN_SHIFT) as u32),
        }
    }
}

impl fmt::Debug for Desc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Desc({:#018x})", self.0)
    }
}

/// Memory type of a mapping, decoded from AttrIndx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Normal write-back RAM.
    Normal,
    /// Device-nGnRE.
    DeviceNgnre,
    /// Normal non-cacheable.
    NormalNc,
    /// An index this kernel does not program.
    Other(u8),
}

/// The attribute bits of a leaf descriptor (no address, no type bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Prot(u64);

const PROT_NORMAL_BASE: u64 = PTE_AF | PTE_SHARED;

impl Prot {
    /// Kernel data: RW, never executable.
    pub const KERNEL_RW: Prot = Prot(PROT_NORMAL_BASE | attrindx(MT_NORMAL) | PTE_PXN | PTE_UXN);
    /// Kernel read-only data.
    pub const KERNEL_RO: Prot = Prot(Self::KERNEL_RW.0 | PTE_RDONLY);
    /// Kernel text: read-only, executable at EL1 only.
    pub const KERNEL_RX: Prot = Prot(PROT_NORMAL_BASE | attrindx(MT_NORMAL) | PTE_RDONLY | PTE_UXN);
    /// Kernel RW, Normal non-cacheable (DMA buffers).
    pub const KERNEL_RW_NC: Prot = Prot(PROT_NORMAL_BASE | attrindx(MT_NORMAL_NC) | PTE_PXN | PTE_UXN);
    /// Device-nGnRE MMIO: RW, execute-never.
    pub const DEVICE: Prot = Prot(PROT_NORMAL_BASE | attrindx(MT_DEVICE_NGNRE) | PTE_PXN | PTE_UXN);

    /// From raw attribute bits (bits outside [`PROT_MASK`] are dropped).
    pub const fn from_bits(bits: u64) -> Prot {
        Prot(bits & PROT_MASK)
    }
    /// The raw attribute bits.
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// The same, never executable.
    pub const fn noexec(self) -> Prot {
        Prot(self.0 | PTE_PXN | PTE_UXN)
    }
    /// The same, executable at EL1.
    pub const fn exec(self) -> Prot {
        Prot(self.0 & !PTE_PXN)
    }
    /// The same, read-only.
    pub const fn readonly(self) -> Prot {
        Prot(self.0 | PTE_RDONLY)
    }
    /// The same, writable.
    pub const fn writable(self) -> Prot {
        Prot(self.0 & !PTE_RDONLY)
    }
    /// Whether EL1 may write.
    pub const fn is_writable(self) -> bool {
        self.0 & PTE_RDONLY == 0
    }
    /// Whether EL1 may execute.
    pub const fn is_executable(self) -> bool {
        self.0 & PTE_PXN == 0
    }
    /// Whether EL0 may access.
    pub const fn is_user(self) -> bool {
        self.0 & PTE_USER != 0
    }
    /// Memory type from AttrIndx.
    pub const fn mem_type(self) -> MemType {
        match (self.0 & PTE_ATTRINDX_MASK) >> 2 {
            MT_NORMAL => MemType::Normal,
            MT_DEVICE_NGNRE => MemType::DeviceNgnre,
            MT_NORMAL_NC => MemType::NormalNc,
            i => MemType::Other(i as u8),
        }
    }
}

/// Prints like Linux's ptdump: `RW NX SHD AF UXN MEM/NORMAL`.
impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_user() { "USR " } else { "    " })?;
        f.write_str(if self.is_writable() { "RW" } else { "ro" })?;
        f.write_str(if self.is_executable() { " x " } else { " NX" })?;
        f.write_str(if self.0 & PTE_SHARED == PTE_SHARED { " SHD" } else { "    " })?;
        f.write_str(if self.0 & PTE_AF != 0 { " AF" } else { "   " })?;
        f.write_str(if self.0 & PTE_NG != 0 { " NG" } else { "   " })?;
        f.write_str(if self.0 & PTE_UXN != 0 { " UXN" } else { "    " })?;
        match self.mem_type() {
            MemType::Normal => f.write_str(" MEM/NORMAL"),
            MemType::DeviceNgnre => f.write_str(" DEVICE/nGnRE"),
            MemType::NormalNc => f.write_str(" MEM/NORMAL-NC"),
            MemType::Other(i) => write!(f, " ATTR{i}"),
        }
    }
}

impl fmt::Debug for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prot({:#x}:{})", self.0, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run bits (software bits 55..58, which the MMU ignores): a run's head records
    /// its order, its other pages `RUN_TAIL`, a single page nothing; the address and
    /// attributes are untouched, and a protection change carries the bits over.
    #[test]
    fn run_bits_round_trip() {
        let page = Desc::leaf(0x4000_0000, Prot::KERNEL_RW, 3);
        assert_eq!(page.run_order(), Some(0), "a single page");
        assert_eq!(run_head(1), 1 << 55);
        for order in 1..=RUN_ORDER_MAX {
            let head = Desc(page.0 | run_head(order));
            assert_eq!((head.run_order(), head.addr(), head.prot()), (Some(order), page.addr(), page.prot()));
            assert_eq!(head.0 & PTE_RUN_MASK, (order as u64) << PTE_RUN_SHIFT);
        }
        let tail = Desc(page.0 | RUN_TAIL);
        assert_eq!(tail.run_order(), None);
        let ro = Desc::leaf(0x4000_0000, Prot::KERNEL_RO, 3);
        assert_eq!(ro.with_run_of(tail), Desc(ro.0 | RUN_TAIL));
        assert_eq!(Desc(ro.0 | run_head(3)).with_run_of(page), ro, "the run bits replaced, not merged");
    }

    #[test]
    fn encodings_match_linux() {
        // PROT_NORMAL-like values (Linux also sets its software DBM/PTE_WRITE bit).
        assert_eq!(Desc::leaf(0x4000_0000, Prot::KERNEL_RW, 3).0, 0x0060_0000_4000_0703);
        assert_eq!(Desc::leaf(0x4000_0000, Prot::KERNEL_RW, 2).0, 0x0060_0000_4000_0701);
        assert_eq!(Desc::leaf(0x3f20_0000, Prot::DEVICE, 3).0, 0x0060_0000_3f20_0707);
        assert_eq!(Desc::leaf(0, Prot::KERNEL_RX, 3).0, 0x0040_0000_0000_0783);
        assert_eq!(Desc::table(0x8_1000).0, 0x8_1003);
        assert_eq!(Desc::table(0x8_1000).kind(2), DescKind::Table);
        assert_eq!(Desc::leaf(0, Prot::KERNEL_RW, 2).kind(2), DescKind::Block);
        assert_eq!(Desc::leaf(0, Prot::KERNEL_RW, 3).kind(3), DescKind::Page);
        assert_eq!(Desc(1).kind(3), DescKind::Reserved);
        assert_eq!(Desc(0).kind(1), DescKind::Invalid);
    }

    #[test]
    fn combinators_and_decoding() {
        assert!(Prot::KERNEL_RW.is_writable() && !Prot::KERNEL_RW.is_executable());
        assert!(!Prot::KERNEL_RO.is_writable());
        assert!(Prot::KERNEL_RX.is_executable() && !Prot::KERNEL_RX.is_writable());
        assert_eq!(Prot::KERNEL_RX.noexec(), Prot::KERNEL_RO);
        assert_eq!(Prot::KERNEL_RW.readonly(), Prot::KERNEL_RO);
        assert_eq!(Prot::KERNEL_RO.writable(), Prot::KERNEL_RW);
        assert_eq!(Prot::DEVICE.mem_type(), MemType::DeviceNgnre);
        assert_eq!(Prot::KERNEL_RW_NC.mem_type(), MemType::NormalNc);
        let d = Desc::leaf(0x1000, Prot::KERNEL_RX, 3);
        assert_eq!(d.prot(), Prot::KERNEL_RX);
        assert_eq!(d.addr(), 0x1000);
        assert_eq!(Prot::KERNEL_RW.to_string(), "    RW NX SHD AF    UXN MEM/NORMAL");
        assert_eq!(Prot::KERNEL_RX.to_string(), "    ro x  SHD AF    UXN MEM/NORMAL");
        assert_eq!(Prot::DEVICE.to_string(), "    RW NX SHD AF    UXN DEVICE/nGnRE");
    }

    /// Each combinator changes its own bits only, and applied twice is applied once.
    #[test]
    fn combinators_are_idempotent_and_touch_only_their_bits() {
        for p in [Prot::KERNEL_RW, Prot::KERNEL_RO, Prot::KERNEL_RX, Prot::KERNEL_RW_NC, Prot::DEVICE] {
            assert_eq!(p.noexec().bits(), p.bits() | PTE_PXN | PTE_UXN, "{p:?}");
            assert_eq!(p.noexec().noexec(), p.noexec());
            assert_eq!(p.exec().bits(), p.bits() & !PTE_PXN, "{p:?}: exec at EL1 keeps UXN");
            assert!(p.exec().is_executable() && !p.noexec().is_executable());
            assert_eq!(p.readonly().readonly(), p.readonly());
            assert_eq!(p.readonly().bits(), p.bits() | PTE_RDONLY);
            assert!(!p.is_user());
        }
        // Every kernel mapping but text is execute-never, at EL1 and EL0.
        for p in [Prot::KERNEL_RW, Prot::KERNEL_RO, Prot::KERNEL_RW_NC, Prot::DEVICE] {
            assert_eq!(p.bits() & (PTE_PXN | PTE_UXN), PTE_PXN | PTE_UXN, "{p:?}");
        }
        assert_eq!(Prot::KERNEL_RX.exec(), Prot::KERNEL_RX);
        assert_eq!(Prot::KERNEL_RO.exec(), Prot::KERNEL_RX, "text is read-only data made executable");
        let user = Prot::from_bits(Prot::KERNEL_RW.bits() | PTE_USER);
        assert!(user.is_user());
        assert_eq!(user.to_string(), "USR RW NX SHD AF    UXN MEM/NORMAL");
    }

    /// `from_bits` keeps the attribute bits of a whole descriptor and drops the rest.
    #[test]
    fn from_bits_drops_address_type_and_run_bits() {
        let d = Desc::leaf(0x1234_5000, Prot::DEVICE, 3).with_run_of(Desc(RUN_TAIL));
        assert_eq!(Prot::from_bits(d.0), Prot::DEVICE);
        assert_eq!(Prot::from_bits(u64::MAX).bits(), PROT_MASK);
        assert_eq!(Prot::from_bits(0).bits(), 0);
        assert_eq!(format!("{d:?}"), "Desc(0x07e0000012345707)");
        // No attribute bit at all: no AF, no UXN, no SHD printed.
        assert_eq!(Prot::from_bits(0).to_string(), "    RW x                MEM/NORMAL");
        assert_eq!(Prot::from_bits(PTE_AF | PTE_NG).to_string(), "    RW x      AF NG     MEM/NORMAL");
        assert_eq!(
            format!("{:?}", Prot::from_bits(PTE_UXN)),
            "Prot(0x40000000000000:    RW x            UXN MEM/NORMAL)"
        );
    }
}
