//! Oops and panic reports in Linux's arm64 format: what went wrong in words, the
//! registers, and a symbolized call trace, then `Kernel panic - not syncing`.
//!
//! The report is written to any `fmt::Write` from a [`TrapFrame`], a symbol table and a
//! stack reader, so its format is tested on the host.

use crate::arch::aarch64::backtrace;
use crate::arch::aarch64::esr::{self, Abort, Pstate};
use crate::ksyms::{SymbolTable, SymbolizedAddr};
use boot::TrapFrame;
use core::fmt::{self, Write};
use mm::cpu::CpuId;

/// What the platform knows about the machine and the faulting context.
pub struct Context<'a> {
    /// This CPU.
    pub cpu: CpuId,
    /// `Raspberry Pi 3 Model B rev 1.2`.
    pub hardware: &'a dyn fmt::Display,
    /// The kernel's symbols, if the image carries them.
    pub symbols: Option<SymbolTable<'a>>,
    /// Reads a word of a kernel stack (None outside the stacks).
    pub read_stack: &'a dyn Fn(u64) -> Option<u64>,
    /// Extra lines about a fault address (page-table walk, vmalloc area), if any.
    pub describe_address: &'a dyn Fn(&mut dyn Write, u64) -> fmt::Result,
}

/// The kernel's version string for reports and the banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the first line of a fault report calls the fault (`NULL pointer dereference`,
/// `paging request`, ...), or `None` when the exception is not an abort.
pub fn fault_headline(frame: &TrapFrame) -> Option<&'static str> {
    let abort = Abort::decode(frame.esr)?;
    Some(if frame.far < 4096 && !abort.exec {
        "NULL pointer dereference"
    } else if abort.exec && abort.kind.is_permission() {
        "execute from non-executable memory"
    } else if abort.write && abort.kind.is_permission() {
        "write to read-only memory"
    } else {
        "paging request"
    })
}

/// Writes the registers and call-trace part shared by oopses and panics. Nothing here
/// allocates: the fault may have happened inside the allocator.
pub fn write_registers_and_trace(w: &mut dyn Write, frame: &TrapFrame, ctx: &Context<'_>) -> fmt::Result {
    writeln!(w, "CPU: {} PID: 0 Comm: swapper/{} Not tainted {} #1", ctx.cpu, ctx.cpu, VERSION)?;
    writeln!(w, "Hardware name: {}", ctx.hardware)?;
    writeln!(w, "pstate: {}", Pstate(frame.spsr))?;
    writeln!(w, "pc : {}", SymbolizedAddr(ctx.symbols, frame.elr))?;
    writeln!(w, "lr : {}", SymbolizedAddr(ctx.symbols, frame.regs[30]))?;
    writeln!(w, "sp : {:016x}", frame.sp)?;
    // x29 down to x0, three per line like Linux 5.x.
    let mut i = 29i32;
    while i >= 0 {
        for r in ((i - 2).max(0)..=i).rev() {
            let sep = if r == i { "" } else { " " };
            write!(w, "{sep}x{r:<2}: {:016x}", frame.regs[r as usize])?;
        }
        writeln!(w)?;
        i -= 3;
    }
    write_call_trace(w, frame.elr, frame.regs[29], ctx)
}

/// Linux's `dump_stack` for reports made from a running function (allocation failures,
/// slab errors, panics): the CPU and hardware lines, then the callers from the frame
/// chain at `fp`.
pub fn write_dump_stack(w: &mut dyn Write, fp: u64, ctx: &Context<'_>) -> fmt::Result {
    writeln!(w, "CPU: {} PID: 0 Comm: swapper/{} Not tainted {} #1", ctx.cpu, ctx.cpu, VERSION)?;
    writeln!(w, "Hardware name: {}", ctx.hardware)?;
    write_backtrace(w, fp, ctx)
}

/// `Call trace:` of the callers found from the frame chain at `fp`.
pub fn write_backtrace(w: &mut dyn Write, fp: u64, ctx: &Context<'_>) -> fmt::Result {
    writeln!(w, "Call trace:")?;
    let mut result = Ok(());
    backtrace::walk(fp, ctx.read_stack, |ret| {
        if result.is_ok() {
            result = writeln!(w, " {}", SymbolizedAddr(ctx.symbols, ret));
        }
    });
    result
}

/// `Call trace:` from `pc` and the frame chain at `fp`.
pub fn write_call_trace(w: &mut dyn Write, pc: u64, fp: u64, ctx: &Context<'_>) -> fmt::Result {
    writeln!(w, "Call trace:")?;
    writeln!(w, " {}", SymbolizedAddr(ctx.symbols, pc))?;
    let mut result = Ok(());
    backtrace::walk(fp, ctx.read_stack, |ret| {
        if result.is_ok() {
            result = writeln!(w, " {}", SymbolizedAddr(ctx.symbols, ret));
        }
    });
    result
}

