//! The kernel's version line, like Linux's `/proc/version`: name, version with the git
//! commit it was built from (`-g<hash>`, `-dirty` with uncommitted changes, as Linux's
//! `CONFIG_LOCALVERSION_AUTO`), the compiler and target.

use core::fmt;

/// `mm-kernel version 0.1.0-g1a2b3c4d5e6f-dirty (rustc 1.95.0 (...)) #1 SMP aarch64-unknown-none-softfloat`
pub struct Banner;

/// The compiler that built the kernel (`rustc -V`).
pub const RUSTC: &str = env!("MM_RUSTC_VERSION");

/// The git commit the kernel was built from: a short hash, `-dirty` when tracked files
/// had uncommitted changes, `unknown` outside a git checkout (kernel/build.rs).
pub const GIT: &str = env!("MM_GIT_VERSION");

/// `-g<hash>[-dirty]` after the version number (nothing outside a git checkout).
struct LocalVersion;

impl fmt::Display for LocalVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if GIT == "unknown" {
            Ok(())
        } else {
            write!(f, "-g{GIT}")
        }
    }
}

impl fmt::Display for Banner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mm-kernel version {}{} ({}) #1 SMP {}", crate::oops::VERSION, LocalVersion, RUSTC, env!("MM_TARGET"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_version_and_compiler() {
        let s = super::Banner.to_string();
        let head = concat!("mm-kernel version ", env!("CARGO_PKG_VERSION"));
        assert!(s.starts_with(head), "{s}");
        let rest = &s[head.len()..];
        // In a git checkout: -g and a hex hash of 12 digits, perhaps -dirty.
        let local = rest.split(' ').next().unwrap_or("");
        if super::GIT != "unknown" {
            let hash = local.strip_prefix("-g").unwrap_or_else(|| panic!("no -g<hash>: {s}"));
            let hash = hash.strip_suffix("-dirty").unwrap_or(hash);
            assert!(hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{s}");
        }
        assert!(rest.contains(" (rustc "), "{s}");
        assert!(s.contains("#1 SMP"), "{s}");
    }
}
