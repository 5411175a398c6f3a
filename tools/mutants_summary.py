#!/usr/bin/env python3
"""Missed share per module of cargo-mutants runs (tools/mutants.sh, docs/testing.md).

usage: tools/mutants_summary.py [DIR] [--missed]

Reads every caught.txt / missed.txt / timeout.txt / unviable.txt under DIR (default
mutants.out; each run has its own DIR/<run>/mutants.out/). A mutant seen by several runs
takes the outcome of the newest run (a rerun after a new test replaces the old miss).
Prints, per file and per module (kernel/mm/src/<module>/), caught, missed, timeouts,
unviable and the missed share among the viable ones (caught + missed + timeout). Runs
without a `done` file are still going or were interrupted: they are named, and their
mutants so far are counted. --missed lists each missed and timed-out mutant.
"""

import os
import sys
from collections import defaultdict

OUTCOMES = ("caught", "missed", "timeout", "unviable")
# The modules of the mm core that tools/mutants.sh examines.
CORE_MODULES = ("page_alloc", "slab", "vmalloc", "pgtable")


def runs(root):
    """(mtime, run_dir, mutants.out dir) of every run under root, oldest first."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if os.path.basename(dirpath) == "mutants.out" and any(
            os.path.exists(os.path.join(dirpath, o + ".txt")) for o in OUTCOMES
        ):
            mtime = max(
                os.path.getmtime(os.path.join(dirpath, o + ".txt"))
                for o in OUTCOMES
                if os.path.exists(os.path.join(dirpath, o + ".txt"))
            )
            found.append((mtime, os.path.dirname(dirpath), dirpath))
            dirnames[:] = []
    return sorted(found)


def key(line):
    """A mutant's identity without its column (stable across reruns of the same source)."""
    return line.strip()


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    root = args[0] if args else "mutants.out"
    if not os.path.isdir(root):
        print(f"mutants_summary: no {root}/ (run make mutants first)", file=sys.stderr)
        return 1
    outcome = {}
    unfinished = []
    for _, run_dir, out in runs(root):
        if not os.path.exists(os.path.join(run_dir, "done")):
            unfinished.append(run_dir)
        for o in OUTCOMES:
            path = os.path.join(out, o + ".txt")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                for line in f:
                    if line.strip():
                        outcome[key(line)] = o
    if not outcome:
        print(f"mutants_summary: no mutant outcomes under {root}/")
        return 1

    per_file = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for m, o in outcome.items():
        per_file[m.split(":", 1)[0]][o] += 1
    per_module = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for f, c in per_file.items():
        rel = f.split("kernel/mm/src/", 1)[-1]
        mod = rel.split("/", 1)[0] if "/" in rel else rel
        for o in OUTCOMES:
            per_module[mod][o] += c[o]

    def row(name, c):
        viable = c["caught"] + c["missed"] + c["timeout"]
        share = f"{100.0 * c['missed'] / viable:5.1f}%" if viable else "    -"
        print(f"{name:<44} {c['caught']:>6} {c['missed']:>6} {c['timeout']:>7} {c['unviable']:>8} {share:>7}")

    head = f"{'file':<44} {'caught':>6} {'missed':>6} {'timeout':>7} {'unviable':>8} {'missed%':>7}"
    print(head)
    for f in sorted(per_file):
        row(f.split("kernel/mm/src/", 1)[-1], per_file[f])
    print()
    print(head.replace("file", "module", 1))
    total = dict.fromkeys(OUTCOMES, 0)
    for mod in sorted(set(per_module) | set(CORE_MODULES)):
        if mod not in per_module:
            print(f"{mod:<44} (not run yet)")
            continue
        row(mod, per_module[mod])
        for o in OUTCOMES:
            total[o] += per_module[mod][o]
    row("all", total)
    for run_dir in unfinished:
        print(f"(unfinished run, counted so far: {run_dir})")
    if "--missed" in argv:
        print()
        for m in sorted(outcome):
            if outcome[m] in ("missed", "timeout"):
                print(f"{outcome[m]:<8} {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
