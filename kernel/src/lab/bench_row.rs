//! The figures of one `bench` row, from the measurements of its runs: the medians, the
//! speedup and the PMU's columns as the row prints them. No hardware here (host-tested);
//! `bench.rs` measures.
//!
//! A row reads
//!
//! ```text
//! bench: NAME: kernel K ns/op, linked_list_allocator L ns/op, speedup S.SSx (min A.AAx, max B.BBx over R runs); instructions/op I vs J (ratio Q.QQx), cycles/op C vs D
//! ```
//!
//! where the ratio is the heap's instructions over the kernel's (above 1: the kernel runs
//! fewer). Without a PMU, or without an instruction counter, the row says so in place of
//! the figures: `; no PMU: instructions and cycles not counted`, `; instructions/op not
//! counted (WHY), cycles/op C vs D`. `tools/bench/kernel_compare.py` and
//! `tools/debug_cost.py` parse these rows.

use core::fmt;

/// Timed runs of every workload (each of the kernel and of the heap).
pub const RUNS: usize = 5;

/// One run of one side: nanoseconds per operation, and the PMU's cycles and instructions
/// per operation where counted.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Measure {
    pub ns: u64,
    pub cycles: Option<u64>,
    pub inst: Option<u64>,
}

/// The median of a sorted slice (the upper one of an even count).
pub fn median(sorted: &[u64]) -> u64 {
    sorted[sorted.len() / 2]
}

/// The median of one figure over the runs.
fn median_of(runs: &[Measure; RUNS], f: impl Fn(&Measure) -> u64) -> u64 {
    let mut v = [0u64; RUNS];
    for (d, s) in v.iter_mut().zip(runs) {
        *d = f(s);
    }
    v.sort_unstable();
    median(&v)
}

/// A ratio in hundredths, printed as `1.50x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X100(pub u64);

impl X100 {
    /// `num / den` in hundredths (`den` taken as at least 1).
    pub fn ratio(num: u64, den: u64) -> X100 {
        X100(num.saturating_mul(100) / den.max(1))
    }
}

impl fmt::Display for X100 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}x", self.0 / 100, self.0 % 100)
    }
}

/// What the PMU counted for a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmuFigures {
    /// No PMU on this core.
    NoPmu,
    /// Median cycles per operation of the kernel and of the heap, and median
    /// instructions per operation or why they were not counted.
    Counted { cycles: (u64, u64), inst: Result<(u64, u64), &'static str> },
}

impl fmt::Display for PmuFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PmuFigures::NoPmu => write!(f, "; no PMU: instructions and cycles not counted"),
            PmuFigures::Counted { cycles: (co, ch), inst } => {
                match inst {
                    Ok((io, ih)) => write!(f, "; instructions/op {io} vs {ih} (ratio {})", X100::ratio(ih, io))?,
                    Err(why) => write!(f, "; instructions/op not counted ({why})")?,
                }
                write!(f, ", cycles/op {co} vs {ch}")
            }
        }
    }
}

/// One row's figures from its runs (kernel and heap of the same run side by side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub ours_ns: u64,
    pub heap_ns: u64,
    /// Median, min and max over the runs of heap time / kernel time of the same run.
    pub speedup: (X100, X100, X100),
    pub pmu: PmuFigures,
}

impl Row {
    /// The medians of `ours` and `heap`; `pmu` says whether the runs counted cycles
    /// (a PMU) and `inst` whether they counted instructions or why not.
    pub fn new(ours: &[Measure; RUNS], heap: &[Measure; RUNS], pmu: bool, inst: Result<(), &'static str>) -> Row {
        let mut speedup = [0u64; RUNS];
        for (s, (o, h)) in speedup.iter_mut().zip(ours.iter().zip(heap)) {
            *s = X100::ratio(h.ns, o.ns).0;
        }
        speedup.sort_unstable();
        let both = |f: fn(&Measure) -> Option<u64>| {
            (median_of(ours, |m| f(m).unwrap_or(0)), median_of(heap, |m| f(m).unwrap_or(0)))
        };
        let pmu = if pmu {
            PmuFigures::Counted { cycles: both(|m| m.cycles), inst: inst.map(|()| both(|m| m.inst)) }
        } else {
            PmuFigures::NoPmu
        };
        Row {
            ours_ns: median_of(ours, |m| m.ns),
            heap_ns: median_of(heap, |m| m.ns),
            speedup: (X100(median(&speedup)), X100(speedup[0]), X100(speedup[RUNS - 1])),
            pmu,
        }
    }
}

