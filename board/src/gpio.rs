//! GPIO function selection and pull-up/down control, enough to route a UART to its pins.

use crate::mmio::{offset, Mmio};
use crate::timer;
use tock_registers::fields::Field;
use tock_registers::interfaces::{ReadWriteable, Writeable};
use tock_registers::registers::ReadWrite;
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// GPFSELn: ten 3-bit function fields, pin `10 * n + i` in field `i` (see [`fsel`]).
    GPFSEL [
        FSEL0 OFFSET(0) NUMBITS(3) []
    ],
    /// GPPUD: the pull the next GPPUDCLK write clocks into its pins.
    GPPUD [
        PUD OFFSET(0) NUMBITS(2) [
            Off = 0,
            Down = 1,
            Up = 2
        ]
    ]
}

register_structs! {
    /// BCM2837 GPIO registers (only those used).
    pub GpioRegisters {
        (0x00 => gpfsel: [ReadWrite<u32, GPFSEL::Register>; 6]),
        (0x18 => _reserved0),
        (0x94 => gppud: ReadWrite<u32, GPPUD::Register>),
        (0x98 => gppudclk0: ReadWrite<u32>),
        (0x9c => gppudclk1: ReadWrite<u32>),
        (0xa0 => @END),
    }
}

static GPIO: Mmio<GpioRegisters, { offset::GPIO }> = Mmio::INSTANCE;

/// Pin functions (the 3-bit FSEL codes).
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Function {
    /// Input.
    Input = 0b000,
    /// Output.
    Output = 0b001,
    /// Alternate function 0 (PL011 on GPIO14/15).
    Alt0 = 0b100,
    /// Alternate function 5 (mini UART on GPIO14/15).
    Alt5 = 0b010,
}

/// Pull-up/down setting.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Pull {
    /// Neither.
    Off = 0,
    /// Pull down.
    Down = 1,
    /// Pull up.
    Up = 2,
}

/// The function field of `pin` in its GPFSEL register (`pin / 10`).
const fn fsel(pin: u32) -> Field<u32, GPFSEL::Register> {
    Field::new(GPFSEL::FSEL0.mask, ((pin % 10) * 3) as usize)
}

/// Selects the function of `pin` (0..=53).
pub fn set_function(pin: u32, function: Function) {
    GPIO.gpfsel[(pin / 10) as usize].modify(fsel(pin).val(function as u32));
}

/// How long each step of the pull sequence holds. The datasheet asks for 150 cycles of
/// the VideoCore's clock (0.6 us at 250 MHz), not of the ARM's; Linux's pinctrl-bcm2835
/// waits 1 us per step, and so does this, on the generic timer.
const PULL_SETTLE_US: u64 = 1;

/// Sets the pull of the pins in `mask` (bank 0, pins 0..=31) with the BCM2837 sequence:
/// the control signal, wait, clock it into the pins, wait, remove both.
/// Real hardware: a `dsb` after each write makes sure it reached the GPIO block before
/// the wait starts (the writes are posted); QEMU ignores pulls altogether.
pub fn set_pull_bank0(mask: u32, pull: Pull) {
    GPIO.gppud.write(GPPUD::PUD.val(pull as u32));
    boot::cpu::dsb_sy();
    timer::delay_us(PULL_SETTLE_US);
    GPIO.gppudclk0.set(mask);
    boot::cpu::dsb_sy();
    timer::delay_us(PULL_SETTLE_US);
    GPIO.gppud.write(GPPUD::PUD::Off);
    GPIO.gppudclk0.set(0);
    boot::cpu::dsb_sy();
}
