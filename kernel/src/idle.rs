//! Idle: a CPU with nothing to do sleeps in `wfi` until an interrupt, as Linux's
//! `cpu_do_idle`. There is no lost-wakeup race: the condition is checked with
//! interrupts masked, `wfi` still wakes for an interrupt that is pending while masked
//! (Arm ARM D1.16.2), and unmasking afterwards runs its handler before the condition
//! is checked again. Wakers make the condition true, then interrupt the sleeper (an
//! IPI, the UART, the timer).

use mm::sync::{local_irq_restore, local_irq_save};

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
        boot::cpu::wfi();
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
