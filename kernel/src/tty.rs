//! The console's input side: the PL011's receive interrupt fills a 4 KiB ring that the
//! shell reads, and Ctrl-C is a signal to the running command, as a terminal's ISIG.
//!
//! - Input typed before the kernel is up (or piped into QEMU) is kept: [`uart_init`]
//!   takes over the UART and queues what its receiver held first (enabling the FIFOs
//!   would empty it), so a piped `help` arrives whole.
//! - Input typed while a command runs waits in the ring and is read after it.
//! - A full ring refuses bytes and counts them, and so does the UART's own overrun
//!   flag; the shell reports both ([`take_lost_input`]), nothing is lost silently.
//! - Ctrl-C while a command runs sets the pending-interrupt flag that long commands
//!   poll at safe points ([`signal_pending`]) and discards the input typed before it
//!   (Linux flushes the tty queues on SIGINT). At the prompt it reaches the line
//!   editor, which cancels the line.

use crate::console::ring::ByteRing;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use mm::sync::SpinLock;

/// Capacity of the input ring.
pub const RX_RING_SIZE: usize = 4096;

const CTRL_C: u8 = 0x03;

static RX: SpinLock<ByteRing<RX_RING_SIZE>> = SpinLock::new(ByteRing::new());
static UART_OVERRUNS: AtomicU64 = AtomicU64::new(0);
static REPORTED_LOST: AtomicU64 = AtomicU64::new(0);
static INTERRUPT: AtomicBool = AtomicBool::new(false);
static FOREGROUND: AtomicBool = AtomicBool::new(false);

/// One received byte into the ring (Ctrl-C as the signal while a command runs).
fn receive(rx: &mut ByteRing<RX_RING_SIZE>, b: u8) {
    if b == CTRL_C {
        INTERRUPT.store(true, Ordering::Release);
        if FOREGROUND.load(Ordering::Acquire) {
            rx.clear();
            return;
        }
    }
    let _ = rx.push(b);
}

fn uart_interrupt(_irq: u32, _data: usize) {
    let mut rx = RX.lock();
    let overruns = board::uart::drain_rx(|b| receive(&mut rx, b));
    if overruns != 0 {
        UART_OVERRUNS.fetch_add(overruns as u64, Ordering::Relaxed);
    }
}

/// Takes over the UART for the console (115200 8N1 at `clock_hz`; `board::uart::init`)
/// and queues the bytes its receiver held, typed before the kernel was up, ahead of
/// everything typed later. The first thing `kernel_main` does with the UART.
#[cfg(target_os = "none")]
pub fn uart_init(clock_hz: u32) -> Result<(), board::poll::TimedOut> {
    let mut rx = RX.lock();
    board::uart::init(clock_hz, |b| receive(&mut rx, b))
}

/// Installs the UART receive interrupt (boot CPU, after the interrupt controllers).
pub fn init() {
    match crate::irq::request_irq(crate::irq::IRQ_UART0, "uart-pl011", uart_interrupt, 0) {
        Ok(()) => {
            board::uart::enable_rx_interrupt();
            // Bytes that arrived since uart_init raise no interrupt of their own (the
            // unmasking cleared it; QEMU has no receive timeout): take them now.
            uart_interrupt(crate::irq::IRQ_UART0, 0);
        }
        Err(e) => crate::pr_err!("tty: cannot install the UART interrupt ({:?}): console input is lost", e),
    }
}

/// The next received byte, if any.
pub fn getb() -> Option<u8> {
    RX.lock().pop()
}

/// Sleeps until input arrives.
pub fn wait_for_input() {
    crate::idle::wait_until(|| !RX.lock().is_empty());
}

/// Whether Ctrl-C was typed since the running command started (Linux's
/// `signal_pending`). Long commands check it at safe points, free what they hold and
/// return.
pub fn signal_pending() -> bool {
    INTERRUPT.load(Ordering::Acquire)
}

/// Runs `f` as the foreground command: Ctrl-C now interrupts it instead of reaching
/// the line editor. Returns `f`'s result and whether it was interrupted.
pub fn run_foreground<R>(f: impl FnOnce() -> R) -> (R, bool) {
    INTERRUPT.store(false, Ordering::Release);
    FOREGROUND.store(true, Ordering::Release);
    let r = f();
    FOREGROUND.store(false, Ordering::Release);
    (r, INTERRUPT.swap(false, Ordering::AcqRel))
}

/// Input bytes lost since the last call: (ring full, UART overrun). The shell prints
/// them, so no loss is silent.
pub fn take_lost_input() -> (u64, u64) {
    let dropped = RX.lock().dropped();
    let prev = REPORTED_LOST.swap(dropped, Ordering::Relaxed);
    (dropped - prev, UART_OVERRUNS.swap(0, Ordering::Relaxed))
}
