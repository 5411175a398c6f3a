//! Decoding of ESR_EL1 (exception syndrome) into words, as Linux prints it in oops
//! reports (`EC = 0x25: DABT (current EL), IL = 32 bits`, `level 3 translation fault`).

use core::fmt;

/// Exception class: ESR bits `[31:26]`.
pub const fn ec(esr: u64) -> u32 {
    ((esr >> 26) & 0x3f) as u32
}

/// Instruction-specific syndrome: ESR bits `[24:0]`.
pub const fn iss(esr: u64) -> u32 {
    (esr & 0x1ff_ffff) as u32
}

/// Exception class names, Linux's esr_class_str.
pub fn class_str(ec: u32) -> &'static str {
    match ec {
        0x00 => "Unknown/Uncategorized",
        0x01 => "WFI/WFE",
        0x03 => "CP15 MCR/MRC",
        0x04 => "CP15 MCRR/MRRC",
        0x05 => "CP14 MCR/MRC",
        0x06 => "CP14 LDC/STC",
        0x07 => "ASIMD",
        0x08 => "CP10 MRC/VMRS",
        0x0c => "CP14 MCRR/MRRC",
        0x0d => "BTI",
        0x0e => "PSTATE.IL",
        0x11 => "SVC (AArch32)",
        0x12 => "HVC (AArch32)",
        0x13 => "SMC (AArch32)",
        0x15 => "SVC (AArch64)",
        0x16 => "HVC (AArch64)",
        0x17 => "SMC (AArch64)",
        0x18 => "MSR/MRS (AArch64)",
        0x19 => "SVE",
        0x1f => "EL3 IMP DEF",
        0x20 => "IABT (lower EL)",
        0x21 => "IABT (current EL)",
        0x22 => "PC Alignment",
        0x24 => "DABT (lower EL)",
        0x25 => "DABT (current EL)",
        0x26 => "SP Alignment",
        0x28 => "FP (AArch32)",
        0x2c => "FP (AArch64)",
        0x2f => "SError",
        0x30 => "Breakpoint (lower EL)",
        0x31 => "Breakpoint (current EL)",
        0x32 => "Software Step (lower EL)",
        0x33 => "Software Step (current EL)",
        0x34 => "Watchpoint (lower EL)",
        0x35 => "Watchpoint (current EL)",
        0x38 => "BKPT (AArch32)",
        0x3a => "Vector catch (AArch32)",
        0x3c => "BRK (AArch64)",
        _ => "UNRECOGNIZED EC",
    }
}

/// Whether the class is an instruction or data abort.
pub const fn is_abort(ec: u32) -> bool {
    matches!(ec, 0x20 | 0x21 | 0x24 | 0x25)
}

/// Whether the class is a data abort.
pub const fn is_data_abort(ec: u32) -> bool {
    matches!(ec, 0x24 | 0x25)
}

/// Whether the class is an instruction abort.
pub const fn is_instruction_abort(ec: u32) -> bool {
    matches!(ec, 0x20 | 0x21)
}

/// The kind of fault a DFSC/IFSC status code names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Address size fault at a level.
    AddressSize(i8),
    /// No valid translation at a level.
    Translation(i8),
    /// Access flag clear at a level.
    AccessFlag(i8),
    /// Permissions refuse the access at a level.
    Permission(i8),
    /// Synchronous external abort.
    External,
    /// Alignment fault.
    Alignment,
    /// TLB conflict.
    TlbConflict,
    /// Anything else.
    Other(u32),
}

impl FaultKind {
    /// Decodes a fault status code (ESR ISS bits `[5:0]` of an abort).
    pub fn from_fsc(fsc: u32) -> Self {
        let level = (fsc & 3) as i8;
        match fsc & 0x3f {
            0x00..=0x03 => FaultKind::AddressSize(level),
            0x04..=0x07 => FaultKind::Translation(level),
            0x09..=0x0b => FaultKind::AccessFlag(level),
            0x0d..=0x0f => FaultKind::Permission(level),
            0x10 => FaultKind::External,
            0x21 => FaultKind::Alignment,
            0x30 => FaultKind::TlbConflict,
            other => FaultKind::Other(other),
        }
    }
    /// Whether this is a permission fault (mapped, but not for this access).
    pub fn is_permission(self) -> bool {
        matches!(self, FaultKind::Permission(_))
    }
}

/// Linux's fault_info strings: `level 3 translation fault`.
impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FaultKind::AddressSize(l) => write!(f, "level {l} address size fault"),
            FaultKind::Translation(l) => write!(f, "level {l} translation fault"),
            FaultKind::AccessFlag(l) => write!(f, "level {l} access flag fault"),
            FaultKind::Permission(l) => write!(f, "level {l} permission fault"),
            FaultKind::External => f.write_str("synchronous external abort"),
            FaultKind::Alignment => f.write_str("alignment fault"),
            FaultKind::TlbConflict => f.write_str("TLB conflict abort"),
            FaultKind::Other(c) => write!(f, "unknown fault status {c:#x}"),
        }
    }
}

/// A decoded abort syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// The raw ESR.
    pub esr: u64,
    /// What went wrong.
    pub kind: FaultKind,
    /// A data write (WnR) rather than a read.
    pub write: bool,
    /// An instruction fetch.
    pub exec: bool,
}

