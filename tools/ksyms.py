#!/usr/bin/env python3
"""Embed the kernel's function symbols into its ELF for symbolized call traces.

Reads the function symbols of the linked kernel with llvm-nm, writes them in the
format kernel/src/ksyms.rs parses ("KSYM", count, sorted {addr u64, size u32,
name_offset u32} entries, NUL-separated names) and puts the blob into the ELF's fixed-size
`.ksyms` section with llvm-objcopy, so no address in the image moves.

usage: ksyms.py NM OBJCOPY ELF
"""
import re
import struct
import subprocess
import sys

HASH = re.compile(r"::h[0-9a-f]{16}")
LLVM_SUFFIX = re.compile(r"\s*\(\.llvm\.\d+\)")
MARKER = re.compile(r"^__\w+_(start|end|top|bottom)$|^__kernel_|^__text_end$")
# Escapes left by llvm-nm's demangler in legacy Rust symbols.
ESCAPES = [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$BP$", "*"), ("$C$", ","),
           ("$u7b$", "{"), ("$u7d$", "}"), ("$u5b$", "["), ("$u5d$", "]"), ("$u27$", "'"), ("$u3b$", ";"),
           ("$u2b$", "+"), ("$u22$", '"'), ("$SP$", "@")]


def clean(name):
    name = LLVM_SUFFIX.sub("", HASH.sub("", name.strip()))
    for esc, ch in ESCAPES:
        name = name.replace(esc, ch)
    name = name.replace("..", "::")
    if name.startswith("_<"):
        name = name[1:]
    return name


def section_size(objcopy, elf, name):
    readobj = objcopy.replace("llvm-objcopy", "llvm-readobj")
    out = subprocess.run([readobj, "--sections", elf], check=True, capture_output=True, text=True).stdout
    for block in out.split("Section {"):
        if re.search(rf"Name: {re.escape(name)} ", block):
            return int(re.search(r"Size: (\d+)", block).group(1))
    sys.exit(f"ksyms: no {name} section in {elf}")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    nm, objcopy, elf = sys.argv[1:]
    out = subprocess.run([nm, "--defined-only", "-n", "-S", "-C", elf], check=True, capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4:
            addr, size, kind, name = parts
        elif len(parts) == 3:
            (addr, kind, name), size = parts, "0"
        else:
            continue
        if kind not in "tTwW":
            continue
        a = int(addr, 16)
        if name.startswith("$") or name.startswith(".L") or MARKER.match(name):
            continue
        name = clean(name)
        # Keep one name per address (the first listed).
        syms.setdefault(a, (int(size, 16), name))
    entries = sorted(syms.items())
    names = bytearray()
    table = bytearray()
    for addr, (size, name) in entries:
        table += struct.pack("<QII", addr, min(size, 0xFFFFFFFF), len(names))
        names += name.encode() + b"\0"
    blob = b"KSYM" + struct.pack("<I", len(entries)) + bytes(table) + bytes(names)
    room = section_size(objcopy, elf, ".ksyms")
    if len(blob) > room:
        sys.exit(f"ksyms: symbol table needs {len(blob)} bytes but .ksyms has {room}: "
                 "raise KSYMS_SIZE in linker/kernel.ld and kernel/src/platform.rs")
    blob += b"\0" * (room - len(blob))
    path = elf + ".ksyms"
    with open(path, "wb") as f:
        f.write(blob)
    subprocess.run([objcopy, "--update-section", f".ksyms={path}", elf], check=True)
    print(f"ksyms: {len(entries)} symbols, {8 + len(table) + len(names)} of {room} bytes used")


if __name__ == "__main__":
    main()
