//! Fuzzes the buddy allocator: bytes become operations checked against the reference model
//! (`mm::page_alloc::fuzz::run`). Needs nightly: `cargo +nightly fuzz run page_alloc`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mm::page_alloc::fuzz::run(data));