/// Writes the complete oops report for a fatal synchronous exception.
pub fn write_oops(w: &mut dyn Write, frame: &TrapFrame, ctx: &Context<'_>, oops_nr: u32) -> fmt::Result {
    let class = esr::ec(frame.esr);
    if let Some(what) = fault_headline(frame) {
        writeln!(w, "Unable to handle kernel {what} at virtual address {:016x}", frame.far)?;
        esr::write_mem_abort_info(w, frame.esr)?;
        (ctx.describe_address)(w, frame.far)?;
        writeln!(w, "Internal error: Oops: {:016x} [#{oops_nr}] SMP", frame.esr)?;
    } else {
        let what = match class {
            0x3c => "BUG",
            0x00 => "undefined instruction",
            _ => esr::class_str(class),
        };
        writeln!(w, "Internal error: Oops - {what}: {:016x} [#{oops_nr}] SMP", frame.esr)?;
        writeln!(w, "  EC = {class:#04x}: {}, ISS = {:#010x}", esr::class_str(class), esr::iss(frame.esr))?;
    }
    writeln!(w, "Modules linked in:")?;
    write_registers_and_trace(w, frame, ctx)?;
    writeln!(w, "---[ end trace {:016x} ]---", 0)?;
    writeln!(w, "Kernel panic - not syncing: Oops: Fatal exception")?;
    writeln!(w, "---[ end Kernel panic - not syncing: Oops: Fatal exception ]---")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(esr: u64, far: u64) -> TrapFrame {
        let mut regs = [0u64; 31];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = i as u64;
        }
        regs[29] = 0x1000;
        regs[30] = 0x2014;
        TrapFrame { regs, sp: 0xffff_0000, elr: 0x2008, spsr: 0x600003c5, esr, far }
    }

    fn symbols() -> Vec<u8> {
        let mut b = b"KSYM".to_vec();
        b.extend(2u32.to_le_bytes());
        for (addr, size, off) in [(0x2000u64, 0x10u32, 0u32), (0x3000, 0x40, 11)] {
            b.extend(addr.to_le_bytes());
            b.extend(size.to_le_bytes());
            b.extend(off.to_le_bytes());
        }
        b.extend(b"crash_null\0run_command\0");
        b
    }

    #[test]
    fn null_dereference_report() {
        let blob = symbols();
        let read = |a: u64| match a {
            0x1000 => Some(0x1100),
            0x1008 => Some(0x3024),
            0x1100 => Some(0),
            0x1108 => Some(0),
            _ => None,
        };
        let hw = "Raspberry Pi 3 Model B rev 1.2";
        let ctx = Context {
            cpu: CpuId::of(0),
            hardware: &hw,
            symbols: SymbolTable::parse(&blob),
            read_stack: &read,
            describe_address: &|w, far| writeln!(w, "[{far:016x}] pgd=0000000000000000"),
        };
        let mut s = String::new();
        write_oops(&mut s, &frame(0x9600_0005, 0), &ctx, 1).unwrap();
        let expect = [
            "Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000\n",
            "  EC = 0x25: DABT (current EL), IL = 32 bits\n",
            "[0000000000000000] pgd=0000000000000000\n",
            "Internal error: Oops: 0000000096000005 [#1] SMP\n",
            "Hardware name: Raspberry Pi 3 Model B rev 1.2\n",
            "pc : crash_null+0x8/0x10\n",
            "lr : 0x0000000000002014\n",
            "x29: 0000000000001000 x28: 000000000000001c x27: 000000000000001b\n",
            "x2 : 0000000000000002 x1 : 0000000000000001 x0 : 0000000000000000\n",
            "Call trace:\n crash_null+0x8/0x10\n run_command+0x20/0x40\n---[ end trace",
            "Kernel panic - not syncing: Oops: Fatal exception\n",
        ];
        for e in expect {
            assert!(s.contains(e), "missing {e:?} in\n{s}");
        }
    }

    #[test]
    fn headlines() {
        assert!(fault_headline(&frame(0x9600_004f, 0xffff_ffc0_0010_0000))
            .unwrap()
            .contains("write to read-only memory"));
        assert!(fault_headline(&frame(0x8600_000f, 0xffff_ff80_0010_0000))
            .unwrap()
            .contains("execute from non-executable memory"));
        assert!(fault_headline(&frame(0x9600_0007, 0xffff_ffa0_0000_0000)).unwrap().contains("paging request"));
        assert!(fault_headline(&frame(0xf200_0000, 0)).is_none());
        let ctx = Context {
            cpu: CpuId::of(1),
            hardware: &"x",
            symbols: None,
            read_stack: &|_| None,
            describe_address: &|_, _| Ok(()),
        };
        let mut s = String::new();
        write_oops(&mut s, &frame(0xf200_0000, 0), &ctx, 2).unwrap();
        assert!(s.contains("Internal error: Oops - BUG: 00000000f2000000 [#2] SMP\n"), "{s}");
        assert!(s.contains("pc : 0x0000000000002008\n"), "{s}");
    }
}
