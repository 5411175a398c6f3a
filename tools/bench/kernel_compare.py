#!/usr/bin/env python3
"""Runs the in-kernel `bench` on two (or more) kernel images in one go and prints the
rows side by side, so that old and new are measured on the same machine under the same load.

    python3 tools/bench/kernel_compare.py OLD.img NEW.img [-n 50000] [--runs 2] [--icount]

Each image boots with `sweep=off`, runs `bench N`, and powers off; with `--runs R` the
images take turns R times (old, new, old, new, ...) so that a change in the host's load
hits both. For every row it prints each image's speedup over linked_list_allocator
(median of the kernel's own repetitions, with their min..max) per boot, and, where the
kernel counted instructions, the instruction ratio (the heap's instructions per operation
over the kernel's) and the kernel's instructions per operation.

With `--icount` QEMU runs with `-icount shift=0`: one instruction is one nanosecond of the
guest's clock, and the PMU counts instructions (QEMU implements INST_RETIRED only then),
so every figure is an instruction count that the host's load does not move; without it the
times are QEMU's own speed and newer kernels say that they counted no instructions.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from qemu_run import Qemu  # noqa: E402

# `bench: NAME: kernel K ns/op, linked_list_allocator L ns/op, speedup S.SSx [...]`; the
# spread `(min A.AAx, max B.BBx over R runs)` exists only in newer kernels, and after it
# the PMU's columns (`; instructions/op I vs J (ratio Q.QQx), cycles/op C vs D`, or
# `; instructions/op not counted (WHY), ...`, or `; no PMU: ...`) in newer ones still.
ROW = re.compile(r"^bench: (.+?): kernel (\d+) ns/op, linked_list_allocator (\d+) ns/op, speedup (\d+\.\d\d)x"
                 r"(?: \(min (\d+\.\d\d)x, max (\d+\.\d\d)x over (\d+) runs\))?"
                 r"(?:; instructions/op (?:(\d+) vs (\d+) \(ratio (\d+\.\d\d)x\)|not counted \([^)]*\)))?"
                 r"(?:, cycles/op (\d+) vs (\d+))?", re.M)
ICOUNT = ["-icount", "shift=0"]


def parse(out):
    """The `bench` rows of a console transcript: name -> dict of ours_ns, heap_ns, speedup,
    lo, hi (None in older kernels), ours_inst, heap_inst, inst_ratio, ours_cycles,
    heap_cycles (None where not counted)."""
    rows = {}
    for m in ROW.finditer(out):
        name, ons, hns, med, lo, hi, _, oi, hi_, ir, oc, hc = m.groups()
        num = lambda v: int(v) if v is not None else None  # noqa: E731
        rows[name] = dict(ours_ns=int(ons), heap_ns=int(hns), speedup=med, lo=lo, hi=hi,
                          ours_inst=num(oi), heap_inst=num(hi_), inst_ratio=ir,
                          ours_cycles=num(oc), heap_cycles=num(hc))
    return rows


def bench(image, n, timeout, icount=False):
    with Qemu(image, cmdline="sweep=off", extra_args=ICOUNT if icount else ()) as q:
        q.expect(r"mm> ", 120)
        out = q.command(f"bench {n}", timeout)
        q.send("poweroff\r")
    return parse(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("-n", type=int, default=50000, help="iterations per workload (bench N)")
    ap.add_argument("--runs", type=int, default=1, help="boots per image, alternating")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--icount", action="store_true", help="QEMU -icount shift=0: instructions counted, time = instructions")
    a = ap.parse_args()
    results = {img: [] for img in a.images}
    for r in range(a.runs):
        for img in a.images:
            print(f"# boot {r + 1}/{a.runs}: {img} bench {a.n}", file=sys.stderr, flush=True)
            results[img].append(bench(img, a.n, a.timeout, a.icount))
    names = []
    for per_img in results.values():
        for rows in per_img:
            names += [n for n in rows if n not in names]
    head = ["workload"] + [f"{os.path.basename(img)} #{r + 1}" for img in a.images for r in range(a.runs)]
    print("| " + " | ".join(head) + " |")
    print("|---" + "|---:" * (len(head) - 1) + "|")
    for name in names:
        cells = [name]
        for img in a.images:
            for rows in results[img]:
                row = rows.get(name)
                if row is None:
                    cells.append("-")
                    continue
                cell = f"{row['speedup']}x ({row['lo']}..{row['hi']})" if row["lo"] else f"{row['speedup']}x"
                if row["inst_ratio"]:
                    cell += f"; instr {row['inst_ratio']}x ({row['ours_inst']}/op)"
                cells.append(cell)
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
