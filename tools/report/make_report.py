#!/usr/bin/env python3
"""`make report`: the lab's results as a page.

    make_report.py --image kernel8.img [--cmdline "cma=64M"] [--out target/report]
    make_report.py --log pi.log [--log2 other.log]

Without --log it boots the image headless in QEMU raspi3b with `records=on` (and the
given command line), lets the sweep and the lab run, runs `bench`, powers off and keeps the
UART log in OUT/qemu.log; then it writes OUT/index.html (tools/report/report.py) with the
pinned chart libraries (tools/report/requirements.txt, installed on first use).
"""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import pyenv  # noqa: E402


def boot(image, cmdline, out, commands):
    from qemu_run import PROMPT, Qemu, QemuError
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "qemu.log")
    line = " ".join(x for x in ["records=on", cmdline] if x)
    print(f"report: booting {image} with '{line}' (the sweep and the lab take a minute or two)", file=sys.stderr)
    with open(path, "w") as log, Qemu(image, cmdline=line, log=log) as q:
        try:
            q.expect("^" + re.escape(PROMPT), 600)
            for c in commands:
                q.command(c, 600)
            q.send("poweroff\r")
            q.wait_exit(60)
        except QemuError as e:
            sys.exit(f"report: the QEMU run failed: {str(e).splitlines()[0]} (log in {path})")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("--cmdline", default="")
    ap.add_argument("--log")
    ap.add_argument("--log2")
    ap.add_argument("--out", default="target/report")
    ap.add_argument("-c", "--command", action="append", default=None,
                    help="console commands to run after the sweep (default: bench)")
    a = ap.parse_args()
    log = a.log or boot(a.image, a.cmdline, a.out, a.command if a.command is not None else ["bench"])
    py = pyenv.python()
    cmd = [py, os.path.join(HERE, "report.py"), "--log", log, "--out", a.out]
    if a.log2:
        cmd += ["--log2", a.log2]
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
