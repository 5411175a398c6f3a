//! Ratios measured side by side: every allocator of a workload runs short timed bursts in
//! turn, round after round, and each round's ratio peer / ours compares bursts taken
//! milliseconds apart. A change in the machine's load (other processes on a shared host)
//! then hits both sides of a ratio alike, where criterion measures one allocator for a
//! second or two and the next one afterwards. The report gives the median, min and max of
//! the per-round ratios: the spread says how far one number can be trusted.
//!
//! Bursts are timed with the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`), which stops
//! while the thread is preempted: on a machine shared with builds, a burst that loses the
//! CPU halfway is not charged for the time it waited (it still pays for the caches the
//! other process cooled).

use std::hint::black_box;
use std::time::Duration;

/// This thread's CPU time in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant Linux supports.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One contender of a workload: its name and a burst of `n` calls of `ops` operations
/// each (returns a value the optimiser must keep).
pub struct Contender<'a> {
    /// Allocator name (`ours-*` for ours).
    pub name: &'static str,
    /// Operations per call (1000 for a batch of 1000 objects, pages for a vmalloc).
    pub ops: u64,
    /// Runs `n` calls.
    pub burst: Box<dyn FnMut(u64) -> u64 + 'a>,
}

impl<'a> Contender<'a> {
    /// A contender named `name` running `burst`, one operation per call.
    pub fn new(name: &'static str, burst: impl FnMut(u64) -> u64 + 'a) -> Self {
        Contender { name, ops: 1, burst: Box::new(burst) }
    }
    /// The same with `ops` operations per call.
    pub fn with_ops(mut self, ops: u64) -> Self {
        self.ops = ops.max(1);
        self
    }
}

/// How long and how often to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Rounds (each contender runs one burst per round).
    pub rounds: usize,
    /// Target duration of one burst.
    pub burst: Duration,
}

/// One contender's result.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Allocator name.
    pub name: &'static str,
    /// ns per operation of each round.
    pub ns: Vec<f64>,
}

impl Timing {
    /// Median ns per operation.
    pub fn median(&self) -> f64 {
        stats(self.ns.clone()).1
    }
}

/// (min, median, max) of a non-empty sample.
pub fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// ns per operation of a burst of `n` calls.
fn time(c: &mut Contender<'_>, n: u64) -> f64 {
    let t = thread_cpu_ns();
    black_box((c.burst)(n));
    (thread_cpu_ns() - t) as f64 / (n * c.ops) as f64
}

/// Runs the plan: a warm-up burst per contender sizes its bursts to `plan.burst`, then
/// `plan.rounds` rounds in which every contender runs once (the starting contender rotates
/// so that none always follows the same one).
pub fn run(contenders: &mut [Contender<'_>], plan: Plan) -> Vec<Timing> {
    let sizes: Vec<u64> = contenders
        .iter_mut()
        .map(|c| {
            let mut n = 1u64;
            loop {
                let ns = time(c, n) * (n * c.ops) as f64;
                if ns >= plan.burst.as_nanos() as f64 / 8.0 || n >= 1 << 26 {
                    break ((n as f64 * plan.burst.as_nanos() as f64 / ns.max(1.0)) as u64).max(1);
                }
                n *= 4;
            }
        })
        .collect();
    let mut out: Vec<Timing> = contenders.iter().map(|c| Timing { name: c.name, ns: Vec::new() }).collect();
    let k = contenders.len();
    for r in 0..plan.rounds {
        for j in 0..k {
            let i = (r + j) % k;
            out[i].ns.push(time(&mut contenders[i], sizes[i]));
        }
    }
    out
}

/// Per-round ratios `peer / ours` (above 1: ours is faster).
pub fn ratios(ours: &Timing, peer: &Timing) -> Vec<f64> {
    ours.ns.iter().zip(&peer.ns).map(|(o, p)| p / o).collect()
}
