//! A self-checking harness: random operations on a small two-zone allocator against a
//! reference model. [`run`] interprets fuzzer bytes (the `kernel/mm/fuzz` cargo-fuzz
//! target calls it); the property tests drive [`Harness`] with generated [`Op`]s.
//!
//! Checked after every step: live allocations never overlap (a bitmap of allocated
//! pages), bad frees are refused with the expected error and change nothing, and the page
//! census adds up (buddy + pcp + allocated + reserved = mem_map). Every few steps and at
//! the end [`check_invariants`] walks every list. At the end everything is
//! freed and drained, and the buddy lists must hold exactly the initial blocks.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use super::{check_invariants, FreeError, MemMap, Page, PageAllocator, MAX_PAGE_ORDER, NR_CPUS};
use crate::addr::{Pfn, PhysAddr, PAGE_SHIFT};
use crate::cpu::{BadCpu, CpuId};
use crate::gfp::{Gfp, GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_NOWAIT};

/// Pages in the harness's mem_map.
pub const HARNESS_PAGES: u64 = 2048;
/// First pfn of the harness's mem_map (not a multiple of large orders, on purpose).
pub const HARNESS_BASE_PFN: u64 = 0x80;
/// The DMA zone ends here.
pub const HARNESS_DMA_END_PFN: u64 = 0x180;

static MEM_MAP: spin::Mutex<Option<&'static [Page]>> = spin::Mutex::new(None);

/// Request flags the harness picks from.
pub const GFPS: [Gfp; 8] = [
    GFP_KERNEL,
    GFP_ATOMIC,
    GFP_NOWAIT,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL.union(Gfp::GFP_RECLAIMABLE),
    GFP_KERNEL.union(Gfp::GFP_DMA),
    GFP_ATOMIC.union(Gfp::GFP_COMP),
    GFP_KERNEL.union(Gfp::GFP_COMP).union(Gfp::GFP_NOWARN),
];

/// One harness operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `alloc_pages(GFPS[gfp], order, cpu)`.
    Alloc {
        /// Index into [`GFPS`].
        gfp: u8,
        /// Order.
        order: u32,
        /// CPU.
        cpu: CpuId,
    },
    /// Frees the live allocation `which % live`.
    Free {
        /// Which allocation.
        which: usize,
        /// CPU.
        cpu: CpuId,
    },
    /// A bad free of kind `kind`, built from the live allocation `which`.
    BadFree {
        /// Which mistake.
        kind: u8,
        /// Which allocation.
        which: usize,
        /// CPU.
        cpu: CpuId,
    },
    /// `alloc_pages_bulk(GFPS[gfp], cpu)` of `n` pages.
    BulkAlloc {
        /// Index into [`GFPS`].
        gfp: u8,
        /// Pages asked for.
        n: usize,
        /// CPU.
        cpu: CpuId,
    },
    /// `free_pages_bulk` of up to `n` live order-0 allocations.
    BulkFree {
        /// Pages.
        n: usize,
        /// CPU.
        cpu: CpuId,
    },
    /// `drain_cpu(cpu)`.
    Drain {
        /// CPU.
        cpu: CpuId,
    },
    /// `drain_all()`.
    DrainAll,
    /// Sets and reads back an owner word.
    Owner {
        /// Which allocation.
        which: usize,
        /// Word.
        word: u64,
    },
}

impl Op {
    /// Decodes three bytes.
    pub fn decode(b: [u8; 3]) -> Op {
        let cpu = CpuId::of((b[1] >> 4) as usize % NR_CPUS);
        match b[0] % 16 {
            0..=6 => Op::Alloc {
                gfp: b[1] % GFPS.len() as u8,
                // Mostly small orders, sometimes large ones.
                order: if b[2] & 0x80 != 0 { (b[2] as u32 & 0xf) % 12 } else { (b[2] as u32) % 4 },
                cpu,
            },
            7..=9 => Op::Free { which: b[2] as usize, cpu },
            10 => Op::BulkFree { n: b[2] as usize % 32, cpu },
            11 => Op::BulkAlloc { gfp: b[1] % GFPS.len() as u8, n: b[2] as usize % 32, cpu },
            12 => Op::BadFree { kind: b[1] & 0xf, which: b[2] as usize, cpu },
            13 => Op::Drain { cpu },
            14 => Op::DrainAll,
            _ => Op::Owner { which: b[2] as usize, word: u64::from_le_bytes([b[1]; 8]) },
        }
    }
}

/// The allocator under test and the model.
pub struct Harness {
    a: Box<PageAllocator>,
    mm: MemMap,
    _map: spin::MutexGuard<'static, Option<&'static [Page]>>,
    /// Live allocations (pfn, order, compound).
    live: Vec<(u64, u32, bool)>,
    /// Blocks freed and not reallocated since (for double-free checks).
    freed: Vec<(u64, u32)>,
    used: Vec<bool>,
    initial: Vec<(u64, u32)>,
    steps: u64,
}

