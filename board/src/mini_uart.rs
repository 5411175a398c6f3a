//! The mini UART (UART1, in the AUX block at 0x3F215000), which this kernel never uses:
//! on a Pi 3 it is the firmware's console on GPIO14/15 (ALT5) with `enable_uart=1`, and
//! `uart_2ndstage=1` messages are still in its transmitter when the kernel starts.
//! Switching the pins to the PL011 (ALT0) while it sends cuts the firmware's last line,
//! so [`wait_tx_idle`] waits first, bounded, until the mini UART has sent everything
//! (AUX_MU_LSR bit 6, transmitter idle), as Linux's 8250 driver waits for TEMT.
//! Tested on the host over a simulated register block.

use crate::poll::{poll_timeout, TimedOut};
use tock_registers::interfaces::Readable;
use tock_registers::registers::ReadOnly;
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,
    /// AUX enables (BCM2835 ARM Peripherals 2.1.1).
    AUX_ENABLES [
        /// The mini UART is enabled (its registers answer only then).
        MINI_UART OFFSET(0) NUMBITS(1) []
    ],
    /// Mini UART line status (2.2.2).
    AUX_MU_LSR [
        /// The transmit FIFO is empty and the transmitter idle.
        TX_IDLE OFFSET(6) NUMBITS(1) [],
        /// The transmit FIFO can take at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) []
    ]
}

register_structs! {
    /// The AUX block's registers this kernel reads.
    pub AuxRegisters {
        (0x00 => _irq),
        (0x04 => enables: ReadOnly<u32, AUX_ENABLES::Register>),
        (0x08 => _reserved0),
        (0x54 => mu_lsr: ReadOnly<u32, AUX_MU_LSR::Register>),
        (0x58 => @END),
    }
}

/// Longest wait for the mini UART to finish: its 8-byte FIFO plus the shift register
/// take under 1 ms at 115200 baud; past this the pins are switched anyway.
pub const TX_IDLE_TIMEOUT_US: u64 = 20_000;

/// Waits, for at most `timeout` ticks of `now`, until the mini UART has sent all it
/// holds. A disabled mini UART (the firmware did not use it) is not waited for, nor
/// read: its registers do not answer while AUX_ENABLES bit 0 is clear.
pub fn wait_tx_idle(aux: &AuxRegisters, now: impl FnMut() -> u64, timeout: u64) -> Result<(), TimedOut> {
    if !aux.enables.is_set(AUX_ENABLES::MINI_UART) {
        return Ok(());
    }
    poll_timeout(|| aux.mu_lsr.is_set(AUX_MU_LSR::TX_IDLE), now, timeout)
}

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use crate::mmio::{offset, Mmio};
    use crate::poll::us_to_ticks;
    use crate::timer;

    static AUX: Mmio<AuxRegisters, { offset::AUX }> = Mmio::INSTANCE;

    /// [`wait_tx_idle`] on the board's mini UART, for at most [`TX_IDLE_TIMEOUT_US`].
    pub fn flush() -> Result<(), TimedOut> {
        wait_tx_idle(&AUX, timer::ticks, us_to_ticks(TX_IDLE_TIMEOUT_US, timer::frequency()))
    }
}

#[cfg(target_os = "none")]
pub use hw::flush;

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[repr(C, align(4))]
    struct Simulated([u32; 0x58 / 4]);

    impl Simulated {
        fn regs(&self) -> &AuxRegisters {
            // SAFETY: the register block is 0x58 bytes of u32 cells with interior
            // mutability, the same size and alignment as `Simulated`; only read here.
            unsafe { &*(self as *const Simulated as *const AuxRegisters) }
        }
    }

    const ENABLES: usize = 1; // 0x04
    const LSR: usize = 0x54 / 4;

    #[test]
    fn a_disabled_mini_uart_is_neither_read_nor_waited_for() {
        let mut sim = Simulated([0; 0x58 / 4]);
        sim.0[LSR] = 0; // never idle: it would time out if it were polled
        assert_eq!(wait_tx_idle(sim.regs(), || unreachable!("no clock needed"), 0), Ok(()));
    }

    #[test]
    fn a_sending_mini_uart_is_waited_for_until_idle_and_no_longer() {
        let mut sim = Simulated([0; 0x58 / 4]);
        sim.0[ENABLES] = 1;
        sim.0[LSR] = 1 << 5; // FIFO has room, but the transmitter still sends
        let clock = Cell::new(0u64);
        let r = wait_tx_idle(sim.regs(), || clock.replace(clock.get() + 1), 1000);
        assert_eq!(r, Err(TimedOut));
        assert!((1000..=1003).contains(&clock.get()), "gave up at the timeout, {}", clock.get());
        sim.0[LSR] = (1 << 6) | (1 << 5);
        assert_eq!(wait_tx_idle(sim.regs(), || unreachable!("idle: no wait"), 1000), Ok(()));
    }
}
