#!/usr/bin/env python3
"""Drive the kernel in QEMU raspi3b over its serial console.

As a library (tools/test_qemu.py) it boots the image, waits for output, types
commands at the `mm> ` prompt and enforces timeouts so nothing can hang. As a command:

    qemu_run.py --image kernel8.img --sweep      boot, let the sweep run, power off;
                                                 exit 0 only if it completed with no leak
    qemu_run.py --image kernel8.img -c 'meminfo' -c 'buddyinfo'
                                                 run console commands, print everything
    qemu_run.py --accel tcg,thread=single --append sweep=off -c 'stress 300 1 compact'
                                                 the same with every vCPU on one host thread
"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time

PROMPT = "mm> "
QEMU = os.environ.get("QEMU", "qemu-system-aarch64")
DTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dts", "rpi-3-b-plus.dts")
_DTB = {}


def default_dtb():
    """The project's Raspberry Pi 3B+ device tree (tools/dts/), compiled with dtc once per
    process. QEMU boots a raw image with it as the firmware does (x0 = the tree, -append
    written into /chosen/bootargs), so the command line may be 2,048 bytes long: without
    -dtb QEMU passes ATAGS at 0x100, whose text its own boot code for CPUs 1-3 at 0x300
    overwrites past about 460 bytes."""
    if "path" not in _DTB:
        import atexit, shutil, tempfile
        dtc = shutil.which("dtc")
        if not dtc:
            raise QemuError("dtc not found: install device-tree-compiler (make test-qemu does it)")
        tmp = tempfile.mkdtemp(prefix="mm-dtb-")
        atexit.register(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "rpi-3-b-plus.dtb")
        subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", out, DTS], check=True)
        _DTB["path"] = out
    return _DTB["path"]


class QemuError(Exception):
    """A timeout or unexpected exit, with the console output so far."""


class Transcript:
    """What a process writes, gathered by reader threads, with `expect()`: the one expect
    loop of the QEMU tests (`Qemu` below; test_console.py's pty and chainboot readers).

    `follow(read)` starts a thread that appends what `read()` returns until it returns
    b"" or raises OSError (a pty whose other end closed). The kernel sends \r only as
    part of \r\n, so \r is dropped; a pair may straddle two chunks."""

    def __init__(self, proc, log=None):
        self.proc = proc
        self.out = ""
        self.err = ""
        self.pos = 0  # where the next expect() starts looking
        self.log = log
        self.cond = threading.Condition()
        self.threads = []

    def follow(self, read, which="out"):
        t = threading.Thread(target=self._pump, args=(read, which), daemon=True)
        self.threads.append(t)
        t.start()

    def _pump(self, read, which):
        while True:
            try:
                chunk = read()
            except OSError:
                break
            if not chunk:
                break
            text = chunk.decode("utf-8", "replace").replace("\r", "")
            with self.cond:
                if which == "out":
                    self.out += text
                    if self.log:
                        self.log.write(text)
                        self.log.flush()
                else:
                    self.err += text
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def expect(self, pattern, timeout=30):
        """Waits for `pattern` (a regex) after the last match; returns the match."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.out, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                left = deadline - time.monotonic()
                err = f"\n--- stderr ---\n{self.err[-2000:]}" if self.err else ""
                if left <= 0:
                    raise QemuError(f"timed out after {timeout}s waiting for {pattern!r}\n--- output tail ---\n"
                                    f"{self.out[-3000:]}{err}")
                if self.proc.poll() is not None and not any(t.is_alive() for t in self.threads):
                    raise QemuError(f"process exited ({self.proc.returncode}) while waiting for {pattern!r}\n"
                                    f"--- output tail ---\n{self.out[-3000:]}{err}")
                self.cond.wait(min(left, 0.2))

    def join(self, timeout=2):
        for t in self.threads:
            t.join(timeout=timeout)


class Qemu(Transcript):
    def __init__(self, image, extra_args=(), log=None, cmdline=None, accel=None, dtb=True):
        # QEMU's default threading (one host thread per vCPU) unless `accel` says
        # otherwise: idle CPUs sleep in wfi, so they cost no host time.
        # The project's device tree unless `dtb` is False (the ATAGS path) or the caller
        # passes its own -dtb.
        if dtb and "-dtb" not in extra_args:
            extra_args = ["-dtb", default_dtb(), *extra_args]
        cmd = [QEMU, "-M", "raspi3b", *(["-accel", accel] if accel else []), "-kernel", image,
               "-serial", "stdio", "-display", "none", "-no-reboot", "-monitor", "none", *extra_args]
        if cmdline is not None:
            cmd += ["-append", cmdline]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        super().__init__(proc, log)
        self.follow(lambda: proc.stdout.read1(4096), "out")
        self.follow(lambda: proc.stderr.read1(4096), "err")

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def command(self, line, timeout=60):
        """Types `line` at the prompt and returns what it printed before the next prompt."""
        self.send(line + "\r")
        self.expect(re.escape(line) + r"\n", timeout)
        start = self.pos
        self.expect("^" + re.escape(PROMPT), timeout)
        return self.out[start:self.pos - len(PROMPT)]

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise QemuError(f"QEMU did not exit within {timeout}s\n--- output tail ---\n{self.out[-3000:]}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def boot_log(image, cmdline, accel, timeout, who, extra_args=()):
    """Boots `image` with `cmdline` (and QEMU's `extra_args`) to the console prompt, powers
    it off and returns what it printed and the host seconds to the prompt; a boot that
    does not reach the prompt ends the calling tool (`who`) with the reason."""
    t0 = time.monotonic()
    with Qemu(image, extra_args=extra_args, cmdline=cmdline, accel=accel) as q:
        try:
            q.expect("^" + re.escape(PROMPT), timeout)
        except QemuError as e:
            raise SystemExit(f"{who}: {image}: {e}")
        wall = time.monotonic() - t0
        out = q.out
        q.send("poweroff\r")
        try:
            q.wait_exit(30)
        except QemuError:
            pass
        return out, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("--sweep", action="store_true", help="check the boot sweep and power off")
    ap.add_argument("-c", "--command", action="append", default=[], help="console command to run")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for boot and each command")
    ap.add_argument("--accel", help="QEMU's -accel, e.g. tcg,thread=single (all vCPUs on one host thread)")
    ap.add_argument("--append", help="kernel command line (QEMU's -append)")
    ap.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument (repeatable)")
    args = ap.parse_args()
    with Qemu(args.image, extra_args=args.qemu_arg, log=sys.stdout, cmdline=args.append, accel=args.accel) as q:
        try:
            q.expect("^" + re.escape(PROMPT), args.timeout)
            ok = True
            if args.sweep:
                for line in ["__get_free_pages max order", "kmalloc max size", "vmalloc max size", "leak check"]:
                    if not re.search(r"sweep: " + line, q.out):
                        print(f"\nmake sweep: the sweep did not print 'sweep: {line}'", file=sys.stderr)
                        ok = False
                # The free-page counts are compared here, not the kernel's own verdict.
                leak = re.search(r"sweep: leak check: free pages before=(\d+) after=(\d+)", q.out)
                if not leak:
                    print("\nmake sweep: no leak check line with the free-page counts", file=sys.stderr)
                    ok = False
                elif leak.group(1) != leak.group(2):
                    print(f"\nmake sweep: leak: {leak.group(1)} free pages before the sweep, {leak.group(2)} after",
                          file=sys.stderr)
                    ok = False
            for c in args.command:
                q.command(c, args.timeout)
            q.send("poweroff\r")
            rc = q.wait_exit(60)
            if rc != 0:
                print(f"\nQEMU exited with status {rc}", file=sys.stderr)
                ok = False
        except QemuError as e:
            print(f"\n{e}", file=sys.stderr)
            ok = False
    print("\nOK" if ok else "\nFAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
