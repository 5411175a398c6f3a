#!/usr/bin/env python3
"""QEMU integration tests: boot kernel8.img in raspi3b and check what a user sees.

Each test gets a fresh boot unless it shares one (tests that only read). Every wait has a
timeout, so a hung kernel fails the test instead of hanging CI. The last line is
`qemu: N passed, M failed`.

    tools/test_qemu.py --image kernel8.img [-k PATTERN] [-v]
"""
import argparse
import re
import sys
import time
import traceback

sys.path.insert(0, __import__("os").path.dirname(__file__))
from qemu_run import PROMPT, Qemu, QemuError  # noqa: E402

BOOT_TIMEOUT = 240
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def boot(image, cmdline="sweep=off"):
    q = Qemu(image, cmdline=cmdline)
    q.expect("^" + re.escape(PROMPT), BOOT_TIMEOUT)
    return q


def check(cond, msg, out=""):
    if not cond:
        raise AssertionError(msg + ("\n--- output ---\n" + out[-4000:] if out else ""))


TS = r"^\[\s*\d+\.\d{6}\] "


# ---------------------------------------------------------------- boot and console
@test
def banner(image):
    with boot(image) as q:
        out = q.out
        for pat in [TS + r"Booting mm-kernel \d+\.\d+\.\d+ on Raspberry Pi 3 Model B rev 1\.2 \(revision 0xa02082\)",
                    TS + r"CPU: 4 x Cortex-A53 \(BCM2837\), MIDR 0x410fd034, booted on CPU0 at EL2",
                    TS + r"Memory: ARM 0x00000000-0x3bffffff \(960 MiB\)",
                    TS + r"  \.text   0xffffffc000080000-",
                    TS + r"  \.rodata ", TS + r"  \.data ", TS + r"  \.bss ",
                    TS + r"Timer: CNTFRQ 62500000 Hz",
                    TS + r"ksyms: \d+ symbols"]:
            check(re.search(pat, out, re.M), f"banner lacks {pat!r}", out)
        stamps = [float(m) for m in re.findall(r"^\[\s*(\d+\.\d{6})\] ", out, re.M)]
        check(stamps == sorted(stamps), "timestamps go backwards", out)


@test
def help_lists_every_command(image):
    with boot(image) as q:
        out = q.command("help")
        names = re.findall(r"^  (\S+)", out, re.M)
        for required in ["help", "uptime", "crash", "reboot", "poweroff"]:
            check(required in names, f"help does not list {required}", out)
        # Every listed command exists: none answers 'unknown command'.
        for name in names:
            if name in ("reboot", "poweroff", "crash", "sweep", "stress", "bench"):
                continue
            res = q.command(name + " --definitely-bad-argument")
            check("unknown command" not in res, f"help lists {name} but it is unknown", res)
            check(res.strip() != "", f"{name} with a bad argument printed nothing", res)


@test
def unknown_and_bad_arguments(image):
    with boot(image) as q:
        out = q.command("frobnicate now")
        check("unknown command 'frobnicate' (type help)" in out, "unknown command not refused", out)
        out = q.command("uptime extra")
        check("usage: uptime" in out, "bad argument gives no usage line", out)
        out = q.command("crash no-such-type")
        check("unknown crash type 'no-such-type'" in out and "usage: crash TYPE" in out, "crash type not refused", out)
        out = q.command("")
        check(out.strip() == "", "empty line printed something", out)


@test
def line_editing(image):
    with boot(image) as q:
        q.send("uptimX\x7fe\r")
        q.expect(r"up \d+\.\d{6} s", 20)
        q.expect("^" + re.escape(PROMPT), 20)
        q.send("x" * 300 + "\r")
        q.expect(r"line too long \(at most 128 characters\): ignored", 20)
        q.expect("^" + re.escape(PROMPT), 20)
        out = q.command("uptime")
        check(re.search(r"up \d+\.\d{6} s", out), "console broken after an overlong line", out)


@test
def poweroff_exits_zero(image):
    with boot(image) as q:
        q.send("poweroff\r")
        rc = q.wait_exit(30)
        check(rc == 0, f"QEMU exit status {rc}", q.out)
        check("reboot: Power down" in q.out, "no power-down message", q.out)


# ---------------------------------------------------------------- oops reports
def crash(image, kind):
    q = boot(image)
    q.send(f"crash {kind}\r")
    return q


@test
def crash_list(image):
    with boot(image) as q:
        out = q.command("crash")
        for kind in ["null", "panic", "brk"]:
            check(re.search(rf"^  {kind}\s", out, re.M), f"crash does not list {kind}", out)


@test
def oops_bug_has_symbolized_trace(image):
    with crash(image, "brk") as q:
        q.expect(r"Internal error: Oops - BUG: 00000000f2000800 \[#1\] SMP", 30)
        q.expect(r"pc : kernel::commands::crash::crash_brk\+0x[0-9a-f]+/0x[0-9a-f]+", 10)
        q.expect(r"x29: [0-9a-f]{16} x28: [0-9a-f]{16} x27: [0-9a-f]{16}", 10)
        q.expect(r"Call trace:\n.*\n.* kernel::commands::crash::crash\+0x", 10)
        q.expect(r"kernel::shell::execute\+0x", 10)
        q.expect(r"Kernel panic - not syncing: Oops: Fatal exception", 10)


@test
def panic_report(image):
    with crash(image, "panic") as q:
        q.expect(r"Kernel panic - not syncing: crash: deliberate panic", 30)
        q.expect(r"at kernel/src/commands/crash\.rs:\d+:\d+", 10)
        q.expect(r"Call trace:", 10)
        q.expect(r"kernel::commands::crash::crash_panic", 10)
        q.expect(r"---\[ end Kernel panic - not syncing: crash: deliberate panic \]---", 10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("-k", help="run tests whose name contains this")
    args = ap.parse_args()
    selected = [t for t in TESTS if not args.k or args.k in t.__name__]
    passed = failed = 0
    for t in selected:
        start = time.monotonic()
        try:
            t(args.image)
            passed += 1
            print(f"test {t.__name__} ... ok ({time.monotonic() - start:.1f}s)", flush=True)
        except (AssertionError, QemuError) as e:
            failed += 1
            print(f"test {t.__name__} ... FAILED ({time.monotonic() - start:.1f}s)\n{e}", flush=True)
        except Exception:
            failed += 1
            print(f"test {t.__name__} ... ERROR\n{traceback.format_exc()}", flush=True)
    print(f"qemu: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
