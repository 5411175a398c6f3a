//! Architecture code. Only AArch64 exists; the pure parts (ESR decoding) build on the
//! host too so they can be tested there.

pub mod aarch64;
