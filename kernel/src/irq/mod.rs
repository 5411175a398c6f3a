//! Interrupts: the BCM2836 local controller with the BCM2835 controller chained behind
//! its GPU input (as Linux's irq-bcm2836.c and irq-bcm2835.c), a small registry of
//! handlers ([`request_irq`]), per-CPU counts, and the entry from `vectors.S`.
//!
//! IRQ numbers: 0..=31 are the local controller's sources (3 = the CNTV timer; the
//! mailboxes are IPIs and are counted by [`crate::ipi`]), 32 + n is GPU interrupt n of
//! the BCM2835 controller (UART0 = 32 + 57). An interrupt that is pending with no
//! handler is counted, reported once and masked at its controller; an IRQ entry that
//! finds nothing pending is counted as spurious. Neither is ever a panic.

use crate::pr_warn;
use crate::smp::NR_CPUS;
use board::bcm2835_intc as armctrl;
use board::bcm2836_local::{self as local, source};
use boot::TrapFrame;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

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
static COUNTS: [[AtomicU64; NR_CPUS]; NR_IRQS] = [const { [const { AtomicU64::new(0) }; NR_CPUS] }; NR_IRQS];
static SPURIOUS: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];
/// Interrupts without a handler (Linux's irq_err_count).
static ERRORS: AtomicU64 = AtomicU64::new(0);
static REPORTED: [AtomicBool; NR_IRQS] = [const { AtomicBool::new(false) }; NR_IRQS];
static SPURIOUS_REPORTED: AtomicBool = AtomicBool::new(false);
/// Interrupt nesting per CPU (non-zero while a handler runs).
static IN_IRQ: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

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

/// Boot CPU: maps the local controller, puts both controllers in a known state (every
/// GPU source off, the GPU interrupt routed to core 0, as Linux's bcm2836 driver does),
/// then this CPU's local sources. Interrupts are unmasked by the caller once handlers
/// exist.
pub fn init() {
    let pa = mm::addr::PhysAddr::new(local::PHYS as u64);
    match crate::mm::vmalloc::ioremap(pa, board::mmio::LOCAL_SIZE, "bcm2836_local_intc") {
        Ok(va) => local::set_base(va.as_usize()),
        Err(e) => panic!("ioremap of the local interrupt controller failed: {e}"),
    }
    armctrl::init();
    local::route_gpu_irq(0);
    init_this_cpu();
}

/// Unmasks this CPU's local sources: its virtual timer and mailbox 0 (IPIs).
pub fn init_this_cpu() {
    let cpu = boot::cpu::cpu_id();
    board::arch_timer::shutdown();
    // Whatever the firmware left in this core's IPI mailbox is not an IPI of ours.
    local::mailbox_clear(cpu, 0, u32::MAX);
    local::enable_virtual_timer_irq(cpu);
    local::enable_mailbox_irq(cpu, 0);
}

fn generic_handle_irq(cpu: usize, irq: u32) {
    let i = irq as usize;
    COUNTS[i][cpu].fetch_add(1, Relaxed);
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

/// The local sources this kernel enables; anything else pending is an error.
const LOCAL_MAILBOXES: u32 = source::MAILBOX0 * 0xf;

/// Entered from `vectors.S` for an IRQ at EL1, with IRQs masked.
#[no_mangle]
extern "C" fn handle_irq(_frame: &mut TrapFrame) {
    let cpu = boot::cpu::cpu_id();
    IN_IRQ[cpu].fetch_add(1, Relaxed);
    let mut handled = false;
    // Bounded: a source that stays raised is handled again on the next entry.
    for _ in 0..4 {
        let pending = local::irq_source(cpu);
        if pending == 0 {
            break;
        }
        handled = true;
        if pending & LOCAL_MAILBOXES != 0 {
            crate::ipi::handle(cpu);
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
        let other = pending & !(LOCAL_MAILBOXES | source::CNTV | source::GPU);
        if other != 0 {
            // Never enabled by this kernel: count it once as an error per entry.
            let n = other.trailing_zeros();
            COUNTS[n as usize][cpu].fetch_add(1, Relaxed);
            unhandled(n);
            break;
        }
    }
    if !handled {
        count_spurious(cpu);
    }
    IN_IRQ[cpu].fetch_sub(1, Relaxed);
}

fn count_spurious(cpu: usize) {
    SPURIOUS[cpu].fetch_add(1, Relaxed);
    if !SPURIOUS_REPORTED.swap(true, Relaxed) {
        pr_warn!("irq: spurious interrupt on CPU{} (nothing pending); counted in /proc/interrupts' SPU row", cpu);
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