impl fmt::Display for Row {
    /// Everything after `bench: NAME: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (med, lo, hi) = self.speedup;
        write!(
            f,
            "kernel {} ns/op, linked_list_allocator {} ns/op, speedup {med} (min {lo}, max {hi} over {RUNS} runs){}",
            self.ours_ns, self.heap_ns, self.pmu
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ns: u64, cycles: u64, inst: u64) -> Measure {
        Measure { ns, cycles: Some(cycles), inst: Some(inst) }
    }

    #[test]
    fn ratios_print_in_hundredths() {
        assert_eq!(X100(150).to_string(), "1.50x");
        assert_eq!(X100(7).to_string(), "0.07x");
        assert_eq!(X100::ratio(245, 96).to_string(), "2.55x");
        assert_eq!(X100::ratio(5, 0), X100(500), "a zero denominator counts as 1");
        assert_eq!(X100::ratio(u64::MAX, 1), X100(u64::MAX), "saturates, no overflow");
    }

    #[test]
    fn row_takes_medians_of_each_side_and_of_the_per_run_speedups() {
        // Run 2 is slow for both sides (the host's load): it moves neither median.
        let ours = [m(100, 110, 90), m(120, 130, 91), m(900, 990, 95), m(110, 120, 90), m(105, 115, 92)];
        let heap = [m(300, 330, 250), m(240, 260, 251), m(1800, 1900, 260), m(330, 360, 250), m(200, 220, 252)];
        let row = Row::new(&ours, &heap, true, Ok(()));
        assert_eq!((row.ours_ns, row.heap_ns), (110, 300));
        // Per run: 3.00, 2.00, 2.00, 3.00, 1.90 -> sorted 1.90 2.00 2.00 3.00 3.00.
        assert_eq!(row.speedup, (X100(200), X100(190), X100(300)));
        assert_eq!(row.pmu, PmuFigures::Counted { cycles: (120, 330), inst: Ok((91, 251)) });
        assert_eq!(
            row.to_string(),
            "kernel 110 ns/op, linked_list_allocator 300 ns/op, speedup 2.00x (min 1.90x, max 3.00x over 5 runs); \
             instructions/op 91 vs 251 (ratio 2.75x), cycles/op 120 vs 330"
        );
    }

    #[test]
    fn a_missing_counter_is_said_not_printed_as_zero() {
        let t = Measure { ns: 100, cycles: Some(100), inst: None };
        let h = Measure { ns: 200, cycles: Some(200), inst: None };
        let row = Row::new(&[t; RUNS], &[h; RUNS], true, Err("no INST_RETIRED"));
        assert!(
            row.to_string().ends_with(
                "speedup 2.00x (min 2.00x, max 2.00x over 5 runs); instructions/op not counted (no INST_RETIRED), cycles/op 100 vs 200"
            ),
            "{row}"
        );
        let t = Measure { ns: 100, cycles: None, inst: None };
        let row = Row::new(&[t; RUNS], &[t; RUNS], false, Err("no PMU"));
        assert_eq!(row.pmu, PmuFigures::NoPmu);
        assert!(row.to_string().ends_with("over 5 runs); no PMU: instructions and cycles not counted"), "{row}");
        assert!(!row.to_string().contains(" 0 "), "no zero figures: {row}");
    }
}
