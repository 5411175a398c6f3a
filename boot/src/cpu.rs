//! CPU primitives: identity, barriers, interrupt masking, low-power waits.

use core::arch::asm;

/// This core's number (MPIDR_EL1.Aff0: 0..=3 on the BCM2837).
pub fn cpu_id() -> usize {
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack, preserves_flags)) };
    (mpidr & 0xff) as usize
}

/// The raw MIDR_EL1 (0x410fd034 on a Cortex-A53 r0p4).
pub fn midr() -> u64 {
    let v: u64;
    // SAFETY: reading MIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, midr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Full-system data synchronisation barrier.
pub fn dsb_sy() {
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Instruction synchronisation barrier: needed after system-register writes.
pub fn isb() {
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Masks IRQ, FIQ, SError and debug exceptions and returns the previous DAIF.
pub fn local_irq_save() -> u64 {
    let daif: u64;
    // SAFETY: changes only this core's interrupt mask.
    unsafe { asm!("mrs {}, daif", "msr daifset, #0xf", out(reg) daif, options(nomem, nostack, preserves_flags)) };
    daif
}

/// Restores a DAIF value from [`local_irq_save`].
pub fn local_irq_restore(daif: u64) {
    // SAFETY: restores this core's interrupt mask to a value it had before.
    unsafe { asm!("msr daif, {}", in(reg) daif, options(nomem, nostack, preserves_flags)) };
}

/// Unmasks IRQ and FIQ on this core (Linux's `local_irq_enable`).
pub fn local_irq_enable() {
    // SAFETY: changes only this core's interrupt mask; a compiler barrier.
    unsafe { asm!("msr daifclr, #3", options(nostack, preserves_flags)) };
}

/// Masks IRQ and FIQ on this core (Linux's `local_irq_disable`).
pub fn local_irq_disable() {
    // SAFETY: changes only this core's interrupt mask; a compiler barrier.
    unsafe { asm!("msr daifset, #3", options(nostack, preserves_flags)) };
}

/// Waits for an interrupt: the core sleeps until an interrupt is pending, masked or
/// not (Arm ARM D1.16.2), so `wfi` with IRQs masked followed by unmasking is the
/// race-free idle of Linux's `cpu_do_idle`. The `dsb` first completes outstanding
/// memory accesses, as Linux does.
pub fn wfi() {
    // SAFETY: waits for an interrupt; no memory-safety effects.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// Waits for an event (cheap idle).
pub fn wfe() {
    // SAFETY: waits for an event; no memory effects.
    unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
}

/// Signals an event to all cores; a `dsb` first makes prior stores visible to them.
pub fn sev() {
    // SAFETY: barrier and event; no memory-safety effects.
    unsafe { asm!("dsb sy", "sev", options(nostack, preserves_flags)) };
}

/// Stops this core for good: interrupts masked, asleep in `wfi` (which returns only
/// while a masked interrupt is pending, so the loop idles rather than spins; QEMU's
/// default threading treats `wfe` as a yield and would burn a host CPU).
pub fn halt() -> ! {
    local_irq_save();
    loop {
        wfi();
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
    // CNTKCTL_EL1: EVNTEN (bit 2), EVNTI = 9 (bits 7:4: trigger on counter bit 9),
    // keeping EL0 access bits clear.
    let v: u64 = (1 << 2) | (9 << 4);
    // SAFETY: only this core's event-stream configuration changes.
    unsafe { asm!("msr cntkctl_el1, {}", "isb", in(reg) v, options(nostack, preserves_flags)) };
}

/// Whether the core has a PMU (ID_AA64DFR0_EL1.PMUVer neither 0 nor IMPLEMENTATION
/// DEFINED).
pub fn has_pmu() -> bool {
    let dfr0: u64;
    // SAFETY: reading ID_AA64DFR0_EL1 has no side effects.
    unsafe { asm!("mrs {}, id_aa64dfr0_el1", out(reg) dfr0, options(nomem, nostack, preserves_flags)) };
    let ver = (dfr0 >> 8) & 0xf;
    ver != 0 && ver != 0xf
}

/// Starts this core's cycle counter (PMCR_EL0.E, PMCNTENSET_EL0.C), counting every
/// cycle (PMCR_EL0.D clear). EL1 may use it: entry.S cleared MDCR_EL2's traps.
pub fn cycle_counter_enable() {
    // SAFETY: only this core's performance counters are started.
    unsafe {
        asm!(
            "mrs {t}, pmcr_el0", "orr {t}, {t}, #1", "bic {t}, {t}, #8", "msr pmcr_el0, {t}",
            "mov {t}, #(1 << 31)", "msr pmcntenset_el0, {t}", "isb",
            t = out(reg) _, options(nostack, preserves_flags)
        )
    };
}

/// This core's cycle counter (PMCCNTR_EL0; started by [`cycle_counter_enable`]).
pub fn cycles() -> u64 {
    let c: u64;
    // SAFETY: reads PMCCNTR_EL0.
    unsafe { asm!("isb", "mrs {}, pmccntr_el0", out(reg) c, options(nostack, preserves_flags)) };
    c
}
