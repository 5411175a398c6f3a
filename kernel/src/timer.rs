//! Timers: each CPU's virtual generic timer is its clock-event device, programmed for
//! the earliest deadline in that CPU's queue and switched off when the queue is empty,
//! so an idle CPU takes no periodic tick (tickless, like Linux's NO_HZ_IDLE).
//!
//! A timer runs its callback once, in interrupt context on the CPU that armed it, at
//! or after its deadline (virtual-counter ticks, [`board::arch_timer::counter`]). The
//! queue is small and fixed: arming fails rather than allocating.

use crate::percpu::{smp_processor_id, CpuId, NR_CPUS};
use board::arch_timer;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use mm::sync::SpinLock;

/// Timers one CPU can have armed at once.
pub const TIMERS_PER_CPU: usize = 16;

/// A timer callback: runs in interrupt context with the argument given when armed.
pub type TimerFn = fn(arg: usize);

#[derive(Clone, Copy)]
struct Timer {
    id: u64,
    deadline: u64,
    func: TimerFn,
    arg: usize,
}

static QUEUES: [SpinLock<[Option<Timer>; TIMERS_PER_CPU]>; NR_CPUS] =
    [const { SpinLock::new([None; TIMERS_PER_CPU]) }; NR_CPUS];
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An armed timer, for [`del_timer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId {
    cpu: CpuId,
    id: u64,
}

/// This CPU's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// The counter now, in the timers' unit.
pub fn now() -> u64 {
    arch_timer::counter()
}

/// Counter ticks in `us` microseconds.
pub fn us_to_ticks(us: u64) -> u64 {
    (us as u128 * board::timer::frequency() as u128 / 1_000_000) as u64
}

/// Programs this CPU's timer for the earliest deadline, or stops it.
fn reprogram(q: &[Option<Timer>; TIMERS_PER_CPU]) {
    match q.iter().flatten().map(|t| t.deadline).min() {
        Some(d) => arch_timer::set_next_event(d),
        None => arch_timer::shutdown(),
    }
}

/// Arms a timer on this CPU: `func(arg)` runs in interrupt context once the counter
/// reaches `deadline`.
pub fn add_timer(deadline: u64, func: TimerFn, arg: usize) -> Result<TimerId, QueueFull> {
    let cpu = smp_processor_id();
    let mut q = QUEUES[cpu.index()].lock();
    let slot = q.iter_mut().find(|t| t.is_none()).ok_or(QueueFull)?;
    let id = NEXT_ID.fetch_add(1, Relaxed);
    *slot = Some(Timer { id, deadline, func, arg });
    reprogram(&q);
    Ok(TimerId { cpu, id })
}

/// Disarms a timer armed on this CPU; false if it already ran (or was not this CPU's).
pub fn del_timer(t: TimerId) -> bool {
    if t.cpu != smp_processor_id() {
        return false;
    }
    let mut q = QUEUES[t.cpu.index()].lock();
    let Some(slot) = q.iter_mut().find(|s| s.is_some_and(|x| x.id == t.id)) else {
        return false;
    };
    *slot = None;
    reprogram(&q);
    true
}

/// Timers armed on each CPU (for `interrupts`' summary).
pub fn armed() -> [usize; NR_CPUS] {
    core::array::from_fn(|c| QUEUES[c].lock().iter().flatten().count())
}

/// The timer interrupt: runs every expired timer (outside the queue lock, so a
/// callback may arm another), then programs the next deadline or stops the timer.
pub fn timer_interrupt(_irq: u32, _data: usize) {
    let cpu = smp_processor_id().index();
    // Bounded: a callback that keeps re-arming in the past runs on the next interrupt.
    for _ in 0..TIMERS_PER_CPU {
        let due = {
            let mut q = QUEUES[cpu].lock();
            let now = now();
            let next = q
                .iter_mut()
                .filter(|t| t.is_some_and(|t| t.deadline <= now))
                .min_by_key(|t| t.map_or(u64::MAX, |t| t.deadline));
            match next {
                Some(slot) => slot.take(),
                None => {
                    reprogram(&q);
                    return;
                }
            }
        };
        if let Some(t) = due {
            (t.func)(t.arg);
        }
    }
    reprogram(&QUEUES[cpu].lock());
}

/// Installs the timer interrupt handler (boot CPU, once).
pub fn init() {
    if let Err(e) = crate::irq::request_irq(crate::irq::IRQ_TIMER, "arch_timer", timer_interrupt, 0) {
        crate::pr_err!("timer: cannot install the timer interrupt: {:?}", e);
    }
}
