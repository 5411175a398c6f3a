#!/usr/bin/env python3
"""Send a kernel to the chainloader over a serial line, then be a serial terminal.

    chainboot.py --device /dev/ttyUSB0 kernel8.img

Waits for the loader's request (power the Pi on or reset it; `MMLOAD?` every second),
sends the header (MMBOOT, size and CRC-32, little-endian), then the image, waits for the
loader's `crc32 OK` and then copies the terminal to the line and back until Ctrl-]
(or until the line closes, as when QEMU exits). A mismatch is retried (--tries).

Python's standard library only (termios), so nothing to install. The protocol is
described in chainloader/src/lib.rs.
"""
import argparse
import os
import select
import struct
import sys
import termios
import time
import tty
import zlib

REQUEST = b"MMLOAD?"
MAGIC = b"MMBOOT"
EXIT_KEY = 0x1D  # Ctrl-]
# What to do when the device is not there (one line).
ADAPTER_HINT = ("plug in the USB-serial adapter and look for it with `ls /dev/ttyUSB* /dev/ttyACM*` "
                "(macOS: /dev/cu.usbserial*), or `dmesg | tail` after plugging it in")
BAUDS = {115200: termios.B115200, 57600: termios.B57600, 38400: termios.B38400, 9600: termios.B9600}


class Line:
    """The serial device, raw, with what was received kept for the waits."""

    def __init__(self, path, baud):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        if os.isatty(self.fd):
            attrs = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[4] = attrs[5] = BAUDS[baud]  # ispeed, ospeed
            attrs[2] |= termios.CLOCAL | termios.CREAD
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.seen = b""

    def wait_for(self, patterns, timeout, echo):
        """Reads until one of `patterns` arrives; returns it (None at the timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for p in patterns:
                at = self.seen.find(p)
                if at >= 0:
                    self.seen = self.seen[at + len(p):]
                    return p
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], 0.5 if left is None else min(left, 0.5))
            if r:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    raise EOFError("the serial line closed")
                echo(chunk)
                self.seen = (self.seen + chunk)[-4096:]

    def write(self, data):
        view = memoryview(data)
        while view:
            _, w, _ = select.select([], [self.fd], [], 5)
            if not w:
                raise TimeoutError("the serial line takes no more bytes")
            n = os.write(self.fd, view[:4096])
            view = view[n:]


def send(line, image, timeout, tries, corrupt_first=False, say=print):
    """Runs the exchange; True once the loader has started the kernel."""
    crc = zlib.crc32(image) & 0xFFFFFFFF
    out = lambda b: (sys.stdout.buffer.write(b), sys.stdout.buffer.flush())  # noqa: E731
    for attempt in range(1, tries + 1):
        say(f"chainboot: waiting for the loader's request ({REQUEST.decode()}); power on or reset the board")
        if line.wait_for([REQUEST], timeout, out) is None:
            say("chainboot: no request from the loader")
            return False
        data = bytearray(image)
        if corrupt_first and attempt == 1:
            # For the tests: the first 4 KiB with one byte flipped after the CRC was
            # taken, as line noise would; the loader must refuse it and ask again.
            data = data[:4096]
            crc_sent = zlib.crc32(data) & 0xFFFFFFFF
            data[100] ^= 0xFF
        else:
            crc_sent = crc
        say(f"chainboot: sending {len(data)} bytes, crc32 {crc_sent:#010x} (attempt {attempt})")
        line.write(MAGIC + struct.pack("<II", len(data), crc_sent))
        if line.wait_for([b"OK\r\n", b"ERR"], 10, out) != b"OK\r\n":
            say("chainboot: the loader refused the header")
            return False
        start = time.monotonic()
        line.write(bytes(data))
        got = line.wait_for([b"crc32 OK", b"crc32 mismatch", b"ERR timeout"], 60 + len(data) // 1000, out)
        if got == b"crc32 OK":
            say(f"chainboot: sent in {time.monotonic() - start:.1f} s; the kernel starts")
            return True
        say(f"chainboot: the loader answered {got!r}")
    return False


def terminal(line):
    """Copies stdin to the line and the line to stdout until Ctrl-] or the line closes."""
    stdin = sys.stdin.fileno()
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        sys.stderr.write("chainboot: terminal; Ctrl-] leaves\r\n")
    fds = [line.fd, stdin]
    try:
        while True:
            r, _, _ = select.select(fds, [], [])
            if line.fd in r:
                try:
                    chunk = os.read(line.fd, 4096)
                except OSError:
                    chunk = b""  # a pty whose other side closed
                if not chunk:
                    return
                os.write(sys.stdout.fileno(), chunk)
            if stdin in r:
                chunk = os.read(stdin, 1024)
                if not chunk:
                    fds = [line.fd]  # stdin ended (a pipe): keep showing the line
                    continue
                if EXIT_KEY in chunk:
                    chunk = chunk[:chunk.index(EXIT_KEY)]
                    line.write(chunk)
                    return
                line.write(chunk)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", help="the kernel image (kernel8.img)")
    ap.add_argument("--device", required=True, help="serial device, e.g. /dev/ttyUSB0")
    ap.add_argument("--baud", type=int, default=115200, choices=sorted(BAUDS))
    ap.add_argument("--timeout", type=float, default=None, help="seconds to wait for the loader (default: for ever)")
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--no-terminal", action="store_true", help="exit once the kernel starts")
    ap.add_argument("--corrupt-first", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    with open(args.image, "rb") as f:
        image = f.read()
    say = lambda s: (sys.stderr.write(s + "\n"), sys.stderr.flush())  # noqa: E731
    try:
        line = Line(args.device, args.baud)
    except OSError as e:
        say(f"chainboot: cannot open {args.device}: {e.strerror}; {ADAPTER_HINT}")
        sys.exit(1)
    try:
        if not send(line, image, args.timeout, args.tries, args.corrupt_first, say):
            sys.exit(1)
        if not args.no_terminal:
            terminal(line)
    except (EOFError, KeyboardInterrupt) as e:
        say(f"chainboot: {e or 'interrupted'}")
        sys.exit(1)


if __name__ == "__main__":
    main()
