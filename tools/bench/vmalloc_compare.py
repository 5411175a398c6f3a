#!/usr/bin/env python3
"""Per-page cost of vmalloc+vfree with 4 KiB pages in the kernel, two (or more) images side
by side in one run.

Each image boots with `sweep=vmalloc nohugevmalloc` (the boot sweep's vmalloc phase only,
every area mapped with page descriptors: vmalloc in 4 MiB steps until one fails, then a
bisection to the page, each area freed before the next) and powers off; with `--runs R`
the images take turns R times (old, new, old, new, ...) so that a change in the host's load
hits both. The cost per page is the phase's time (the kernel's own clock) over the pages
the phase mapped (the sweep's "pages mapped" count), which both images print the same way.

    python3 tools/bench/vmalloc_compare.py OLD.img NEW.img [--runs 2] [--accel tcg,thread=single]

It also checks that the images agree: the same largest vmalloc, the same pages mapped and
a clean leak check in every boot. Exit status 1 if not.
"""
import argparse
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from qemu_run import boot_log  # noqa: E402

CMDLINE = "sweep=vmalloc nohugevmalloc"
PHASE = re.compile(r"sweep: phase times us: .*\bvmalloc=(\d+)")
MAPPED = re.compile(r"sweep: vmalloc huge mappings: (\d+) of (\d+) vmallocs used 2 MiB blocks, (\d+) blocks and (\d+) pages mapped")
MAX = re.compile(r"sweep: vmalloc max size=(\d+) bytes")
LEAK = re.compile(r"sweep: leak check: .*")


def boot(image, accel, timeout):
    out, _ = boot_log(image, CMDLINE, accel, timeout, "vmalloc_compare")
    phase, mapped, vmax, leak = PHASE.search(out), MAPPED.search(out), MAX.search(out), LEAK.search(out)
    if not (phase and mapped and vmax and leak):
        raise SystemExit(f"vmalloc_compare: {image}: the sweep did not print its vmalloc summary")
    if int(mapped.group(1)) != 0:
        raise SystemExit(f"vmalloc_compare: {image}: areas used 2 MiB blocks despite nohugevmalloc")
    us, pages = int(phase.group(1)), int(mapped.group(4))
    return {"us": us, "pages": pages, "areas": int(mapped.group(2)), "max": int(vmax.group(1)),
            "leak": leak.group(0), "ns_per_page": us * 1000 / pages}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--runs", type=int, default=1, help="boots per image, alternating")
    ap.add_argument("--accel", default="tcg,thread=single", help="QEMU -accel value ('' for QEMU's default)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for each boot's prompt")
    a = ap.parse_args()
    accel = a.accel or None
    res = {img: [] for img in a.images}
    for r in range(a.runs):
        for img in a.images:
            print(f"# boot {r + 1}/{a.runs}: {img} ({CMDLINE}, accel {accel or 'default'})", file=sys.stderr, flush=True)
            res[img].append(boot(img, accel, a.timeout))
    print(f"| image | boot | vmalloc phase | pages mapped | ns per page |")
    print("|---|---:|---:|---:|---:|")
    for img in a.images:
        for i, b in enumerate(res[img]):
            print(f"| {os.path.basename(img)} | {i + 1} | {b['us'] / 1e6:.2f} s | {b['pages']} | {b['ns_per_page']:.0f} |")
    base = statistics.median(b["ns_per_page"] for b in res[a.images[0]])
    for img in a.images[1:]:
        med = statistics.median(b["ns_per_page"] for b in res[img])
        print(f"vmalloc_compare: {os.path.basename(img)}: {med:.0f} ns per page against {base:.0f} "
              f"({os.path.basename(a.images[0])}): {base / med:.2f}x less time per page (medians)")
    ok = True
    first = res[a.images[0]][0]
    for img in a.images:
        for b in res[img]:
            if (b["max"], b["pages"], b["areas"]) != (first["max"], first["pages"], first["areas"]):
                print(f"vmalloc_compare: {img}: results differ: max {b['max']} pages mapped {b['pages']} "
                      f"areas {b['areas']} against {first['max']} {first['pages']} {first['areas']}", file=sys.stderr)
                ok = False
            if not b["leak"].endswith("OK"):
                print(f"vmalloc_compare: {img}: {b['leak']}", file=sys.stderr)
                ok = False
    print("vmalloc_compare: results " + ("agree" if ok else "DIFFER"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