impl Harness {
    /// A fresh allocator over the shared harness mem_map; `watermarks` false sets
    /// `min_free_kbytes` to 0 so that memory can be exhausted by any request.
    pub fn new(watermarks: bool) -> Harness {
        let mut g = MEM_MAP.lock();
        let pages = *g.get_or_insert_with(|| {
            Box::leak((0..HARNESS_PAGES).map(|_| Page::new()).collect::<Vec<_>>().into_boxed_slice())
        });
        let a = Box::new(PageAllocator::new());
        let b = HARNESS_BASE_PFN;
        let pa = |pfn: u64| PhysAddr::new(pfn << PAGE_SHIFT);
        // Holes and reservations: the first 3 pages, a gap at 0x300..0x311, the last 5.
        let free = [(pa(b + 3), (0x300 - 3) << PAGE_SHIFT), (pa(b + 0x311), (HARNESS_PAGES - 0x311 - 5) << PAGE_SHIFT)];
        a.init(pages, Pfn(b), pa(HARNESS_DMA_END_PFN), [(pa(b), HARNESS_PAGES << PAGE_SHIFT)], free).expect("init");
        if !watermarks {
            a.set_min_free_kbytes(0);
        }
        let mm = a.mem_map().expect("initialised");
        let mut initial = Vec::new();
        super::memmap::for_each_free_block(&a, |_, p, o, _| initial.push((p, o)));
        initial.sort_unstable();
        Harness {
            a,
            mm,
            _map: g,
            live: Vec::new(),
            freed: Vec::new(),
            used: vec![false; HARNESS_PAGES as usize],
            initial,
            steps: 0,
        }
    }

    /// The allocator.
    pub fn allocator(&self) -> &PageAllocator {
        &self.a
    }

    fn mark(&mut self, pfn: u64, order: u32, used: bool) {
        let s = (pfn - self.mm.base_pfn) as usize;
        for u in &mut self.used[s..s + (1 << order)] {
            assert_ne!(*u, used, "overlapping allocation or bad model at pfn {pfn:#x}");
            *u = used;
        }
    }

    /// Checks a block just allocated with `g` and records it as live.
    fn took(&mut self, g: Gfp, p: u64, order: u32) {
        assert_eq!(p & ((1 << order) - 1), 0, "misaligned block");
        assert!(self.mm.contains(p) && self.mm.contains(p + (1 << order) - 1));
        if g.contains(Gfp::GFP_DMA) {
            assert!(p + (1 << order) <= HARNESS_DMA_END_PFN, "DMA request outside DMA");
        }
        // A fresh block carries no owner word, in its head or its tails.
        for q in p..p + (1u64 << order).min(512) {
            assert_eq!(crate::owner::page_owner(&self.mm, Pfn(q)), 0, "stale owner word");
        }
        self.mark(p, order, true);
        self.freed.retain(|&(fp, fo)| fp + (1 << fo) <= p || p + (1 << order) <= fp);
        self.live.push((p, order, g.contains(Gfp::GFP_COMP) && order > 0));
    }

    fn census_check(&self) {
        let c = check_invariants(&self.a).unwrap_or_else(|e| panic!("invariant: {e}"));
        assert_eq!(c.total(), HARNESS_PAGES);
        let model: u64 = self.live.iter().map(|l| 1u64 << l.1).sum();
        assert_eq!(c.allocated, model);
        assert_eq!(c.buddy_free + c.pcp_free, self.a.snapshot().nr_free_pages());
        assert_eq!(c.reserved, HARNESS_PAGES - self.a.snapshot().nr_managed_pages());
    }

