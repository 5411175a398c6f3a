//! The kernel binary for the Raspberry Pi 3.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on aarch64-unknown-none-softfloat: use `make` or `make qemu`");
}
