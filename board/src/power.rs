//! Reset and power-off through the PM watchdog.
//!
//! A full reset is a watchdog timeout with RSTC's full-reset configuration. Power-off is
//! the same reset with the "halt" partition (63) recorded in PM_RSTS, which the
//! firmware reads at boot and then stays halted; this is what Linux's bcm2835 watchdog
//! driver does. QEMU started with `-no-reboot` exits with status 0 on the reset.

use crate::mmio::{offset, Mmio};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::ReadWrite;

register_structs! {
    /// PM block registers used here.
    pub PmRegisters {
        (0x00 => _reserved0),
        (0x1c => rstc: ReadWrite<u32>),
        (0x20 => rsts: ReadWrite<u32>),
        (0x24 => wdog: ReadWrite<u32>),
        (0x28 => @END),
    }
}

static PM: Mmio<PmRegisters, { offset::PM }> = Mmio::INSTANCE;

const PASSWORD: u32 = 0x5a00_0000;
const RSTC_WRCFG_CLR: u32 = 0xffff_ffcf;
const RSTC_WRCFG_FULL_RESET: u32 = 0x0000_0020;
/// Partition 63 spread over the even RSTS bits: "halt" for the firmware.
const RSTS_PARTITION_HALT: u32 = 0x555;

fn watchdog_reset() -> ! {
    // Ten watchdog ticks (~150 us) from now.
    PM.wdog.set(PASSWORD | 10);
    let rstc = PM.rstc.get() & RSTC_WRCFG_CLR;
    PM.rstc.set(PASSWORD | rstc | RSTC_WRCFG_FULL_RESET);
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Resets the board.
pub fn reboot() -> ! {
    watchdog_reset()
}

/// Halts the board (QEMU with `-no-reboot`: exits with status 0).
pub fn poweroff() -> ! {
    let rsts = PM.rsts.get() & !0xfff;
    PM.rsts.set(PASSWORD | rsts | RSTS_PARTITION_HALT);
    watchdog_reset()
}
