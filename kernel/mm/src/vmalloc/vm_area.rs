//! [`VmArea`]: one reserved range of the vmalloc or ioremap space (Linux's `vm_struct`),
//! what it is for, and why a reservation can fail.

use core::fmt;

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// The unmapped page after every area.
pub const GUARD_SIZE: u64 = PAGE_SIZE as u64;

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
    /// 2 MiB blocks among the mapped pages (a huge vmalloc; 0 for page mappings).
    pub huge: usize,
}

impl VmArea {
    /// A free range of the vmap space: `len` bytes from `start`, nothing mapped.
    pub(crate) fn free_range(start: u64, len: u64) -> VmArea {
        VmArea {
            start: VirtAddr::new(start),
            size: len,
            caller: "",
            nr_pages: 0,
            kind: VmKind::Vmalloc,
            phys_addr: None,
            huge: 0,
        }
    }

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
    /// No memory for the area's bookkeeping node.
    NoMemory,
}

impl fmt::Display for AreaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AreaError::ZeroSize => f.write_str("zero-size area"),
            AreaError::Overflow => f.write_str("area size overflows"),
            AreaError::Exhausted(n) => write!(f, "no free virtual range of {n} bytes"),
            AreaError::NotFound(va) => write!(f, "no area starts at {va:#x}"),
            AreaError::NoMemory => f.write_str("no memory for a vmap_area"),
        }
    }
}
