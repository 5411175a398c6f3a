"""QEMU tests of the console as a user's terminal drives it (issue 17): QEMU's serial
port on `mon:stdio` (as `make qemu` runs it) attached to a pseudo-terminal, keys sent as
a terminal sends them (escape sequences for the arrows, Tab, Ctrl-U), `panic=N`, and
chainboot: the loader in QEMU, tools/chainboot.py on the other end of a pty.

Registered from tools/test_qemu.py (`register(test, check, loader)`).
"""
import os
import re
import subprocess
import sys
import time

from qemu_run import PROMPT, QEMU, Transcript, default_dtb

BOOT_TIMEOUT = 240
TS = r"^\[\s*\d+\.\d{6}\] "
UP = "\x1b[A"


class PtyQemu(Transcript):
    """QEMU with `-serial mon:stdio` on a pseudo-terminal, read and typed like a user's."""

    def __init__(self, image, cmdline="sweep=off", reboot=False):
        self.master, slave = os.openpty()
        cmd = [QEMU, "-M", "raspi3b", "-kernel", image, "-dtb", default_dtb(), "-serial", "mon:stdio",
               "-display", "none", "-append", cmdline]
        if not reboot:
            cmd.append("-no-reboot")
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=subprocess.PIPE, start_new_session=True)
        os.close(slave)
        super().__init__(proc)
        # The master reads EIO once QEMU, the slave's last holder, has exited.
        self.follow(lambda: os.read(self.master, 4096))

    def type(self, keys, pause=0.02):
        """Sends keys one byte at a time, as a person (or a terminal) would."""
        for b in keys.encode() if isinstance(keys, str) else keys:
            os.write(self.master, bytes([b]))
            time.sleep(pause)

    def prompt(self, timeout=60):
        """Waits for the next prompt; returns what came before it."""
        start = self.pos
        self.expect("^" + re.escape(PROMPT), timeout)
        return self.out[start:self.pos - len(PROMPT)]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.join()
        os.close(self.master)
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def output(fd, proc):
    """What `proc` writes to `fd` (a pipe), gathered with expect()."""
    t = Transcript(proc)
    t.follow(lambda: os.read(fd, 4096))
    return t


