#!/usr/bin/env python3
"""The README's example output, from a real run: boots the kernel in QEMU, types the
README's console tour, and rewrites the blocks between `<!-- BEGIN run:NAME -->` and
`<!-- END run:NAME -->` in README.md.

    tools/readme_run.py [--image kernel8.img]           rewrite the blocks
    tools/readme_run.py [--image kernel8.img] --check   exit 1 if they disagree with a run

--check (a QEMU test runs it) compares each block line with the fresh run's with times,
addresses, numbers of three digits or more, timing ratios and buddyinfo's counts masked (they move with
the image's size and the host's speed); everything else, the orders, the percentages, the formats and the
order of the lines, must agree.
"""
import argparse
import difflib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from qemu_run import PROMPT, Qemu  # noqa: E402

README = os.path.join(ROOT, "README.md")
# The boot log lines the README shows (the first line matching each), then every summary.
BOOT = [r"Booting mm-kernel", r"CPU: 4 x Cortex-A53", r"Memory: ARM ", r"Memory: \d+K/\d+K available",
        r"SLUB: kmalloc-8", r"smp: Brought up"]
SUMMARY = r"sweep: (?!memmap|legend|0x|  )"
TOUR = ["free -m", "alloc pages 16 GFP_HIGHUSER_MOVABLE", "memmap --plain", "release 1", "cat /proc/buddyinfo"]


def run(image):
    with Qemu(image, cmdline="") as q:
        q.expect("^" + re.escape(PROMPT), 600)
        boot = q.out
        tour = []
        for c in TOUR:
            tour.append(PROMPT + c)
            tour += q.command(c, 300).rstrip("\n").split("\n")
    lines = boot.split("\n")
    out = []
    for pat in BOOT:
        out += [next(l for l in lines if re.search(pat, l))]
    out.append("...")
    out += [l for l in lines if re.search(SUMMARY, l)]
    return {"boot": out + [PROMPT.rstrip()], "tour": tour}


def mask(line):
    # A buddyinfo line's counts move with whatever the boot left on the free lists.
    if re.match(r"Node \d+, zone", line):
        return re.sub(r"\d+", "N", line.rstrip())
    line = re.sub(r"^\[\s*\d+\.\d+\]", "[T]", line)
    line = re.sub(r"\d+(\.\d+)? ?(ns|us|ms|s)\b", "D", line)
    line = re.sub(r"0x[0-9a-f]+", "X", line)
    line = re.sub(r"\b(?=\d*[a-f])[0-9a-f]{8,}\b", "X", line)  # an oops' registers and stack
    line = re.sub(r"\b\d+\.\d+x\b", "R", line)  # a ratio of two timings
    line = re.sub(r"\d{3,}", "N", line)
    return line.rstrip()


def blocks(text):
    return {m.group(1): m for m in re.finditer(r"<!-- BEGIN run:(\w+) -->\n```\n(.*?)```\n<!-- END run:\1 -->", text, re.S)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=os.path.join(ROOT, "kernel8.img"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    text = open(README).read()
    found = blocks(text)
    fresh = run(a.image)
    if set(found) != set(fresh):
        sys.exit(f"readme_run: README.md has blocks {sorted(found)}, the run makes {sorted(fresh)}")
    if a.check:
        bad = False
        for name, m in found.items():
            have = [mask(l) for l in m.group(2).rstrip("\n").split("\n")]
            want = [mask(l) for l in fresh[name]]
            if have != want:
                bad = True
                print(f"readme_run: README block run:{name} disagrees with a run (regenerate: tools/readme_run.py):")
                sys.stdout.writelines(d + "\n" for d in difflib.unified_diff(want, have, "run", "README", lineterm=""))
        print("readme_run: README agrees with a run" if not bad else "readme_run: FAILED")
        sys.exit(1 if bad else 0)
    for name, m in sorted(found.items(), key=lambda kv: -kv[1].start()):
        body = "\n".join(fresh[name]) + "\n"
        text = text[:m.start(2)] + body + text[m.end(2):]
    open(README, "w").write(text)
    print(f"readme_run: rewrote {', '.join(sorted(found))} in README.md")


if __name__ == "__main__":
    main()
