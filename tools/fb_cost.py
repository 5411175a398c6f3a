#!/usr/bin/env python3
"""What the framebuffer costs the boot sweep, measured in one run: boots the image with
`fb=off` and with the framebuffer on (the default) side by side (both QEMUs at once, so
both see the same load on the host), a few times, and prints each sweep's total time
(the sweep's own `phase times` line) and the ratio on/off of the medians. The goal: at
most 1.05x.

On a loaded machine two boots of the same image differ by tens of percent, more than
the effect; so the kernel's own account is printed too: the `fb` command's time spent
drawing (console and map, since boot, so a little more than during the sweep) over the
sweep's time, the share of one CPU the screen took.

    tools/fb_cost.py [--image kernel8.img] [--runs N]
"""
import argparse
import re
import statistics
import sys
import threading

sys.path.insert(0, __import__("os").path.dirname(__file__))
from qemu_run import PROMPT, Qemu  # noqa: E402

TOTAL = re.compile(r"sweep: phase times us: .* total=(\d+)")
DRAW = re.compile(r"fb: console (\d+) flushes in (\d+)\.(\d+) ms, memory map (\d+) steps in (\d+)\.(\d+) ms")


def boot(image, cmdline, out):
    with Qemu(image, cmdline=cmdline) as q:
        q.expect("^" + re.escape(PROMPT), 900)
        m = TOTAL.search(q.out)
        if not m or "nterrupted" in q.out:
            out["error"] = f"no complete sweep with {cmdline!r}:\n{q.out[-2000:]}"
            return
        out["us"] = int(m.group(1))
        fb = q.command("fb")
        d = DRAW.search(fb)
        if cmdline == "fb=off":
            if "no framebuffer" not in fb:
                out["error"] = f"fb=off still drew: {fb}"
        elif not d:
            out["error"] = f"no framebuffer: {fb}"
        else:
            out["draw_ms"] = int(d.group(2)) + int(d.group(3)) / 1000 + int(d.group(5)) + int(d.group(6)) / 1000
            out["fb"] = fb.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("--runs", type=int, default=3, help="pairs of boots")
    a = ap.parse_args()
    off_t, on_t, shares = [], [], []
    for i in range(a.runs):
        off, on = {}, {}
        ts = [threading.Thread(target=boot, args=(a.image, "fb=off", off)),
              threading.Thread(target=boot, args=(a.image, "", on))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for r in (off, on):
            if "error" in r:
                raise SystemExit(r["error"])
        off_t.append(off["us"])
        on_t.append(on["us"])
        shares.append(on["draw_ms"] * 1000 / on["us"])
        print(f"run {i + 1}: sweep {off['us'] / 1000:9.1f} ms with fb=off, {on['us'] / 1000:9.1f} ms with the "
              f"framebuffer (ratio {on['us'] / off['us']:.3f}); {on['fb']}", flush=True)
    off_m, on_m = statistics.median(off_t), statistics.median(on_t)
    spread = lambda v: (max(v) - min(v)) / statistics.median(v) * 100  # noqa: E731
    print(f"fb cost: sweep median {on_m / 1000:.1f} ms with the framebuffer, {off_m / 1000:.1f} ms with fb=off: "
          f"ratio {on_m / off_m:.3f} (spread of runs: on {spread(on_t):.0f}%, off {spread(off_t):.0f}%); "
          f"drawing took {statistics.median(shares) * 100:.1f}% of the sweep's time (median; the kernel's account)")


if __name__ == "__main__":
    main()
