//! Turns criterion's results into a Markdown table of peer/ours ratios with their spread.
//!
//! Reads `<dir>/<group>/<function>/new/{benchmark,estimates,sample}.json` (default dir
//! `target/criterion`, or the first argument). Each of criterion's samples (20 per
//! benchmark, see `benches/allocators.rs`) is one timed run of many iterations; its time
//! per iteration divided by the benchmark's element throughput is its ns per operation.
//! For every group it prints each of our functions (`ours-*`) against each other function:
//! `| workload | ours | ours ns/op | peer | peer ns/op | ratio | min | max |` where the ns/op
//! are criterion's median estimates and ratio, min and max are the median, smallest and
//! largest of the per-sample ratios peer / ours (sample i of the peer against sample i of
//! ours: runs of the same iteration count). Above 1: ours is faster.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One benchmark function's median time per operation and each sample's.
struct Measured {
    function: String,
    ns_per_op: f64,
    samples: Vec<f64>,
}

/// Results by natural-sort key of their group: (group name, its functions).
type Groups = BTreeMap<Vec<(String, u64)>, (String, Vec<Measured>)>;

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(p).ok()?).ok()
}

/// One benchmark's (group, function, ns/op), if `dir` holds a complete result.
fn load(dir: &Path) -> Option<(String, Measured)> {
    let bench = read_json(&dir.join("new/benchmark.json"))?;
    let est = read_json(&dir.join("new/estimates.json"))?;
    let ns = est["median"]["point_estimate"].as_f64()?;
    let elems = bench["throughput"]["Elements"].as_f64().unwrap_or(1.0).max(1.0);
    let samples = read_json(&dir.join("new/sample.json")).map_or_else(Vec::new, |s| per_sample(&s, elems));
    Some((
        bench["group_id"].as_str()?.to_string(),
        Measured { function: bench["function_id"].as_str()?.to_string(), ns_per_op: ns / elems, samples },
    ))
}

/// ns per operation of each sample of criterion's `sample.json` (`iters`, `times` in ns).
fn per_sample(s: &Value, elems: f64) -> Vec<f64> {
    let nums = |k: &str| -> Vec<f64> {
        s[k].as_array().map_or_else(Vec::new, |a| a.iter().filter_map(Value::as_f64).collect())
    };
    nums("iters").iter().zip(nums("times")).filter(|(i, _)| **i > 0.0).map(|(i, t)| t / i / elems).collect()
}

/// (min, median, max) of the per-sample ratios peer / ours, if both have samples.
fn spread(ours: &[f64], peer: &[f64]) -> Option<(f64, f64, f64)> {
    let mut r: Vec<f64> = ours.iter().zip(peer).filter(|(o, _)| **o > 0.0).map(|(o, p)| p / o).collect();
    if r.is_empty() {
        return None;
    }
    r.sort_by(f64::total_cmp);
    Some((r[0], r[r.len() / 2], r[r.len() - 1]))
}

/// Sort key comparing digit runs as numbers ("kmalloc-64" before "kmalloc-256").
fn natural(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(d as u64));
        } else {
            if let Some(n) = num.take() {
                out.push((std::mem::take(&mut text), n));
            }
            text.push(c);
        }
    }
    out.push((text, num.unwrap_or(0)));
    out
}

fn main() {
    let root = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/criterion"));
    let mut groups = Groups::new();
    let Ok(entries) = fs::read_dir(&root) else {
        eprintln!("no criterion results in {}", root.display());
        std::process::exit(1);
    };
    for g in entries.flatten() {
        let Ok(funcs) = fs::read_dir(g.path()) else {
            continue;
        };
        for f in funcs.flatten() {
            if let Some((group, r)) = load(&f.path()) {
                groups.entry(natural(&group)).or_insert_with(|| (group, Vec::new())).1.push(r);
            }
        }
    }
    println!("| workload | ours | ours ns/op | peer | peer ns/op | ratio | min | max |");
    println!("|---|---|---:|---|---:|---:|---:|---:|");
    for (group, results) in groups.values() {
        let (ours, peers): (Vec<&Measured>, Vec<&Measured>) =
            results.iter().partition(|r| r.function.starts_with(mm_bench::OURS));
        for o in &ours {
            let mut peers = peers.clone();
            peers.sort_by(|a, b| a.function.cmp(&b.function));
            for p in peers {
                // Without samples (an old criterion directory), the ratio of the medians.
                let (lo, mid, hi) = spread(&o.samples, &p.samples).map_or_else(
                    || ("-".to_string(), p.ns_per_op / o.ns_per_op, "-".to_string()),
                    |(lo, mid, hi)| (format!("{lo:.2}"), mid, format!("{hi:.2}")),
                );
                println!(
                    "| {group} | {} | {:.1} | {} | {:.1} | {mid:.2} | {lo} | {hi} |",
                    o.function, o.ns_per_op, p.function, p.ns_per_op
                );
            }
        }
    }
}
