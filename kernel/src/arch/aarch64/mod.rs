//! AArch64: exception syndrome decoding and frame-pointer call traces (pure), and on the
//! target, the exception handlers.

pub mod backtrace;
pub mod esr;
#[cfg(target_os = "none")]
pub mod exception;
#[cfg(target_os = "none")]
pub mod traps;
