//! The Rust side of the exception vectors: every exception the kernel does not expect
//! ends in an oops report, then a halted CPU or a reboot (`panic=N`).

use crate::oops::{self, Context};
use crate::platform;
use crate::printk;
use boot::trap_frame::{decode_kind, ExceptionKind};
use boot::TrapFrame;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

static OOPS_COUNT: AtomicU32 = AtomicU32::new(0);

/// Hook that adds lines about a fault address (page-table walk, vmalloc area); set by
/// the memory-management code once it exists.
static DESCRIBE_ADDRESS: spin::Once<fn(&mut dyn Write, u64) -> core::fmt::Result> = spin::Once::new();

/// Installs the fault-address describer (once).
pub fn set_address_describer(f: fn(&mut dyn Write, u64) -> core::fmt::Result) {
    DESCRIBE_ADDRESS.call_once(|| f);
}

/// Hook that may resolve a synchronous fault (`esr`, `far`) by waiting, after which the
/// access is retried: a vmalloc page under migration. Set by the memory-management code.
static FAULT_RETRY: spin::Once<fn(u64, u64) -> bool> = spin::Once::new();

/// Installs the fault-retry hook (once).
pub fn set_fault_retry(f: fn(u64, u64) -> bool) {
    FAULT_RETRY.call_once(|| f);
}

/// Hook that reports a fault in the KFENCE pool and resumes after the access; set by
/// the memory-management code.
static KFENCE_FAULT: spin::Once<fn(&mut TrapFrame) -> bool> = spin::Once::new();

/// Installs the KFENCE fault hook (once).
pub fn set_kfence_fault(f: fn(&mut TrapFrame) -> bool) {
    KFENCE_FAULT.call_once(|| f);
}

/// Reads a word of a kernel stack for the unwinder; refuses anything outside the
/// kernel's stacks so a corrupt frame chain cannot fault inside the handler.
pub fn read_stack_word(addr: u64) -> Option<u64> {
    let l = platform::image_layout();
    let a = addr as usize;
    let in_range = |(s, e): (usize, usize)| a >= s && a.checked_add(8).is_some_and(|end| end <= e);
    if !addr.is_multiple_of(8)
        || !(in_range(l.boot_stack) || in_range(l.emergency_stacks) || crate::stacks::contains(a))
    {
        return None;
    }
    // SAFETY: the address is 8-byte aligned and inside a mapped kernel stack.
    Some(unsafe { core::ptr::read_volatile(a as *const u64) })
}

/// The context oops reports need.
pub fn context_with<R>(f: impl FnOnce(&Context<'_>) -> R) -> R {
    let rev = platform::revision();
    let describe = |w: &mut dyn Write, far: u64| match DESCRIBE_ADDRESS.get() {
        Some(d) => d(w, far),
        None => Ok(()),
    };
    let ctx = Context {
        cpu: boot::cpu::cpu_id(),
        hardware: &rev,
        symbols: platform::symbols(),
        read_stack: &read_stack_word,
        describe_address: &describe,
    };
    f(&ctx)
}

/// Entered from `vectors.S` with the saved registers.
#[no_mangle]
extern "C" fn handle_exception(frame: &mut TrapFrame, kind: u64) {
    let (_, ty) = decode_kind(kind);
    if ty == ExceptionKind::Sync && FAULT_RETRY.get().is_some_and(|f| f(frame.esr, frame.far)) {
        // Resolved (the page is mapped again): `vectors.S` restores the frame and the
        // access runs again.
        return;
    }
    if ty == ExceptionKind::Sync && KFENCE_FAULT.get().is_some_and(|f| f(frame)) {
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
    crate::smp::stop_other_cpus();
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
