//! Page-allocation workloads: alloc+free pairs of one order, and a random mixed-order live
//! set (orders `0..=MIXED_MAX_ORDER`) where each step frees a random block and allocates
//! another, which fragments the free lists.

use mm::addr::Pfn;
use mm::cpu::CpuId;
use mm::gfp::GFP_KERNEL;
use mm::page_alloc::PageAllocator;

use crate::rng::XorShift;

/// Highest order of the mixed workload.
pub const MIXED_MAX_ORDER: u32 = 5;

/// A page allocator as the workloads see it: blocks named by their first frame number.
pub trait PageAlloc {
    /// The benchmark function id.
    fn name(&self) -> &'static str;
    /// `2^order` naturally aligned pages, or `None`.
    fn alloc(&mut self, order: u32) -> Option<u64>;
    /// Gives back a block from [`Self::alloc`] with the same order.
    fn free(&mut self, frame: u64, order: u32);
}

/// Our buddy allocator, called as the kernel does (GFP_KERNEL on CPU 0).
pub struct OurPages {
    alloc: &'static PageAllocator,
    name: &'static str,
}

impl OurPages {
    /// `nr_pages` frames; `pcp` chooses the per-CPU fast path or the zone path (see
    /// [`crate::ours::page_allocator`]).
    pub fn new(nr_pages: usize, pcp: bool) -> Self {
        OurPages { alloc: crate::ours::page_allocator(nr_pages, pcp), name: if pcp { "ours-pcp" } else { "ours-zone" } }
    }

    /// The allocator (for its counters).
    pub fn allocator(&self) -> &'static PageAllocator {
        self.alloc
    }
}

impl PageAlloc for OurPages {
    fn name(&self) -> &'static str {
        self.name
    }
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> Option<u64> {
        self.alloc.alloc_pages(GFP_KERNEL, order, CpuId::BOOT).ok().map(|p| p.0)
    }
    #[inline(always)]
    fn free(&mut self, frame: u64, order: u32) {
        self.alloc.free_pages(Pfn(frame), order, CpuId::BOOT).expect("free_pages refused");
    }
}

/// One alloc+free pair of `order`; returns the frame it got.
#[inline]
pub fn pair<A: PageAlloc + ?Sized>(a: &mut A, order: u32) -> u64 {
    let f = a.alloc(order).expect("page allocation failed");
    a.free(std::hint::black_box(f), order);
    f
}

/// The mixed-order workload's live set.
pub struct Mixed {
    rng: XorShift,
    /// Live blocks: (first frame, order).
    pub live: Vec<(u64, u32)>,
}

impl Mixed {
    /// Fills `a` with `n` blocks of random orders.
    pub fn fill<A: PageAlloc + ?Sized>(a: &mut A, n: usize, seed: u64) -> Self {
        let mut m = Mixed { rng: XorShift::new(seed), live: Vec::with_capacity(n) };
        for _ in 0..n {
            let o = m.order();
            let f = a.alloc(o).expect("mixed fill: allocation failed");
            m.live.push((f, o));
        }
        m
    }

    fn order(&mut self) -> u32 {
        self.rng.below(MIXED_MAX_ORDER as usize + 1) as u32
    }

    /// Frees a random live block and allocates one of a random order in its place.
    #[inline]
    pub fn step<A: PageAlloc + ?Sized>(&mut self, a: &mut A) -> u64 {
        let i = self.rng.below(self.live.len());
        let (f, o) = self.live[i];
        a.free(f, o);
        let o = self.order();
        let f = a.alloc(o).expect("mixed step: allocation failed");
        self.live[i] = (f, o);
        f
    }

    /// Frees every live block.
    pub fn drain<A: PageAlloc + ?Sized>(&mut self, a: &mut A) {
        for (f, o) in self.live.drain(..) {
            a.free(f, o);
        }
    }

    /// Whether no two live blocks overlap and each is naturally aligned.
    pub fn is_sane(&self) -> bool {
        let mut v: Vec<(u64, u64)> = self.live.iter().map(|&(f, o)| (f, f + (1 << o))).collect();
        v.sort_unstable();
        self.live.iter().all(|&(f, o)| f % (1 << o) == 0) && v.windows(2).all(|w| w[0].1 <= w[1].0)
    }
}
