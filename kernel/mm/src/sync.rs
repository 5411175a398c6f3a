//! Locks shared by the CPUs and by interrupt handlers: [`SpinLock`] is Linux's
//! `spin_lock_irqsave` made a type. Taking it masks this CPU's interrupts first and the
//! guard restores them after releasing the lock, so an interrupt handler that takes the
//! same lock (an allocation with GFP_ATOMIC) can never find it held by the code it
//! interrupted on the same CPU. There is no way to take the lock without masking.
//!
//! The wait loop issues the architecture's `yield` hint: on a Cortex-A53 it costs
//! nothing, but it tells a hypervisor or emulator that this CPU is only waiting.
//!
//! The interrupt mask is the one piece of hardware here: on the bare-metal target it is
//! PSTATE.{I,F} (DAIF); on the host it is a no-op, except in this crate's unit tests,
//! where a per-thread flag stands in for it so the tests can see that a guard masks.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
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
    boot::cpu::cpu_relax();
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    core::hint::spin_loop();
}

/// This CPU's interrupt mask as it was before [`local_irq_save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the saved mask must be given back to local_irq_restore"]
pub struct IrqFlags(u64);

/// The bare-metal mask, from the arch home (`boot::cpu`): one `msr daifset`, and a
/// compiler barrier, so the accesses a lock protects stay inside the masked section.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch {
    #[inline(always)]
    pub fn save() -> u64 {
        boot::cpu::local_irq_save()
    }

    #[inline(always)]
    pub fn restore(daif: u64) {
        boot::cpu::local_irq_restore(daif)
    }

    #[inline(always)]
    pub fn disabled() -> bool {
        boot::cpu::irqs_disabled()
    }
}

#[cfg(all(test, not(all(target_arch = "aarch64", target_os = "none"))))]
mod arch {
    extern crate std;
    use std::cell::Cell;

    const MASKED: u64 = 1;

    std::thread_local! {
        static MASK: Cell<u64> = const { Cell::new(0) };
    }

    pub fn save() -> u64 {
        MASK.with(|m| m.replace(MASKED))
    }

    pub fn restore(v: u64) {
        MASK.with(|m| m.set(v));
    }

    pub fn disabled() -> bool {
        MASK.with(|m| m.get() != 0)
    }
}

#[cfg(not(any(test, all(target_arch = "aarch64", target_os = "none"))))]
mod arch {
    #[inline(always)]
    pub fn save() -> u64 {
        0
    }

    #[inline(always)]
    pub fn restore(_: u64) {}

    #[inline(always)]
    pub fn disabled() -> bool {
        false
    }
}

/// Masks interrupts on this CPU and returns the previous mask (Linux's
/// `local_irq_save`).
#[inline(always)]
pub fn local_irq_save() -> IrqFlags {
    IrqFlags(arch::save())
}

/// Restores the mask saved by [`local_irq_save`] (Linux's `local_irq_restore`).
#[inline(always)]
pub fn local_irq_restore(flags: IrqFlags) {
    arch::restore(flags.0)
}

/// Whether interrupts are masked on this CPU (Linux's `irqs_disabled`).
#[inline(always)]
pub fn irqs_disabled() -> bool {
    arch::disabled()
}

/// Interrupts masked for as long as it lives: for code that takes several locks and
/// releases them in another order than it took them (the outermost save wins).
pub struct IrqGuard(IrqFlags);

impl IrqGuard {
    /// Masks interrupts until the guard is dropped.
    #[inline(always)]
    pub fn new() -> Self {
        Self(local_irq_save())
    }
}

impl Default for IrqGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqGuard {
    #[inline(always)]
    fn drop(&mut self) {
        local_irq_restore(self.0);
    }
}

/// A spin lock for data shared by the CPUs and interrupt handlers, always taken with
/// this CPU's interrupts masked (`spin_lock_irqsave`).
pub struct SpinLock<T: ?Sized> {
    inner: spin::mutex::SpinMutex<T, CpuRelax>,
}

/// Holds a [`SpinLock`]; dropping it unlocks, then restores the interrupt mask.
pub struct SpinLockGuard<'a, T: ?Sized + 'a> {
    guard: ManuallyDrop<spin::mutex::SpinMutexGuard<'a, T>>,
    flags: IrqFlags,
}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        Self { inner: spin::mutex::SpinMutex::new(value) }
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Masks interrupts on this CPU, then takes the lock (spinning).
    #[inline(always)]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let flags = local_irq_save();
        SpinLockGuard { guard: ManuallyDrop::new(self.inner.lock()), flags }
    }

    /// Takes the lock if it is free, with interrupts masked; `None` (and the mask as it
    /// was) if it is held.
    #[inline(always)]
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        let flags = local_irq_save();
        match self.inner.try_lock() {
            Some(g) => Some(SpinLockGuard { guard: ManuallyDrop::new(g), flags }),
            None => {
                local_irq_restore(flags);
                None
            }
        }
    }

    /// Whether someone holds the lock (a hint: it may change at once).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// The data, through exclusive access to the lock (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the inner guard is dropped exactly once, here, before the mask is
        // restored (unlock first, so an interrupt taken at once finds the lock free).
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        local_irq_restore(self.flags);
    }
}

impl<T: ?Sized + core::fmt::Debug> core::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SpinLock { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_masks_and_restores() {
        let l = SpinLock::new(5);
        assert!(!irqs_disabled());
        {
            let mut g = l.lock();
            assert!(irqs_disabled(), "holding the lock must mask interrupts");
            *g += 1;
            assert!(l.try_lock().is_none());
            assert!(irqs_disabled(), "a failed try_lock keeps the mask");
        }
        assert!(!irqs_disabled(), "the guard restores the mask");
        assert_eq!(*l.lock(), 6);
        assert!(!irqs_disabled());
    }

    #[test]
    fn nested_locks_restore_in_order() {
        let (a, b) = (SpinLock::new(()), SpinLock::new(()));
        let ga = a.lock();
        let gb = b.lock();
        drop(gb);
        assert!(irqs_disabled(), "inner unlock must not unmask while the outer lock is held");
        drop(ga);
        assert!(!irqs_disabled());
    }

    #[test]
    fn irq_guard_covers_out_of_order_release() {
        let (a, b) = (SpinLock::new(()), SpinLock::new(()));
        let outer = IrqGuard::new();
        let ga = a.lock();
        let gb = b.lock();
        drop(ga);
        assert!(irqs_disabled());
        drop(gb);
        assert!(irqs_disabled());
        drop(outer);
        assert!(!irqs_disabled());
    }

    #[test]
    fn try_lock_restores_on_failure_when_unmasked() {
        let l = SpinLock::new(());
        let flags = local_irq_save();
        let held = l.lock();
        local_irq_restore(flags); // simulate another owner: unmask while held
        assert!(l.try_lock().is_none());
        assert!(!irqs_disabled(), "failed try_lock put the mask back");
        drop(held);
        local_irq_restore(flags);
    }
}
