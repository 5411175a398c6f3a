//! Idle: a CPU with nothing to do sleeps in `wfi` until an interrupt, as Linux's
//! `cpu_do_idle`. There is no lost-wakeup race: the condition is checked with
//! interrupts masked, `wfi` still wakes for an interrupt that is pending while masked
//! (Arm ARM D1.16.2), and unmasking afterwards runs its handler before the condition
//! is checked again. Wakers make the condition true, then interrupt the sleeper (an
//! IPI, the UART, the timer).

use crate::percpu::{smp_processor_id, CpuId, NR_CPUS};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use mm::sync::{local_irq_restore, local_irq_save};

/// Counter ticks each CPU spent asleep in `wfi` (the idle part of `vmstat`'s cpu columns).
static IDLE_TICKS: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// When each CPU went to sleep in `wfi` (0: it is not asleep): a long sleep counts as
/// idle while it lasts, not only once it ends.
static IDLE_SINCE: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// Whether `cpu` is asleep in `wfi` now (`vmstat`'s r column).
pub fn is_idle(cpu: CpuId) -> bool {
    IDLE_SINCE[cpu.index()].load(Relaxed) != 0
}

/// Counter ticks `cpu` has spent in `wfi` since boot, the current sleep included.
pub fn idle_ticks(cpu: CpuId) -> u64 {
    let (done, since) = (&IDLE_TICKS[cpu.index()], &IDLE_SINCE[cpu.index()]);
    // A sleep that ends between the two loads is counted in neither or in both only for
    // an instant: statistics, not accounting.
    let since = since.load(Relaxed);
    let now = if since != 0 { board::timer::ticks().saturating_sub(since) } else { 0 };
    done.load(Relaxed) + now
}

/// Sleeps until `cond()` holds. Called with interrupts enabled (task context); with
/// them masked it still returns once `cond()` holds, but this CPU's own interrupt
/// handlers cannot run meanwhile.
pub fn wait_until(mut cond: impl FnMut() -> bool) {
    loop {
        let flags = local_irq_save();
        if cond() {
            local_irq_restore(flags);
            return;
        }
        let cpu = smp_processor_id().index();
        let t0 = board::timer::ticks().max(1);
        IDLE_SINCE[cpu].store(t0, Relaxed);
        boot::cpu::wfi();
        IDLE_SINCE[cpu].store(0, Relaxed);
        IDLE_TICKS[cpu].fetch_add(board::timer::ticks().saturating_sub(t0), Relaxed);
        local_irq_restore(flags);
    }
}

fn nop(_: usize) {}

/// [`wait_until`] with a deadline in counter ticks ([`crate::timer::now`]); true if
/// `cond()` held, false on timeout. A timer wakes this CPU at the deadline.
pub fn wait_until_timeout(mut cond: impl FnMut() -> bool, timeout_ticks: u64) -> bool {
    let deadline = crate::timer::now().saturating_add(timeout_ticks);
    let timer = crate::timer::add_timer(deadline, nop, 0);
    let mut ok = false;
    wait_until(|| {
        ok = cond();
        // Without a timer slot there is no wakeup at the deadline: give up now rather
        // than sleep for ever.
        ok || crate::timer::now() >= deadline || timer.is_err()
    });
    if let Ok(t) = timer {
        crate::timer::del_timer(t);
    }
    ok
}
