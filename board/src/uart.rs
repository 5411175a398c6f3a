//! PL011 UART0 on GPIO14 (TXD) / GPIO15 (RXD), 8N1: polled transmit, receive by
//! interrupt once [`enable_rx_interrupt`] is called ([`try_getb`] polls before that).
//!
//! On a Pi 3 the PL011 is wired to the Bluetooth modem until GPIO14/15 are switched to
//! ALT0, which [`init`] does; QEMU prints even without any of this, so only real
//! hardware shows a missing step. The baud divisor comes from the UART clock the
//! firmware reports (48 MHz with `init_uart_clock=48000000`, 3 MHz in QEMU).
//!
//! No wait here is unbounded. With `uart_2ndstage=1` the firmware may still be printing
//! when the kernel starts: BUSY is set while the transmit FIFO holds data *whether or
//! not the UART is enabled*, and a disabled PL011 never drains it, so [`init`] waits for
//! BUSY to clear *before* disabling, for at most [`DRAIN_TIMEOUT_US`].
//!
//! Bytes typed (or piped into QEMU) before the kernel is up wait in the receiver, and
//! enabling the FIFOs empties it: a real PL011 flushes its FIFOs when LCR_H.FEN changes,
//! and QEMU's resets its FIFO on that write. So [`init`] first takes what the receiver
//! holds ([`drain`], bounded) and hands it to the caller, which queues it as input
//! (`kernel/src/tty.rs`): a piped `help` arrives as `help`, not `elp`. The register
//! logic ([`wait_idle`], [`drain`], [`rx_byte`]) is tested on the host over a simulated
//! register block.

use crate::poll::{poll_timeout, TimedOut};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,
    DR [
        /// Overrun: a byte arrived with the receive FIFO full (this one is kept, one lost).
        OE OFFSET(11) NUMBITS(1) [],
        /// Break: the line was held low longer than a character.
        BE OFFSET(10) NUMBITS(1) [],
        /// Parity error.
        PE OFFSET(9) NUMBITS(1) [],
        /// Framing error: no valid stop bit (noise, a wrong baud rate, a floating RXD).
        FE OFFSET(8) NUMBITS(1) [],
        /// The received byte.
        DATA OFFSET(0) NUMBITS(8) []
    ],
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
        (0x00 => dr: ReadWrite<u32, DR::Register>),
        (0x04 => rsr_ecr: ReadWrite<u32>),
        (0x08 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: WriteOnly<u32>),
        (0x28 => fbrd: WriteOnly<u32>),
        (0x2c => lcr_h: WriteOnly<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => ifls: WriteOnly<u32, IFLS::Register>),
        (0x38 => imsc: WriteOnly<u32, IMSC::Register>),
        (0x3c => _reserved3),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

/// The serial line speed.
pub const BAUD: u32 = 115_200;

/// Longest wait for the transmitter to go idle before reprogramming it: a full FIFO
/// takes about 1.4 ms at 115200 baud; past this the UART is taken over anyway.
pub const DRAIN_TIMEOUT_US: u64 = 20_000;
/// Longest wait for room in the transmit FIFO (one character is 87 us at 115200 baud).
/// A byte that still finds no room is dropped: a console must never hang the kernel.
pub const TX_TIMEOUT_US: u64 = 10_000;

/// Waits, for at most `timeout` ticks of `now`, until the transmitter is idle (BUSY
/// clear). Call it with the UART still enabled: a disabled PL011 never drains.
pub fn wait_idle(uart: &Pl011Registers, now: impl FnMut() -> u64, timeout: u64) -> Result<(), TimedOut> {
    poll_timeout(|| !uart.fr.is_set(FR::BUSY), now, timeout)
}

/// Most bytes one [`drain`] call takes: the 16-entry receive FIFO plus what arrives
/// meanwhile, with room to spare; a receiver that never reads empty cannot hold it longer.
pub const RX_DRAIN_MAX: usize = 64;
/// Most bytes [`init`] takes over from the receiver ([`drain_until_quiet`]): a line
/// typed or piped before boot.
pub const RX_HANDOVER_MAX: usize = 256;
/// How long the receiver must stay empty before [`init`] reprograms it: two characters
/// at 115200 baud, so a byte that was on the wire arrives first (and in QEMU, the next
/// byte of piped input, which it delivers once the previous one was read).
pub const RX_QUIET_US: u64 = 2 * 87;

