//! `make bench`'s ratio table measured side by side (see [`mm_bench::interleaved`]): every
//! workload's allocators take turns in short bursts, round after round, and each ratio
//! peer / ours is printed as the median of the rounds with their min and max.
//!
//! `cargo run -q -p mm-bench --release --bin spread [rounds] [burst-ms] [filter]`
//! (defaults 21 rounds of 10 ms bursts; `filter` keeps the workloads whose name contains it).

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use mm_bench::interleaved::{self, Contender, Plan};
use mm_bench::pages::{self, Mixed, OurPages, PageAlloc};
use mm_bench::peers::{BsaBytes, BsaFrames, BsaHeapPages, HostMalloc, LlaBytes, TalcAlloc};
use mm_bench::small::{self, Batch, ByteAlloc, Mix, OurKmalloc};
use mm_bench::vmalloc::VmBench;

/// The same sizes as the criterion benches (`benches/allocators.rs`).
const NR_PAGES: usize = 1 << 16;
const MIXED_LIVE: usize = 1024;
const HEAP_BYTES: usize = 64 << 20;
const SIZES: [usize; 5] = [8, 64, 256, 1024, 4096];
const BATCH: usize = 1000;
const MIX_LIVE: usize = 10_000;

fn page_pair<A: PageAlloc + 'static>(mut a: A, order: u32) -> Contender<'static> {
    Contender::new(a.name(), move |n| (0..n).fold(0, |s, _| s ^ pages::pair(&mut a, black_box(order))))
}

fn page_mixed<A: PageAlloc + 'static>(mut a: A) -> Contender<'static> {
    let mut m = Mixed::fill(&mut a, MIXED_LIVE, 7);
    Contender::new(a.name(), move |n| (0..n).fold(0, |s, _| s ^ m.step(&mut a)))
}

fn byte_pair<A: ByteAlloc + 'static>(mut a: A, size: usize) -> Contender<'static> {
    Contender::new(a.name(), move |n| (0..n).fold(0, |s, _| s ^ small::pair(&mut a, black_box(size)) as u64))
}

fn byte_batch<A: ByteAlloc + 'static>(mut a: A) -> Contender<'static> {
    let mut b = Batch::new(BATCH, 11);
    Contender::new(a.name(), move |n| (0..n).fold(0, |s, _| s ^ b.run(&mut a) as u64)).with_ops(BATCH as u64)
}

fn byte_mix<A: ByteAlloc + 'static>(mut a: A) -> Contender<'static> {
    let mut m = Mix::fill(&mut a, MIX_LIVE, 13);
    Contender::new(a.name(), move |n| (0..n).fold(0, |s, _| s ^ m.step(&mut a) as u64))
}

/// Builds a workload's contenders (allocators are built only for the workloads asked for).
type MakeContenders = Box<dyn Fn() -> Vec<Contender<'static>>>;

fn workloads(filter: &str) -> Vec<(String, MakeContenders)> {
    let mut w: Vec<(String, MakeContenders)> = Vec::new();
    for order in [0u32, 3] {
        w.push((
            format!("pages-order{order}-pair"),
            Box::new(move || {
                vec![
                    page_pair(OurPages::new(NR_PAGES, true), order),
                    page_pair(OurPages::new(NR_PAGES, false), order),
                    page_pair(BsaFrames::new(NR_PAGES), order),
                    page_pair(BsaHeapPages::new(NR_PAGES), order),
                ]
            }),
        ));
    }
    w.push((
        "pages-mixed-order0-5".into(),
        Box::new(|| {
            vec![
                page_mixed(OurPages::new(NR_PAGES, true)),
                page_mixed(OurPages::new(NR_PAGES, false)),
                page_mixed(BsaFrames::new(NR_PAGES)),
                page_mixed(BsaHeapPages::new(NR_PAGES)),
            ]
        }),
    ));
    macro_rules! bytes {
        ($name:expr, |$a:ident| $make:expr) => {
            w.push((
                $name,
                Box::new(move || {
                    vec![
                        {
                            let $a = OurKmalloc::new(HEAP_BYTES);
                            $make
                        },
                        {
                            let $a = TalcAlloc::new(HEAP_BYTES);
                            $make
                        },
                        {
                            let $a = BsaBytes::new(HEAP_BYTES);
                            $make
                        },
                        {
                            let $a = LlaBytes::new(HEAP_BYTES);
                            $make
                        },
                        {
                            let $a = HostMalloc;
                            $make
                        },
                    ]
                }),
            ))
        };
    }
    for size in SIZES {
        bytes!(format!("kmalloc-{size}-pair"), |a| byte_pair(a, size));
    }
    bytes!(format!("kmalloc-batch{BATCH}-random-free"), |a| byte_batch(a));
    bytes!(format!("kmalloc-mix8-4096-live{MIX_LIVE}"), |a| byte_mix(a));
    for mib in [1usize, 64] {
        w.push((
            format!("vmalloc-{mib}MiB"),
            Box::new(move || {
                // 64 MiB of vmalloc plus its tables, the floor's pages and slack.
                let vb = Rc::new(RefCell::new(VmBench::new(24 << 10)));
                let (v, f) = (vb.clone(), vb);
                let bytes = mib << 20;
                let pages = (bytes / 4096) as u64;
                vec![
                    Contender::new("ours-vmalloc", move |n| {
                        (0..n).fold(0, |s, _| s ^ v.borrow_mut().vmalloc(black_box(bytes)).as_u64())
                    })
                    .with_ops(pages),
                    Contender::new("floor", move |n| {
                        (0..n).fold(0, |s, _| s ^ f.borrow_mut().floor(black_box(bytes)) as u64)
                    })
                    .with_ops(pages),
                ]
            }),
        ));
    }
    w.into_iter().filter(|(name, _)| name.contains(filter)).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(21usize).max(1);
    let ms = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10u64).max(1);
    let filter = args.get(3).map_or("", String::as_str);
    let plan = Plan { rounds, burst: Duration::from_millis(ms) };
    println!("Interleaved: {rounds} rounds of {ms} ms bursts (thread CPU time) per allocator; ratio = peer / ours per round (median, min, max)");
    println!();
    println!("| workload | ours | ours ns/op | peer | peer ns/op | ratio | min | max |");
    println!("|---|---|---:|---|---:|---:|---:|---:|");
    for (name, make) in workloads(filter) {
        // Built one workload at a time: the peers' arenas go when the workload is done.
        let mut contenders = make();
        let t = interleaved::run(&mut contenders, plan);
        let (ours, peers): (Vec<_>, Vec<_>) = t.iter().partition(|t| t.name.starts_with(mm_bench::OURS));
        for o in &ours {
            for p in &peers {
                let (lo, mid, hi) = interleaved::stats(interleaved::ratios(o, p));
                println!(
                    "| {name} | {} | {:.1} | {} | {:.1} | {mid:.2} | {lo:.2} | {hi:.2} |",
                    o.name,
                    o.median(),
                    p.name,
                    p.median()
                );
            }
        }
    }
}
