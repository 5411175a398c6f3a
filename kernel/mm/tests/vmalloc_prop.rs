//! Random vmalloc/vfree with random allocation failures: page and table accounting stay
//! exact, live areas stay mapped, everything comes back at the end.

mod common;

use common::Sim;
use mm::addr::VirtAddr;
use mm::gfp::GFP_KERNEL;
use mm::vmalloc::Vmalloc;
use proptest::prelude::*;

const K: usize = 4096;

#[derive(Clone, Debug)]
enum Op {
    Alloc { pages: usize, fail_at: Option<usize> },
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..700usize, prop::option::weighted(0.3, 1..720usize))
            .prop_map(|(pages, fail_at)| Op::Alloc { pages, fail_at }),
        2 => any::<usize>().prop_map(Op::Free),
    ]
}

/// Cases per property: `PROPTEST_CASES` when set (as for every property test here), else
/// this file's default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(32), ..ProptestConfig::default() })]
    #[test]
    fn accounting_survives_random_failures(ops in prop::collection::vec(op(), 1..20)) {
        let sim = Sim::new(2048);
        sim.dirty.set(false);
        let mut pt = sim.kernel_pt();
        let mut vm = Vmalloc::new();
        let free0 = sim.nr_free();
        let mut live: Vec<(VirtAddr, usize)> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc { pages, fail_at } => {
                    if let Some(n) = fail_at {
                        sim.fail_after(n);
                    }
                    let r = vm.vmalloc(pages * K, GFP_KERNEL, "prop", &sim, &mut pt);
                    sim.no_fail();
                    if let Ok(va) = r {
                        live.push((va, pages));
                    }
                }
                Op::Free(i) => {
                    if !live.is_empty() {
                        let (va, _) = live.swap_remove(i % live.len());
                        vm.vfree(va, &sim, &mut pt).unwrap();
                    }
                }
            }
            let pages: usize = live.iter().map(|l| l.1).sum();
            prop_assert_eq!(vm.nr_vmalloc_pages(), pages);
            prop_assert_eq!(vm.nr_table_pages(), pt.count_tables() - 1);
            prop_assert_eq!(sim.nr_free(), free0 - pages - vm.nr_table_pages());
            for &(va, n) in &live {
                prop_assert!(vm.vmalloc_to_page(va, &pt).is_some());
                prop_assert!(vm.vmalloc_to_page(va.add((n * K - 1) as u64), &pt).is_some());
                prop_assert!(vm.vmalloc_to_page(va.add((n * K) as u64), &pt).is_none());
            }
        }
        for (va, _) in live {
            vm.vfree(va, &sim, &mut pt).unwrap();
        }
        prop_assert_eq!(sim.nr_free(), free0);
        prop_assert_eq!(vm.nr_table_pages(), 0);
    }
}
