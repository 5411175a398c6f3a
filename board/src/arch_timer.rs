//! The ARM generic timer's virtual timer (CNTV) as this CPU's clock-event device: one
//! compare value per CPU, raised through the BCM2836 local controller (CNTV IRQ).
//!
//! Linux picks another timer on this board: its arm_arch_timer takes the virtual timer
//! only when EL2 is not available to it, and a Pi 3 enters the kernel at EL2 on a
//! Cortex-A53 without VHE, so Linux runs at EL1 on the non-secure physical timer
//! (CNTP). The virtual timer works just as well here because CNTVOFF_EL2 is 0
//! (`entry.S` zeroes it whenever it comes through EL2 or EL3): the virtual count is the
//! physical count.
//!
//! Deadlines are in virtual-counter ticks (CNTVCT_EL0, the physical count minus
//! CNTVOFF_EL2) at CNTFRQ_EL0 Hz.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, Readable, Writeable, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0};

/// The virtual counter now (the isb keeps the read in program order).
pub fn counter() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Fires this CPU's timer interrupt once the virtual count reaches `cval` (at once if
/// it already has).
pub fn set_next_event(cval: u64) {
    CNTV_CVAL_EL0.set(cval);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    barrier::isb(barrier::SY);
}

/// Stops this CPU's timer: no interrupt until the next [`set_next_event`] (tickless).
pub fn shutdown() {
    CNTV_CTL_EL0.modify(CNTV_CTL_EL0::ENABLE::CLEAR + CNTV_CTL_EL0::IMASK::SET);
    barrier::isb(barrier::SY);
}

/// Whether the timer condition is met (ISTATUS).
pub fn expired() -> bool {
    CNTV_CTL_EL0.is_set(CNTV_CTL_EL0::ISTATUS)
}
