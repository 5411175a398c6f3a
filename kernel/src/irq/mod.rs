//! Interrupts: the BCM2836 local controller with the BCM2835 controller chained behind
//! its GPU input (as Linux's irq-bcm2836.c and irq-bcm2835.c). This file is the small
//! registry of handlers ([`request_irq`]) and the per-CPU counts, which the timer and
//! the tty use, with the masking of sources nobody handles and of every source of a CPU
//! that halts ([`disable_this_cpu`]); the controllers' setup is [`chip`] (above the memory manager, which
//! maps them), the entry from `vectors.S` is [`entry`] (above everything a handler
//! reaches).
//!
//! IRQ numbers: 0..=31 are the local controller's sources (3 = the CNTV timer; the
//! mailboxes are IPIs and are counted by [`crate::ipi`]), 32 + n is GPU interrupt n of
//! the BCM2835 controller (UART0 = 32 + 57). An interrupt that is pending with no
//! handler is counted, reported once and masked at its controller; an IRQ entry that
//! finds nothing pending is counted as spurious. Neither is ever a panic.

use crate::percpu::{smp_processor_id, CpuId, NR_CPUS};
use crate::pr_warn;
use board::bcm2835_intc as armctrl;
use board::bcm2836_local as local;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

pub mod chip;
pub mod entry;

/// Number of IRQs the registry knows.
pub const NR_IRQS: usize = 32 + armctrl::NR_GPU_IRQS as usize;
/// The per-CPU virtual timer (local source 3).
pub const IRQ_TIMER: u32 = 3;
/// The PL011 UART0 (GPU interrupt 57).
pub const IRQ_UART0: u32 = 32 + armctrl::IRQ_UART0;

/// An interrupt handler: called with the IRQ number and the registered data, with
/// interrupts masked, on the CPU that took the interrupt.
pub type Handler = fn(irq: u32, data: usize);

struct Action {
    name: &'static str,
    handler: Handler,
    data: usize,
}

static ACTIONS: [spin::Once<Action>; NR_IRQS] = [const { spin::Once::new() }; NR_IRQS];
pub(super) static COUNTS: [[AtomicU64; NR_CPUS]; NR_IRQS] = [const { [const { AtomicU64::new(0) }; NR_CPUS] }; NR_IRQS];
pub(super) static SPURIOUS: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];
/// Interrupts without a handler (Linux's irq_err_count).
static ERRORS: AtomicU64 = AtomicU64::new(0);
static REPORTED: [AtomicBool; NR_IRQS] = [const { AtomicBool::new(false) }; NR_IRQS];
pub(super) static SPURIOUS_REPORTED: AtomicBool = AtomicBool::new(false);
/// Whether the local controller is mapped ([`chip::init`] has run).
pub(super) static MAPPED: AtomicBool = AtomicBool::new(false);

/// Why [`request_irq`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// No such IRQ number, or one that is not a device interrupt (mailboxes, GPU input).
    Invalid,
    /// The IRQ already has a handler.
    Busy,
}

/// Linux's `request_irq`: installs `handler` for `irq` and unmasks it at the BCM2835
/// controller (GPU interrupts) or the local controller (the timer, on every CPU as it
/// comes up). One handler per IRQ.
pub fn request_irq(irq: u32, name: &'static str, handler: Handler, data: usize) -> Result<(), RequestError> {
    let i = irq as usize;
    let valid = i < NR_IRQS && (i >= 32 || i == IRQ_TIMER as usize);
    if !valid {
        return Err(RequestError::Invalid);
    }
    let mut installed = false;
    ACTIONS[i].call_once(|| {
        installed = true;
        Action { name, handler, data }
    });
    if !installed {
        return Err(RequestError::Busy);
    }
    if i >= 32 {
        armctrl::enable(irq - 32);
    }
    Ok(())
}

pub(super) fn generic_handle_irq(cpu: CpuId, irq: u32) {
    let i = irq as usize;
    COUNTS[i][cpu.index()].fetch_add(1, Relaxed);
    match ACTIONS[i].get() {
        Some(a) => (a.handler)(irq, a.data),
        None => unhandled(irq),
    }
}

