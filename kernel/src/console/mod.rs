//! The `mm> ` console: escape-sequence decoding, line editing, argument parsing and the command registry.
//!
//! Everything here is pure and host-tested; the command implementations that touch the
//! allocators and the hardware live with the kernel binary's platform code and are
//! registered in one table (see `commands`).

pub mod args;
pub mod escape;
pub mod line;
pub mod registry;
pub mod ring;

/// The console prompt, part of the contract with tests and users.
pub const PROMPT: &str = "mm> ";
