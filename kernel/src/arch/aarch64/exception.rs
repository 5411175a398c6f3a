//! The Rust side of the exception vectors: every exception the kernel does not expect
//! ends in an oops report, then a halted CPU or a reboot (`panic=N`). Nothing in Rust
//! calls into this file but the panic handler; the memory manager reaches it only
//! through the hooks it registers in [`super::traps`].

use super::traps::{context_with, fault_retry, kfence_fault};
use crate::oops;
use crate::platform;
use crate::printk;
use boot::trap_frame::{decode_kind, ExceptionKind};
use boot::TrapFrame;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

static OOPS_COUNT: AtomicU32 = AtomicU32::new(0);

/// Entered from `vectors.S` with the saved registers.
#[no_mangle]
extern "C" fn handle_exception(frame: &mut TrapFrame, kind: u64) {
    let (_, ty) = decode_kind(kind);
    if ty == ExceptionKind::Sync && fault_retry(frame.esr, frame.far) {
        // Resolved (the page is mapped again): `vectors.S` restores the frame and the
        // access runs again.
        return;
    }
    if ty == ExceptionKind::Sync && kfence_fault(frame) {
        // Reported; the access is skipped and the kernel carries on.
        return;
    }
    let nr = OOPS_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    printk::with_console(|w| {
        let _ = context_with(|ctx| match ty {
            ExceptionKind::Sync => oops::write_oops(w, frame, ctx, nr),
            ExceptionKind::StackOverflow => {
                let l = platform::image_layout();
                let _ = writeln!(w, "Insufficient stack space to handle exception!");
                let _ = writeln!(
                    w,
                    "ESR: {:#010x} -- {}",
                    frame.esr,
                    crate::arch::aarch64::esr::class_str(crate::arch::aarch64::esr::ec(frame.esr))
                );
                let _ = writeln!(w, "FAR: {:#018x}", frame.far);
                let (s, e) = crate::stacks::slot_of(frame.sp as usize);
                let _ = writeln!(w, "Task stack:     [{s:#018x}..{e:#018x}]");
                let _ = writeln!(w, "Overflow stack: [{:#018x}..{:#018x}]", l.emergency_stacks.0, l.emergency_stacks.1);
                let _ = oops::write_registers_and_trace(w, frame, ctx);
                writeln!(w, "Kernel panic - not syncing: kernel stack overflow")
            }
            ExceptionKind::SError => {
                let _ = writeln!(w, "SError Interrupt on CPU{}, code {:#018x}", ctx.cpu, frame.esr);
                let _ = oops::write_registers_and_trace(w, frame, ctx);
                writeln!(w, "Kernel panic - not syncing: Asynchronous SError Interrupt")
            }
            ExceptionKind::Irq | ExceptionKind::Fiq => {
                let _ = writeln!(w, "Unexpected {:?} on CPU{} (kind {kind})", ty, ctx.cpu);
                let _ = oops::write_registers_and_trace(w, frame, ctx);
                writeln!(w, "Kernel panic - not syncing: unexpected interrupt")
            }
        });
    });
    crate::panic::end()
}

/// The panic handler's report: message, location, call trace; then halt or reboot.
pub fn panic_report(info: &core::panic::PanicInfo<'_>) -> ! {
    boot::cpu::local_daif_mask();
    crate::smp_call::stop_other_cpus();
    let fp = boot::cpu::fp() as u64;
    printk::with_console(|w| {
        let _ = writeln!(w, "Kernel panic - not syncing: {}", info.message());
        if let Some(loc) = info.location() {
            let _ = writeln!(w, "  at {}:{}:{}", loc.file(), loc.line(), loc.column());
        }
        let _ = context_with(|ctx| oops::write_dump_stack(w, fp, ctx));
        let _ = writeln!(w, "---[ end Kernel panic - not syncing: {} ]---", info.message());
    });
    crate::panic::end()
}