impl Abort {
    /// Decodes an abort ESR; `None` if the class is not an abort.
    pub fn decode(esr: u64) -> Option<Abort> {
        let class = ec(esr);
        if !is_abort(class) {
            return None;
        }
        let iss = iss(esr);
        let exec = is_instruction_abort(class);
        // WnR is bit 6; cache maintenance (CM, bit 8) reports as a write but is not.
        let write = !exec && iss & (1 << 6) != 0 && iss & (1 << 8) == 0;
        Some(Abort { esr, kind: FaultKind::from_fsc(iss & 0x3f), write, exec })
    }
    /// `read`, `write` or `exec`.
    pub fn access(&self) -> &'static str {
        if self.exec {
            "exec"
        } else if self.write {
            "write"
        } else {
            "read"
        }
    }
}

/// Writes Linux's `Mem abort info:` block (and `Data abort info:` for data aborts).
pub fn write_mem_abort_info(w: &mut dyn fmt::Write, esr: u64) -> fmt::Result {
    let class = ec(esr);
    let iss = iss(esr);
    writeln!(w, "Mem abort info:")?;
    writeln!(w, "  ESR = {esr:#010x}")?;
    writeln!(w, "  EC = {class:#04x}: {}, IL = {} bits", class_str(class), if esr & (1 << 25) != 0 { 32 } else { 16 })?;
    writeln!(w, "  SET = {}, FnV = {}", (iss >> 11) & 3, (iss >> 10) & 1)?;
    writeln!(w, "  EA = {}, S1PTW = {}", (iss >> 9) & 1, (iss >> 7) & 1)?;
    writeln!(w, "  FSC = {:#04x}: {}", iss & 0x3f, FaultKind::from_fsc(iss & 0x3f))?;
    if is_data_abort(class) {
        writeln!(w, "Data abort info:")?;
        writeln!(w, "  ISV = {}, ISS = {:#010x}", (iss >> 24) & 1, iss)?;
        writeln!(w, "  CM = {}, WnR = {}", (iss >> 8) & 1, (iss >> 6) & 1)?;
    }
    Ok(())
}

/// Linux's pstate line: `600003c5 (nZCv DAIF -PAN -UAO)`.
pub struct Pstate(pub u64);

impl fmt::Display for Pstate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        let flag = |bit: u32, c: char| {
            if p & (1 << bit) != 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        };
        let daif = |bit: u32, c: char| {
            if p & (1 << bit) != 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        };
        write!(
            f,
            "{:08x} ({}{}{}{} {}{}{}{} {}PAN {}UAO)",
            p,
            flag(31, 'n'),
            flag(30, 'z'),
            flag(29, 'c'),
            flag(28, 'v'),
            daif(9, 'd'),
            daif(8, 'a'),
            daif(7, 'i'),
            daif(6, 'f'),
            if p & (1 << 22) != 0 { '+' } else { '-' },
            if p & (1 << 23) != 0 { '+' } else { '-' },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_read_translation_fault() {
        // Read at level 1 translation fault, current EL: what `crash null` produces.
        let esr = 0x9600_0005;
        assert_eq!(ec(esr), 0x25);
        assert_eq!(class_str(ec(esr)), "DABT (current EL)");
        let a = Abort::decode(esr).unwrap();
        assert_eq!(a.kind, FaultKind::Translation(1));
        assert_eq!(a.access(), "read");
        assert_eq!(a.kind.to_string(), "level 1 translation fault");
    }

    #[test]
    fn write_permission_and_exec() {
        let w = Abort::decode(0x9600_004f).unwrap();
        assert!(w.write);
        assert_eq!(w.kind.to_string(), "level 3 permission fault");
        let x = Abort::decode(0x8600_000f).unwrap();
        assert!(x.exec && !x.write);
        assert_eq!(x.access(), "exec");
        assert_eq!(class_str(ec(0x8600_000f)), "IABT (current EL)");
        // Cache maintenance sets WnR but is not a write.
        assert!(!Abort::decode(0x9600_0146).unwrap().write);
    }

    #[test]
    fn non_aborts_and_names() {
        assert!(Abort::decode(0xf200_0000).is_none());
        assert_eq!(class_str(ec(0xf200_0000)), "BRK (AArch64)");
        assert_eq!(class_str(0), "Unknown/Uncategorized");
        assert_eq!(class_str(0x2f), "SError");
        assert_eq!(FaultKind::from_fsc(0x21).to_string(), "alignment fault");
        assert_eq!(FaultKind::from_fsc(0x0a).to_string(), "level 2 access flag fault");
    }

    #[test]
    fn abort_info_block() {
        let mut s = String::new();
        write_mem_abort_info(&mut s, 0x9600_0045).unwrap();
        assert!(s.contains("  ESR = 0x96000045\n"), "{s}");
        assert!(s.contains("  EC = 0x25: DABT (current EL), IL = 32 bits\n"), "{s}");
        assert!(s.contains("  FSC = 0x05: level 1 translation fault\n"), "{s}");
        assert!(s.contains("  CM = 0, WnR = 1\n"), "{s}");
    }

    #[test]
    fn pstate_like_linux() {
        assert_eq!(Pstate(0x600003c5).to_string(), "600003c5 (nZCv DAIF -PAN -UAO)");
        assert_eq!(Pstate(0x20000005).to_string(), "20000005 (nzCv daif -PAN -UAO)");
    }
}
