//! /proc/vmallocinfo and the lookups behind Linux-like fault reports on vmalloc addresses.

use core::fmt;

use crate::addr::VirtAddr;
use crate::pgtable::{Access, FaultInfo, PageTable, PhysMemory, TlbMaint};

use super::area::{VmArea, VmKind};
use super::state::Vmalloc;

/// What an address in the vmalloc or ioremap range belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmHit {
    /// Inside a live area.
    Area(VirtAddr, VmArea),
    /// In the guard page just after a live area (an overrun).
    Guard(VirtAddr, VmArea),
    /// Inside an area freed recently (a use after free).
    Freed(VirtAddr, VmArea),
}

fn kind_name(k: VmKind) -> &'static str {
    match k {
        VmKind::Vmalloc => "vmalloc",
        VmKind::Vmap => "vmap",
        VmKind::Ioremap => "ioremap",
    }
}

impl fmt::Display for VmHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (va, a) = match self {
            VmHit::Area(v, a) | VmHit::Guard(v, a) | VmHit::Freed(v, a) => (v, a),
        };
        let (s, e) = (a.start.as_u64(), a.end().as_u64());
        // An area mapped (in part) with 2 MiB blocks says so: its faults are level-2 ones.
        let huge = if a.huge != 0 { "huge " } else { "" };
        match self {
            VmHit::Area(..) => write!(
                f,
                "{va:#x} is {} bytes inside {huge}{} area [{s:#x}-{e:#x}] allocated by {}",
                va.as_u64() - s,
                kind_name(a.kind),
                a.caller
            ),
            VmHit::Guard(..) => write!(
                f,
                "{va:#x} is in the guard page after {huge}{} area [{s:#x}-{e:#x}] allocated by {}",
                kind_name(a.kind),
                a.caller
            ),
            VmHit::Freed(..) => {
                write!(f, "access to freed {huge}{} area [{s:#x}-{e:#x}] allocated by {}", kind_name(a.kind), a.caller)
            }
        }
    }
}

impl Vmalloc {
    /// Classifies `va` for a fault report: live area, guard page, or recently freed area.
    pub fn lookup(&self, va: VirtAddr) -> Option<VmHit> {
        for areas in [&self.vmalloc, &self.ioremap] {
            if let Some(a) = areas.find(va) {
                return Some(VmHit::Area(va, *a));
            }
            if let Some(a) = areas.find_guard(va) {
                return Some(VmHit::Guard(va, *a));
            }
        }
        for areas in [&self.vmalloc, &self.ioremap] {
            if let Some(a) = areas.find_freed(va) {
                return Some(VmHit::Freed(va, *a));
            }
        }
        None
    }

    /// Writes a Linux-like report of a kernel fault at `va`:
    ///
    /// ```text
    /// Unable to handle kernel paging request at virtual address ffffffa000002000
    ///   FSC = 0x07: level 3 translation fault
    ///   0xffffffa000002000 is in the guard page after vmalloc area [...] allocated by foo
    /// ```
    pub fn report_fault<M: PhysMemory, T: TlbMaint>(
        &self,
        pt: &PageTable<M, T>,
        va: VirtAddr,
        access: Access,
        w: &mut dyn fmt::Write,
    ) -> fmt::Result {
        writeln!(w, "Unable to handle kernel paging request at virtual address {:016x}", va.as_u64())?;
        match pt.access_fault(va, access) {
            FaultInfo::Mapped(t) => writeln!(w, "  no fault: mapped at level {} to {:#x}", t.level, t.pa)?,
            f => writeln!(w, "  FSC = {:#04x}: {f}", f.fsc().unwrap_or(0))?,
        }
        if let Some(hit) = self.lookup(va) {
            writeln!(w, "  {hit}")?;
        }
        Ok(())
    }

    /// Writes /proc/vmallocinfo exactly as Linux 5.10 does (`%7ld` size, guard page
    /// included; no NUMA counts on this single-node machine):
    ///
    /// `0xffffffa000000000-0xffffffa000003000    12288 caller pages=2 vmalloc`
    /// `0xffffffb000000000-0xffffffb000002000    8192 caller phys=0x000000003f200000 ioremap`
    ///
    /// plus ` huge=N` after a vmalloc area mapped with N 2 MiB blocks:
    ///
    /// `0xffffffa000200000-0xffffffa000601000 4198400 caller pages=1024 vmalloc huge=2`
    pub fn vmallocinfo(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        for a in self.vmalloc.iter().chain(self.ioremap.iter()) {
            let s = a.start.as_u64();
            write!(w, "0x{s:016x}-0x{:016x} {:>7} {}", s + a.reserved(), a.reserved(), a.caller)?;
            if a.kind == VmKind::Vmalloc && a.nr_pages != 0 {
                write!(w, " pages={}", a.nr_pages)?;
            }
            if let Some(p) = a.phys_addr {
                write!(w, " phys=0x{:016x}", p.as_u64())?;
            }
            write!(w, " {}", kind_name(a.kind))?;
            if a.huge != 0 {
                // Not in Linux's output (which has no such flag): how many 2 MiB blocks.
                write!(w, " huge={}", a.huge)?;
            }
            writeln!(w)?;
        }
        Ok(())
    }
}
