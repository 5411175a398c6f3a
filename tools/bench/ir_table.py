#!/usr/bin/env python3
"""Instructions per operation of our allocators and their peers, counted by callgrind.

Each workload of tools/bench/examples/profile.rs (release build) runs twice under
`valgrind --tool=callgrind`, with N1 and N2 operations; (Ir(N2) - Ir(N1)) / (N2 - N1) is the
cost of one operation with setup and teardown cancelled out. Instruction counts do not move
with the load of a shared machine, so this table is the performance figure of record.

  ir_table.py                 measure, print the table, write target/bench-ir.json
  ir_table.py --docs FILE     also rewrite FILE's table between the ir-table markers
                              (repeatable; a `short` marker gets the table without its legend)
  ir_table.py --check FILE    measure and fail if FILE's table differs by more than 3 % (repeatable)
  ir_table.py --only SUBSTR   only the rows whose key contains SUBSTR (no docs, no check)
"""

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BEGIN = "<!-- ir-table begin"  # the rest of the marker's line says what writes it
END = "<!-- ir-table end -->"

# Columns: (key, heading, legend).
COLUMNS = [
    ("ours", "ours", "our allocator (slab kmalloc, buddy per-CPU lists, vmalloc), debug off"),
    ("ours-zone", "ours-zone", "our buddy allocator with the per-CPU lists off"),
    ("mimalloc", "mimalloc", "mimalloc crate through GlobalAlloc"),
    ("malloc", "malloc", "the host's malloc (std::alloc::System)"),
    ("talc", "talc", "talc over a 64 MiB arena"),
    ("lla", "linked-list", "linked_list_allocator Heap"),
    ("bsa", "bsa-heap", "buddy_system_allocator Heap (page rows: naturally aligned blocks)"),
    ("bsa-frame", "bsa-frame", "buddy_system_allocator FrameAllocator (frame numbers, no memory)"),
    ("floor", "floor", "vmalloc's floor: order-0 page alloc + one descriptor write, then the free"),
]

# Rows: (key, label, ops per workload operation, N1, N2, {column: workload}).
ROWS = [
    ("kmalloc-64-pair", "kmalloc 64 B alloc+free pair", 1, 100_000, 300_000,
     {"ours": "kmalloc-pair-64", "mimalloc": "mimalloc-pair-64", "malloc": "malloc-pair-64",
      "talc": "talc-pair-64", "lla": "lla-pair-64", "bsa": "bsa-pair-64"}),
    ("kmalloc-batch", "batch of 1000 x 64 B, random free order, per object", 1, 100_000, 300_000,
     {"ours": "kmalloc-batch", "mimalloc": "mimalloc-batch", "malloc": "malloc-batch",
      "talc": "talc-batch", "lla": "lla-batch", "bsa": "bsa-batch"}),
    ("page-pair", "page alloc+free pair, order 0", 1, 100_000, 300_000,
     {"ours": "pages-pcp-0", "ours-zone": "pages-zone-0", "bsa": "bsa-heap-0",
      "bsa-frame": "bsa-frame-0"}),
    ("vmalloc-1MiB", "vmalloc+vfree of 1 MiB (4 KiB pages), per page", 256, 400, 1_200,
     {"ours": "vmalloc-1", "floor": "floor-1"}),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, **kw)


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def build():
    sh([os.path.join(ROOT, "tools", "ensure-pkg.sh"), "valgrind", "valgrind"])
    sh(["cargo", "build", "-q", "-p", "mm-bench", "--release", "--example", "profile"])


def instructions(exe, outdir, work, n):
    out = os.path.join(outdir, f"{work}-{n}.callgrind")
    sh(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", exe, work, str(n)],
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    raise RuntimeError(f"no instruction total in {out}")


def measure(rows, jobs):
    tdir = target_dir()
    exe = os.path.join(tdir, "release", "examples", "profile")
    outdir = os.path.join(tdir, "bench-ir")
    os.makedirs(outdir, exist_ok=True)
    runs = [(work, n) for (_, _, _, n1, n2, cells) in rows for work in cells.values() for n in (n1, n2)]
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        ir = dict(zip(runs, pool.map(lambda r: instructions(exe, outdir, *r), runs)))
    table = {}
    for key, label, per, n1, n2, cells in rows:
        table[key] = {"label": label,
                      "cells": {col: round((ir[(w, n2)] - ir[(w, n1)]) / ((n2 - n1) * per)) for col, w in cells.items()},
                      "workloads": cells}
    return table


def render(table):
    cols = [c for c in COLUMNS if any(c[0] in r["cells"] for r in table.values())]
    lines = ["| instructions per operation | " + " | ".join(h for _, h, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for r in table.values():
        cells = [str(r["cells"][k]) if k in r["cells"] else "-" for k, _, _ in cols]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    legend = "; ".join(f"{h}: {text}" for _, h, text in cols)
    return "\n".join(lines) + "\n\n" + legend + ".\n"


def docs_table(path):
    """The file's text, the end of its begin marker's line and the start of the end marker,
    and whether the marker asks for the short form (the table without its legend)."""
    text = open(path).read()
    a, b = text.find(BEGIN), text.find(END)
    if a < 0 or b < 0:
        sys.exit(f"error: {path} has no ir-table markers")
    eol = text.index("\n", a) + 1
    return text, eol, b, "short" in text[a:eol]


def parse(block):
    rows = {}
    lines = [l for l in block.splitlines() if l.startswith("|")]
    heads = [h.strip() for h in lines[0].strip("|").split("|")][1:]
    for l in lines[2:]:
        cells = [c.strip() for c in l.strip("|").split("|")]
        rows[cells[0]] = {h: int(c) for h, c in zip(heads, cells[1:]) if c != "-"}
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", action="append", default=[], help="rewrite this file's table (repeatable)")
    ap.add_argument("--check", action="append", default=[],
                    help="compare this file's table with a fresh measurement (repeatable)")
    ap.add_argument("--only", help="only rows whose key contains this")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args()
    rows = [r for r in ROWS if not args.only or args.only in r[0]]
    build()
    table = measure(rows, args.jobs)
    out = render(table)
    print(out, end="")
    if args.only:
        return
    with open(os.path.join(target_dir(), "bench-ir.json"), "w") as f:
        json.dump(table, f, indent=1)
    for path in args.docs:
        text, a, b, short = docs_table(path)
        body = out.split("\n\n")[0] + "\n" if short else out
        with open(path, "w") as f:
            f.write(text[:a] + "\n" + body + "\n" + text[b:])
    bad = []
    for path in args.check:
        text, a, b, _ = docs_table(path)
        old, new = parse(text[a:b]), parse(out)
        bad += [f"{path}: {row} / {col}: docs {v}, measured {new.get(row, {}).get(col)}"
                for row, cells in old.items() for col, v in cells.items()
                if abs(new.get(row, {}).get(col, -10**9) - v) > max(2, v * 0.03)]
        bad += [f"{path}: {row}: measured, not in the docs" for row in new if row not in old]
    if bad:
        sys.exit("stale (regenerate with make bench-ir-docs):\n  " + "\n  ".join(bad))
    for path in args.check:
        print(f"{path}: table matches the measurement")


if __name__ == "__main__":
    main()
