//! The IRQ entry from `vectors.S`: reads which sources are pending at the local
//! controller and, for the GPU input, at the BCM2835 controller, and runs the IPI
//! handling and the registered handlers. Nothing in Rust calls it; it sits above
//! everything an interrupt reaches (cross-CPU calls included).

use super::{generic_handle_irq, unhandled_local, COUNTS, IRQ_TIMER, SPURIOUS, SPURIOUS_REPORTED};
use crate::percpu::{smp_processor_id, CpuId, NR_CPUS};
use crate::pr_warn;
use crate::smp_call::generic_smp_call_function_interrupt;
use board::bcm2835_intc as armctrl;
use board::bcm2836_local::{self as local, source};
use boot::TrapFrame;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Interrupt nesting per CPU (non-zero while a handler runs).
static IN_IRQ: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

/// The local sources this kernel enables; anything else pending is an error.
const LOCAL_MAILBOXES: u32 = source::MAILBOX0 * 0xf;

/// Entered from `vectors.S` for an IRQ at EL1, with IRQs masked.
#[no_mangle]
extern "C" fn handle_irq(_frame: &mut TrapFrame) {
    let cpu = smp_processor_id();
    IN_IRQ[cpu.index()].fetch_add(1, Relaxed);
    let mut handled = false;
    // Bounded: a source that stays raised is handled again on the next entry.
    for _ in 0..4 {
        let pending = local::irq_source(cpu.index());
        if pending == 0 {
            break;
        }
        handled = true;
        if pending & LOCAL_MAILBOXES != 0 {
            crate::ipi::handle(cpu, generic_smp_call_function_interrupt);
        }
        if pending & source::CNTV != 0 {
            generic_handle_irq(cpu, IRQ_TIMER);
        }
        if pending & source::GPU != 0 {
            let mut p = armctrl::pending();
            if p == 0 {
                count_spurious(cpu);
            }
            while p != 0 {
                let n = p.trailing_zeros();
                p &= p - 1;
                generic_handle_irq(cpu, 32 + n);
            }
        }
        let mut other = pending & !(LOCAL_MAILBOXES | source::CNTV | source::GPU);
        if other != 0 {
            // Never enabled by this kernel (the PMU, the AXI counter, the local timer,
            // another core timer): counted as an error and masked where the local
            // controller routes it, so it cannot re-enter this vector for ever.
            while other != 0 {
                let n = other.trailing_zeros();
                other &= other - 1;
                COUNTS[n as usize][cpu.index()].fetch_add(1, Relaxed);
                unhandled_local(cpu, n);
            }
            break;
        }
    }
    if !handled {
        count_spurious(cpu);
    }
    IN_IRQ[cpu.index()].fetch_sub(1, Relaxed);
}

fn count_spurious(cpu: CpuId) {
    SPURIOUS[cpu.index()].fetch_add(1, Relaxed);
    if !SPURIOUS_REPORTED.swap(true, Relaxed) {
        pr_warn!("irq: spurious interrupt on CPU{} (nothing pending); counted in /proc/interrupts' SPU row", cpu);
    }
}
