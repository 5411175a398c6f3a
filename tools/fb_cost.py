#!/usr/bin/env python3
"""What the framebuffer costs the boot sweep: boots the image with `fb=off` and with the
framebuffer on (the default), alternately, and prints each sweep's total time (the
sweep's own `phase times` line) and the ratio on/off of the medians. The sweep with the
framebuffer on should take at most 1.05x the time without it.

    tools/fb_cost.py [--image kernel8.img] [--runs N]

Under a loaded machine the spread between runs of the same kind can exceed the effect;
the script prints it so that the ratio is read with it.
"""
import argparse
import re
import statistics
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from qemu_run import PROMPT, Qemu  # noqa: E402

TOTAL = re.compile(r"sweep: phase times us: .* total=(\d+)")


def sweep_us(image, cmdline):
    with Qemu(image, cmdline=cmdline) as q:
        q.expect("^" + re.escape(PROMPT), 600)
        m = TOTAL.search(q.out)
        if not m or "interrupted" in q.out:
            raise SystemExit(f"no complete sweep with {cmdline!r}:\n{q.out[-2000:]}")
        if cmdline == "" and "fb: 1024x768" not in q.out and "fb: " not in q.out:
            raise SystemExit("the framebuffer did not come up")
        return int(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("--runs", type=int, default=3, help="boots of each kind, alternated")
    a = ap.parse_args()
    times = {"fb=off": [], "fb on": []}
    for i in range(a.runs):
        for kind, cmdline in [("fb=off", "fb=off"), ("fb on", "")]:
            us = sweep_us(a.image, cmdline)
            times[kind].append(us)
            print(f"run {i + 1}: {kind:6} sweep {us / 1000:9.1f} ms", flush=True)
    off, on = statistics.median(times["fb=off"]), statistics.median(times["fb on"])
    spread = lambda v: (max(v) - min(v)) / statistics.median(v) * 100  # noqa: E731
    print(f"fb cost: sweep median {on / 1000:.1f} ms with the framebuffer, {off / 1000:.1f} ms with fb=off: "
          f"ratio {on / off:.3f} (spread of runs: on {spread(times['fb on']):.1f}%, off {spread(times['fb=off']):.1f}%)")


if __name__ == "__main__":
    main()
