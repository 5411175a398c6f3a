//! Criterion benchmarks: every workload on our allocators and every peer in the same run.
//!
//! Group = workload, function id = allocator (`ours-*` are ours). Run with
//! `cargo bench -p mm-bench`, then `cargo run -p mm-bench --release --bin ratios` for the
//! peer/ours table. Times are bounded in [`config`] (about 1.5 s per benchmark).

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

use mm_bench::pages::{self, Mixed, OurPages, PageAlloc};
use mm_bench::peers::{BsaBytes, BsaFrames, BsaHeapPages, HostMalloc, LlaBytes, TalcAlloc};
use mm_bench::small::{self, Batch, ByteAlloc, Mix, OurKmalloc};
use mm_bench::vmalloc::VmBench;

/// Frames for the page workloads (256 MiB).
const NR_PAGES: usize = 1 << 16;
/// Live blocks of the mixed-order workload (about 1/6 of the frames at 10.5 pages each).
const MIXED_LIVE: usize = 1024;
/// Memory each byte allocator manages.
const HEAP_BYTES: usize = 64 << 20;
/// kmalloc pair sizes.
const SIZES: [usize; 5] = [8, 64, 256, 1024, 4096];
/// Objects per batch.
const BATCH: usize = 1000;
/// Live objects of the random-size mix.
const MIX_LIVE: usize = 10_000;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .without_plots()
}

fn page_pair<A: PageAlloc>(g: &mut BenchmarkGroup<'_, WallTime>, mut a: A, order: u32) {
    g.bench_function(a.name(), |b| b.iter(|| pages::pair(&mut a, black_box(order))));
}

fn page_mixed<A: PageAlloc>(g: &mut BenchmarkGroup<'_, WallTime>, mut a: A) {
    let mut m = Mixed::fill(&mut a, MIXED_LIVE, 7);
    g.bench_function(a.name(), |b| b.iter(|| m.step(&mut a)));
    m.drain(&mut a);
}

fn bench_pages(c: &mut Criterion) {
    for order in [0u32, 3] {
        let mut g = c.benchmark_group(format!("pages-order{order}-pair"));
        g.throughput(Throughput::Elements(1));
        page_pair(&mut g, OurPages::new(NR_PAGES, true), order);
        page_pair(&mut g, OurPages::new(NR_PAGES, false), order);
        page_pair(&mut g, BsaFrames::new(NR_PAGES), order);
        page_pair(&mut g, BsaHeapPages::new(NR_PAGES), order);
        g.finish();
    }
    let mut g = c.benchmark_group("pages-mixed-order0-5");
    g.throughput(Throughput::Elements(1));
    page_mixed(&mut g, OurPages::new(NR_PAGES, true));
    page_mixed(&mut g, OurPages::new(NR_PAGES, false));
    page_mixed(&mut g, BsaFrames::new(NR_PAGES));
    page_mixed(&mut g, BsaHeapPages::new(NR_PAGES));
    g.finish();
}

/// Expands `$body` once per byte allocator (ours first, then every peer), each fresh and
/// with its concrete type, so every call is monomorphised.
macro_rules! small_all {
    ($g:expr, |$gg:ident, $a:ident| $body:block) => {{
        {
            let $gg = &mut *$g;
            let $a = &mut OurKmalloc::new(HEAP_BYTES);
            $body
        }
        {
            let $gg = &mut *$g;
            let $a = &mut TalcAlloc::new(HEAP_BYTES);
            $body
        }
        {
            let $gg = &mut *$g;
            let $a = &mut BsaBytes::new(HEAP_BYTES);
            $body
        }
        {
            let $gg = &mut *$g;
            let $a = &mut LlaBytes::new(HEAP_BYTES);
            $body
        }
        {
            let $gg = &mut *$g;
            let $a = &mut HostMalloc;
            $body
        }
    }};
}

fn bench_small(c: &mut Criterion) {
    for size in SIZES {
        let mut g = c.benchmark_group(format!("kmalloc-{size}-pair"));
        g.throughput(Throughput::Elements(1));
        small_all!(&mut g, |g, a| {
            g.bench_function(a.name(), |b| b.iter(|| small::pair(a, black_box(size))));
        });
        g.finish();
    }
    let mut g = c.benchmark_group(format!("kmalloc-batch{BATCH}-random-free"));
    g.throughput(Throughput::Elements(BATCH as u64));
    small_all!(&mut g, |g, a| {
        let mut batch = Batch::new(BATCH, 11);
        g.bench_function(a.name(), |b| b.iter(|| batch.run(a)));
    });
    g.finish();
    let mut g = c.benchmark_group(format!("kmalloc-mix8-4096-live{MIX_LIVE}"));
    g.throughput(Throughput::Elements(1));
    small_all!(&mut g, |g, a| {
        let mut m = Mix::fill(a, MIX_LIVE, 13);
        g.bench_function(a.name(), |b| b.iter(|| m.step(a)));
        m.drain(a);
    });
    g.finish();
}

fn bench_vmalloc(c: &mut Criterion) {
    // 64 MiB of vmalloc plus its tables, the floor's pages and slack.
    let mut vb = VmBench::new(24 << 10);
    for mib in [1usize, 64] {
        let bytes = mib << 20;
        let mut g = c.benchmark_group(format!("vmalloc-{mib}MiB"));
        g.throughput(Throughput::Elements((bytes / 4096) as u64));
        g.bench_function("ours-vmalloc", |b| b.iter(|| vb.vmalloc(black_box(bytes))));
        g.bench_function("floor", |b| b.iter(|| vb.floor(black_box(bytes))));
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_pages, bench_small, bench_vmalloc
}
criterion_main!(benches);
