//! Model-based tests: proptest over random operation sequences and the fuzz entry point
//! over pseudo-random inputs (the same checks as `fuzz-slab`, on stable).

use mm::addr::PAGE_SIZE;
use mm::cpu::CpuId;
use mm::slab::fuzz::{run, run_ops, Op};
use proptest::prelude::*;

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=256,
        3 => 257usize..=8192,
        1 => 8193usize..=200_000,
        1 => (0u32..=18).prop_map(|o| PAGE_SIZE << o), // up to the max order and beyond
        1 => prop_oneof![Just(usize::MAX), Just(usize::MAX - PAGE_SIZE), Just((PAGE_SIZE << 16) + 1)],
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (size(), 0usize..4, any::<bool>()).prop_map(|(size, cpu, zero)| Op::Alloc { size, cpu: CpuId::of(cpu), zero: zero && size < 1 << 20 }),
        6 => (any::<usize>(), 0usize..4).prop_map(|(idx, cpu)| Op::Free { idx, cpu: CpuId::of(cpu) }),
        2 => (any::<usize>(), size(), 0usize..4).prop_map(|(idx, size, cpu)| Op::Realloc { idx, size, cpu: CpuId::of(cpu) }),
        1 => (0usize..4).prop_map(|cpu| Op::Drain { cpu: CpuId::of(cpu) }),
        1 => Just(Op::Shrink),
        1 => (1usize..6).prop_map(|n| Op::FailNth { n }),
    ]
}

/// Cases per property: `PROPTEST_CASES` when set (as for every property test here), else
/// this file's default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(128), failure_persistence: None, ..ProptestConfig::default() })]

    /// Arena of 2^17 pages (512 MiB, lazily committed) so that order-16 blocks succeed.
    #[test]
    fn model_holds(ops in proptest::collection::vec(op(), 1..300), debug in any::<bool>()) {
        run_ops(ops, 17, 16, debug);
    }
}

/// xorshift64*: deterministic pseudo-random fuzz inputs.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn fuzz_entry_point_on_pseudo_random_inputs() {
    let mut s = 0x1234_5678_9abc_def1u64;
    for _ in 0..1000 {
        let len = (next(&mut s) % 2048) as usize;
        let data: Vec<u8> = (0..len).map(|_| next(&mut s) as u8).collect();
        run(&data);
    }
}

#[test]
fn fuzz_entry_point_edge_inputs() {
    run(&[]);
    run(&[1]);
    run(&[0, 0, 0, 0, 0]);
    run(&[1, 14, 0xff, 0xff, 0xff]); // kmalloc(usize::MAX) in debug mode
}
