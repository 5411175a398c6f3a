//! CPU primitives: identity, barriers, interrupt masking, low-power waits and the per-CPU
//! pointer (the cycle counter is in `pmu`).
//!
//! System registers go through the typed `aarch64-cpu` registers; `asm!` remains only
//! where that crate has no accessor (DAIFSet/DAIFClr immediates, sp/x29, BRK).

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::arch::asm;

/// This core's number (MPIDR_EL1.Aff0: 0..=3 on the BCM2837).
pub fn cpu_id() -> usize {
    MPIDR_EL1.read(MPIDR_EL1::Aff0) as usize
}

/// The raw MPIDR_EL1 (affinity fields and the U and MT bits).
pub fn mpidr() -> u64 {
    MPIDR_EL1.get()
}

/// The raw MIDR_EL1 (0x410fd034 on a Cortex-A53 r0p4).
pub fn midr() -> u64 {
    MIDR_EL1.get()
}

/// Full-system data synchronisation barrier.
pub fn dsb_sy() {
    barrier::dsb(barrier::SY);
}

/// Instruction synchronisation barrier: needed after system-register writes.
pub fn isb() {
    barrier::isb(barrier::SY);
}

/// Masks IRQ and FIQ on this core and returns the previous DAIF (Linux's
/// `local_irq_save`). One `msr daifset`, so nothing can arrive between the read and the
/// mask; no `nomem`, so the asm is a compiler barrier and the accesses a lock protects
/// stay inside the masked section.
#[inline(always)]
pub fn local_irq_save() -> u64 {
    let daif: u64;
    // SAFETY: changes only this core's interrupt mask.
    unsafe { asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nostack, preserves_flags)) };
    daif
}

/// Restores a DAIF value from [`local_irq_save`] or [`local_daif_mask`]; a compiler
/// barrier like them.
#[inline(always)]
pub fn local_irq_restore(daif: u64) {
    // SAFETY: restores this core's interrupt mask to a value it had before.
    unsafe { asm!("msr daif, {}", in(reg) daif, options(nostack, preserves_flags)) };
}

/// Whether IRQs are masked on this core (Linux's `irqs_disabled`).
#[inline(always)]
pub fn irqs_disabled() -> bool {
    DAIF.is_set(DAIF::I)
}

/// Masks IRQ, FIQ, SError and debug exceptions and returns the previous DAIF (Linux's
/// `local_daif_mask`): for the paths that must not be entered again (oops, halt).
pub fn local_daif_mask() -> u64 {
    let daif: u64;
    // SAFETY: changes only this core's interrupt mask; a compiler barrier.
    unsafe { asm!("mrs {}, daif", "msr daifset, #0xf", out(reg) daif, options(nostack, preserves_flags)) };
    daif
}

/// One step of a busy wait (Linux's `cpu_relax`: `yield`, a hint to the core).
#[inline(always)]
pub fn cpu_relax() {
    // SAFETY: `yield` has no architectural effect.
    unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Unmasks IRQ and FIQ on this core (Linux's `local_irq_enable`).
pub fn local_irq_enable() {
    // SAFETY: changes only this core's interrupt mask; a compiler barrier.
    unsafe { asm!("msr daifclr, #3", options(nostack, preserves_flags)) };
}

/// Waits for an interrupt: the core sleeps until an interrupt is pending, masked or
/// not (Arm ARM D1.16.2), so `wfi` with IRQs masked followed by unmasking is the
/// race-free idle of Linux's `cpu_do_idle`. The `dsb` first completes outstanding
/// memory accesses, as Linux does.
pub fn wfi() {
    barrier::dsb(barrier::SY);
    aarch64_cpu::asm::wfi();
}

/// Waits for an event (cheap idle).
pub fn wfe() {
    aarch64_cpu::asm::wfe();
}

/// Signals an event to all cores; a `dsb` first makes prior stores visible to them.
pub fn sev() {
    barrier::dsb(barrier::SY);
    aarch64_cpu::asm::sev();
}

/// Stops this core for good: interrupts masked, asleep in `wfi` (QEMU's default
/// threading treats `wfe` as a yield and would burn a host CPU). `wfi` returns at once
/// while any interrupt is pending, masked or not, so the loop sleeps only if nothing
/// is: the core's own generic timers are masked here (IMASK: a deadline that passes
/// raises nothing), and the caller masks its devices' interrupts for this core first
/// (the kernel's `irq::disable_this_cpu`).
pub fn halt() -> ! {
    local_daif_mask();
    CNTV_CTL_EL0.modify(CNTV_CTL_EL0::IMASK::SET);
    CNTP_CTL_EL0.modify(CNTP_CTL_EL0::IMASK::SET);
    barrier::isb(barrier::SY);
    loop {
        wfi();
    }
}

/// Starts another image at `entry` as the firmware starts a kernel: `x0`-`x3` as given,
/// the instruction cache invalidated first (Real hardware: it may be on, and may hold
/// the old contents of the image's addresses), then a branch that does not return.
///
/// # Safety
/// A whole image must be at `entry`, its code written back to the point of unification,
/// and it must be able to start in this core's current state (MMU off, this exception
/// level); nothing of the caller survives.
pub unsafe fn start_image(entry: u64, x0: u64, x1: u64, x2: u64, x3: u64) -> ! {
    // SAFETY: the caller guarantees an image at `entry` that may start here.
    unsafe {
        asm!(
            "dsb sy",
            "ic iallu",
            "dsb sy",
            "isb",
            "br {entry}",
            entry = in(reg) entry,
            in("x0") x0,
            in("x1") x1,
            in("x2") x2,
            in("x3") x3,
            options(noreturn)
        )
    }
}

/// Current stack pointer.
pub fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads sp.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Current frame pointer (x29).
pub fn fp() -> usize {
    let fp: usize;
    // SAFETY: reads x29.
    unsafe { asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags)) };
    fp
}

/// Turns on the generic timer's event stream on this core: an event every 2^10 counter
/// ticks (about 53 us at 19.2 MHz), so a `wfe` used in a wait with a timeout always wakes
/// up to check again, as Linux's arch timer does.
pub fn enable_event_stream() {
    // EVNTI = 9: trigger on counter bit 9; EL0 access bits stay clear.
    CNTKCTL_EL1.write(CNTKCTL_EL1::EVNTEN::SET + CNTKCTL_EL1::EVNTI.val(9));
    isb();
}

/// This core's per-CPU pointer (TPIDR_EL1, which only the kernel uses): `entry.S` sets
/// it to the core's block of the kernel's `__per_cpu_blocks` before any Rust runs.
#[inline(always)]
pub fn this_cpu_ptr() -> usize {
    TPIDR_EL1.get() as usize
}

/// Raises the BRK exception Linux's `BUG()` uses (immediate 0x800); inlined so the
/// exception's ELR is in the caller.
#[inline(always)]
pub fn bug_brk() {
    // SAFETY: BRK raises a synchronous exception, which the kernel reports as BUG.
    unsafe { asm!("brk #0x800") };
}
