#!/usr/bin/env python3
"""Regenerate docs/console.md from a boot: the kernel's `help --markdown` prints the
command registry's table, each command's description and the fields of each report.

    tools/console_doc.py [--image kernel8.img] [--check]

--check compares instead of writing (exit 1 if the file differs); the QEMU test
console_doc_matches_help does the same from `make test`.
"""
import argparse
import difflib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qemu_run import PROMPT, Qemu  # noqa: E402

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "console.md")


def generate(image):
    with Qemu(image, cmdline="sweep=off") as q:
        q.expect("^" + re.escape(PROMPT), 240)
        return q.command("help --markdown").replace("\r", "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kernel8.img")
    ap.add_argument("--check", action="store_true", help="compare with docs/console.md instead of writing it")
    args = ap.parse_args()
    text = generate(args.image)
    if args.check:
        with open(DOC) as f:
            old = f.read()
        if old != text:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), DOC, "help --markdown"))
            sys.exit(1)
        print("docs/console.md matches help --markdown")
        return
    with open(DOC, "w") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(DOC)} ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
