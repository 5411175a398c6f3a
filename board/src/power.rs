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
    use tock_registers::registers::ReadWrite;
    use tock_registers::{register_bitfields, register_structs};

    register_bitfields! {u32,
        /// PM_RSTC: reset control.
        PM_RSTC [
            /// Watchdog reset configuration (Linux's PM_RSTC_WRCFG_*).
            WRCFG OFFSET(4) NUMBITS(2) [
                FullReset = 0b10
            ],
            /// Write password: every write must carry it.
            PASSWD OFFSET(24) NUMBITS(8) []
        ],
        /// PM_WDOG: watchdog countdown.
        PM_WDOG [
            /// Ticks (of about 15 us) until the watchdog fires.
            TIME OFFSET(0) NUMBITS(20) [],
            /// Write password.
            PASSWD OFFSET(24) NUMBITS(8) []
        ]
    }

    register_structs! {
        /// PM block registers used here.
        pub PmRegisters {
            (0x00 => _reserved0),
            (0x1c => rstc: ReadWrite<u32, PM_RSTC::Register>),
            (0x20 => rsts: ReadWrite<u32>),
            (0x24 => wdog: ReadWrite<u32, PM_WDOG::Register>),
            (0x28 => @END),
        }
    }

    static PM: Mmio<PmRegisters, { offset::PM }> = Mmio::INSTANCE;

    const _: () = assert!(PASSWORD == 0x5a << 24);

    /// Linux's `__bcm2835_restart`: boot `partition` next (63: halt), then reset.
    pub fn bcm2835_restart(partition: u8) -> ! {
        PM.rsts.set(rsts_value(PM.rsts.get(), partition));
        // Ten watchdog ticks (~150 us) from now.
        PM.wdog.write(PM_WDOG::PASSWD.val(PASSWORD >> 24) + PM_WDOG::TIME.val(10));
        // Keep RSTC's other bits, replace WRCFG, and carry the password.
        let mut rstc = PM.rstc.extract();
        rstc.modify(PM_RSTC::WRCFG::FullReset + PM_RSTC::PASSWD.val(PASSWORD >> 24));
        PM.rstc.set(rstc.get());
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
