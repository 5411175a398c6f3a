//! The generic kernel: logging, the console, symbols and call traces, and (on the
//! target) the platform glue that ties the `mm` crate's allocators to the hardware.
//!
//! Everything that is not hardware builds on the host too and is unit-tested there;
//! modules that need the Raspberry Pi are compiled only for `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod cmdline;
pub mod console;
pub mod fdt;
pub mod kern_levels;
pub mod ksyms;
pub mod lab;
pub mod log_buf;
pub mod oops;
pub mod printk;
pub mod prng;
pub mod record;
pub mod stacks;
pub mod version;

#[cfg(target_os = "none")]
pub mod commands;
#[cfg(target_os = "none")]
pub mod fb;
#[cfg(target_os = "none")]
pub mod idle;
#[cfg(target_os = "none")]
pub mod ipi;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod mm;
#[cfg(target_os = "none")]
pub mod panic;
#[cfg(target_os = "none")]
pub mod percpu;
#[cfg(target_os = "none")]
pub mod platform;
#[cfg(target_os = "none")]
pub mod shell;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod smp_call;
#[cfg(target_os = "none")]
pub mod timer;
#[cfg(target_os = "none")]
pub mod tty;
