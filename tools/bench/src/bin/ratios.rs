//! Turns criterion's results into a Markdown table of peer/ours ratios.
//!
//! Reads `<dir>/<group>/<function>/new/{benchmark,estimates}.json` (default dir
//! `target/criterion`, or the first argument), takes the median time per iteration divided
//! by the benchmark's element throughput (ns per operation), and prints for every group
//! each of our functions (`ours-*`) against each other function:
//! `| workload | ours | ours ns/op | peer | peer ns/op | ratio |` with ratio = peer / ours
//! (above 1: ours is faster).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One benchmark function's median time per operation.
struct Measured {
    function: String,
    ns_per_op: f64,
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
    Some((
        bench["group_id"].as_str()?.to_string(),
        Measured { function: bench["function_id"].as_str()?.to_string(), ns_per_op: ns / elems },
    ))
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
    println!("| workload | ours | ours ns/op | peer | peer ns/op | ratio |");
    println!("|---|---|---:|---|---:|---:|");
    for (group, results) in groups.values() {
        let (ours, peers): (Vec<&Measured>, Vec<&Measured>) =
            results.iter().partition(|r| r.function.starts_with(mm_bench::OURS));
        for o in &ours {
            let mut peers = peers.clone();
            peers.sort_by(|a, b| a.function.cmp(&b.function));
            for p in peers {
                println!(
                    "| {group} | {} | {:.1} | {} | {:.1} | {:.2} |",
                    o.function,
                    o.ns_per_op,
                    p.function,
                    p.ns_per_op,
                    p.ns_per_op / o.ns_per_op
                );
            }
        }
    }
}
