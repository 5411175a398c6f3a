//! Reset and halt through the PM watchdog, as Linux's bcm2835_wdt does.
//!
//! Both are Linux's `__bcm2835_restart(wdt, partition)`: record the partition to boot
//! next in PM_RSTS (its even bits 0, 2, ..., 10 hold the six partition bits; the other
//! bits are kept: `& 0xfffffaaa`), then let the watchdog expire in ten ticks with RSTC's
//! full-reset configuration. Partition 0 is an ordinary reboot; 63 (0x555 spread out)
//! tells the firmware to halt instead of booting. QEMU started with `-no-reboot` exits
//! (status 0) on the reset.

/// The partition that makes the firmware halt.
pub const PARTITION_HALT: u8 = 63;
/// Clears the partition bits of PM_RSTS (Linux's PM_RSTS_PARTITION_CLR).
const RSTS_PARTITION_CLR: u32 = 0xffff_faaa;
/// The PM block's write password (top byte of every write).
const PASSWORD: u32 = 0x5a00_0000;

/// The six partition bits spread over PM_RSTS's even bits 0..=10.
pub const fn rsts_partition(partition: u8) -> u32 {
    let mut bits = 0;
    let mut i = 0;
    while i < 6 {
        bits |= (((partition >> i) & 1) as u32) << (2 * i);
        i += 1;
    }
    bits
}

/// The PM_RSTS value to write: `rsts` (read back) with its partition replaced.
pub const fn rsts_value(rsts: u32, partition: u8) -> u32 {
    (rsts & RSTS_PARTITION_CLR) | PASSWORD | rsts_partition(partition)
}

#[cfg(target_os = "none")]
mod hw {
    use super::*;
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

    const RSTC_WRCFG_CLR: u32 = 0xffff_ffcf;
    const RSTC_WRCFG_FULL_RESET: u32 = 0x0000_0020;

    /// Linux's `__bcm2835_restart`: boot `partition` next (63: halt), then reset.
    pub fn bcm2835_restart(partition: u8) -> ! {
        PM.rsts.set(rsts_value(PM.rsts.get(), partition));
        // Ten watchdog ticks (~150 us) from now.
        PM.wdog.set(PASSWORD | 10);
        let rstc = PM.rstc.get() & RSTC_WRCFG_CLR;
        PM.rstc.set(PASSWORD | rstc | RSTC_WRCFG_FULL_RESET);
        // The reset comes within the ten ticks; nothing is left to do until then.
        loop {
            aarch64_cpu::asm::wfe();
        }
    }

    /// Resets the board.
    pub fn reboot() -> ! {
        bcm2835_restart(0)
    }

    /// Halts the board (QEMU with `-no-reboot`: exits with status 0).
    pub fn poweroff() -> ! {
        bcm2835_restart(PARTITION_HALT)
    }
}

#[cfg(target_os = "none")]
pub use hw::{bcm2835_restart, poweroff, reboot};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_the_even_bits() {
        assert_eq!(rsts_partition(0), 0);
        assert_eq!(rsts_partition(PARTITION_HALT), 0x555);
        assert_eq!(rsts_partition(1), 0x1);
        assert_eq!(rsts_partition(2), 0x4);
        assert_eq!(rsts_partition(5), 0x11);
    }

    #[test]
    fn rsts_keeps_the_odd_bits_and_replaces_the_partition() {
        // A reboot clears a halt left from before; other status bits (odd ones, and
        // bit 12 the firmware sets on a watchdog reset) stay.
        assert_eq!(rsts_value(0x1555, 0), 0x5a00_1000);
        assert_eq!(rsts_value(0x1000, PARTITION_HALT), 0x5a00_1555);
        assert_eq!(rsts_value(0x0aaa, PARTITION_HALT), 0x5a00_0fff);
        assert_eq!(rsts_value(0, 0), PASSWORD);
    }
}
