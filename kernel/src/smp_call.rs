//! Cross-CPU function calls (Linux's `kernel/smp.c`): [`smp_call_function_single`] and
//! [`smp_call_function_many`] run a short function in interrupt context on other CPUs
//! (draining their per-CPU lists, arming their timer, taking a `stress` worker); the
//! caller may wait for completion. Each CPU has a fixed queue, so queuing allocates
//! nothing and the memory manager can use it; the call is announced by a function-call
//! IPI ([`crate::ipi`]) and the waiter woken by a reschedule IPI, neither polled.

use crate::idle;
use crate::ipi::{self, Ipi};
use crate::percpu::{cpu_online, smp_processor_id, CpuId, NR_CPUS};
use crate::pr_err;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::sync::SpinLock;

/// Cross-CPU calls one CPU can have queued.
const CALL_QUEUE_LEN: usize = 8;

#[derive(Clone, Copy)]
struct Call {
    func: fn(usize),
    arg: usize,
    ticket: u64,
    /// The CPU waiting for this call, if any.
    waiter: Option<CpuId>,
}

struct CallQueue {
    calls: [Option<Call>; CALL_QUEUE_LEN],
    queued: u64,
}

static CALL_QUEUES: [SpinLock<CallQueue>; NR_CPUS] =
    [const { SpinLock::new(CallQueue { calls: [None; CALL_QUEUE_LEN], queued: 0 }) }; NR_CPUS];
/// Ticket of the last call each CPU completed (calls run in ticket order).
static CALLS_DONE: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// Why a cross-CPU call did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The CPU is not online.
    Offline,
    /// Its call queue is full.
    Busy,
    /// Waiting needs interrupts enabled (the target may be waiting for this CPU).
    IrqsDisabled,
    /// The CPU did not answer within a second.
    Timeout,
}

/// How long a caller waits for a cross-CPU call before giving up.
const CALL_TIMEOUT_US: u64 = 1_000_000;

fn queue_call(cpu: CpuId, func: fn(usize), arg: usize, wait: bool) -> Result<u64, CallError> {
    if !cpu_online(cpu) {
        return Err(CallError::Offline);
    }
    let ticket = {
        let mut q = CALL_QUEUES[cpu.index()].lock();
        let ticket = q.queued + 1;
        let waiter = if wait { Some(smp_processor_id()) } else { None };
        let slot = q.calls.iter_mut().find(|c| c.is_none()).ok_or(CallError::Busy)?;
        *slot = Some(Call { func, arg, ticket, waiter });
        q.queued = ticket;
        ticket
    };
    ipi::send(cpu, Ipi::CallFunc);
    Ok(ticket)
}

fn wait_call(cpu: CpuId, ticket: u64) -> Result<(), CallError> {
    let done = || CALLS_DONE[cpu.index()].load(Ordering::Acquire) >= ticket;
    if idle::wait_until_timeout(done, crate::timer::us_to_ticks(CALL_TIMEOUT_US)) {
        Ok(())
    } else {
        pr_err!("smp: CPU{} did not run a function call within 1 s", cpu);
        Err(CallError::Timeout)
    }
}

/// Linux's `smp_call_function_single`: runs `func(arg)` on `cpu` in interrupt context
/// (on this CPU directly, with interrupts masked, if `cpu` is this one); with `wait`,
/// returns once it has run. Waiting needs interrupts enabled.
pub fn smp_call_function_single(cpu: CpuId, func: fn(usize), arg: usize, wait: bool) -> Result<(), CallError> {
    if cpu == smp_processor_id() {
        let _irq = mm::sync::IrqGuard::new();
        func(arg);
        return Ok(());
    }
    if wait && mm::sync::irqs_disabled() {
        return Err(CallError::IrqsDisabled);
    }
    let ticket = queue_call(cpu, func, arg, wait)?;
    if wait {
        wait_call(cpu, ticket)?;
    }
    Ok(())
}

/// Linux's `smp_call_function_many`: runs `func(arg)` on every online CPU of `mask`
/// except this one, in interrupt context, all at once; with `wait`, returns once all
/// have run. Returns the mask of CPUs that ran it.
pub fn smp_call_function_many(mask: usize, func: fn(usize), arg: usize, wait: bool) -> usize {
    let me = smp_processor_id();
    if wait && mm::sync::irqs_disabled() {
        return 0;
    }
    let mut tickets = [None; NR_CPUS];
    for cpu in CpuId::all() {
        if cpu != me && mask & (1 << cpu.index()) != 0 {
            tickets[cpu.index()] = queue_call(cpu, func, arg, wait).ok();
        }
    }
    let mut ran = 0;
    for cpu in CpuId::all() {
        if let Some(t) = tickets[cpu.index()] {
            if !wait || wait_call(cpu, t).is_ok() {
                ran |= 1 << cpu.index();
            }
        }
    }
    ran
}

/// Runs this CPU's queued calls (the function-call IPI), in ticket order, and wakes
/// the CPUs waiting for them.
pub fn generic_smp_call_function_interrupt(cpu: CpuId) {
    loop {
        let call = {
            let mut q = CALL_QUEUES[cpu.index()].lock();
            let next = q.calls.iter_mut().filter(|c| c.is_some()).min_by_key(|c| c.map_or(u64::MAX, |c| c.ticket));
            match next {
                Some(slot) => slot.take(),
                None => return,
            }
        };
        let Some(c) = call else { return };
        (c.func)(c.arg);
        CALLS_DONE[cpu.index()].fetch_max(c.ticket, Ordering::AcqRel);
        if let Some(waiter) = c.waiter.filter(|&w| w != cpu) {
            ipi::send(waiter, Ipi::Reschedule);
        }
    }
}

/// Parks every other CPU (a panic): the CPU-stop IPI.
pub fn stop_other_cpus() {
    let me = smp_processor_id();
    for cpu in CpuId::all() {
        if cpu != me && cpu_online(cpu) {
            ipi::send(cpu, Ipi::CpuStop);
        }
    }
}
