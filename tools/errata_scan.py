#!/usr/bin/env python3
"""Scan the kernel ELF for the Cortex-A53 r0p4 errata sequences the build must avoid.

The BCM2837 is a Cortex-A53 r0p4 (MIDR 0x410fd034); Linux builds for it with both
workarounds, and so does this kernel (.cargo/config.toml). This checks the result in the
linked image, whatever compiled it (our code, core, compiler_builtins):

- 835769: a load or store immediately followed by a 64-bit multiply-accumulate
  (madd/msub/smaddl/smsubl/umaddl/umsubl with an X destination; plain mul has no
  accumulator and is not affected) can compute a wrong result. The compiler fix puts a
  nop between the two.
- 843419: an ADRP at page offset 0xff8 or 0xffc, followed by a load or store, then
  (possibly after one more instruction) a load or store with an unsigned immediate
  offset whose base is the ADRP's register, can use a wrong address. The linker fix
  (lld --fix-cortex-a53-843419) moves the last access to a patch section and branches
  there, so a patched ADRP at 0xff8/0xffc is no longer followed by that access.

    errata_scan.py OBJDUMP ELF        exit 1 (naming each site) if any sequence is found
    errata_scan.py --self-test        check the scanner on synthetic sequences
"""
import re
import subprocess
import sys

LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
MEMOP = re.compile(r"^(ld|st|prfm|cas|swp)")
MAC64 = re.compile(r"^(madd|msub|smaddl|smsubl|umaddl|umsubl)$")
# A load/store with a base register and an optional unsigned immediate, no writeback:
# "ldr x0, [x1, #0x10]" or "str w2, [x3]".
UIMM_ACCESS = re.compile(r"\[(x\d+|sp)(?:,\s*#(0x[0-9a-f]+|\d+))?\]$")


def instructions(objdump, elf):
    """(address, mnemonic, operands) for every instruction of every executable section,
    with None between functions and sections so that only true neighbours pair up."""
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", elf], check=True,
                         capture_output=True, text=True).stdout
    prev_addr = None
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        addr = int(m.group(1), 16)
        mnem, ops = m.group(2), m.group(3).split("//")[0].strip()
        if prev_addr is not None and addr != prev_addr + 4:
            yield None
        prev_addr = addr
        yield addr, mnem, ops


def scan_835769(insns):
    sites = []
    prev = None
    for ins in insns:
        if ins is not None and prev is not None:
            paddr, pmnem, pops = prev
            _, mnem, ops = ins
            if MEMOP.match(pmnem) and MAC64.match(mnem) and ops.startswith("x"):
                sites.append(f"{paddr:#x}: {pmnem} {pops} then {mnem} {ops}")
        prev = ins
    return sites


def scan_843419(insns):
    seq = insns
    sites, adrp_at_end = [], 0
    for k, ins in enumerate(seq):
        if ins is None or ins[1] != "adrp" or (ins[0] & 0xfff) not in (0xff8, 0xffc):
            continue
        adrp_at_end += 1
        reg = ins[2].split(",")[0].strip()
        follow = []
        for nxt in seq[k + 1:k + 4]:
            if nxt is None:
                break
            follow.append(nxt)
        # Instruction 2 must be a load or store; instruction 3 or 4 the access through
        # the ADRP's register with an unsigned immediate (and no writeback).
        if len(follow) < 2 or not MEMOP.match(follow[0][1]):
            continue
        for cand in follow[1:3]:
            m = UIMM_ACCESS.search(cand[2])
            if MEMOP.match(cand[1]) and m and m.group(1) == reg:
                sites.append(f"{ins[0]:#x}: adrp {ins[2]} ... {cand[1]} {cand[2]} at {cand[0]:#x}")
                break
            if cand[1].startswith("b") or cand[2].split(",")[0].strip() == reg:
                break
    return sites, adrp_at_end


def self_test():
    """The scanner finds what it must and nothing else (synthetic instruction streams)."""
    def stream(base, text):
        return [(base + 4 * k, *(l.split(None, 1) + [""])[:2]) for k, l in enumerate(text)]
    bad = stream(0x1000, ["ldr x1, [x0]", "madd x2, x3, x4, x5"])
    assert len(scan_835769(bad)) == 1, "835769 pair not found"
    assert not scan_835769(stream(0x1000, ["ldr x1, [x0]", "nop", "madd x2, x3, x4, x5"])), "nop fix not seen"
    assert not scan_835769(stream(0x1000, ["ldr x1, [x0]", "mul x2, x3, x4"])), "mul has no accumulator"
    assert not scan_835769(stream(0x1000, ["ldr w1, [x0]", "madd w2, w3, w4, w5"])), "32-bit madd is not affected"
    assert not scan_835769(bad[:1] + [None] + bad[1:]), "pairs across functions"
    seq = stream(0xffff8, ["adrp x1, 0x20000", "str x3, [sp, #0x8]", "ldr x2, [x1, #0x10]"])
    assert len(scan_843419(seq)[0]) == 1, "843419 sequence not found"
    patched = seq[:2] + [(seq[2][0], "b", "0x30000")]
    assert scan_843419(patched) == ([], 1), "lld's patched sequence reported"
    assert scan_843419(stream(0xffff0, ["adrp x1, 0x20000", "str x3, [sp]", "ldr x2, [x1]"])) == ([], 0), \
        "ADRP at 0xff0 reported"
    print("errata_scan: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    insns = list(instructions(sys.argv[1], sys.argv[2]))
    e835769 = scan_835769(insns)
    e843419, adrp_at_end = scan_843419(insns)
    count = sum(1 for i in insns if i is not None)
    for s in e835769:
        print(f"erratum 835769 sequence: {s}")
    for s in e843419:
        print(f"erratum 843419 sequence: {s}")
    print(f"errata: {count} instructions scanned; 835769 sequences: {len(e835769)}; "
          f"ADRP at page offset 0xff8/0xffc: {adrp_at_end}, forming the 843419 sequence: {len(e843419)}")
    sys.exit(1 if e835769 or e843419 else 0)


if __name__ == "__main__":
    main()
