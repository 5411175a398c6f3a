//! Link the bare-metal kernel binary with linker/kernel.ld (absolute path, so the build
//! works from any directory) and fail on any section the script does not place; record
//! the compiler's version for `version`.

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=MM_RUSTC_VERSION={}", version.trim());
    println!("cargo:rustc-env=MM_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "none" {
        return;
    }
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let script = manifest.join("../linker/kernel.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=--orphan-handling=error");
}
