//! Inter-processor interrupts through the BCM2836 local mailboxes, as Linux's
//! bcm2836 driver sends them: IPI `n` to core `c` sets bit `n` of core `c`'s mailbox 0,
//! whose interrupt stays raised until the receiving core clears the bits it read.
//!
//! Kinds (Linux arm64's numbering and names): 0 reschedule (wakes a CPU so its idle
//! loop looks at its work and the conditions it waits for), 1 function call
//! ([`crate::smp_call::smp_call_function_single`]), 2 CPU stop (a panic parks the others).
//!
//! Sending allocates and locks nothing, so every layer from the memory manager up may
//! interrupt another CPU.

use crate::percpu::{CpuId, NR_CPUS};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The IPI kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Ipi {
    /// Wake up and look at the work and conditions this CPU waits for.
    Reschedule = 0,
    /// Run the queued cross-CPU function calls.
    CallFunc = 1,
    /// Stop (panic elsewhere).
    CpuStop = 2,
}

/// Number of IPI kinds.
pub const NR_IPI: usize = 3;

/// /proc/interrupts descriptions, Linux's wording.
pub const IPI_NAMES: [&str; NR_IPI] = ["Rescheduling interrupts", "Function call interrupts", "CPU stop interrupts"];

static COUNTS: [[AtomicU64; NR_CPUS]; NR_IPI] = [const { [const { AtomicU64::new(0) }; NR_CPUS] }; NR_IPI];

/// Sends `ipi` to `cpu`. The `dsb` makes this CPU's earlier stores (the work or call
/// it announces) visible before the mailbox write can raise the interrupt.
pub fn send(cpu: CpuId, ipi: Ipi) {
    boot::cpu::dsb_sy();
    board::bcm2836_local::mailbox_set(cpu.index(), 0, 1 << ipi as u32);
}

/// Handles this CPU's mailbox 0, in interrupt context: clears the bits it read first,
/// so an IPI sent while the handlers run raises the interrupt again. `call_function`
/// runs the queued cross-CPU calls (passed by the interrupt entry, which sits above
/// them: this module stays below everything that sends).
pub fn handle(cpu: CpuId, call_function: fn(CpuId)) {
    let bits = board::bcm2836_local::mailbox_read(cpu.index(), 0);
    if bits == 0 {
        return;
    }
    board::bcm2836_local::mailbox_clear(cpu.index(), 0, bits);
    // Real hardware: the clear is a Device write; the dsb orders it before the reads
    // of the shared data the sender published.
    boot::cpu::dsb_sy();
    for (n, counts) in COUNTS.iter().enumerate() {
        if bits & (1 << n) == 0 {
            continue;
        }
        counts[cpu.index()].fetch_add(1, Relaxed);
        match n {
            0 => {} // the interrupt itself woke the idle loop
            1 => call_function(cpu),
            _ => {
                // Nothing left pending (timer, IPIs) to wake the parked CPU's wfi.
                crate::irq::disable_this_cpu();
                boot::cpu::halt()
            }
        }
    }
    if bits >> NR_IPI != 0 {
        crate::pr_warn!("ipi: unknown IPI bits {:#x} on CPU{}", bits >> NR_IPI << NR_IPI, cpu);
    }
}

/// Per-CPU counts of IPI kind `n`.
pub fn counts(n: usize) -> [u64; NR_CPUS] {
    core::array::from_fn(|c| COUNTS[n % NR_IPI][c].load(Relaxed))
}
