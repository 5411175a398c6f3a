#!/usr/bin/env python3
"""What the fast paths' semantics and the slab's tunables cost, counted by callgrind.

The instruction table (ir_table.py) counts the allocator as it ships. This tool counts
what-if builds: the committed tree copied into a scratch git worktree, one edit set
applied (each edit must match its source text exactly once, or the tool stops), and the
same callgrind method run on one workload. These builds are not configurations of the
kernel: they drop checks it needs, and exist only to show what each one costs.

  ablate.py                 build and count every variant, print the tables
  ablate.py --docs FILE     also rewrite FILE's tables between the ablation markers
  ablate.py --check-edits   only apply every edit set to the working tree's sources in
                            memory (no build): fails if one no longer applies
  ablate.py --check-edits --check FILE
                            also fail if the as-shipped row of FILE's tables differs
                            from the figure FILE's instruction table (ir_table.py, itself
                            checked against a fresh count) gives the same workload
"""

import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ir_table  # noqa: E402  (the callgrind method and the repository root)

ROOT = ir_table.ROOT
BEGIN = "<!-- ablation begin"
END = "<!-- ablation end -->"
SCRATCH = os.path.join(ROOT, "target", "ablate")
N1, N2 = 100_000, 300_000

ALLOC = "kernel/mm/src/page_alloc/alloc.rs"
FREE = "kernel/mm/src/page_alloc/free.rs"
PCP = "kernel/mm/src/page_alloc/pcp.rs"
SHARED = "kernel/mm/src/slab/shared.rs"
CACHE = "kernel/mm/src/slab/cache.rs"

# Edit sets: name -> [(file, old, new[, n])]; `old` occurs exactly n times (default once) in
# `file`, and every occurrence is replaced.
EDITS = {
    "counters": [
        (ALLOC, "        pcp.count_alloc(n);\n", ""),
        (FREE, "        pcp.count_free(super::pcp::pcp_pages(order));\n", ""),
    ],
    "fault": [(ALLOC, " || self.fail.attr.armed() {", " {")],
    "watermark": [(ALLOC, "        if !watermark::fits_pages(", "        if false && !watermark::fits_pages(")],
    "hold": [
        (PCP, "        if pcp.busy.load(Relaxed) {", "        if false && pcp.busy.load(Relaxed) {"),
        (PCP, "        pcp.busy.store(true, Relaxed);\n", ""),
        (PCP, "        self.pcp.busy.store(false, Relaxed);\n", ""),
    ],
    "states": [
        (FREE, "        if !page.is_plain_head(order) {", "        if false && !page.is_plain_head(order) {"),
        (FREE, "        page.set_pcp(order, slot);\n", ""),
        (ALLOC, "        page.set_state(PageState::Head { order, compound: false, tail_owner: false });\n", ""),
    ],
}


def shared_batches(factor):
    """The shared array holding `factor` batches of 60 (its page made four pages, so that
    more than 512 entries fit)."""
    return [
        (SHARED, "pub(crate) const SHARED_FACTOR: usize = 8;", f"pub(crate) const SHARED_FACTOR: usize = {factor};"),
        (SHARED, "const CAPACITY: usize = PAGE_SIZE / core::mem::size_of::<usize>();",
         "const CAPACITY: usize = 4 * PAGE_SIZE / core::mem::size_of::<usize>();"),
        (CACHE, "let pa = env.ps.alloc_pages(gfp, 0)?;", "let pa = env.ps.alloc_pages(gfp, 2)?;"),
        (CACHE, "env.ps.free_pages(pa, 0);\n", "env.ps.free_pages(pa, 2);\n", 2),
    ]


FOUR = ["counters", "fault", "watermark", "hold"]
# Tables: (key, workload, heading, [(label, edits)]).
TABLES = [
    ("page-pair", "pages-pcp-0", "page alloc+free pair, order 0, built without", [
        ("nothing (as shipped)", []),
        ("the event counters (`pgalloc`, `pgfree`)", EDITS["counters"]),
        ("the fault-injection gate", EDITS["fault"]),
        ("the watermark test", EDITS["watermark"]),
        ("the interrupt-safe hold of the lists", EDITS["hold"]),
        ("all four", [e for k in FOUR for e in EDITS[k]]),
        ("all four and the page states (no double-free test)",
         [e for k in FOUR + ["states"] for e in EDITS[k]]),
    ]),
    ("batch", "kmalloc-batch", "batch of 1000 x 64 B, per object, free objects the caches hold", [
        ("600: 120 per CPU + 8 batches of 60 shared (Linux SLAB's tunables, as shipped)", []),
        ("720: 120 per CPU + 10 batches shared (Linux 7.0's sheaves hold 2 x 60 per CPU + 10 x 60)",
         shared_batches(10)),
        ("840: 120 per CPU + 12 batches shared", shared_batches(12)),
        ("1020: 120 per CPU + 15 batches shared (the whole batch)", shared_batches(15)),
    ]),
]


