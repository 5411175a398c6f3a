#!/usr/bin/env python3
"""Times the boot sweep of two kernel images in one run and prints each phase side by side.

Boots the old image (default: the baseline of main before the huge-vmalloc work) and then
the new one in QEMU (`-accel tcg,thread=single` by default, one after the other so they
do not compete for the host), waits for the console prompt, and reads each phase's time
from the kernel's own log timestamps, which both images print the same way:

  pages     "Allocating one page with alloc_page()" .. "Allocating memory with kmalloc"
  kmalloc   .. "Allocating memory with vmalloc"
  vmalloc   .. "Fragmenting memory" (the fragmentation lab), or the first summary line
            ("sweep: __get_free_pages max order") in an image without the lab in its sweep
  total     the three phases above, which both images run
  fragment  "Fragmenting memory" .. the first summary line, for an image that runs it

With `--icount`, QEMU runs with `-icount shift=0`: a guest nanosecond is then one
instruction, so every phase is an instruction count (printed in millions) that the host's
load does not move, the figure of record on a shared machine.

It also checks that the results agree: the same __get_free_pages and kmalloc limits,
vmalloc at least 99% of free memory, and leak check OK in both. Exit status 1 if not.

  python3 tools/sweep_compare.py [--old IMG] [--new IMG] [--accel tcg,thread=single] [--icount]
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qemu_run import boot_log  # noqa: E402

BASELINE = "/work/baseline/kernel8-c7a296e.img"
TS = r"^\[\s*(\d+\.\d+)\] "
MARKS = {
    "start": r"Allocating one page with alloc_page\(\)",
    "kmalloc": r"Allocating memory with kmalloc",
    "vmalloc": r"Allocating memory with vmalloc",
    "summary": r"sweep: __get_free_pages max order",
}
# The fragmentation lab's first line (not in images from before issue 18).
FRAGMENT = r"Fragmenting memory"


def stamp(out, pattern):
    m = re.search(TS + pattern, out, re.M)
    if not m:
        raise SystemExit(f"sweep_compare: no line matching {pattern!r} in the boot log")
    return float(m.group(1))


ICOUNT = ["-icount", "shift=0"]


def run(image, accel, timeout, icount=False):
    out, wall = boot_log(image, "", accel, timeout, "sweep_compare", ICOUNT if icount else ())
    t = {k: stamp(out, p) for k, p in MARKS.items()}
    lab = stamp(out, FRAGMENT) if re.search(TS + FRAGMENT, out, re.M) else None
    vmalloc_end = lab if lab is not None else t["summary"]
    phases = {
        "pages": t["kmalloc"] - t["start"],
        "kmalloc": t["vmalloc"] - t["kmalloc"],
        "vmalloc": vmalloc_end - t["vmalloc"],
        "total": vmalloc_end - t["start"],
        "fragment": t["summary"] - lab if lab is not None else None,
    }
    res = {}
    for key, pat in [("order", r"sweep: __get_free_pages max order=.*$"), ("kmalloc", r"sweep: kmalloc max size=.*$"),
                     ("vmalloc", r"sweep: vmalloc max size=.*$"), ("leak", r"sweep: leak check: .*$"),
                     ("huge", r"sweep: vmalloc huge mappings: .*$")]:
        m = re.search(TS + "(" + pat + ")", out, re.M)
        res[key] = m.group(2) if m else None
    return phases, res, wall


UNIT = {"icount": False}


def fmt(sec):
    if UNIT["icount"]:  # a guest nanosecond is one instruction
        return f"{sec * 1000:9.3f} M"
    return f"{sec * 1000:9.1f} ms" if sec < 10 else f"{sec:9.2f} s "


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default=BASELINE, help="the image to compare against")
    ap.add_argument("--new", default="kernel8.img", help="the image under test")
    ap.add_argument("--accel", default="tcg,thread=single", help="QEMU -accel value ('' for QEMU's default)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for each boot's prompt")
    ap.add_argument("--icount", action="store_true",
                    help="QEMU -icount shift=0: each phase in instructions (millions), not guest time")
    args = ap.parse_args()
    UNIT["icount"] = args.icount
    accel = args.accel or None
    print(f"sweep_compare: old {args.old}\nsweep_compare: new {args.new}\nsweep_compare: accel {accel or 'default'}"
          + (" with -icount shift=0 (phases in millions of instructions)" if args.icount else ""), flush=True)
    old, old_res, old_wall = run(args.old, accel, args.timeout, args.icount)
    new, new_res, new_wall = run(args.new, accel, args.timeout, args.icount)
    print(f"{'phase':<10} {'old':>12} {'new':>12} {'old/new':>9}")
    for k in ["pages", "kmalloc", "vmalloc", "total"]:
        ratio = old[k] / new[k] if new[k] > 0 else float("inf")
        print(f"{k:<10} {fmt(old[k])} {fmt(new[k])} {ratio:8.1f}x")
    if old["fragment"] is not None or new["fragment"] is not None:
        cell = lambda v: fmt(v) if v is not None else f"{'-':>12}"
        print(f"{'fragment':<10} {cell(old['fragment'])} {cell(new['fragment'])}  (the fragmentation lab, not in total)")
    print(f"{'boot+sweep wall':<10} {old_wall:8.1f} s {new_wall:9.1f} s {old_wall / new_wall:8.1f}x (host time to the prompt)")
    ok = True
    for key in ["order", "kmalloc", "vmalloc", "leak"]:
        print(f"old: {old_res[key]}\nnew: {new_res[key]}")
    if new_res["huge"]:
        print(f"new: {new_res['huge']}")
    for key in ["order", "kmalloc"]:
        if old_res[key] != new_res[key]:
            print(f"sweep_compare: {key} results differ", file=sys.stderr)
            ok = False
    for name, r in [("old", old_res), ("new", new_res)]:
        m = re.search(r"(\d+)\.(\d)% of", r["vmalloc"] or "")
        if not m or int(m.group(1)) * 10 + int(m.group(2)) < 990:
            print(f"sweep_compare: {name} vmalloc below 99% of free memory", file=sys.stderr)
            ok = False
        if not (r["leak"] or "").endswith("OK"):
            print(f"sweep_compare: {name} leak check not OK", file=sys.stderr)
            ok = False
    speedup = old["total"] / new["total"] if new["total"] > 0 else float("inf")
    what = "instructions" if args.icount else "time"
    print(f"sweep_compare: the new sweep takes 1/{speedup:.1f} of the old one's {what}; results "
          + ("agree" if ok else "DIFFER"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