/// Takes what the receiver holds, at most [`RX_DRAIN_MAX`] bytes: good bytes go to
/// `sink`, bytes with a framing, parity or break error are dropped ([`rx_byte`]).
/// Returns how many came with the overrun flag (the FIFO was full and a byte was lost in
/// the UART itself).
pub fn drain(uart: &Pl011Registers, mut sink: impl FnMut(u8)) -> u32 {
    let mut overruns = 0;
    for _ in 0..RX_DRAIN_MAX {
        if uart.fr.is_set(FR::RXFE) {
            break;
        }
        let d = uart.dr.get();
        if d & DR::OE::SET.value != 0 {
            overruns += 1;
        }
        // The byte that carries OE is itself good (the one after it was lost).
        if let Some(b) = rx_byte(d & !DR::OE::SET.value) {
            sink(b);
        }
    }
    overruns
}

/// Like [`drain`], but goes on until the receiver has stayed empty for `quiet` ticks of
/// `now`, at most `max` bytes: the hand-over of what was typed before the UART is
/// reprogrammed. Returns the overrun count.
pub fn drain_until_quiet(
    uart: &Pl011Registers,
    mut sink: impl FnMut(u8),
    mut now: impl FnMut() -> u64,
    quiet: u64,
    max: usize,
) -> u32 {
    let mut overruns = 0;
    let mut taken = 0;
    while taken < max {
        let mut got = false;
        overruns += drain(uart, |b| {
            got = true;
            taken += 1;
            sink(b)
        });
        if !got && poll_timeout(|| !uart.fr.is_set(FR::RXFE), &mut now, quiet).is_err() {
            break;
        }
    }
    overruns
}

/// One received byte, if one is waiting: the polled read of the chainloader. A byte
/// with a framing, parity or break error is dropped (and the error cleared) and the
/// next one looked at, at most `max` reads; the byte that carries the overrun flag is
/// itself good (the one after it was lost), so it is returned, and the flag cleared.
pub fn poll_byte(uart: &Pl011Registers, max: usize) -> Option<u8> {
    for _ in 0..max {
        if uart.fr.is_set(FR::RXFE) {
            return None;
        }
        let d = uart.dr.get();
        if d & DR::OE::SET.value != 0 {
            uart.rsr_ecr.set(0);
        }
        match rx_byte(d & !DR::OE::SET.value) {
            Some(b) => return Some(b),
            None => uart.rsr_ecr.set(0),
        }
    }
    None
}

