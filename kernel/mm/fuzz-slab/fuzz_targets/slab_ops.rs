//! Fuzzes kmalloc/kfree/krealloc/drain/shrink sequences with fault injection, checking the
//! model invariants of `mm::slab::fuzz` (no overlap, alignment, contents kept, no leak).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mm::slab::fuzz::run(data);
});
