//! Physical and virtual addresses as distinct types, so that one is never used as the
//! other by accident, and page-frame numbers.

use core::fmt;

pub use consts::page_def::{PAGE_SHIFT, PAGE_SIZE};

/// A physical (bus-side, ARM view) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u64);

/// A kernel virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(u64);

/// A page-frame number: a physical address shifted right by [`PAGE_SHIFT`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[repr(transparent)]
pub struct Pfn(pub u64);

macro_rules! addr_common {
    ($t:ident, $prefix:literal) => {
        impl $t {
            /// Wraps a raw address.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }
            /// The raw address.
            pub const fn as_u64(self) -> u64 {
                self.0
            }
            /// The raw address as `usize`.
            pub const fn as_usize(self) -> usize {
                self.0 as usize
            }
            /// Rounds down to a multiple of `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }
            /// Rounds up to a multiple of `align` (a power of two); saturates at the top.
            pub const fn align_up(self, align: u64) -> Self {
                match self.0.checked_add(align - 1) {
                    Some(v) => Self(v & !(align - 1)),
                    None => Self(u64::MAX & !(align - 1)),
                }
            }
            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
            /// Whether the address is page aligned.
            pub const fn is_page_aligned(self) -> bool {
                self.is_aligned(PAGE_SIZE as u64)
            }
            /// The address `bytes` further on.
            pub const fn add(self, bytes: u64) -> Self {
                Self(self.0 + bytes)
            }
            /// Checked form of [`Self::add`].
            pub const fn checked_add(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
            /// The address `bytes` before.
            pub const fn sub(self, bytes: u64) -> Self {
                Self(self.0 - bytes)
            }
            /// Offset within its page.
            pub const fn page_offset(self) -> u64 {
                self.0 & (PAGE_SIZE as u64 - 1)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "({:#x})"), self.0)
            }
        }
        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

addr_common!(PhysAddr, "PhysAddr");
addr_common!(VirtAddr, "VirtAddr");

impl PhysAddr {
    /// The frame this address lies in.
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }
}

impl VirtAddr {
    /// A pointer to the address (it is the caller's business whether it is mapped).
    pub const fn as_ptr<T>(self) -> *const T {
        self.0 as usize as *const T
    }
    /// A mutable pointer to the address.
    pub const fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as usize as *mut T
    }
}

impl Pfn {
    /// First byte of the frame.
    pub const fn phys(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }
}

/// Number of pages needed to hold `bytes` (rounded up); `None` on overflow.
pub const fn pages_for(bytes: usize) -> Option<usize> {
    match bytes.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v >> PAGE_SHIFT),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_and_pfn() {
        let p = PhysAddr::new(0x1234_5678);
        assert_eq!(p.align_down(0x1000).as_u64(), 0x1234_5000);
        assert_eq!(p.align_up(0x1000).as_u64(), 0x1234_6000);
        assert!(!p.is_page_aligned());
        assert_eq!(p.pfn(), Pfn(0x12345));
        assert_eq!(Pfn(0x12345).phys().as_u64(), 0x1234_5000);
        assert_eq!(p.page_offset(), 0x678);
        assert_eq!(VirtAddr::new(u64::MAX - 1).align_up(0x1000).as_u64(), !0xfff);
        assert_eq!(pages_for(1), Some(1));
        assert_eq!(pages_for(4096), Some(1));
        assert_eq!(pages_for(4097), Some(2));
        assert_eq!(pages_for(usize::MAX), None);
        assert_eq!(format!("{:?}", VirtAddr::new(0x10)), "VirtAddr(0x10)");
    }
}
