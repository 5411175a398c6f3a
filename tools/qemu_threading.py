#!/usr/bin/env python3
"""Measure what QEMU's threading costs this kernel, in one run on this machine.

1. The boot sweep under QEMU's default threading (one host thread per vCPU, the plain
   `qemu-system-aarch64 -M raspi3b -kernel kernel8.img -serial stdio` of the design card)
   and under `-accel tcg,thread=single`: wall time from QEMU's start to the sweep's leak
   check, and the ratio.
2. An idle kernel at the `mm> ` prompt (booted with sweep=off) under both: the QEMU
   process's CPU time (user + system, /proc/PID/stat) over 20 s of wall time, as a
   percentage of one host CPU.

    tools/qemu_threading.py [--image kernel8.img] [--idle-seconds 20] [--runs N (default 2)]

With --runs N the two sweeps alternate N times and the fastest of each counts (other
load on the host only ever slows a run down).

Exit status 0 if the sweep ratio is at most 1.2 and idle costs under 5% of a CPU under
default threading (the issue's bounds); the numbers are printed either way.
"""
import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from qemu_run import PROMPT, Qemu, QemuError  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICKS


def sweep_seconds(image, accel, timeout):
    start = time.monotonic()
    with Qemu(image, cmdline="", accel=accel) as q:
        q.expect(r"sweep: leak check: free pages before=(\d+) after=\1 OK", timeout)
        took = time.monotonic() - start
        q.expect("^" + re.escape(PROMPT), 60)
        q.send("poweroff\r")
        q.wait_exit(60)
    return took


def idle_cpu(image, accel, seconds):
    with Qemu(image, cmdline="sweep=off", accel=accel) as q:
        q.expect("^" + re.escape(PROMPT), 240)
        time.sleep(2)  # let boot-time work settle
        c0, t0 = cpu_seconds(q.proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(q.proc.pid), time.monotonic()
        q.send("poweroff\r")
        q.wait_exit(60)
    return (c1 - c0) / (t1 - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("--idle-seconds", type=float, default=20)
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed for one boot sweep")
    ap.add_argument("--runs", type=int, default=2, help="alternate the sweeps this often, keep the fastest")
    args = ap.parse_args()
    modes = [("default threading", None), ("thread=single", "tcg,thread=single")]
    try:
        sweep = {name: float("inf") for name, _ in modes}
        for run in range(max(1, args.runs)):
            for name, accel in modes:
                took = sweep_seconds(args.image, accel, args.timeout)
                print(f"run {run + 1}: boot sweep under {name}: {took:.1f} s", flush=True)
                sweep[name] = min(sweep[name], took)
        idle = {name: idle_cpu(args.image, accel, args.idle_seconds) for name, accel in modes}
    except QemuError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    d, s = sweep["default threading"], sweep["thread=single"]
    print(f"boot sweep: default threading {d:.1f} s, thread=single {s:.1f} s, ratio {d / s:.2f}")
    di, si = idle["default threading"], idle["thread=single"]
    print(f"idle at the prompt over {args.idle_seconds:.0f} s: default threading {100 * di:.2f}% of one host CPU, "
          f"thread=single {100 * si:.2f}%, ratio {f'{di / si:.2f}' if si else 'n/a (thread=single below one clock tick)'}")
    ok = d / s <= 1.2 and di < 0.05
    print("within the bounds (sweep ratio <= 1.2, idle < 5%)" if ok else "OUTSIDE the bounds (sweep ratio <= 1.2, idle < 5%)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
