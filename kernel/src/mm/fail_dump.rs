//! Linux's `fail_dump` (lib/fault-inject.c): what an injected failure prints, so that it
//! never passes for a real shortage: `FAULT_INJECTION: forcing a failure.`, the knobs of
//! the injection point, then a call trace (`dump_stack`, the oops unwinder).

use crate::printk;
use core::fmt::Write;
use mm::fault_inject::FaultKnobs;

/// Prints the report for a failure injected at `name` (`fail_page_alloc`, `failslab`)
/// with its knobs after the decision. `fp` is the frame the trace starts from (the
/// caller's: the allocating function is its first line).
pub fn fail_dump(name: &str, k: &FaultKnobs, fp: u64) {
    printk::with_console(|w| {
        let _ = writeln!(w, "FAULT_INJECTION: forcing a failure.");
        let _ = writeln!(
            w,
            "name {}, interval {}, probability {}, space 0, times {}",
            name, k.interval, k.probability, k.times
        );
        let _ = crate::arch::aarch64::traps::context_with(|ctx| crate::oops::write_dump_stack(w, fp, ctx));
    });
}
