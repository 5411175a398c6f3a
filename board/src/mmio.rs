//! Where the peripherals are, physically and virtually.
//!
//! Until the kernel has ioremapped the peripheral window, the drivers use boot/'s
//! identity map (virtual = physical). The base is an atomic so the switch is a plain
//! store: no exclusive access is involved, which matters before the MMU is on.

use core::marker::PhantomData;
use core::ops::Deref;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Physical base of the BCM2837 peripherals (ARM view).
pub const PERIPHERAL_PHYS: usize = 0x3F00_0000;
/// Size of the peripheral window.
pub const PERIPHERAL_SIZE: usize = 0x0100_0000;
/// Physical base of the Cortex-A53 local peripherals (core mailboxes, local timer).
pub const LOCAL_PHYS: usize = 0x4000_0000;
/// Size of the local peripheral window.
pub const LOCAL_SIZE: usize = 0x1000;

/// Offsets inside the peripheral window.
pub mod offset {
    /// VideoCore mailbox 0.
    pub const MAILBOX: usize = 0xB880;
    /// Power management, reset and watchdog.
    pub const PM: usize = 0x10_0000;
    /// GPIO.
    pub const GPIO: usize = 0x20_0000;
    /// PL011 UART0.
    pub const UART0: usize = 0x20_1000;
    /// AUX block: mini UART (UART1), SPI1, SPI2.
    pub const AUX: usize = 0x21_5000;
}

static PERIPHERAL_VIRT: AtomicUsize = AtomicUsize::new(PERIPHERAL_PHYS);

/// Moves every driver to a new virtual base of the peripheral window.
pub fn set_peripheral_base(virt: usize) {
    PERIPHERAL_VIRT.store(virt, Ordering::Release);
}

/// Current virtual base of the peripheral window.
pub fn peripheral_base() -> usize {
    PERIPHERAL_VIRT.load(Ordering::Acquire)
}

/// A typed register block at `peripheral_base() + OFFSET`.
pub struct Mmio<T, const OFFSET: usize> {
    _regs: PhantomData<fn() -> T>,
}

impl<T, const OFFSET: usize> Mmio<T, OFFSET> {
    /// The block; there is one per device and it is shared (registers have interior
    /// mutability).
    pub const INSTANCE: Self = Self { _regs: PhantomData };

    /// Virtual address of the block.
    pub fn addr(&self) -> usize {
        peripheral_base() + OFFSET
    }
}

impl<T, const OFFSET: usize> Deref for Mmio<T, OFFSET> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the peripheral window is mapped as Device memory at peripheral_base()
        // (identity map at boot, ioremap later), the block lies inside it, and the
        // register types only allow volatile access.
        unsafe { &*(self.addr() as *const T) }
    }
}
