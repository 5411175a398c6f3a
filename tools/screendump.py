#!/usr/bin/env python3
"""Screenshots of QEMU's display through QMP (works with `-display none`), read as PPM
and written as PNG, with the Python standard library only.

    qmp = Qmp.start()        # extra QEMU args: qmp.args; then qmp.connect()
    qmp.screendump("target/x.ppm"); img = read_ppm("target/x.ppm"); write_png(img, "x.png")
    tools/screendump.py IN.ppm OUT.png   # convert
"""
import json
import os
import socket
import struct
import sys
import tempfile
import time
import zlib


class Qmp:
    """A QMP connection over a Unix socket that QEMU listens on."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="qmp")
        self.path = os.path.join(self.dir, "qmp.sock")
        self.args = ["-qmp", f"unix:{self.path},server=on,wait=off"]
        self.sock = None
        self.buf = b""

    def connect(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        s.settimeout(timeout)
        self.sock = s
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, **args):
        self.sock.sendall(json.dumps({"execute": cmd, "arguments": args}).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise OSError(f"QMP {cmd}: {r['error']}")
            # an event: keep reading

    def screendump(self, path):
        self.execute("screendump", filename=os.path.abspath(path))

    def close(self):
        if self.sock:
            self.sock.close()


def read_ppm(path):
    """A binary PPM (P6, maxval 255) as (width, height, bytes RGB)."""
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1
    magic, w, h, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P6" or maxval != 255:
        raise ValueError(f"{path}: not a P6 PPM with maxval 255")
    pixels = data[pos:pos + w * h * 3]
    if len(pixels) != w * h * 3:
        raise ValueError(f"{path}: truncated")
    return w, h, pixels


def pixel(img, x, y):
    w, _, p = img
    i = (y * w + x) * 3
    return tuple(p[i:i + 3])


def write_png(img, path):
    w, h, p = img
    raw = b"".join(b"\x00" + p[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    write_png(read_ppm(sys.argv[1]), sys.argv[2])
