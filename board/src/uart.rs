//! PL011 UART0 on GPIO14 (TXD) / GPIO15 (RXD), 8N1: polled transmit, receive by
//! interrupt once [`enable_rx_interrupt`] is called ([`try_getb`] polls before that).
//!
//! On a Pi 3 the PL011 is wired to the Bluetooth modem until GPIO14/15 are switched to
//! ALT0, which [`init`] does; QEMU prints even without any of this, so only real
//! hardware shows a missing step. The baud divisor comes from the UART clock the
//! firmware reports (48 MHz with `init_uart_clock=48000000`, 3 MHz in QEMU).

use crate::baud::divisors;
use crate::gpio::{self, Function, Pull};
use crate::mmio::{offset, Mmio};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    LCR_H [
        /// Word length.
        WLEN OFFSET(5) NUMBITS(2) [EightBit = 0b11],
        /// FIFOs enabled.
        FEN OFFSET(4) NUMBITS(1) []
    ],
    IFLS [
        /// Receive interrupt FIFO level: 1/8 full (2 of 16 bytes).
        RXIFLSEL OFFSET(3) NUMBITS(3) [OneEighth = 0b000]
    ],
    IMSC [
        /// Receive timeout interrupt (data waiting below the FIFO level).
        RTIM OFFSET(6) NUMBITS(1) [],
        /// Receive interrupt (FIFO level reached).
        RXIM OFFSET(4) NUMBITS(1) []
    ],
    CR [
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) []
    ]
}

register_structs! {
    /// PL011 registers.
    pub Pl011Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: WriteOnly<u32>),
        (0x28 => fbrd: WriteOnly<u32>),
        (0x2c => lcr_h: WriteOnly<u32, LCR_H::Register>),
        (0x30 => cr: WriteOnly<u32, CR::Register>),
        (0x34 => ifls: WriteOnly<u32, IFLS::Register>),
        (0x38 => imsc: WriteOnly<u32, IMSC::Register>),
        (0x3c => _reserved3),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

static UART0: Mmio<Pl011Registers, { offset::UART0 }> = Mmio::INSTANCE;

/// The serial line speed.
pub const BAUD: u32 = 115_200;

/// Routes the pins and programs the UART for 115200 8N1 at `clock_hz`.
pub fn init(clock_hz: u32) {
    let uart = &UART0;
    // Disable while reprogramming, wait for the line to drain.
    uart.cr.set(0);
    while uart.fr.is_set(FR::BUSY) {}
    gpio::set_function(14, Function::Alt0);
    gpio::set_function(15, Function::Alt0);
    gpio::set_pull_bank0((1 << 14) | (1 << 15), Pull::Off);
    uart.icr.set(0x7ff);
    let (ibrd, fbrd) = divisors(clock_hz, BAUD);
    uart.ibrd.set(ibrd);
    uart.fbrd.set(fbrd);
    // Writing LCR_H latches IBRD/FBRD.
    uart.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
    uart.imsc.set(0);
    uart.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    // RX interrupt at 1/8 full (PL011 TRM 3.3.14); masked until enable_rx_interrupt.
    uart.ifls.write(IFLS::RXIFLSEL::OneEighth);
}

/// Overrun error bit of a DR read (PL011 TRM 3.3.1): the FIFO was full, a byte was lost.
const DR_OE: u32 = 1 << 11;

/// Unmasks the receive and receive-timeout interrupts (PL011 TRM 3.3.15, UARTIMSC):
/// the UART raises GPU IRQ 57 while received data waits. The caller has a handler.
pub fn enable_rx_interrupt() {
    UART0.icr.set(0x7ff);
    UART0.imsc.write(IMSC::RXIM::SET + IMSC::RTIM::SET);
}

/// The receive interrupt: empties the RX FIFO into `sink` (which clears the RX and
/// receive-timeout interrupts, PL011 TRM 3.4.2); returns how many bytes came with the
/// overrun flag (the FIFO was full and a byte was lost in the UART itself). Bounded by
/// the FIFO's 16 entries plus what arrives meanwhile.
pub fn drain_rx(mut sink: impl FnMut(u8)) -> u32 {
    let mut overruns = 0;
    for _ in 0..64 {
        if UART0.fr.is_set(FR::RXFE) {
            break;
        }
        let d = UART0.dr.get();
        if d & DR_OE != 0 {
            overruns += 1;
        }
        sink((d & 0xff) as u8);
    }
    // RX and receive-timeout clear as the FIFO empties; clear the error interrupts
    // (OE, BE, PE, FE: bits 10..7) only, so a byte that arrived meanwhile still
    // raises its interrupt.
    UART0.icr.set(0x780);
    overruns
}

/// Sends one byte, waiting for room in the FIFO.
pub fn putb(b: u8) {
    while UART0.fr.is_set(FR::TXFF) {
        core::hint::spin_loop();
    }
    UART0.dr.set(b as u32);
}

/// Sends a string, turning `\n` into `\r\n` for terminals.
pub fn puts(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            putb(b'\r');
        }
        putb(b);
    }
}

/// A received byte, if one is waiting.
pub fn try_getb() -> Option<u8> {
    if UART0.fr.is_set(FR::RXFE) {
        None
    } else {
        Some((UART0.dr.get() & 0xff) as u8)
    }
}

/// Waits until everything queued has left the UART.
pub fn flush() {
    while UART0.fr.is_set(FR::BUSY) {
        core::hint::spin_loop();
    }
}
