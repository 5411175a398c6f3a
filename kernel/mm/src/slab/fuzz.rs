//! A model-checking harness shared by the fuzzer (`kernel/mm/fuzz-slab`), the stable
//! pseudo-random test and the proptest: operations on a [`SlabAllocator`] over
//! [`HostPages`], with the invariants checked after each step.
//!
//! Invariants: live objects never overlap; `ksize >= size`; every object is 8-aligned and
//! aligned to its class when the class is a power of two (compound blocks: page aligned);
//! bytes written by the harness survive until the free; no error is reported for valid
//! operations; after freeing everything, draining and shrinking, every page is back.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::error::{SlabError, SlabReporter};
use super::host::HostPages;
use super::kmalloc::{kmalloc_index, KMALLOC_NAMES};
use super::{SlabAllocator, KMALLOC_MAX_CACHE_SIZE, NR_CPUS, ZERO_SIZE_PTR};
use crate::addr::PAGE_SIZE;
use crate::cpu::CpuId;
use crate::gfp::{Gfp, GFP_KERNEL};

/// One harness operation. Indices select a live object modulo their number.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// `kmalloc(size)` on `cpu`.
    Alloc {
        /// Requested bytes.
        size: usize,
        /// CPU.
        cpu: CpuId,
        /// Use `kzalloc` and check the zeroes.
        zero: bool,
    },
    /// `kfree` of a live object on `cpu` (possibly not the allocating one).
    Free {
        /// Which object.
        idx: usize,
        /// CPU.
        cpu: CpuId,
    },
    /// `krealloc` of a live object.
    Realloc {
        /// Which object.
        idx: usize,
        /// New size.
        size: usize,
        /// CPU.
        cpu: CpuId,
    },
    /// `drain_cpu`.
    Drain {
        /// CPU.
        cpu: CpuId,
    },
    /// Drain and shrink every cache.
    Shrink,
    /// Make the `n`-th next page allocation fail.
    FailNth {
        /// Countdown.
        n: usize,
    },
}

struct CountingReporter(AtomicUsize);

impl SlabReporter for CountingReporter {
    fn report(&self, _err: &SlabError) {
        self.0.fetch_add(1, Relaxed);
    }
}

struct Live {
    ptr: usize,
    size: usize,
    seed: u8,
}

/// Bytes of an object the harness writes and checks: all of a small one, the two ends of a
/// large one (so that 256 MiB blocks are not touched whole).
fn checked_ranges(size: usize) -> [(usize, usize); 2] {
    if size <= 2 * PAGE_SIZE {
        [(0, size), (size, 0)]
    } else {
        [(0, 64), (size - 64, 64)]
    }
}

fn fill(l: &Live) {
    for (off, len) in checked_ranges(l.size) {
        for i in off..off + len {
            // SAFETY: `i < size` bytes of a live object the harness owns.
            unsafe { ((l.ptr + i) as *mut u8).write(l.seed.wrapping_add(i as u8)) };
        }
    }
}

fn check(l: &Live) {
    for (off, len) in checked_ranges(l.size) {
        for i in off..off + len {
            // SAFETY: as in `fill`.
            let b = unsafe { ((l.ptr + i) as *const u8).read() };
            assert_eq!(b, l.seed.wrapping_add(i as u8), "object {:#x} size {} byte {} changed", l.ptr, l.size, i);
        }
    }
}

