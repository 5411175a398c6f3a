#!/usr/bin/env python3
"""The cost of page_owner, KFENCE and kmemleak on the boot sweep and `bench`, in one run.

Boots kernel8.img in turn with all three off (`page_owner=off
kfence.sample_interval=0`), with the defaults (KFENCE on at 100 ms, page_owner and
kmemleak off, as in Linux: the KFENCE column) and with all three on (`page_owner=on
kmemleak=on`), ROUNDS times each; every boot runs the default sweep, then `bench N`.
Prints, for each sweep phase and bench row, the best (smallest) time of each side, its
ratio to off (1.020 = 2% slower) and the spread between rounds, and checks that the
sweep's figures (orders, sizes, vmalloc's share of free memory; not its times) are the
same on every side.

    tools/debug_cost.py [--image kernel8.img] [--rounds 2] [--bench 20000] [--wall-clock]

By default QEMU counts instructions (`-icount shift=0,sleep=off`, all vCPUs on one host
thread): the guest's clock then advances 1 ns per instruction executed, so its times
measure the work done, not the host's load (what they leave out: caches, memory
stalls, and real parallelism between the CPUs). `--wall-clock` runs QEMU as the tests
do; its figures then depend on the host's load: read the spread before the ratio.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qemu_run import PROMPT, Qemu  # noqa: E402

OFF = "page_owner=off kfence.sample_interval=0"
ON = "page_owner=on kmemleak=on"
# Linux's defaults: KFENCE on, page_owner and kmemleak off.
DEFAULTS = ""
PHASES = re.compile(r"sweep: phase times us: pages=(\d+) kmalloc=(\d+) vmalloc=(\d+) fragment=(\d+) total=(\d+)$", re.M)
BENCH = re.compile(r"^bench: (.+): kernel (\d+) ns/op", re.M)
# The sweep's result lines, with every time in them removed.
FIGURES = re.compile(r"^\[[ \d.]+\] (sweep: (?:__get_free_pages max|kmalloc max|vmalloc max|fragmented|leak check).*)$", re.M)


def figures(out):
    """The sweep's figures less its times and the absolute free memory (page_owner's
    records take memory from the start, as Linux's page_ext does): vmalloc's share of
    what is free stays."""
    drop = r"\(\d+ pages migrated, \d+ ms\)|free pages before=\d+ after=\d+|size=\d+ bytes \(\d+ pages\), | of \d+ free bytes"
    return [re.sub(drop, "", l) for l in FIGURES.findall(out)]


def free_bytes(out):
    m = re.search(r"of (\d+) free bytes", out)
    return int(m.group(1)) if m else 0


ICOUNT = dict(extra_args=["-icount", "shift=0,sleep=off"], accel="tcg,thread=single")


def one_boot(image, cmdline, bench_n, icount):
    q = Qemu(image, cmdline=cmdline, **(ICOUNT if icount else {}))
    with q:
        q.expect("^" + re.escape(PROMPT), 900)
        boot = q.out
        if "sweep: interrupted" in boot or not PHASES.search(boot):
            raise SystemExit(f"the sweep did not finish with '{cmdline}': no figures")
        out = q.command(f"bench {bench_n}", 1800)
    times = {}
    names = ["sweep pages", "sweep kmalloc", "sweep vmalloc", "sweep fragment", "sweep total"]
    for name, v in zip(names, PHASES.search(boot).groups()):
        times[name] = int(v) * 1000
    for name, ns in BENCH.findall(out):
        times["bench " + name] = int(ns)
    return times, figures(boot), free_bytes(boot)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bench", type=int, default=20000)
    ap.add_argument("--wall-clock", action="store_true", help="host time, not instruction counts (load dependent)")
    a = ap.parse_args()
    sides = [("off", OFF), ("defaults", DEFAULTS), ("all three", ON)]
    runs = {name: [] for name, _ in sides}
    figs, free = {}, {}
    for r in range(a.rounds):
        for name, cmdline in sides:
            t, f, fb = one_boot(a.image, cmdline, a.bench, not a.wall_clock)
            runs[name].append(t)
            figs.setdefault(name, f)
            free.setdefault(name, fb)
            print(f"round {r + 1}, {name}: sweep total {t['sweep total'] / 1e6:.0f} ms", flush=True)
    for name, cmdline in sides:
        print(f"{name:10} '{cmdline}'")
    print("(defaults: KFENCE on at 100 ms, page_owner and kmemleak off, as in Linux; all three: page_owner, KFENCE, kmemleak)")
    unit = "ns, wall clock" if a.wall_clock else "instructions (-icount)"
    print(f"{'best of ' + str(a.rounds) + ' (' + unit + ')':44} {'off':>12} {'defaults':>12} {'all three':>12}  ratios to off")
    worst = {"defaults": 0.0, "all three": 0.0}
    for key in runs["off"][0]:
        best = {n: min(t[key] for t in runs[n] if key in t) for n, _ in sides if all(key in t for t in runs[n])}
        if len(best) < 3:
            continue
        ratios = {n: best[n] / best["off"] for n in ("defaults", "all three")}
        for n in ratios:
            worst[n] = max(worst[n], ratios[n])
        spread = max((max(t[key] for t in runs[n]) - best[n]) / best[n] * 100 for n, _ in sides)
        print(f"{key:44} {best['off']:>12} {best['defaults']:>12} {best['all three']:>12}  "
              f"{ratios['defaults']:.3f} {ratios['all three']:.3f}  (spread {spread:.0f}%)")
    same = figs["off"] == figs["defaults"] == figs["all three"]
    print(f"sweep figures: {'unchanged' if same else 'CHANGED'} with page_owner, KFENCE and kmemleak on "
          f"({len(figs['off'])} lines compared); free memory at the vmalloc phase "
          f"{free['off']} -> {free['all three']} bytes (page_owner's records and the pools)")
    if not same:
        for x, y in zip(figs["off"], figs["all three"]):
            if x != y:
                print(f"  off: {x}\n  on:  {y}")
    print(f"largest ratio: defaults {worst['defaults']:.3f}, all three {worst['all three']:.3f}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