fn unhandled(irq: u32) {
    ERRORS.fetch_add(1, Relaxed);
    if irq >= 32 {
        armctrl::disable(irq - 32);
    } else if irq == IRQ_TIMER {
        board::arch_timer::shutdown();
    }
    if !REPORTED[irq as usize % NR_IRQS].swap(true, Relaxed) {
        pr_warn!("irq {}: nobody cared; disabled", irq);
    }
}

/// A local source nobody enabled: counted as an error, masked at the local controller,
/// reported once.
pub(super) fn unhandled_local(cpu: CpuId, bit: u32) {
    ERRORS.fetch_add(1, Relaxed);
    let masked = local::mask(cpu.index(), bit);
    if !REPORTED[bit as usize % NR_IRQS].swap(true, Relaxed) {
        match masked {
            local::Masked::Off(what) => pr_warn!("irq {} ({}): nobody cared; masked on CPU{}", bit, what, cpu),
            local::Masked::NotHere => {
                pr_warn!("irq {}: nobody cared; reserved source, cannot be masked on CPU{}", bit, cpu)
            }
        }
    }
}

/// Masks at their controllers every interrupt that could stay pending for this CPU:
/// its generic timer, its mailboxes (IPIs) and the PMU at the local controller, and
/// every GPU source if the GPU interrupt is routed here. For a CPU about to halt for
/// good (a panic, the CPU-stop IPI): `wfi` returns at once while an interrupt is
/// pending, even a masked one, so without this a halted CPU spins instead of sleeping.
/// It lives here, not in [`chip`], because the IPI handler and the panic path below the
/// memory manager call it; it needs only the controllers' registers.
pub fn disable_this_cpu() {
    let cpu = smp_processor_id().index();
    board::arch_timer::shutdown();
    // Before `init` the local block is not mapped where the driver looks (a panic
    // early in boot), and nothing was enabled there yet.
    if !MAPPED.load(Relaxed) {
        return;
    }
    local::mask_all(cpu);
    if local::gpu_irq_core() == cpu {
        for n in 0..armctrl::NR_GPU_IRQS {
            armctrl::disable(n);
        }
    }
}

/// One registered IRQ for the `interrupts` listing.
pub struct IrqRow {
    /// IRQ number.
    pub irq: u32,
    /// Per-CPU counts.
    pub counts: [u64; NR_CPUS],
    /// Controller name, as Linux's /proc/interrupts shows it.
    pub chip: &'static str,
    /// Number at the controller (Linux's hwirq).
    pub hwirq: u32,
    /// Edge or Level.
    pub trigger: &'static str,
    /// Handler name.
    pub name: &'static str,
}

/// Calls `f` for every IRQ with a handler, or that ever fired.
pub fn for_each_irq(mut f: impl FnMut(&IrqRow)) {
    for i in 0..NR_IRQS {
        let counts: [u64; NR_CPUS] = core::array::from_fn(|c| COUNTS[i][c].load(Relaxed));
        let action = ACTIONS[i].get();
        if action.is_none() && counts.iter().all(|&c| c == 0) {
            continue;
        }
        let (chip, hwirq, trigger) = if i < 32 {
            ("bcm2836-timer", i as u32, "Edge")
        } else {
            // Linux's armctrl hwirq: bank << 5 | bit, banks 1 and 2 for the GPU IRQs.
            let n = (i - 32) as u32;
            ("ARMCTRL-level", (1 + n / 32) * 32 + n % 32, "Level")
        };
        f(&IrqRow { irq: i as u32, counts, chip, hwirq, trigger, name: action.map_or("(none)", |a| a.name) });
    }
}

/// Per-CPU spurious interrupts (entries that found nothing pending).
pub fn spurious_counts() -> [u64; NR_CPUS] {
    core::array::from_fn(|c| SPURIOUS[c].load(Relaxed))
}

/// Interrupts that had no handler (Linux's `Err:` row).
pub fn error_count() -> u64 {
    ERRORS.load(Relaxed)
}
