//! What the exception handler and every other reporter share, below the memory
//! manager: the context an oops report needs (board, symbols, a safe stack reader, the
//! fault-address describer) and the two hooks the memory manager registers, since the
//! exception entry sits above it: describing a fault address and resolving a fault by
//! waiting (a vmalloc page under migration).

use crate::oops::Context;
use crate::platform;
use boot::TrapFrame;
use core::fmt::Write;

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

/// Whether the fault-retry hook resolved a synchronous fault (`esr`, `far`).
pub fn fault_retry(esr: u64, far: u64) -> bool {
    FAULT_RETRY.get().is_some_and(|f| f(esr, far))
}

/// Hook that reports a fault in the KFENCE pool and resumes after the access; set by
/// the memory-management code.
static KFENCE_FAULT: spin::Once<fn(&mut TrapFrame) -> bool> = spin::Once::new();

/// Installs the KFENCE fault hook (once).
pub fn set_kfence_fault(f: fn(&mut TrapFrame) -> bool) {
    KFENCE_FAULT.call_once(|| f);
}

/// Whether the KFENCE hook took a synchronous fault (reported it and moved `frame` past
/// the access).
pub fn kfence_fault(frame: &mut TrapFrame) -> bool {
    KFENCE_FAULT.get().is_some_and(|f| f(frame))
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
        cpu: crate::percpu::smp_processor_id(),
        hardware: &rev,
        symbols: platform::symbols(),
        read_stack: &read_stack_word,
        describe_address: &describe,
    };
    f(&ctx)
}
