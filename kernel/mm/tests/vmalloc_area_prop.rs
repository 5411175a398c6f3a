//! The vmap area allocator against a model: random reserve/release, fragmentation,
//! exhaustion.

use std::collections::BTreeMap;

use mm::addr::VirtAddr;
use mm::vmalloc::{AreaError, VmKind, VmapAreas, GUARD_SIZE};
use proptest::prelude::*;

const K: u64 = 4096;
const S: u64 = 0xFFFF_FFA0_0000_0000;
const PAGES: u64 = 256;

#[derive(Clone, Debug)]
enum Op {
    Alloc(u64),
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..40u64).prop_map(Op::Alloc),
        2 => any::<usize>().prop_map(Op::Free),
    ]
}

/// Largest gap between live reservations (model side).
fn largest_gap(live: &BTreeMap<u64, u64>) -> u64 {
    let mut prev = S;
    let mut best = 0;
    for (&s, &len) in live {
        best = best.max(s - prev);
        prev = s + len;
    }
    best.max(S + PAGES * K - prev)
}

/// Cases per property: `PROPTEST_CASES` when set (as for every property test here), else
/// this file's default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(128), ..ProptestConfig::default() })]
    #[test]
    fn random_reserve_release(ops in prop::collection::vec(op(), 1..80)) {
        let mut a = VmapAreas::new(S, S + PAGES * K);
        // start -> reserved bytes (guard included)
        let mut live: BTreeMap<u64, u64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Alloc(n) => {
                    let need = n * K + GUARD_SIZE;
                    let gap = largest_gap(&live);
                    match a.alloc(n * K - 1, VmKind::Vmalloc, "p", None) {
                        Ok(area) => {
                            prop_assert!(gap >= need);
                            prop_assert_eq!(area.size, n * K);
                            let s = area.start.as_u64();
                            prop_assert!(s >= S && s + need <= S + PAGES * K);
                            if let Some((&ps, &pl)) = live.range(..s).next_back() {
                                prop_assert!(ps + pl <= s, "overlaps the previous area");
                            }
                            if let Some((&ns, _)) = live.range(s..).next() {
                                prop_assert!(s + need <= ns, "overlaps the next area");
                            }
                            live.insert(s, need);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, AreaError::Exhausted(need));
                            prop_assert!(gap < need, "a {gap}-byte gap was not found for {need}");
                        }
                    }
                }
                Op::Free(i) => {
                    if live.is_empty() {
                        prop_assert!(a.free(VirtAddr::new(S)).is_err());
                        continue;
                    }
                    let s = *live.keys().nth(i % live.len()).unwrap();
                    let area = a.free(VirtAddr::new(s)).unwrap();
                    prop_assert_eq!(area.reserved(), live.remove(&s).unwrap());
                    prop_assert_eq!(a.find_freed(VirtAddr::new(s)).map(|x| x.start.as_u64()), Some(s));
                }
            }
            let used: u64 = live.values().sum();
            prop_assert_eq!(a.free_bytes(), PAGES * K - used);
            prop_assert_eq!(a.largest_free(), largest_gap(&live));
            prop_assert_eq!(a.nr_areas(), live.len());
        }
        for s in live.keys() {
            a.free(VirtAddr::new(*s)).unwrap();
        }
        prop_assert_eq!(a.nr_free_ranges(), 1);
        prop_assert_eq!(a.largest_free(), PAGES * K);
    }
}

#[test]
fn fragmentation_and_coalescing() {
    let mut a = VmapAreas::new(S, S + 200 * K);
    let v: Vec<_> = (0..100).map(|_| a.alloc(K, VmKind::Vmalloc, "f", None).unwrap()).collect();
    assert_eq!(a.alloc(K, VmKind::Vmalloc, "f", None), Err(AreaError::Exhausted(2 * K)));
    for x in v.iter().step_by(2) {
        a.free(x.start).unwrap();
    }
    // 100 free pages, but in 50 holes of 2 pages: a 2-page area (3 with guard) does not fit.
    assert_eq!(a.free_bytes(), 100 * K);
    assert_eq!(a.nr_free_ranges(), 50);
    assert_eq!(a.alloc(2 * K, VmKind::Vmalloc, "f", None), Err(AreaError::Exhausted(3 * K)));
    let one = a.alloc(K, VmKind::Vmalloc, "f", None).unwrap();
    assert_eq!(one.start, v[0].start, "lowest hole of the best size");
    a.free(one.start).unwrap();
    for x in v.iter().skip(1).step_by(2) {
        a.free(x.start).unwrap();
    }
    assert_eq!(a.nr_free_ranges(), 1);
    assert!(a.alloc(199 * K, VmKind::Vmalloc, "f", None).is_ok());
}

/// A range whose ends are not page-aligned manages the whole pages inside it (start and
/// end rounded down: Linux's VMALLOC_START/END are page-aligned, a bad one is not
/// trusted); one with no whole page manages nothing.
#[test]
fn unaligned_and_empty_ranges() {
    // The whole pages inside the range: from S + K (the start rounded up, so no area
    // begins below the range) to S + 10K (the end rounded down). The counts before the
    // first allocation are those of that span too.
    let mut a = VmapAreas::new(S + 5, S + 10 * K + 7);
    assert_eq!((a.free_bytes(), a.largest_free(), a.nr_free_ranges()), (9 * K, 9 * K, 1));
    let x = a.alloc(K, VmKind::Vmalloc, "u", None).unwrap();
    assert_eq!(x.start.as_u64(), S + K);
    assert_eq!(a.free_bytes(), 7 * K, "9 pages less one area and its guard");
    assert_eq!(a.largest_free(), 7 * K);
    a.free(x.start).unwrap();
    assert_eq!((a.free_bytes(), a.nr_free_ranges()), (9 * K, 1));
    for (lo, hi) in [(S, S + 100), (S + K + 1, S + 2 * K), (S + 3 * K - 1, S + 3 * K + 5), (S + 2 * K, S + K)] {
        let mut e = VmapAreas::new(lo, hi);
        assert_eq!((e.free_bytes(), e.largest_free(), e.nr_free_ranges()), (0, 0, 0), "{lo:#x}..{hi:#x} before use");
        assert!(e.alloc(K, VmKind::Vmalloc, "u", None).is_err());
        assert_eq!((e.free_bytes(), e.nr_free_ranges()), (0, 0), "{lo:#x}..{hi:#x}");
    }
}
