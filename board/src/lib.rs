//! Raspberry Pi 3 board support (BCM2837): the devices the kernel needs and nothing
//! generic. Drivers reach their registers through typed register blocks
//! (tock-registers) at a virtual base that starts as the identity-mapped physical
//! address (boot/'s early tables) and moves to an `ioremap`ped address once the kernel
//! has its own tables (`mmio::set_peripheral_base`).
//!
//! [`revision`], [`baud`], [`poll`], [`throttle`] and the register logic of [`uart`], [`mini_uart`],
//! [`bcm2836_local`] and [`power`] are pure and tested on the host; the rest touches
//! hardware and is built only for the bare-metal target.
#![cfg_attr(not(test), no_std)]

pub mod baud;
pub mod bcm2836_local;
pub mod mini_uart;
pub mod poll;
pub mod power;
pub mod revision;
pub mod throttle;
pub mod uart;

#[cfg(target_os = "none")]
pub mod arch_timer;
#[cfg(target_os = "none")]
pub mod bcm2835_intc;
#[cfg(target_os = "none")]
pub mod clock;
#[cfg(target_os = "none")]
pub mod framebuffer;
#[cfg(target_os = "none")]
pub mod gpio;
#[cfg(target_os = "none")]
pub mod mailbox;
#[cfg(target_os = "none")]
pub mod mmio;
#[cfg(target_os = "none")]
pub mod timer;