def register(test, check, loader):
    @test
    def console_line_editing_through_a_pty(image):
        with PtyQemu(image) as q:
            q.prompt(BOOT_TIMEOUT)
            # The very first byte typed arrives (the PL011 FIFO is not emptied under it).
            q.type("uptime\r")
            out = q.prompt()
            check(re.search(r"^up \d+\.\d{6} s", out, re.M), "the first command typed did not run whole", out)
            q.type("meminfo\r")
            out = q.prompt()
            check("MemTotal:" in out, "meminfo", out)
            # Up arrow recalls meminfo; Enter runs it again.
            q.type(UP + "\r")
            out = q.prompt()
            check("meminfo" in out and "MemTotal:" in out, "up arrow + Enter did not re-run meminfo", out)
            # Two lines back, after another command.
            q.type("version\r")
            out = q.prompt()
            check(re.search(r"^mm-kernel version \d+\.\d+\.\d+-g[0-9a-f]{12}(-dirty)? \(rustc \d+\.\d+", out, re.M), "version", out)
            q.type(UP + UP + "\r")
            out = q.prompt()
            check("MemTotal:" in out, "two ups did not reach meminfo", out)
            # Tab completes a command name...
            q.type("memi\t")
            q.expect(r"meminfo ", 10)
            q.type("\r")
            out = q.prompt()
            check("MemTotal:" in out, "memi<Tab> did not complete to meminfo", out)
            # ... and a sub-argument.
            q.type("alloc p\t0\r")
            out = q.prompt()
            check(re.search(r"^#1: pages order 0 ", out, re.M), "alloc p<Tab> 0 did not allocate a page", out)
            q.type("release all\r")
            q.prompt()
            # Ctrl-U clears the line typed so far.
            q.type("frobnicate\x15uptime\r")
            out = q.prompt()
            check("unknown command" not in out and re.search(r"^up \d+", out, re.M), "Ctrl-U did not clear", out)
            # Left arrow, insert, Delete; Home (Ctrl-A is QEMU's escape under mon:stdio).
            q.type("uptme\x1b[D\x1b[Di\x1b[Fx\x7f\x1b[H\x1b[3~u\r")
            out = q.prompt()
            check(re.search(r"^up \d+", out, re.M) and "unknown command" not in out, "cursor editing", out)
            # Ctrl-W cuts a word; Ctrl-C drops the line.
            q.type("help bogus\x17meminfo\r")
            out = q.prompt()
            check("usage: meminfo" in out, "help CMD after Ctrl-W", out)
            q.type("poweroff\x03")
            q.prompt()
            # Unknown escape sequences and bytes that are not UTF-8 never reach the line.
            q.type(b"\x1b[15~\xffuptime\r")
            out = q.prompt()
            check(re.search(r"^up \d+", out, re.M), "junk reached the line", out)
            # Ctrl-A X leaves QEMU (mon:stdio), as the README says.
            q.type("\x01x")
            try:
                q.proc.wait(30)
            except subprocess.TimeoutExpired:
                raise AssertionError("Ctrl-A X did not end QEMU")

    @test
    def panic_timeout_reboots(image):
        with PtyQemu(image, cmdline="sweep=off panic=1", reboot=True) as q:
            q.prompt(BOOT_TIMEOUT)
            q.type("crash panic\r")
            q.expect(r"Kernel panic - not syncing: crash: deliberate panic", 30)
            q.expect(TS + r"Rebooting in 1 seconds\.\.$", 30)
            q.expect(r"reboot: Restarting system", 30)
            q.expect(TS + r"Booting mm-kernel ", BOOT_TIMEOUT)
            q.prompt(BOOT_TIMEOUT)
            q.type("dmesg -l emerg,0\r")
            out = q.prompt()
            check("Rebooting" not in out, "the log survived a reboot (it must start afresh)", out)
            q.type("poweroff\r")
            check(q.proc.wait(30) == 0, "poweroff after the reboot", q.out)

    @test
    def dmesg_levels_and_clear(image):
        with PtyQemu(image, cmdline="sweep=off loglevel=1") as q:
            q.prompt(BOOT_TIMEOUT)
            # (The banner comes before the command line is read, as in Linux.)
            check("smp: Brought up" not in q.out, "loglevel=1 printed info lines", q.out)
            q.type("dmesg\r")
            out = q.prompt()
            check(re.search(TS + r"smp: Brought up 1 node, 4 CPUs", out, re.M), "the log keeps what the console level hid", out)
            q.type("dmesg -l warn,notice\r")
            out = q.prompt()
            check(re.search(TS + r"Kernel command line: sweep=off loglevel=1$", out, re.M), "notice level", out)
            check("Booting mm-kernel" not in out, "-l warn,notice showed info", out)
            # zoneinfo, vmstat and meminfo tell the same free count (Linux's meanings: the
            # buddy lists; the per-CPU lists are pagesets, not free memory).
            q.type("zoneinfo\r")
            zi = q.prompt()
            q.type("cat /proc/vmstat\r")
            vs = q.prompt()
            q.type("meminfo\r")
            mi = q.prompt()
            free = re.search(r"^  pages free +(\d+)$", zi, re.M)
            check(free and re.search(r"^        min +\d+$", zi, re.M) and re.search(r"^    cpu: 0\n +count: \d+\n +high: +\d+\n +batch: \d+$", zi, re.M),
                  "zoneinfo format", zi)
            check(re.search(rf"^nr_free_pages {free.group(1)}$", vs, re.M), "vmstat nr_free_pages differs", vs + zi)
            check(re.search(rf"^MemFree: +{int(free.group(1)) * 4} kB$", mi, re.M), "MemFree differs", mi + zi)
            check("Percpu" not in mi and "KmallocLarge" not in mi, "meminfo fields Linux lacks or means otherwise", mi)
            q.type("dmesg -l bogus\r")
            out = q.prompt()
            check("unknown level 'bogus'" in out and "usage: dmesg" in out, "bad level", out)
            q.type("dmesg -c\r")
            out = q.prompt()
            check("Booting mm-kernel" in out, "dmesg -c prints first", out)
            q.type("dmesg\r")
            out = q.prompt()
            check(out.strip() == "dmesg", "dmesg -c did not clear", out)
            q.type("poweroff\r")
            check(q.proc.wait(30) == 0, "poweroff", q.out)

    @test
    def chainboot_without_the_adapter(image):
        """`make chainboot DEV_SERIAL=/dev/nonexistent` (the tool it runs) fails at once with
        one line saying what is missing and how to find the adapter, no traceback."""
        r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "chainboot.py"),
                            "--device", "/dev/nonexistent", image], capture_output=True, text=True, timeout=30)
        check(r.returncode != 0, "chainboot.py exited 0 without a device", r.stderr)
        lines = r.stderr.strip().splitlines()
        check(len(lines) == 1 and "Traceback" not in r.stderr, "not one line", r.stderr)
        check("cannot open /dev/nonexistent" in lines[0] and "/dev/ttyUSB" in lines[0], "no hint", r.stderr)

    @test
    def chainboot_over_a_pty(image):
        """The loader boots in QEMU with its UART on a pty; tools/chainboot.py sends
        kernel8.img (a first, short copy corrupted on purpose: the loader must refuse it
        and ask again), the kernel boots with the loader's x0 and the tool is its terminal."""
        path = loader()
        check(path and os.path.exists(path), f"chainloader image not found: {path} (make chainloader)")
        # Single-threaded TCG for the loader only: it leaves cores 1-3 in the firmware's
        # stub, which polls its spin table with wfe; under default threading each of them
        # spins a host thread, and on 2 busy cores the transfer took over 120 s (52 s here).
        # QEMU's PL011 takes the pty's bytes a FIFO at a time through its main loop: about
        # 8 KiB/s on a loaded 2-core host (115 s for the 943 KiB image), hence the 300 s bound.
        qemu = subprocess.Popen([QEMU, "-M", "raspi3b", "-accel", "tcg,thread=single", "-kernel", path,
                                 "-serial", "pty", "-display", "none", "-monitor", "none", "-no-reboot",
                                 "-append", "sweep=off"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        tool = None
        try:
            q = output(qemu.stdout.fileno(), qemu)
            pts = q.expect(r"char device redirected to (/dev/pts/\d+)", 30).group(1)
            tool = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "chainboot.py"),
                                     "--device", pts, "--timeout", "60", "--corrupt-first", image],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            t = output(tool.stdout.fileno(), tool)  # the line
            says = output(tool.stderr.fileno(), tool)  # the tool's own messages
            says.expect(r"chainboot: sending 4096 bytes, crc32 0x[0-9a-f]{8} \(attempt 1\)", 60)
            t.expect(r"mm-chainloader: crc32 mismatch: received 0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}", 120)
            says.expect(rf"chainboot: sending {os.path.getsize(image)} bytes, crc32 0x[0-9a-f]{{8}} \(attempt 2\)", 60)
            size = os.path.getsize(image)
            t.expect(rf"mm-chainloader: {size} bytes, crc32 OK \(0x[0-9a-f]{{8}}\); starting the kernel at 0x80000 "
                     r"with x0 = 0x100", 300)
            t.expect(TS + r"Booting mm-kernel ", 60)
            t.expect(TS + r"CPU: 4 x Cortex-A53 .* booted on CPU0 at EL2 \(x0 = 0x100\)", 60)
            t.expect(TS + r"Kernel command line: sweep=off$", 60)
            t.expect("^" + re.escape(PROMPT), BOOT_TIMEOUT)
            tool.stdin.write(b"version\r")
            tool.stdin.flush()
            t.expect(r"^mm-kernel version ", 30)
            tool.stdin.write(b"poweroff\r")
            tool.stdin.flush()
            check(qemu.wait(30) == 0, "poweroff of the chainbooted kernel", t.out)
            check(tool.wait(30) == 0, "chainboot.py did not end with the line", t.out)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"timed out: {e}")
        finally:
            for p in (tool, qemu):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()
            if tool:
                tool.stdin.close()
                tool.stdout.close()
                tool.stderr.close()
            qemu.stdout.close()
