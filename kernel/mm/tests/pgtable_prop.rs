//! Random map/unmap/protect sequences against a model (page -> (pa, prot)).

mod common;

use std::collections::BTreeMap;

use common::Sim;
use mm::addr::{PhysAddr, VirtAddr};
use mm::pgtable::layout::VMALLOC_START;
use mm::pgtable::{Prot, PtError};
use proptest::prelude::*;

const K: u64 = 4096;
/// A 6 MiB window starting one page below a 2 MiB boundary, so blocks and splits happen.
const WIN_PAGES: u64 = 1536;
const BASE: u64 = VMALLOC_START + (2 << 20) - K;

#[derive(Clone, Debug)]
enum Op {
    Map { page: u64, n: u64, pa_page: u64, ro: bool, blocks: bool },
    Unmap { page: u64, n: u64 },
    Protect { page: u64, n: u64, ro: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..WIN_PAGES, 1..700u64, 0..4u64, any::<bool>(), any::<bool>())
            .prop_map(|(page, n, pa_page, ro, blocks)| Op::Map { page, n, pa_page, ro, blocks }),
        (0..WIN_PAGES, 1..700u64).prop_map(|(page, n)| Op::Unmap { page, n }),
        (0..WIN_PAGES, 1..40u64, any::<bool>()).prop_map(|(page, n, ro)| Op::Protect { page, n, ro }),
    ]
}

fn prot(ro: bool) -> Prot {
    if ro {
        Prot::KERNEL_RO
    } else {
        Prot::KERNEL_RW
    }
}

/// Cases per property: `PROPTEST_CASES` when set (as for every property test here), else
/// this file's default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]
    #[test]
    fn random_ops_match_the_model(ops in prop::collection::vec(op(), 1..24)) {
        let sim = Sim::new(64);
        let free0 = sim.nr_free();
        let mut pt = sim.kernel_pt();
        let mut t = sim.tables();
        let mut model: BTreeMap<u64, (u64, Prot)> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Map { page, n, pa_page, ro, blocks } => {
                    let n = n.min(WIN_PAGES - page);
                    // Same offset within 2 MiB as the VA, so blocks are possible.
                    let pa0 = (1 << 30) + pa_page * (2 << 20) + page * K;
                    let r = pt.map(&mut t, VirtAddr::new(BASE + page * K), PhysAddr::new(pa0), n * K, prot(ro), blocks);
                    let first_busy = (page..page + n).find(|p| model.contains_key(p));
                    match first_busy {
                        None => {
                            prop_assert_eq!(r, Ok(()));
                            for i in 0..n {
                                model.insert(page + i, (pa0 + i * K, prot(ro)));
                            }
                        }
                        Some(_) => prop_assert!(matches!(r, Err(PtError::Overlap(_))), "{:?}", r),
                    }
                }
                Op::Unmap { page, n } => {
                    let n = n.min(WIN_PAGES - page);
                    let u = pt.unmap(&mut t, VirtAddr::new(BASE + page * K), n * K).unwrap();
                    let mut gone = 0;
                    for p in page..page + n {
                        gone += model.remove(&p).is_some() as u64;
                    }
                    prop_assert_eq!(u.bytes, gone * K);
                }
                Op::Protect { page, n, ro } => {
                    let n = n.min(WIN_PAGES - page);
                    let r = pt.protect(&mut t, VirtAddr::new(BASE + page * K), n * K, prot(ro));
                    if (page..page + n).all(|p| model.contains_key(&p)) {
                        prop_assert_eq!(r, Ok(()));
                        for p in page..page + n {
                            model.get_mut(&p).unwrap().1 = prot(ro);
                        }
                    } else {
                        prop_assert!(matches!(r, Err(PtError::NotMapped(_))));
                    }
                }
            }
            let mut seen = BTreeMap::new();
            pt.for_each_leaf(VirtAddr::new(BASE), WIN_PAGES * K, &mut |l| {
                for i in 0..l.size / K {
                    let p = (l.va.as_u64() + i * K).wrapping_sub(BASE) / K;
                    if p < WIN_PAGES {
                        seen.insert(p, (l.pa.as_u64() + i * K, l.prot));
                    }
                }
            });
            prop_assert_eq!(&seen, &model);
        }
        pt.unmap(&mut t, VirtAddr::new(BASE), WIN_PAGES * K).unwrap();
        prop_assert_eq!(pt.count_tables(), 1);
        prop_assert_eq!(sim.nr_free(), free0 - 1);
    }
}
