//! Property tests of the buddy allocator against the reference model in
//! `mm::page_alloc::fuzz::Harness`: random sequences of allocations (mixed orders, GFP
//! flags and so migratetypes and zones, CPUs), frees on any CPU, bad frees, drains and
//! owner words. After every step the harness checks that live allocations do not overlap
//! and that every page is accounted for; every 32 steps it walks every list; at the end it
//! frees everything, drains the per-CPU lists and requires the initial free blocks back.
//!
//! Default: 100 cases x 1,000 operations = 100,000 operations per `cargo test`.
//! More: `PROPTEST_CASES=2000 MM_PROPTEST_OPS=5000 cargo test -p mm --test page_alloc_prop`.

use mm::page_alloc::fuzz::{Harness, Op};
use proptest::prelude::*;

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: env("PROPTEST_CASES", 100), failure_persistence: None, ..ProptestConfig::default() }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let n = env("MM_PROPTEST_OPS", 1000) as usize;
    prop::collection::vec(any::<[u8; 3]>().prop_map(Op::decode), n..=n)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_sequences_keep_invariants(watermarks in any::<bool>(), ops in ops()) {
        let mut h = Harness::new(watermarks);
        for op in ops {
            h.apply(op);
        }
        h.finish();
    }
}

/// Exhaustion and refill: allocate order-0 pages until failure on all CPUs, free them all,
/// repeatedly; the free lists must come back whole each time.
#[test]
fn exhaust_and_refill() {
    for round in 0..3u8 {
        let mut h = Harness::new(round == 1);
        for i in 0..3000u32 {
            let cpu = (i % 4) as u8;
            h.apply(Op::decode([0, cpu << 4, (i % 3) as u8]));
        }
        for i in 0..3000u32 {
            h.apply(Op::decode([7, ((i % 4) as u8) << 4, 0]));
        }
        h.finish();
    }
}