/// Runs `ops` on a fresh allocator over `2^arena_order` host pages and checks the invariants.
pub fn run_ops(ops: impl IntoIterator<Item = Op>, arena_order: u32, max_order: u32, debug: bool) {
    let pages = HostPages::new(arena_order);
    let rep = CountingReporter(AtomicUsize::new(0));
    let slab: Box<SlabAllocator<'_>> = Box::default();
    slab.init(&pages, &rep, max_order, debug, 0x5eed);
    let (mm, offset) = pages.mem_map();
    slab.set_mem_map(mm, offset);
    let base_pages = pages.pages_in_use();
    let mut live: Vec<Live> = Vec::new();
    let mut seed = 1u8;
    // Alignment follows the class of the object's cache (`ksize`): a fresh object's class
    // is the one of its size; krealloc may keep a larger, differently aligned object.
    let check_new = |live: &Vec<Live>, p: usize, size: usize, fresh: bool| {
        let k = slab.ksize(p as *const u8);
        assert!(k >= size, "ksize {} < size {}", k, size);
        if fresh && size <= KMALLOC_MAX_CACHE_SIZE {
            assert_eq!(k, KMALLOC_NAMES[kmalloc_index(size)].1, "size {} in the wrong class", size);
        }
        let align = if k > KMALLOC_MAX_CACHE_SIZE {
            PAGE_SIZE
        } else if k.is_power_of_two() {
            k
        } else {
            8
        };
        assert_eq!(p % align, 0, "object {:#x} of size {} misaligned", p, size);
        for l in live {
            assert!(p + size <= l.ptr || l.ptr + l.size <= p, "overlap {:#x}+{} / {:#x}+{}", p, size, l.ptr, l.size);
        }
    };
    for op in ops {
        match op {
            Op::Alloc { size, cpu, zero } => {
                let gfp = if zero { GFP_KERNEL | Gfp::GFP_ZERO } else { GFP_KERNEL };
                let Some(p) = slab.kmalloc(size, gfp, cpu) else {
                    continue;
                };
                let p = p.as_ptr() as usize;
                if size == 0 {
                    assert_eq!(p, ZERO_SIZE_PTR);
                    continue;
                }
                check_new(&live, p, size, true);
                if zero {
                    for (off, len) in checked_ranges(size) {
                        for i in off..off + len {
                            // SAFETY: a live object of `size` bytes.
                            let b = unsafe { ((p + i) as *const u8).read() };
                            assert_eq!(b, 0, "kzalloc byte {} not zero", i);
                        }
                    }
                }
                seed = seed.wrapping_add(37);
                let l = Live { ptr: p, size, seed };
                fill(&l);
                live.push(l);
            }
            Op::Free { idx, cpu } if !live.is_empty() => {
                let l = live.swap_remove(idx % live.len());
                check(&l);
                // SAFETY: a live object from this allocator, forgotten by the model.
                unsafe { slab.kfree(l.ptr as *mut u8, cpu) };
            }
            Op::Realloc { idx, size, cpu } if !live.is_empty() && size > 0 => {
                let i = idx % live.len();
                check(&live[i]);
                // SAFETY: a live object from this allocator.
                let Some(p) = (unsafe { slab.krealloc(live[i].ptr as *mut u8, size, GFP_KERNEL, cpu) }) else {
                    continue;
                };
                let old = live.swap_remove(i);
                let p = p.as_ptr() as usize;
                check_new(&live, p, size, false);
                // The kept prefix: all of it if the harness wrote all of the old object,
                // else the first 64 bytes it did write.
                let kept = old.size.min(size);
                let kept = if old.size <= 2 * PAGE_SIZE { kept } else { kept.min(64) };
                check(&Live { ptr: p, size: kept, seed: old.seed });
                seed = seed.wrapping_add(37);
                let l = Live { ptr: p, size, seed };
                fill(&l);
                live.push(l);
            }
            Op::Drain { cpu } => slab.drain_cpu(cpu),
            Op::Shrink => {
                slab.shrink_all();
            }
            Op::FailNth { n } => pages.fail_nth(n),
            _ => {}
        }
    }
    assert_eq!(rep.0.load(Relaxed), 0, "unexpected slab error reports");
    for (i, l) in live.drain(..).enumerate() {
        check(&l);
        // SAFETY: a live object from this allocator.
        unsafe { slab.kfree(l.ptr as *mut u8, CpuId::of(i % NR_CPUS)) };
    }
    slab.drain_all();
    slab.shrink_all();
    assert_eq!(slab.slab_bytes(), 0);
    assert_eq!(slab.large_bytes(), 0);
    assert_eq!(pages.pages_in_use(), base_pages, "pages leaked");
    assert_eq!(pages.pages_in_use(), 0, "pages leaked");
}

/// Decodes a size from two bytes: mostly small, sometimes large, huge or absurd.
fn decode_size(a: u8, b: u8) -> usize {
    match a % 16 {
        0..=9 => b as usize + ((a as usize >> 4) << 8),
        10 | 11 => (b as usize + 1) * 8 * ((a as usize >> 4) + 1),
        12 | 13 => (b as usize + 1) * 256 + (a as usize >> 4),
        14 => (PAGE_SIZE << (b % 20)) - (a as usize >> 4),
        _ => usize::MAX - b as usize,
    }
}

/// The fuzz entry point: interprets `data` as operations (first byte: flags) and checks
/// the invariants. Panics on a violation.
pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let ops = rest.chunks_exact(4).map(|c| {
        let cpu = CpuId::of((c[0] >> 4) as usize % NR_CPUS);
        match c[0] % 16 {
            0..=6 => Op::Alloc { size: decode_size(c[1], c[2]), cpu, zero: c[3] & 1 == 1 },
            7..=12 => Op::Free { idx: c[1] as usize | (c[2] as usize) << 8, cpu },
            13 => Op::Realloc { idx: c[1] as usize, size: decode_size(c[2], c[3]), cpu },
            14 => match c[1] % 8 {
                0 => Op::Shrink,
                1 => Op::FailNth { n: c[2] as usize % 8 + 1 },
                _ => Op::Drain { cpu },
            },
            _ => Op::Drain { cpu: CpuId::of(c[1] as usize % NR_CPUS) },
        }
    });
    // An arena of 4096 pages (16 MiB) while kmalloc may ask for up to order 16: big
    // requests must fail cleanly.
    run_ops(ops, 12, super::MAX_PAGE_ORDER, flags & 1 == 1);
}
