#!/usr/bin/env python3
"""Runs the in-kernel `bench` on two (or more) kernel images in one go and prints the
rows side by side, so that old and new are measured on the same machine under the same load.

    python3 tools/bench/kernel_compare.py OLD.img NEW.img [-n 50000] [--runs 2]

Each image boots with `sweep=off`, runs `bench N`, and powers off; with `--runs R` the
images take turns R times (old, new, old, new, ...) so that a change in the host's load
hits both. For every row it prints each image's speedup over linked_list_allocator
(median of the kernel's own repetitions, with their min..max) per boot.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from qemu_run import Qemu  # noqa: E402

# `bench: NAME: kernel K ns/op, linked_list_allocator L ns/op, speedup S.SSx [...]`; the
# spread `(min A.AAx, max B.BBx over R runs)` exists only in newer kernels.
ROW = re.compile(r"^bench: (.+?): kernel (\d+) ns/op, linked_list_allocator (\d+) ns/op, speedup (\d+\.\d\d)x"
                 r"(?: \(min (\d+\.\d\d)x, max (\d+\.\d\d)x over (\d+) runs\))?", re.M)


def bench(image, n, timeout):
    with Qemu(image, cmdline="sweep=off") as q:
        q.expect(r"mm> ", 120)
        out = q.command(f"bench {n}", timeout)
        q.send("poweroff\r")
    rows = {}
    for m in ROW.finditer(out):
        name, _, _, med, lo, hi, _ = m.groups()
        rows[name] = (med, lo, hi)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("-n", type=int, default=50000, help="iterations per workload (bench N)")
    ap.add_argument("--runs", type=int, default=1, help="boots per image, alternating")
    ap.add_argument("--timeout", type=int, default=1800)
    a = ap.parse_args()
    results = {img: [] for img in a.images}
    for r in range(a.runs):
        for img in a.images:
            print(f"# boot {r + 1}/{a.runs}: {img} bench {a.n}", file=sys.stderr, flush=True)
            results[img].append(bench(img, a.n, a.timeout))
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
                med, lo, hi = rows.get(name, ("-", None, None))
                cells.append(f"{med}x ({lo}..{hi})" if lo else f"{med}x")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
