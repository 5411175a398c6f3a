//! vmalloc errors, printed as Linux prints them.

use core::fmt;

use crate::addr::VirtAddr;
use crate::gfp::Gfp;
use crate::pgtable::PtError;

use super::area::AreaError;

/// Why a vmalloc failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmallocFail {
    /// Size 0 (Linux returns NULL without a report).
    ZeroSize,
    /// No virtual range large enough, or the size overflows.
    NoVirtualSpace(AreaError),
    /// The page allocator failed.
    NoPages,
    /// A page-table page could not be allocated.
    NoTablePages,
    /// The page tables refused the mapping (a bug: the area was free).
    Map(PtError),
}

/// A failed vmalloc, fully unwound: nothing allocated remains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmallocError {
    /// Bytes of pages obtained before the failure (all given back).
    pub allocated_bytes: u64,
    /// Bytes asked, rounded up to pages.
    pub requested_bytes: u64,
    /// Flags of the request.
    pub gfp: Gfp,
    /// What ran out.
    pub reason: VmallocFail,
}

/// `vmalloc: allocation failure, allocated 8192 of 65536 bytes, mode:0xcc0(GFP_KERNEL)`,
/// or `vmalloc: allocation failure: 65536 bytes, mode:0xcc0(GFP_KERNEL)` when no virtual
/// range was found (Linux's two `warn_alloc` texts).
impl fmt::Display for VmallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            VmallocFail::ZeroSize => write!(f, "vmalloc: zero-size allocation, mode:{}", self.gfp),
            VmallocFail::NoVirtualSpace(_) => {
                write!(f, "vmalloc: allocation failure: {} bytes, mode:{}", self.requested_bytes, self.gfp)
            }
            _ => write!(
                f,
                "vmalloc: allocation failure, allocated {} of {} bytes, mode:{}",
                self.allocated_bytes, self.requested_bytes, self.gfp
            ),
        }
    }
}

/// Errors of vfree, vmap, vunmap, ioremap and iounmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// No live area of the right kind starts at this address.
    NotAnArea(VirtAddr),
    /// No virtual space, zero size or overflow.
    Area(AreaError),
    /// The page tables failed (out of table pages: everything was unwound).
    Map(PtError),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::NotAnArea(va) => write!(f, "Trying to vfree() nonexistent vm area ({va:#x})"),
            VmError::Area(e) => write!(f, "vmap: {e}"),
            VmError::Map(e) => write!(f, "vmap: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::GFP_KERNEL;

    fn err(reason: VmallocFail) -> String {
        VmallocError { allocated_bytes: 8192, requested_bytes: 65536, gfp: GFP_KERNEL, reason }.to_string()
    }

    /// Each failure prints its own line, as Linux's `warn_alloc` texts; every area error
    /// names what went wrong.
    #[test]
    fn each_failure_prints_its_own_text() {
        assert_eq!(err(VmallocFail::ZeroSize), "vmalloc: zero-size allocation, mode:0xcc0(GFP_KERNEL)");
        assert_eq!(
            err(VmallocFail::NoVirtualSpace(AreaError::Exhausted(65536 + 4096))),
            "vmalloc: allocation failure: 65536 bytes, mode:0xcc0(GFP_KERNEL)"
        );
        for r in [VmallocFail::NoPages, VmallocFail::NoTablePages] {
            assert_eq!(err(r), "vmalloc: allocation failure, allocated 8192 of 65536 bytes, mode:0xcc0(GFP_KERNEL)");
        }
        let va = VirtAddr::new(0xffff_ff80_0000_3000);
        for (e, text) in [
            (AreaError::ZeroSize, "zero-size area"),
            (AreaError::Overflow, "area size overflows"),
            (AreaError::Exhausted(8192), "no free virtual range of 8192 bytes"),
            (AreaError::NotFound(va), "no area starts at 0xffffff8000003000"),
            (AreaError::NoMemory, "no memory for a vmap_area"),
        ] {
            assert_eq!(e.to_string(), text);
            assert_eq!(VmError::Area(e).to_string(), format!("vmap: {text}"));
        }
        assert_eq!(VmError::NotAnArea(va).to_string(), "Trying to vfree() nonexistent vm area (0xffffff8000003000)");
    }
}
