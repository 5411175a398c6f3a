//! Why an allocation failed or a free was refused. A refused free leaves the allocator
//! untouched.

use core::fmt;

use crate::gfp::Gfp;

/// A failed `alloc_pages`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AllocFailure {
    /// No zone the request may use has a suitable block above its watermark.
    NoMemory {
        /// Requested order.
        order: u32,
        /// Request flags.
        gfp: Gfp,
    },
    /// `fail_page_alloc` injected the failure.
    Injected {
        /// Requested order.
        order: u32,
        /// Request flags.
        gfp: Gfp,
    },
    /// Order above [`MAX_PAGE_ORDER`](super::MAX_PAGE_ORDER).
    OrderTooLarge {
        /// Requested order.
        order: u32,
        /// Request flags.
        gfp: Gfp,
    },
    /// `init` has not run.
    NotInitialized,
}

impl AllocFailure {
    /// The request's order and flags, if it got that far.
    pub fn request(&self) -> Option<(u32, Gfp)> {
        match *self {
            Self::NoMemory { order, gfp } | Self::Injected { order, gfp } | Self::OrderTooLarge { order, gfp } => {
                Some((order, gfp))
            }
            _ => None,
        }
    }
    /// Whether a failure report (`warn_alloc`) should be printed: not for `__GFP_NOWARN`.
    pub fn should_warn(&self) -> bool {
        match self.request() {
            Some((_, gfp)) => !gfp.contains(Gfp::GFP_NOWARN),
            None => true,
        }
    }
}

impl fmt::Display for AllocFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMemory { order, gfp } => {
                write!(f, "page allocation failure: order:{order}, mode:{gfp}")
            }
            Self::Injected { order, gfp } => {
                write!(f, "page allocation failure (injected): order:{order}, mode:{gfp}")
            }
            Self::OrderTooLarge { order, gfp } => {
                write!(f, "order {order} above MAX_PAGE_ORDER {}, mode:{gfp}", super::MAX_PAGE_ORDER)
            }
            Self::NotInitialized => f.write_str("page allocator not initialized"),
        }
    }
}

/// A refused `free_pages`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FreeError {
    /// The block is already free (on a buddy or per-CPU list).
    DoubleFree {
        /// Frame freed.
        pfn: u64,
        /// Order given.
        order: u32,
    },
    /// The block was allocated with another order.
    WrongOrder {
        /// Frame freed.
        pfn: u64,
        /// Order given.
        order: u32,
        /// Order it was allocated with.
        allocated: u32,
    },
    /// No descriptor: the frame is outside `mem_map`.
    OutsideMemMap {
        /// Frame freed.
        pfn: u64,
    },
    /// A reserved frame (never managed by the allocator).
    Reserved {
        /// Frame freed.
        pfn: u64,
    },
    /// A tail page of a compound allocation.
    TailPage {
        /// Frame freed.
        pfn: u64,
    },
    /// Not the first page of a live allocation.
    NotAllocated {
        /// Frame freed.
        pfn: u64,
        /// Order given.
        order: u32,
    },
    /// `pfn` is not a multiple of `2^order`.
    Unaligned {
        /// Frame freed.
        pfn: u64,
        /// Order given.
        order: u32,
    },
    /// Order above [`MAX_PAGE_ORDER`](super::MAX_PAGE_ORDER).
    OrderTooLarge {
        /// Frame freed.
        pfn: u64,
        /// Order given.
        order: u32,
    },
    /// `init` has not run.
    NotInitialized,
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::DoubleFree { pfn, order } => {
                write!(f, "double free of pfn {pfn:#x} order {order}")
            }
            Self::WrongOrder { pfn, order, allocated } => {
                write!(f, "free of pfn {pfn:#x} with order {order}, allocated with order {allocated}")
            }
            Self::OutsideMemMap { pfn } => write!(f, "free of pfn {pfn:#x} outside mem_map"),
            Self::Reserved { pfn } => write!(f, "free of reserved pfn {pfn:#x}"),
            Self::TailPage { pfn } => write!(f, "free of compound tail pfn {pfn:#x}"),
            Self::NotAllocated { pfn, order } => {
                write!(f, "free of pfn {pfn:#x} order {order}: not an allocated block")
            }
            Self::Unaligned { pfn, order } => {
                write!(f, "free of pfn {pfn:#x} not aligned for order {order}")
            }
            Self::OrderTooLarge { pfn, order } => {
                write!(f, "free of pfn {pfn:#x} order {order} above MAX_PAGE_ORDER {}", super::MAX_PAGE_ORDER)
            }
            Self::NotInitialized => f.write_str("page allocator not initialized"),
        }
    }
}
