//! The BCM2835 ARM interrupt controller at 0x3F00_B200: the GPU peripherals'
//! interrupts (64 "GPU IRQs" in two banks, plus the ARM-side basic sources), chained
//! behind the BCM2836 local controller's GPU interrupt. Linux's driver is
//! `drivers/irqchip/irq-bcm2835.c`.
//!
//! Source of every register used here: "BCM2835 ARM Peripherals" (Broadcom, 2012),
//! section 7.5 (registers at 0x7E00_B200 bus address = 0x3F00_B200 on the BCM2837):
//! IRQ pending 1 (+0x04), IRQ pending 2 (+0x08), enable IRQs 1/2 (+0x10/+0x14), disable
//! IRQs 1/2 (+0x1C/+0x20), disable basic IRQs (+0x24). The pending bits are also
//! ANDed here with the set this driver enabled, so a source nobody enabled is never
//! dispatched whatever the hardware reports. Interrupt 57 is UART0 (the PL011; the
//! "ARM peripherals interrupts table" of section 7.5).

use crate::mmio::Mmio;
use core::sync::atomic::{AtomicU64, Ordering};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, WriteOnly};

register_structs! {
    /// The interrupt registers (BCM2835 ARM Peripherals 7.5).
    pub IntcRegisters {
        (0x00 => _basic_pending),
        (0x04 => pending1: ReadOnly<u32>),
        (0x08 => pending2: ReadOnly<u32>),
        (0x0c => _fiq_control),
        (0x10 => enable1: WriteOnly<u32>),
        (0x14 => enable2: WriteOnly<u32>),
        (0x18 => _enable_basic),
        (0x1c => disable1: WriteOnly<u32>),
        (0x20 => disable2: WriteOnly<u32>),
        (0x24 => disable_basic: WriteOnly<u32>),
        (0x28 => @END),
    }
}

/// Offset of the controller in the peripheral window.
const OFFSET: usize = 0xB200;

static INTC: Mmio<IntcRegisters, OFFSET> = Mmio::INSTANCE;

/// What [`enable`] turned on.
static ENABLED: AtomicU64 = AtomicU64::new(0);

/// GPU interrupts: 0..=31 in bank 1, 32..=63 in bank 2.
pub const NR_GPU_IRQS: u32 = 64;

/// The PL011 UART0's GPU interrupt number.
pub const IRQ_UART0: u32 = 57;

/// Disables every source, as Linux's `armctrl_of_init` does, so nothing the firmware
/// left enabled fires before a handler exists.
pub fn init() {
    INTC.disable1.set(u32::MAX);
    INTC.disable2.set(u32::MAX);
    INTC.disable_basic.set(u32::MAX);
    ENABLED.store(0, Ordering::Release);
}

/// Enables GPU interrupt `irq` (0..=63).
pub fn enable(irq: u32) {
    if irq < NR_GPU_IRQS {
        ENABLED.fetch_or(1 << irq, Ordering::AcqRel);
    }
    match irq {
        0..=31 => INTC.enable1.set(1 << irq),
        32..=63 => INTC.enable2.set(1 << (irq - 32)),
        _ => {}
    }
}

/// Disables GPU interrupt `irq` (0..=63).
pub fn disable(irq: u32) {
    if irq < NR_GPU_IRQS {
        ENABLED.fetch_and(!(1 << irq), Ordering::AcqRel);
    }
    match irq {
        0..=31 => INTC.disable1.set(1 << irq),
        32..=63 => INTC.disable2.set(1 << (irq - 32)),
        _ => {}
    }
}

/// The pending (and enabled) GPU interrupts as a 64-bit mask: bit n = GPU IRQ n.
pub fn pending() -> u64 {
    let raw = (INTC.pending1.get() as u64) | ((INTC.pending2.get() as u64) << 32);
    raw & ENABLED.load(Ordering::Acquire)
}
