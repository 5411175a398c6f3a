//! Hot-path timing against the host's malloc (glibc). Ignored by default; run with
//! `cargo test -p mm --release --test slab_bench -- --ignored --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::Instant;

use mm::gfp::GFP_KERNEL;
use mm::slab::host::HostPages;
use mm::slab::{debug::NullReporter, SlabAllocator};

const N: usize = 2_000_000;

fn ns_per_op(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / N as f64
}

#[test]
#[ignore]
fn small_alloc_free_vs_glibc() {
    let pages = HostPages::new(14);
    let slab: Box<SlabAllocator<'_>> = Box::default();
    slab.init(&pages, &NullReporter, 16, false, 3);
    for size in [16usize, 64, 256, 16] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let kmalloc = ns_per_op(|| {
            for _ in 0..N {
                let p = slab.kmalloc(black_box(size), GFP_KERNEL, 0).unwrap();
                // SAFETY: live object.
                unsafe { slab.kfree(black_box(p.as_ptr()), 0) };
            }
        });
        let glibc = ns_per_op(|| {
            for _ in 0..N {
                // SAFETY: non-zero layout; freed with the same layout.
                unsafe {
                    let p = System.alloc(black_box(layout));
                    System.dealloc(black_box(p), layout);
                }
            }
        });
        // A batch pattern: 32 allocations then 32 frees (exercises refill/flush).
        let batch = ns_per_op(|| {
            let mut v = [core::ptr::null_mut(); 32];
            for _ in 0..N / 32 {
                for s in v.iter_mut() {
                    *s = slab.kmalloc(black_box(size), GFP_KERNEL, 0).unwrap().as_ptr();
                }
                for &s in v.iter().rev() {
                    // SAFETY: live objects.
                    unsafe { slab.kfree(s, 0) };
                }
            }
        });
        println!(
            "size {size:4}: kmalloc+kfree {kmalloc:.1} ns, glibc malloc+free {glibc:.1} ns (ratio {:.2}); batch-32 {batch:.1} ns/op",
            kmalloc / glibc
        );
    }
}
