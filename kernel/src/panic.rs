//! What follows a panic or a fatal oops: the CPU halts (`panic=0`, the default, as in
//! Linux), or the board reboots `panic=N` seconds later (at once for a negative N), so
//! an unattended board or a test run never hangs on a crash.

use core::sync::atomic::{AtomicI64, Ordering};

/// Seconds from a panic to the reboot; 0 halts.
static PANIC_TIMEOUT: AtomicI64 = AtomicI64::new(0);

/// Sets the `panic=` timeout.
pub fn set_timeout(seconds: i64) {
    PANIC_TIMEOUT.store(seconds, Ordering::Relaxed);
}

/// Ends a panic report: reboots after the timeout, or halts this CPU.
pub fn end() -> ! {
    let timeout = PANIC_TIMEOUT.load(Ordering::Relaxed);
    if timeout != 0 {
        if timeout > 0 {
            crate::pr_emerg!("Rebooting in {} seconds..", timeout);
            board::uart::flush();
            board::timer::delay_us(timeout.unsigned_abs() * 1_000_000);
        }
        crate::pr_emerg!("reboot: Restarting system");
        board::uart::flush();
        board::power::reboot();
    }
    board::uart::flush();
    // Nothing may stay pending for this CPU (its timer, a key typed at the UART), or
    // its wfi would return at once and the halt would spin.
    crate::irq::disable_this_cpu();
    boot::cpu::halt();
}