    /// Applies one operation and checks.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::BulkAlloc { gfp, n, cpu } => {
                let g = GFPS[gfp as usize % GFPS.len()];
                let mut out = vec![Pfn(0); n];
                let k = self.a.alloc_pages_bulk(g, cpu, &mut out).unwrap_or(0);
                assert!(k <= n);
                for &p in &out[..k] {
                    self.took(g, p.0, 0);
                }
            }
            Op::BulkFree { n, cpu } => {
                let mut pages = Vec::new();
                let mut i = 0;
                while i < self.live.len() && pages.len() < n {
                    if self.live[i].1 == 0 {
                        pages.push(Pfn(self.live.swap_remove(i).0));
                    } else {
                        i += 1;
                    }
                }
                self.a.free_pages_bulk(pages.iter().copied(), cpu, |e| panic!("valid bulk free refused: {e}"));
                for p in pages {
                    self.mark(p.0, 0, false);
                    self.freed.push((p.0, 0));
                }
            }
            Op::Alloc { gfp, order, cpu } => {
                let g = GFPS[gfp as usize % GFPS.len()];
                if let Ok(Pfn(p)) = self.a.alloc_pages(g, order, cpu) {
                    self.took(g, p, order);
                }
            }
            Op::Free { which, cpu } => {
                if self.live.is_empty() {
                    return;
                }
                let (p, o, _) = self.live.swap_remove(which % self.live.len());
                self.a.free_pages(Pfn(p), o, cpu).expect("valid free refused");
                self.mark(p, o, false);
                self.freed.push((p, o));
            }
            Op::BadFree { kind, which, cpu } => self.bad_free(kind, which, cpu),
            Op::Drain { cpu } => {
                self.a.drain_cpu(cpu);
            }
            Op::DrainAll => {
                self.a.drain_all();
                assert_eq!(self.a.snapshot().nr_pcp_pages(), 0);
            }
            Op::Owner { which, word } => {
                if self.live.is_empty() {
                    return;
                }
                let (p, o, _) = self.live[which % self.live.len()];
                // The head or, as the slab does, a tail page.
                let p = p + (word >> 7) % (1 << o);
                assert!(crate::owner::set_page_owner(&self.mm, Pfn(p), word));
                assert_eq!(crate::owner::page_owner(&self.mm, Pfn(p)), word);
            }
        }
        self.steps += 1;
        let model: u64 = self.live.iter().map(|l| 1u64 << l.1).sum();
        // Cheap accounting every step; the full walk every 32 steps.
        assert_eq!(
            self.a.snapshot().nr_free_pages() + model,
            self.a.snapshot().nr_managed_pages(),
            "pages lost or duplicated"
        );
        if self.steps.is_multiple_of(32) {
            self.census_check();
        }
    }

    fn bad_free(&mut self, kind: u8, which: usize, cpu: CpuId) {
        let before = self.a.snapshot().nr_free_pages();
        let err = match kind % 8 {
            0 => {
                let Some(&(p, o)) = self.freed.last() else {
                    return;
                };
                let e = self.a.free_pages(Pfn(p), o, cpu).unwrap_err();
                // Still free as a head (DoubleFree), or merged away (NotAllocated).
                assert!(matches!(e, FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }), "{e}");
                e
            }
            1 | 2 => {
                if self.live.is_empty() {
                    return;
                }
                let (p, o, comp) = self.live[which % self.live.len()];
                if kind % 8 == 1 {
                    let wrong = if o == 0 { 1 } else { o - 1 };
                    let e = self.a.free_pages(Pfn(p), wrong, cpu).unwrap_err();
                    assert!(matches!(e, FreeError::WrongOrder { .. } | FreeError::Unaligned { .. }), "{e}");
                    e
                } else {
                    if o == 0 {
                        return;
                    }
                    let e = self.a.free_pages(Pfn(p + 1), 0, cpu).unwrap_err();
                    if comp {
                        assert_eq!(e, FreeError::TailPage { pfn: p + 1 });
                    } else {
                        assert_eq!(e, FreeError::NotAllocated { pfn: p + 1, order: 0 });
                    }
                    e
                }
            }
            3 => {
                let p = HARNESS_BASE_PFN + HARNESS_PAGES + which as u64;
                let e = self.a.free_pages(Pfn(p), 0, cpu).unwrap_err();
                assert_eq!(e, FreeError::OutsideMemMap { pfn: p });
                e
            }
            4 => {
                let p = HARNESS_BASE_PFN + which as u64 % 3;
                let e = self.a.free_pages(Pfn(p), 0, cpu).unwrap_err();
                assert_eq!(e, FreeError::Reserved { pfn: p });
                e
            }
            5 => {
                let e = self.a.free_pages(Pfn(HARNESS_BASE_PFN + 1), 1, cpu).unwrap_err();
                assert!(matches!(e, FreeError::Unaligned { .. }));
                e
            }
            6 => {
                let e = self.a.free_pages(Pfn(0), MAX_PAGE_ORDER + 1, cpu).unwrap_err();
                assert!(matches!(e, FreeError::OrderTooLarge { .. }));
                e
            }
            _ => {
                // A CPU number out of range cannot reach the allocator: the CpuId
                // refuses it where it is made.
                assert_eq!(CpuId::new(NR_CPUS + which), Err(BadCpu(NR_CPUS + which)));
                return;
            }
        };
        let _ = err;
        assert_eq!(self.a.snapshot().nr_free_pages(), before, "a refused free changed the allocator");
        self.census_check();
    }

    /// Frees everything, drains, and checks the buddy lists are back to the initial ones.
    pub fn finish(mut self) {
        self.census_check();
        while let Some((p, o, _)) = self.live.pop() {
            self.a.free_pages(Pfn(p), o, CpuId::BOOT).expect("final free");
        }
        self.a.drain_all();
        let c = check_invariants(&self.a).unwrap_or_else(|e| panic!("invariant: {e}"));
        assert_eq!(c.allocated + c.pcp_free, 0);
        let mut now = Vec::new();
        super::memmap::for_each_free_block(&self.a, |_, p, o, _| now.push((p, o)));
        now.sort_unstable();
        assert_eq!(now, self.initial, "free lists differ from the initial ones");
    }
}

/// Interprets `data` as operations (3 bytes each; the first byte picks whether the
/// watermarks are on) and checks the invariants; panics on a bug.
pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut h = Harness::new(first & 1 == 1);
    for c in rest.chunks_exact(3) {
        h.apply(Op::decode([c[0], c[1], c[2]]));
    }
    h.finish();
}
