//! Locks shared by the CPUs: spin locks whose wait loop issues the architecture's
//! `yield` hint.
//!
//! On a Cortex-A53 `yield` costs nothing, but it tells a hypervisor or emulator that this
//! CPU is only waiting: QEMU's single-threaded TCG then runs another vCPU (perhaps the
//! lock holder) instead of letting the waiter spin out its whole time slice. On the host
//! the wait is the usual spin-loop hint.

use spin::relax::RelaxStrategy;

/// The relax step of [`SpinLock`].
pub struct CpuRelax;

impl RelaxStrategy for CpuRelax {
    #[inline(always)]
    fn relax() {
        cpu_relax();
    }
}

/// One step of a busy wait.
#[inline(always)]
pub fn cpu_relax() {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    // SAFETY: `yield` is a hint with no architectural effect.
    unsafe {
        core::arch::asm!("yield", options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    core::hint::spin_loop();
}

/// A spin lock for data shared by the CPUs.
pub type SpinLock<T> = spin::mutex::Mutex<T, CpuRelax>;