def apply(tree, edits):
    """Applies `edits` to the sources under `tree` (in memory when `tree` is None: reads the
    working tree, writes nothing). Exits naming the first edit that does not match as often
    as it expects."""
    files = {}
    for path, old, new, *want in edits:
        want = want[0] if want else 1
        full = os.path.join(tree or ROOT, path)
        text = files.get(path) or open(full).read()
        n = text.count(old)
        if n != want:
            sys.exit(f"error: {path}: the edit's text occurs {n} times, not {want} (the source "
                     f"changed; update tools/bench/ablate.py):\n{old!r}")
        files[path] = text.replace(old, new)
    if tree:
        for path, text in files.items():
            with open(os.path.join(tree, path), "w") as f:
                f.write(text)


def git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def scratch_tree():
    """A fresh worktree of the committed HEAD under target/ablate/tree."""
    tree = os.path.join(SCRATCH, "tree")
    if os.path.isdir(tree):
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)
    git("worktree", "prune")
    os.makedirs(SCRATCH, exist_ok=True)
    git("worktree", "add", "--detach", tree, "HEAD")
    return tree


def count(tree, workload):
    tdir = os.path.join(SCRATCH, "target")
    env = dict(os.environ, CARGO_TARGET_DIR=tdir)
    subprocess.run(["cargo", "build", "-q", "-p", "mm-bench", "--release", "--example", "profile"],
                   cwd=tree, env=env, check=True)
    exe = os.path.join(tdir, "release", "examples", "profile")
    outdir = os.path.join(SCRATCH, "callgrind")
    os.makedirs(outdir, exist_ok=True)
    a = ir_table.instructions(exe, outdir, workload, N1)
    b = ir_table.instructions(exe, outdir, workload, N2)
    return (b - a) / (N2 - N1)


def render(heading, rows):
    lines = [f"| {heading} | instructions |", "|---|---:|"]
    lines += [f"| {label} | {value:.1f} |" for label, value in rows]
    return "\n".join(lines) + "\n"


def check_baseline(path):
    """Exits if an ablation table's as-shipped row (its first) in `path` is more than
    max(2, 3 %) from the `ours` figure of the same workload in the file's instruction table."""
    doc = open(path).read()
    text, a, b, _ = ir_table.docs_table(path)
    table = ir_table.parse(text[a:b])
    ours = {cells["ours"]: table[label]["ours"] for _, label, _, _, _, cells in ir_table.ROWS
            if "ours" in table.get(label, {})}
    for key, workload, _, _ in TABLES:
        begin = f"{BEGIN} {key}"
        i = doc.find(begin)
        j = doc.find(END, i)
        if i < 0 or j < 0:
            sys.exit(f"error: {path} has no '{begin}' ... '{END}' markers")
        rows = [l for l in doc[i:j].splitlines() if l.startswith("|")][2:]
        if not rows or workload not in ours:
            sys.exit(f"error: {path}: no as-shipped row for {key} or no instruction-table figure for {workload}")
        shipped = float(rows[0].strip("|").split("|")[-1])
        if abs(shipped - ours[workload]) > max(2, 0.03 * ours[workload]):
            sys.exit(f"stale: {path}: the {key} ablation table's as-shipped row is {shipped}, the "
                     f"instruction table says {ours[workload]} (regenerate with make bench-ablate-docs)")
    print(f"{path}: the ablation tables' as-shipped rows match the instruction table")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", action="append", default=[], help="rewrite this file's tables (repeatable)")
    ap.add_argument("--check-edits", action="store_true", help="only check that every edit set applies")
    ap.add_argument("--check", action="append", default=[],
                    help="with --check-edits: compare this file's as-shipped rows with its instruction table")
    args = ap.parse_args()
    if args.check_edits:
        for key, _, _, variants in TABLES:
            for label, edits in variants:
                apply(None, edits)
        print(f"every edit set applies ({sum(len(t[3]) for t in TABLES)} variants)")
        for path in args.check:
            check_baseline(path)
        return
    subprocess.run([os.path.join(ROOT, "tools", "ensure-pkg.sh"), "valgrind", "valgrind"], check=True)
    if git("status", "--porcelain", "--untracked-files=no", "kernel/mm"):
        print("note: kernel/mm has uncommitted changes; the variants are built from the committed HEAD")
    tree = scratch_tree()
    out = {}
    try:
        for key, workload, heading, variants in TABLES:
            rows = []
            for label, edits in variants:
                git("checkout", "-q", "--", ".", cwd=tree)
                apply(tree, edits)
                rows.append((label, count(tree, workload)))
                print(f"{workload}: {label}: {rows[-1][1]:.1f}", flush=True)
            out[key] = render(heading, rows)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
    text = "\n".join(out.values())
    print("\n" + text, end="")
    for path in args.docs:
        doc = open(path).read()
        for key, body in out.items():
            begin = f"{BEGIN} {key}"
            a = doc.find(begin)
            b = doc.find(END, a)
            if a < 0 or b < 0:
                sys.exit(f"error: {path} has no '{begin}' ... '{END}' markers")
            eol = doc.index("\n", a) + 1
            doc = doc[:eol] + "\n" + body + "\n" + doc[b:]
        with open(path, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
