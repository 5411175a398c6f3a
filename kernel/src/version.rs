//! The kernel's version line, like Linux's `/proc/version`: name, version, the compiler
//! and target it was built with.

use core::fmt;

/// `mm-kernel version 0.1.0 (rustc 1.95.0 (...)) #1 SMP aarch64-unknown-none-softfloat`
pub struct Banner;

/// The compiler that built the kernel (`rustc -V`).
pub const RUSTC: &str = env!("MM_RUSTC_VERSION");

impl fmt::Display for Banner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mm-kernel version {} ({}) #1 SMP {}", crate::oops::VERSION, RUSTC, env!("MM_TARGET"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_version_and_compiler() {
        let s = super::Banner.to_string();
        assert!(s.starts_with(concat!("mm-kernel version ", env!("CARGO_PKG_VERSION"), " (rustc ")), "{s}");
        assert!(s.contains("#1 SMP"), "{s}");
    }
}
