//! Runs one workload many times, for a profiler (`valgrind --tool=callgrind`, `perf`):
//! `cargo build -p mm-bench --release --example profile`, then
//! `valgrind --tool=callgrind target/release/examples/profile <workload> [iterations]`.
//!
//! Workloads: `kmalloc-pair-<size>`, `lla-pair-<size>`, `kmalloc-batch`, `kmalloc-mix`, `talc-batch`,
//! `malloc-batch`, `pages-pcp-<order>`, `pages-zone-<order>`, `pages-mixed-pcp`,
//! `bsa-heap-<order>`, `bsa-heap-mixed`, `vmalloc-64`, `floor-64`.

use std::hint::black_box;

use mm_bench::pages::{self, Mixed, OurPages, PageAlloc};
use mm_bench::peers::{BsaHeapPages, HostMalloc, LlaBytes, TalcAlloc};
use mm_bench::small::{self, Batch, ByteAlloc, Mix, OurKmalloc};
use mm_bench::vmalloc::VmBench;

const HEAP: usize = 64 << 20;
const NR_PAGES: usize = 1 << 16;

fn page_pairs<A: PageAlloc>(mut a: A, order: u32, n: usize) {
    for _ in 0..n {
        black_box(pages::pair(&mut a, black_box(order)));
    }
}

fn page_mixed<A: PageAlloc>(mut a: A, n: usize) {
    let mut m = Mixed::fill(&mut a, 1024, 7);
    for _ in 0..n {
        black_box(m.step(&mut a));
    }
    m.drain(&mut a);
}

fn batches<A: ByteAlloc>(mut a: A, n: usize) {
    let mut b = Batch::new(1000, 11);
    for _ in 0..n / 1000 {
        black_box(b.run(&mut a));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let work = args.get(1).map(String::as_str).unwrap_or("kmalloc-pair-8");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let num = |p: &str| work[p.len()..].parse::<usize>().expect("numeric suffix");
    match work {
        w if w.starts_with("kmalloc-pair-") => {
            let mut a = OurKmalloc::new(HEAP);
            let size = num("kmalloc-pair-");
            for _ in 0..n {
                black_box(small::pair(&mut a, black_box(size)));
            }
        }
        w if w.starts_with("lla-pair-") => {
            let mut a = LlaBytes::new(HEAP);
            let size = num("lla-pair-");
            for _ in 0..n {
                black_box(small::pair(&mut a, black_box(size)));
            }
        }
        "kmalloc-batch" => batches(OurKmalloc::new(HEAP), n),
        "talc-batch" => batches(TalcAlloc::new(HEAP), n),
        "malloc-batch" => batches(HostMalloc, n),
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
        w if w.starts_with("bsa-heap-") => page_pairs(BsaHeapPages::new(NR_PAGES), num("bsa-heap-") as u32, n),
        "vmalloc-64" | "floor-64" => {
            let mut vb = VmBench::new(24 << 10);
            for _ in 0..n.max(1) {
                if work == "floor-64" {
                    black_box(vb.floor(64 << 20));
                } else {
                    black_box(vb.vmalloc(64 << 20));
                }
            }
        }
        w => panic!("unknown workload {w}"),
    }
}
