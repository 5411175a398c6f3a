//! Runs one workload many times, for a profiler (`valgrind --tool=callgrind`, `perf`):
//! `cargo build -p mm-bench --release --example profile`, then
//! `valgrind --tool=callgrind target/release/examples/profile <workload> [iterations]`.
//!
//! Workloads: `<bytes>-pair-<size>` and `<bytes>-batch` for `<bytes>` one of `kmalloc` (ours),
//! `mimalloc`, `malloc` (the host's), `talc`, `lla` (linked_list_allocator), `bsa`
//! (buddy_system_allocator's heap); `kmalloc-mix`, `pages-pcp-<order>`, `pages-zone-<order>`,
//! `pages-mixed-pcp`, `bsa-frame-<order>`, `bsa-heap-<order>`, `bsa-heap-mixed`,
//! `vmalloc-<MiB>`, `vmalloc-movable-<MiB>` (order-0 pages only), `floor-<MiB>` (one
//! operation = one area of that many MiB).
//! `tools/bench/ir_table.py` runs them under callgrind for the instruction table.

use std::hint::black_box;

use mm_bench::pages::{self, Mixed, OurPages, PageAlloc};
use std::alloc::{GlobalAlloc, Layout};

use mm_bench::peers::{BsaBytes, BsaFrames, BsaHeapPages, HostMalloc, LlaBytes, TalcAlloc};
use mm_bench::small::{self, Batch, ByteAlloc, Mix, OurKmalloc};
use mm_bench::vmalloc::VmBench;

const HEAP: usize = 64 << 20;
const NR_PAGES: usize = 1 << 16;

/// `n` pairs of `order` (opaque to the compiler at every call). The frame each pair got
/// already went through `black_box` on its way to the free ([`pages::pair`]), so the
/// pair's result is not passed through it again (one store per pair, the same for every
/// page allocator).
fn page_pairs<A: PageAlloc>(mut a: A, order: u32, n: usize) {
    for _ in 0..n {
        pages::pair(&mut a, black_box(order));
    }
}

fn page_mixed<A: PageAlloc>(mut a: A, n: usize) {
    let mut m = Mixed::fill(&mut a, 1024, 7);
    for _ in 0..n {
        black_box(m.step(&mut a));
    }
    m.drain(&mut a);
}

/// mimalloc through its `GlobalAlloc` (a peer only here and in the instruction table).
struct MiBytes;

impl ByteAlloc for MiBytes {
    fn name(&self) -> &'static str {
        "mimalloc"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: non-zero size (callers never ask for 0 bytes).
        unsafe { mimalloc::MiMalloc.alloc(Layout::from_size_align(size, 8).expect("layout")) }
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: the caller passes a live allocation of `size` bytes from mimalloc.
        unsafe { mimalloc::MiMalloc.dealloc(p, Layout::from_size_align(size, 8).expect("layout")) }
    }
}

/// One byte workload on one allocator: `size` pairs when `size` is given, else batches.
fn run_bytes<A: ByteAlloc>(mut a: A, size: Option<usize>, n: usize) {
    match size {
        Some(size) => {
            for _ in 0..n {
                black_box(small::pair(&mut a, black_box(size)));
            }
        }
        None => {
            let mut b = Batch::new(1000, 11);
            for _ in 0..n / 1000 {
                black_box(b.run(&mut a));
            }
        }
    }
}

/// Runs a `<bytes>-pair-<size>` or `<bytes>-batch` workload; false if `work` is not one.
fn bytes_workload(work: &str, n: usize) -> bool {
    let (name, size) = match work.split_once("-pair-") {
        Some((name, size)) => (name, Some(size.parse::<usize>().expect("numeric size"))),
        None => match work.strip_suffix("-batch") {
            Some(name) => (name, None),
            None => return false,
        },
    };
    match name {
        "kmalloc" => run_bytes(OurKmalloc::new(HEAP), size, n),
        "mimalloc" => run_bytes(MiBytes, size, n),
        "malloc" => run_bytes(HostMalloc, size, n),
        "talc" => run_bytes(TalcAlloc::new(HEAP), size, n),
        "lla" => run_bytes(LlaBytes::new(HEAP), size, n),
        "bsa" => run_bytes(BsaBytes::new(HEAP), size, n),
        _ => return false,
    }
    true
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let work = args.get(1).map(String::as_str).unwrap_or("kmalloc-pair-8");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let num = |p: &str| work[p.len()..].parse::<usize>().expect("numeric suffix");
    match work {
        w if bytes_workload(w, n) => {}
        "kmalloc-mix" => {
            let mut a = OurKmalloc::new(HEAP);
            let mut m = Mix::fill(&mut a, 10_000, 13);
            for _ in 0..n {
                black_box(m.step(&mut a));
            }
            m.drain(&mut a);
        }
        w if w.starts_with("pages-pcp-") => page_pairs(OurPages::new(NR_PAGES, true), num("pages-pcp-") as u32, n),
        w if w.starts_with("pages-zone-") => page_pairs(OurPages::new(NR_PAGES, false), num("pages-zone-") as u32, n),
        "pages-mixed-pcp" => page_mixed(OurPages::new(NR_PAGES, true), n),
        "bsa-heap-mixed" => page_mixed(BsaHeapPages::new(NR_PAGES), n),
        w if w.starts_with("bsa-frame-") => page_pairs(BsaFrames::new(NR_PAGES), num("bsa-frame-") as u32, n),
        w if w.starts_with("bsa-heap-") => page_pairs(BsaHeapPages::new(NR_PAGES), num("bsa-heap-") as u32, n),
        w if w.starts_with("vmalloc-movable-") => {
            let mib = num("vmalloc-movable-");
            let mut vb = VmBench::new(24 << 10);
            for _ in 0..n.max(1) {
                black_box(vb.vmalloc_movable(mib << 20));
            }
        }
        w if w.starts_with("vmalloc-") || w.starts_with("floor-") => {
            let mib = num(if w.starts_with("floor-") { "floor-" } else { "vmalloc-" });
            let mut vb = VmBench::new(24 << 10);
            for _ in 0..n.max(1) {
                if w.starts_with("floor-") {
                    black_box(vb.floor(mib << 20));
                } else {
                    black_box(vb.vmalloc(mib << 20));
                }
            }
        }
        w => panic!("unknown workload {w}"),
    }
}