/// The byte in a DR value, or `None` if it came with a framing, parity, break or
/// overrun error (line noise, a floating RXD, a wrong baud rate): such bytes never
/// reach the console.
pub fn rx_byte(dr: u32) -> Option<u8> {
    let errors = DR::OE::SET.value | DR::BE::SET.value | DR::PE::SET.value | DR::FE::SET.value;
    (dr & errors == 0).then_some((dr & 0xff) as u8)
}

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use crate::baud::divisors;
    use crate::gpio::{self, Function, Pull};
    use crate::mmio::{offset, Mmio};
    use crate::poll::us_to_ticks;
    use crate::timer;

    static UART0: Mmio<Pl011Registers, { offset::UART0 }> = Mmio::INSTANCE;

    /// Receive FIFO depth: the most bytes [`try_getb`] looks at in one call.
    const RX_FIFO_DEPTH: usize = 32;

    /// Routes the pins and programs the UART for 115200 8N1 at `clock_hz`. What the
    /// receiver already holds (input typed before boot) goes to `held` first, since
    /// enabling the FIFOs empties it; overrun flags on those bytes are not counted (they
    /// were lost before anything ran that could report them). Returns `Err` if the
    /// PL011's transmitter was still busy after [`DRAIN_TIMEOUT_US`], or the mini
    /// UART's after its own bound (the firmware's last bytes may then be cut short; the
    /// UART is set up all the same).
    pub fn init(clock_hz: u32, mut held: impl FnMut(u8)) -> Result<(), TimedOut> {
        let uart = &*UART0;
        // Drain while still enabled, then disable while reprogramming.
        let drained = wait_idle(uart, timer::ticks, us_to_ticks(DRAIN_TIMEOUT_US, timer::frequency()));
        // What the receiver holds, taken while the UART still runs as it was left ...
        let _ = drain(uart, &mut held);
        uart.cr.set(0);
        uart.icr.set(0x7ff);
        uart.rsr_ecr.set(0);
        let (ibrd, fbrd) = divisors(clock_hz, BAUD);
        uart.ibrd.set(ibrd);
        uart.fbrd.set(fbrd);
        // ... and what arrived since, until the line is quiet, right before LCR_H is
        // written: its FEN write empties the receive FIFO (QEMU keeps delivering piped
        // input, a byte each time one is read, so nothing slow may run in between).
        let quiet = us_to_ticks(RX_QUIET_US, timer::frequency());
        let _ = drain_until_quiet(uart, &mut held, timer::ticks, quiet, RX_HANDOVER_MAX);
        // Writing LCR_H latches IBRD/FBRD.
        uart.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        // The firmware's default pulls: none on TXD (driven), up on RXD, so that an
        // unconnected or watch-only RX line reads idle instead of noise.
        gpio::set_pull_bank0(1 << 14, Pull::Off);
        gpio::set_pull_bank0(1 << 15, Pull::Up);
        // The firmware's console is the mini UART on these pins (ALT5): let it finish
        // its last line before they switch to the PL011.
        let mini = crate::mini_uart::flush();
        gpio::set_function(14, Function::Alt0);
        gpio::set_function(15, Function::Alt0);
        uart.imsc.set(0);
        uart.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        // RX interrupt at 1/8 full (PL011 TRM 3.3.14); masked until enable_rx_interrupt.
        uart.ifls.write(IFLS::RXIFLSEL::OneEighth);
        drained.and(mini)
    }

    /// Unmasks the receive and receive-timeout interrupts (PL011 TRM 3.3.15, UARTIMSC):
    /// the UART raises GPU IRQ 57 while received data waits. The caller has a handler.
    pub fn enable_rx_interrupt() {
        UART0.icr.set(0x7ff);
        UART0.imsc.write(IMSC::RXIM::SET + IMSC::RTIM::SET);
    }

    /// The receive interrupt: empties the RX FIFO into `sink` (which clears the RX and
    /// receive-timeout interrupts, PL011 TRM 3.4.2); returns how many bytes came with the
    /// overrun flag (the FIFO was full and a byte was lost in the UART itself). Bytes
    /// with a framing, parity or break error are dropped, as in [`try_getb`]. Bounded by
    /// the FIFO's 16 entries plus what arrives meanwhile.
    pub fn drain_rx(sink: impl FnMut(u8)) -> u32 {
        let overruns = drain(&UART0, sink);
        // RX and receive-timeout clear as the FIFO empties; clear the error interrupts
        // (OE, BE, PE, FE: bits 10..7) only, so a byte that arrived meanwhile still
        // raises its interrupt.
        UART0.icr.set(0x780);
        UART0.rsr_ecr.set(0);
        overruns
    }

    /// Sends one byte, waiting (at most [`TX_TIMEOUT_US`]) for room in the FIFO.
    pub fn putb(b: u8) {
        if UART0.fr.is_set(FR::TXFF) && timer::poll_us(|| !UART0.fr.is_set(FR::TXFF), TX_TIMEOUT_US).is_err() {
            return;
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

    /// A received byte, if one is waiting ([`poll_byte`]). Bytes received with a
    /// framing, parity or break error are dropped (and the error flags cleared), so
    /// noise never reaches the console.
    pub fn try_getb() -> Option<u8> {
        poll_byte(&UART0, RX_FIFO_DEPTH)
    }

    /// Waits (at most [`DRAIN_TIMEOUT_US`]) until everything queued has left the UART.
    pub fn flush() {
        let _ = timer::poll_us(|| !UART0.fr.is_set(FR::BUSY), DRAIN_TIMEOUT_US);
    }
}

#[cfg(target_os = "none")]
pub use hw::{drain_rx, enable_rx_interrupt, flush, init, putb, puts, try_getb};

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// A register block in ordinary memory, as the device would show it.
    #[repr(C, align(4))]
    struct Simulated([u32; 0x48 / 4]);

    impl Simulated {
        fn regs(&self) -> &Pl011Registers {
            // SAFETY: the register block is 0x48 bytes of u32 cells with interior
            // mutability (UnsafeCell inside), the same size and alignment as `Simulated`;
            // the test only reads through it.
            unsafe { &*(self as *const Simulated as *const Pl011Registers) }
        }
    }

    #[test]
    fn init_does_not_hang_on_an_always_busy_transmitter() {
        let mut sim = Simulated([0; 0x48 / 4]);
        sim.0[0x18 / 4] = FR::BUSY::SET.value; // BUSY for ever: disabled with a full FIFO
        let clock = Cell::new(0u64);
        let r = wait_idle(sim.regs(), || clock.replace(clock.get() + 1), 20_000);
        assert_eq!(r, Err(TimedOut));
        assert!(clock.get() <= 20_003, "gave up at the timeout");
    }

    #[test]
    fn an_idle_transmitter_is_not_waited_for() {
        let sim = Simulated([0; 0x48 / 4]);
        assert_eq!(wait_idle(sim.regs(), || unreachable!("no clock needed"), 0), Ok(()));
    }

    #[test]
    fn drain_takes_nothing_from_an_empty_receiver() {
        let mut sim = Simulated([0; 0x48 / 4]);
        sim.0[0x18 / 4] = FR::RXFE::SET.value;
        sim.0[0] = b'h' as u32;
        assert_eq!(drain(sim.regs(), |b| panic!("read {b:#x} from an empty FIFO")), 0);
    }

    #[test]
    fn drain_is_bounded_and_sorts_good_bytes_from_errors() {
        // A receiver that never reads empty (a stuck RXFE, a line of noise): the drain
        // gives up after RX_DRAIN_MAX reads instead of spinning.
        let mut sim = Simulated([0; 0x48 / 4]);
        sim.0[0] = DR::OE::SET.value | b'h' as u32;
        let mut got = 0;
        assert_eq!(
            drain(sim.regs(), |b| {
                assert_eq!(b, b'h', "the byte carrying OE is itself good");
                got += 1;
            }),
            RX_DRAIN_MAX as u32
        );
        assert_eq!(got, RX_DRAIN_MAX);
        sim.0[0] = DR::FE::SET.value | b'x' as u32;
        assert_eq!(drain(sim.regs(), |b| panic!("{b:#x} came with a framing error")), 0);
    }

    #[test]
    fn handover_waits_for_a_quiet_line_and_is_bounded() {
        // An empty receiver: one quiet period, nothing taken.
        let mut sim = Simulated([0; 0x48 / 4]);
        sim.0[0x18 / 4] = FR::RXFE::SET.value;
        let clock = Cell::new(0u64);
        let tick = || clock.replace(clock.get() + 1);
        assert_eq!(drain_until_quiet(sim.regs(), |b| panic!("read {b:#x}"), tick, 100, 256), 0);
        assert!((100..=103).contains(&clock.get()), "waited one quiet period, took {}", clock.get());
        // A receiver that never empties: stops at `max` bytes.
        sim.0[0x18 / 4] = 0;
        sim.0[0] = b'h' as u32;
        let mut got = 0;
        drain_until_quiet(sim.regs(), |_| got += 1, || 0, 100, 200);
        assert!((200..200 + RX_DRAIN_MAX).contains(&got), "took {got} bytes for a max of 200");
    }

    #[test]
    fn the_polled_read_keeps_the_byte_that_carries_the_overrun_flag() {
        let mut sim = Simulated([0; 0x48 / 4]);
        sim.0[0] = DR::OE::SET.value | b'k' as u32;
        sim.0[0x04 / 4] = 0xf; // the error register as the UART left it
        assert_eq!(poll_byte(sim.regs(), 32), Some(b'k'));
        assert_eq!(sim.0[0x04 / 4], 0, "the overrun flag is cleared");
        // A framing error is dropped, and the reads stop at `max` on a receiver that
        // never empties.
        sim.0[0] = DR::FE::SET.value | b'x' as u32;
        assert_eq!(poll_byte(sim.regs(), 32), None);
        sim.0[0x18 / 4] = FR::RXFE::SET.value;
        assert_eq!(poll_byte(sim.regs(), 32), None, "an empty receiver gives nothing");
    }

    #[test]
    fn received_bytes_with_errors_are_dropped() {
        assert_eq!(rx_byte(b'a' as u32), Some(b'a'));
        assert_eq!(rx_byte(0xff), Some(0xff));
        for bit in [8, 9, 10, 11] {
            assert_eq!(rx_byte((1 << bit) | b'x' as u32), None, "error bit {bit}");
        }
        assert_eq!(rx_byte(1 << 12), Some(0), "bits above the error flags are not errors");
    }
}
