//! The BCM2836/7 ARM-local interrupt controller at 0x4000_0000: per-core routing of the
//! generic-timer interrupts, the four mailboxes of each core (used for IPIs), the
//! per-core IRQ source register and the routing of the GPU (BCM2835 controller)
//! interrupt to one core. Linux's driver is `drivers/irqchip/irq-bcm2836.c`.
//!
//! Source of every register used here: "BCM2836 ARM-local peripherals" (Raspberry Pi
//! document QA7_rev3.4), sections 4.3 (GPU interrupt routing, 0x0C), 4.6 (core timers
//! interrupt control, 0x40), 4.7 (core mailboxes interrupt control, 0x50), 4.10 (core
//! interrupt sources, 0x60) and 4.11 (mailbox write-set 0x80 and read/write-clear 0xC0).
//! Only these documented registers are touched. QEMU implements the block
//! (`hw/intc/bcm2836_control.c`).
//!
//! The block is not inside the BCM2835 peripheral window, so it has its own virtual
//! base ([`set_base`]): the identity-mapped physical address until the kernel has
//! ioremapped it.

use core::sync::atomic::{AtomicUsize, Ordering};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,
    /// Core timers interrupt control (QA7 4.6): which timer raises this core's IRQ.
    pub TIMER_CNTRL [
        /// Secure physical timer (CNTPS) IRQ.
        CNTPS_IRQ OFFSET(0) NUMBITS(1) [],
        /// Non-secure physical timer (CNTPNS) IRQ.
        CNTPNS_IRQ OFFSET(1) NUMBITS(1) [],
        /// Hypervisor timer (CNTHP) IRQ.
        CNTHP_IRQ OFFSET(2) NUMBITS(1) [],
        /// Virtual timer (CNTV) IRQ.
        CNTV_IRQ OFFSET(3) NUMBITS(1) []
    ],
    /// GPU interrupts routing (QA7 4.3).
    pub GPU_ROUTING [
        /// Core that receives the GPU IRQ.
        IRQ_CORE OFFSET(0) NUMBITS(2) [],
        /// Core that receives the GPU FIQ.
        FIQ_CORE OFFSET(2) NUMBITS(2) []
    ]
}

register_structs! {
    /// The ARM-local registers this kernel uses (QA7 section 4).
    pub LocalRegisters {
        (0x00 => _control),
        (0x0c => gpu_int_routing: ReadWrite<u32, GPU_ROUTING::Register>),
        (0x10 => _reserved0),
        (0x40 => timer_int_ctrl: [ReadWrite<u32, TIMER_CNTRL::Register>; 4]),
        (0x50 => mailbox_int_ctrl: [ReadWrite<u32>; 4]),
        (0x60 => irq_source: [ReadOnly<u32>; 4]),
        (0x70 => _fiq_source),
        (0x80 => mailbox_set: [WriteOnly<u32>; 16]),
        (0xc0 => mailbox_rdclr: [ReadWrite<u32>; 16]),
        (0x100 => @END),
    }
}

/// Bits of a core's IRQ source register (QA7 4.10).
pub mod source {
    /// Secure physical timer.
    pub const CNTPS: u32 = 1 << 0;
    /// Non-secure physical timer.
    pub const CNTPNS: u32 = 1 << 1;
    /// Hypervisor timer.
    pub const CNTHP: u32 = 1 << 2;
    /// Virtual timer.
    pub const CNTV: u32 = 1 << 3;
    /// Mailbox `m` (0..=3) is `MAILBOX0 << m`.
    pub const MAILBOX0: u32 = 1 << 4;
    /// The GPU interrupt (the BCM2835 controller has something pending).
    pub const GPU: u32 = 1 << 8;
    /// Performance monitors.
    pub const PMU: u32 = 1 << 9;
    /// Local timer.
    pub const LOCAL_TIMER: u32 = 1 << 11;
}

/// Physical address of the block.
pub const PHYS: usize = crate::mmio::LOCAL_PHYS;

static BASE: AtomicUsize = AtomicUsize::new(PHYS);

/// Moves the driver to the block's virtual address (after ioremap).
pub fn set_base(virt: usize) {
    BASE.store(virt, Ordering::Release);
}

fn regs() -> &'static LocalRegisters {
    // SAFETY: BASE is the block's identity-mapped physical address or its ioremapped
    // (Device memory) address; LocalRegisters covers documented registers only and
    // allows only volatile access.
    unsafe { &*(BASE.load(Ordering::Acquire) as *const LocalRegisters) }
}

/// Routes the GPU IRQ (the BCM2835 controller's output) to `core` (QA7 4.3).
pub fn route_gpu_irq(core: usize) {
    regs().gpu_int_routing.write(GPU_ROUTING::IRQ_CORE.val(core as u32 & 3) + GPU_ROUTING::FIQ_CORE.val(0));
}

/// Lets `core`'s virtual timer (CNTV) raise its IRQ (QA7 4.6); no other timer, no FIQ.
pub fn enable_virtual_timer_irq(core: usize) {
    regs().timer_int_ctrl[core & 3].write(TIMER_CNTRL::CNTV_IRQ::SET);
}

/// Lets mailbox `mailbox` of `core` raise its IRQ (QA7 4.7); the others stay off.
pub fn enable_mailbox_irq(core: usize, mailbox: usize) {
    regs().mailbox_int_ctrl[core & 3].set(1 << (mailbox & 3));
}

/// `core`'s pending IRQ sources ([`source`] bits).
pub fn irq_source(core: usize) -> u32 {
    regs().irq_source[core & 3].get()
}

/// Sets `bits` in mailbox `mailbox` of `core` (write-set register, QA7 4.11): the
/// mailbox's interrupt stays raised until every bit is cleared.
pub fn mailbox_set(core: usize, mailbox: usize, bits: u32) {
    regs().mailbox_set[(core & 3) * 4 + (mailbox & 3)].set(bits);
}

/// Reads mailbox `mailbox` of `core`.
pub fn mailbox_read(core: usize, mailbox: usize) -> u32 {
    regs().mailbox_rdclr[(core & 3) * 4 + (mailbox & 3)].get()
}

/// Clears `bits` of mailbox `mailbox` of `core` (write-high-to-clear, QA7 4.11).
pub fn mailbox_clear(core: usize, mailbox: usize, bits: u32) {
    regs().mailbox_rdclr[(core & 3) * 4 + (mailbox & 3)].set(bits);
}
