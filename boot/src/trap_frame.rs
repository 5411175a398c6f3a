//! The register frame `vectors.S` saves on every exception.

/// Registers at the time of the exception, as saved by `vectors.S` (288 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    /// x0..x30 (x29 is the frame pointer, x30 the link register).
    pub regs: [u64; 31],
    /// The interrupted stack pointer.
    pub sp: u64,
    /// Exception link register: where the exception was taken.
    pub elr: u64,
    /// Saved program status.
    pub spsr: u64,
    /// Exception syndrome.
    pub esr: u64,
    /// Fault address (valid for aborts).
    pub far: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 288);

/// Which vector was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionKind {
    /// Synchronous exception (abort, undefined instruction, breakpoint, ...).
    Sync,
    /// Interrupt.
    Irq,
    /// Fast interrupt.
    Fiq,
    /// System error (asynchronous abort).
    SError,
    /// Synchronous exception with the stack pointer in a stack guard page.
    StackOverflow,
}

/// Where the exception came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionSource {
    /// EL1 using SP_EL0.
    CurrentElSp0,
    /// EL1 using SP_EL1 (the kernel's normal state).
    CurrentElSpx,
    /// EL0, AArch64.
    LowerEl64,
    /// EL0, AArch32.
    LowerEl32,
}

/// Decodes `vectors.S`'s kind number: source * 4 + type, or 16 for a stack overflow.
pub fn decode_kind(kind: u64) -> (ExceptionSource, ExceptionKind) {
    if kind == 16 {
        return (ExceptionSource::CurrentElSpx, ExceptionKind::StackOverflow);
    }
    let source = match (kind >> 2) & 3 {
        0 => ExceptionSource::CurrentElSp0,
        1 => ExceptionSource::CurrentElSpx,
        2 => ExceptionSource::LowerEl64,
        _ => ExceptionSource::LowerEl32,
    };
    let ty = match kind & 3 {
        0 => ExceptionKind::Sync,
        1 => ExceptionKind::Irq,
        2 => ExceptionKind::Fiq,
        _ => ExceptionKind::SError,
    };
    (source, ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(decode_kind(4), (ExceptionSource::CurrentElSpx, ExceptionKind::Sync));
        assert_eq!(decode_kind(7), (ExceptionSource::CurrentElSpx, ExceptionKind::SError));
        assert_eq!(decode_kind(9), (ExceptionSource::LowerEl64, ExceptionKind::Irq));
        assert_eq!(decode_kind(16).1, ExceptionKind::StackOverflow);
    }
}
