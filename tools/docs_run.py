#!/usr/bin/env python3
"""The example output in docs/*.md, from real runs: boots the kernel in QEMU with each
block's command line, types its commands, and rewrites the blocks between
`<!-- BEGIN run:NAME boot="CMDLINE" -->` and `<!-- END run:NAME -->`.

    tools/docs_run.py [--image kernel8.img]              rewrite every block (make docs-run)
    tools/docs_run.py [--image kernel8.img] --check      exit 1 if a block or a figure in the
                                                         prose disagrees with a run
    tools/docs_run.py ... --only NAME[,NAME]             only these blocks (a partial check)

BLOCKS below says how each block is made: a boot with its command line (the marker's
`boot=`, checked against it), then either lines picked from the boot log (each pattern
takes the first line after the previous one; `...` stands for the lines left out) or
console commands typed at the prompt with what they print (a `Setup` step or a hidden
command sets the scene without being shown). Blocks that name the same boot share one QEMU run, in the order of
BOOTS; a block that shows allocation handles gets a boot of its own, so its handles start
at #1 as for a reader who types the same.

--check compares the lines as tools/readme_run.py does (times, addresses, numbers of three
digits or more, buddyinfo's counts and timing ratios masked; a block may mask a few more
counts that move with the host's timing, each with its reason), then checks the figures
that the prose quotes (tools/prose_figures.py) against the same runs. It fails naming the file, the block
and the first line that differs. Every fenced block in docs/*.md must be a marked block,
a command to type (```sh), or listed in NOT_RUN with the reason it is not regenerated.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import prose_figures  # noqa: E402
from qemu_run import DTS, PROMPT, Qemu  # noqa: E402
from readme_run import mask  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
TIMEOUT = 600


# ---------------------------------------------------------------- how each block is made
class Boot:
    """One QEMU run: `cmdline` through -append, or `bootargs` (raw bytes) through a device
    tree's /chosen/bootargs as the Pi firmware passes them; `label` is what the markers say."""

    def __init__(self, cmdline="", bootargs=None, label=None, qemu_args=()):
        self.cmdline, self.bootargs, self.qemu_args = cmdline, bootargs, list(qemu_args)
        self.label = label if label is not None else cmdline


# The Pi firmware's own options, in front of cmdline.txt's (as tools/test_qemu.py's).
FIRMWARE_PREFIX = ("coherent_pool=1M 8250.nr_uarts=1 snd_bcm2835.enable_compat_alsa=0 snd_bcm2835.enable_hdmi=1 "
                   "bcm2708_fb.fbwidth=656 bcm2708_fb.fbheight=416 bcm2708_fb.fbswap=1 "
                   "vc_mem.mem_base=0x3ec00000 vc_mem.mem_size=0x40000000 ")
LONG_LINE = ((FIRMWARE_PREFIX + "sweep=off slub_debug ").encode() + b"caf\xe9 frobnicate=1 "
             + b" ".join([b"filler.x=0123456789"] * 240))

BOOTS = {
    "default": Boot(""),
    "cma": Boot("cma=16M"),
    "records": Boot("records=on sweep=pages"),
    "long-cmdline": Boot(bootargs=LONG_LINE,
                         label="(the firmware's options) sweep=off slub_debug caf\\xe9 frobnicate=1 filler.x=0123456789 (240 times)"),
    "lab-compact": Boot("sweep=off"),
    "lab-half": Boot("sweep=off"),
    # KFENCE off: with it, the tour's kmalloc is served from the KFENCE pool whenever
    # 100 ms have passed since the last sample, which depends on the host's speed.
    "usage-tour": Boot("sweep=off kfence.sample_interval=0"),
    "usage-huge": Boot("sweep=off"),
    "usage-crash": Boot("sweep=off"),
    "usage-guard": Boot("sweep=off"),
    # QEMU counts INST_RETIRED only with -icount: one instruction per guest nanosecond,
    # the same counts from run to run whatever the host's load.
    "icount": Boot("sweep=off", label="sweep=off (QEMU -icount shift=0)", qemu_args=["-icount", "shift=0"]),
}


class Cmd:
    """A console command. `keep`: only the output lines matching it (`...` for the rest);
    `until`: the command does not come back to the prompt (a fatal crash), its output ends
    with the line matching this; `hidden`: typed but not shown."""

    def __init__(self, line, keep=None, until=None, hidden=False, timeout=300):
        self.line, self.keep, self.until, self.hidden, self.timeout = line, keep, until, hidden, timeout


class Setup:
    """A step the block does not show: fn(q) drives the console (see half_of_memory_in_1m_blocks)."""

    def __init__(self, fn):
        self.fn = fn


class Last:
    """In a log selection: the last line matching `pattern` before the first one matching `before`."""

    def __init__(self, pattern, before):
        self.pattern, self.before = pattern, before


class Block:
    """What a marked block shows: `log` (patterns picking boot-log lines) or `steps` (Cmd,
    Setup), after `boot`. `subs` abridge long lines ((regex, replacement), on the shown text);
    `masks` are extra regexes masked for --check, for counts that move with the host's timing."""

    def __init__(self, boot, log=None, steps=None, subs=(), masks=()):
        self.boot, self.log, self.steps, self.subs, self.masks = boot, log, steps, subs, masks


def half_of_memory_in_1m_blocks(q):
    """docs/lab.md: `alloc pages 8 GFP_HIGHUSER_MOVABLE` until it fails, then `release`
    every block at an even MiB."""
    held = []
    for _ in range(2048):
        out = q.command("alloc pages 8 GFP_HIGHUSER_MOVABLE", 60)
        m = re.search(r"^#(\d+): pages order 8 .* phys (0x[0-9a-f]+)", out, re.M)
        if not m:
            break
        held.append((int(m.group(1)), int(m.group(2), 16)))
    else:
        raise RuntimeError("alloc pages 8 never failed")
    if len(held) < 100:
        raise RuntimeError(f"only {len(held)} 1 MiB blocks before the allocation failed")
    for hid, phys in held:
        if (phys >> 20) % 2 == 0:
            out = q.command(f"release {hid}", 60)
            if f"freed #{hid}" not in out:
                raise RuntimeError(f"release {hid}: {out}")


SWEEP = r"sweep: (?!memmap|legend|0x|  )"
BLOCKS = {
    # docs/lab.md
    "lab-sweep": Block("default", log=[
        r" alloc_page\(GFP_KERNEL\): struct page", r"\.\.\. filled with 0x55", r" alloc_page\(GFP_HIGHUSER_MOVABLE\)",
        r"GFP_KERNEL vs GFP_HIGHUSER_MOVABLE:", r"Allocating memory with __get_free_pages", r" order= 0, ", "...",
        r" order=10, ", "...", r" order=16, ", r"-\[ cut here \]-", r"WARNING: CPU", "...", r" order=17, ",
        r"buddyinfo: Node 0", r"order 17 is above MAX_PAGE_ORDER", r"Allocating memory with kmalloc", r" order= 0, ",
        "...", r" order=16, ", r" order=17, ", r"Allocating memory with vmalloc in", r" pages=\s*\d+, size=\s*4 MB",
        "...", Last(r"vmalloc OK", before=r"vmalloc: allocation failure"), r"vmalloc: allocation failure",
        r"Mem-Info:", r"Normal free:", "...", r"vmalloc failed", r"bisection: largest vmalloc",
        r"Fragmenting memory:", SWEEP, SWEEP, SWEEP, SWEEP, SWEEP, r"filler pages held", SWEEP,
        r"filler pages held", SWEEP, SWEEP, r"pages phase took", r"kmalloc phase took", r"vmalloc phase took",
        r"fragment phase took", r"the whole sweep took", SWEEP, SWEEP, SWEEP],
        subs=[(r"(there is no highmem\)\.) .*", r"\1 ...")], masks=[r"(?<=Normal) [ \d]+$", r"free_pcp:\d+kB"]),
    "lab-fragment": Block("default", log=[
        r"Fragmenting memory:", r"sweep: fragmented:", r"filler pages held", r"sweep: fragmented vmalloc:",
        r"filler pages held", r"sweep: cma:", r"sweep: phase times", r"fragment phase took", r"the whole sweep took",
        r"sweep: leak check"]),
    "lab-cma": Block("cma", log=[
        r"cma: Reserved", r"sweep: cma:", r"borrowed blocks migrated out", r"sweep: leak check"]),
    "lab-compact": Block("lab-compact", steps=[
        Cmd("alloc pages 2 GFP_HIGHUSER_MOVABLE"), Cmd("alloc vmalloc 64K GFP_KERNEL|__GFP_MOVABLE"), Cmd("extfrag"),
        Cmd("compact"), Cmd("allocs")]),
    "lab-half": Block("lab-half", steps=[
        Setup(half_of_memory_in_1m_blocks), Cmd("buddyinfo"), Cmd("compact"), Cmd("buddyinfo"), Cmd("compact"),
        Cmd("cat /proc/vmstat", keep=r"^(pgmigrate|compact)_")]),
    # docs/usage.md
    "usage-tour": Block("usage-tour", steps=[
        Cmd("buddyinfo"), Cmd("alloc pages 9"), Cmd("alloc vmalloc 1M"), Cmd("alloc kmalloc 3000"), Cmd("buddyinfo"),
        Cmd("vmallocinfo"), Cmd("release all"), Cmd("meminfo")]),
    "usage-huge": Block("usage-huge", steps=[
        Cmd("alloc vmalloc 5M"), Cmd("alloc vmalloc 1M"), Cmd("vmallocinfo"), Cmd("meminfo"), Cmd("release all")]),
    "usage-bad-free": Block("usage-crash", steps=[Cmd("crash bad-page-free", keep=r"lkdtm|WARNING|^crash: ")]),
    "usage-crash": Block("usage-crash", steps=[
        Cmd("crash null", keep=r"^(?!\[[ \d.]+\] x\d+ *: )", until=r"Kernel panic - not syncing")]),
    "usage-guard": Block("usage-guard", steps=[
        Cmd("crash vmalloc-guard", keep=r"is in the guard page", until=r"Kernel panic - not syncing")]),
    "usage-cmdline": Block("long-cmdline", log=[
        r"Kernel command line: ", r"Kernel command line: .* longer than", r"Kernel command line: dropped",
        r"Unknown kernel command line parameters", r"sweep: skipped"],
        subs=[(r"(Kernel command line: coherent_pool=1M 8250\.nr_uarts=1) .* (vc_mem\.mem_size=0x40000000 "
               r"sweep=off slub_debug frobnicate=1 filler\.x=0123456789) .*", r"\1 ... \2 ...")]),
    # docs/performance.md
    # Times under QEMU's default threading move with the host's load (two-digit ones too).
    "perf-bench": Block("default", steps=[Cmd("bench 100000", timeout=900)],
                        masks=[r"\d+ ns/op", r"cycles/op \d+ vs \d+"]),
    "perf-bench-icount": Block("icount", steps=[Cmd("bench 50000", timeout=900)]),
    # docs/lab.md again: after the bench on the same boot (the bench runs first, as its prose says)
    # The passes and the accesses that met a migration move with the host's timing, and so
    # does which CPU frees whose object (frees, remote frees).
    "lab-stress": Block("default", steps=[Cmd("stress 3000 7 compact")],
                        masks=[r"\d+ passes", r"\d+ pages migrated", r"\d+ accesses waited", r"migrated \d+ times",
                               r"frees=\d+", r"\d+ remote frees", r"\d+ ops/s"]),
    # docs/records.md
    "records-line": Block("records", log=[r"@rec \{.*\"kind\":\"sweep\.max\".*\"api\":\"gfp\""]),
}

# Fenced blocks in docs/ that are not regenerated, by file and first line, with the reason.
NOT_RUN = {
    ("console.md", None): "the field explanations of `help CMD`, generated by tools/console_doc.py and checked by "
                          "its own test",
    ("design.md", "$ tools/qemu_threading.py"): "a host measurement (wall and CPU times of QEMU under two threadings); "
                                                "it takes minutes and its figures are the host's, labelled as such",
    ("design.md", "Cargo.toml            workspace"): "the source tree, not output",
    ("lab.md", "$ python3 tools/sweep_compare.py"): "a timing comparison with an image from before huge vmalloc "
                                                    "mappings (not in the repository); labelled as that run",
    ("hardware.md", "chainboot: waiting for the loader"): "a transfer over the serial line takes about a minute "
                                                          "(tools/test_console.py's chainboot_over_a_pty checks "
                                                          "these lines); labelled as an earlier image's run",
    ("performance.md", "best of 3 (instructions (-icount))"): "tools/debug_cost.py's table: nine boots with the "
                                                                  "full sweep and bench under -icount (about ten "
                                                                  "minutes); labelled with the commit it ran at",
    ("testing.md", "        SLOW [> 60.000s]"): "cargo nextest's output for a test made to hang, not the kernel's",
}


# ---------------------------------------------------------------- running
def boot_qemu(image, boot, tmp):
    if boot.bootargs is None:
        return Qemu(image, cmdline=boot.cmdline, extra_args=boot.qemu_args)
    dtc = shutil.which("dtc")
    if not dtc:
        raise SystemExit("docs_run: dtc not found: install device-tree-compiler (make test-qemu does it)")
    src = (f'/include/ "{DTS}"\n'
           f'&{{/chosen}} {{ bootargs = [{" ".join(f"{b:02x}" for b in boot.bootargs)} 00]; }};\n')
    dtb = os.path.join(tmp, "bootargs.dtb")
    subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", dtb, "-"], input=src.encode(), check=True)
    return Qemu(image, extra_args=["-dtb", dtb])


def pick(lines, log):
    """The lines of `lines` that `log`'s patterns pick, in order."""
    out, at = [], 0
    for p in log:
        if p == "...":
            out.append("...")
            continue
        if isinstance(p, Last):
            end = next((i for i in range(at, len(lines)) if re.search(p.before, lines[i])), None)
            i = next((i for i in reversed(range(at, end or 0)) if re.search(p.pattern, lines[i])), None)
        else:
            i = next((i for i in range(at, len(lines)) if re.search(p, lines[i])), None)
        if i is None:
            raise SystemExit(f"docs_run: no boot log line matches {getattr(p, 'pattern', p)!r} after line {at}")
        out.append(lines[i])
        at = i + 1
    return out


def keep_lines(lines, keep):
    out = []
    for line in lines:
        if re.search(keep, line):
            out.append(line)
        elif not out or out[-1] != "...":
            out.append("...")
    return out


def run_steps(q, steps):
    shown = []
    for s in steps:
        if isinstance(s, Setup):
            s.fn(q)
            continue
        if s.until:
            q.send(s.line + "\r")
            q.expect(re.escape(s.line) + r"\n", s.timeout)
            start = q.pos
            q.expect(s.until + r".*\n", s.timeout)  # the whole line: it may arrive in pieces
            out = q.out[start:q.pos]
        else:
            out = q.command(s.line, s.timeout)
        if s.hidden:
            continue
        lines = out.rstrip("\n").split("\n") if out.strip() else []
        shown += [PROMPT + s.line] + (keep_lines(lines, s.keep) if s.keep else lines)
    return shown


def run(image, names):
    """{block name: its lines} for `names`, one QEMU run per boot they use."""
    fresh = {}
    for key, boot in BOOTS.items():
        these = [n for n in names if BLOCKS[n].boot == key]
        if not these:
            continue
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix="mm-docs-")
        try:
            with boot_qemu(image, boot, tmp) as q:
                q.expect("^" + re.escape(PROMPT), TIMEOUT)
                log = q.out.split("\n")
                for n in these:
                    b = BLOCKS[n]
                    lines = pick(log, b.log) if b.log else run_steps(q, b.steps)
                    for rx, repl in b.subs:
                        lines = [re.sub(rx, repl, line) for line in lines]
                    fresh[n] = [line.rstrip() for line in lines]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"docs_run: boot {key} ({boot.label or 'no options'}): {', '.join(these)} "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return fresh


# ---------------------------------------------------------------- the docs
MARK = re.compile(r'<!-- BEGIN run:([\w-]+) boot="(.*?)" -->\n```\n(.*?)```\n<!-- END run:\1 -->', re.S)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def docs():
    return {os.path.basename(p): open(p).read() for p in sorted(glob.glob(os.path.join(DOCS, "*.md")))}


def marked(texts):
    """{name: (file, match)} of every marked block."""
    found = {}
    for f, text in texts.items():
        for m in MARK.finditer(text):
            if m.group(1) in found:
                raise SystemExit(f"docs_run: block run:{m.group(1)} is marked twice ({found[m.group(1)][0]}, {f})")
            found[m.group(1)] = (f, m)
    return found


def unmarked_blocks(texts, found):
    """Problems: fenced blocks neither marked, nor commands (```sh), nor in NOT_RUN; and
    NOT_RUN entries that match no block."""
    problems, used = [], set()
    for f, text in texts.items():
        spans = [m.span(3) for (g, m) in found.values() if g == f]
        for m in FENCE.finditer(text):
            if m.group(1) == "sh" or any(a <= m.start(2) <= b for a, b in spans):
                continue
            first = m.group(2).split("\n", 1)[0]
            key = next((k for k in NOT_RUN if k[0] == f and (k[1] is None or first.startswith(k[1]))), None)
            if key:
                used.add(key)
            else:
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"docs/{f}:{line}: a block that is neither marked as a run nor listed in "
                                f"tools/docs_run.py's NOT_RUN: {first!r}")
    problems += [f"tools/docs_run.py: NOT_RUN lists docs/{k[0]} {k[1]!r}, which no block starts with"
                 for k in NOT_RUN if k not in used]
    return problems


def check_mask(line, extra):
    for rx in extra:
        line = re.sub(rx, "#", line)
    return mask(line)


def compare(f, name, have, want, extra):
    """The first difference of a block against a run, as a message, or None."""
    h = [check_mask(l, extra) for l in have]
    w = [check_mask(l, extra) for l in want]
    for i, (a, b) in enumerate(zip(h, w)):
        if a != b:
            return (f"docs/{f}: block run:{name}, line {i + 1} disagrees with a run:\n"
                    f"  doc: {have[i]}\n  run: {want[i]}")
    if len(h) != len(w):
        i = min(len(h), len(w))
        return (f"docs/{f}: block run:{name} has {len(h)} lines, the run {len(w)}; first difference at line {i + 1}:\n"
                f"  doc: {have[i] if i < len(have) else '(end)'}\n  run: {want[i] if i < len(want) else '(end)'}")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=os.path.join(ROOT, "kernel8.img"))
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", help="comma-separated block names")
    a = ap.parse_args()
    texts = docs()
    found = marked(texts)
    problems = []
    if set(found) != set(BLOCKS):
        problems.append(f"docs_run: the docs mark {sorted(set(found) - set(BLOCKS))} that BLOCKS lacks and lack "
                        f"{sorted(set(BLOCKS) - set(found))}")
    problems += unmarked_blocks(texts, found)
    for name, (f, m) in found.items():
        if name in BLOCKS and m.group(2) != BOOTS[BLOCKS[name].boot].label:
            problems.append(f"docs/{f}: block run:{name} says boot=\"{m.group(2)}\", the run boots with "
                            f"\"{BOOTS[BLOCKS[name].boot].label}\"")
    names = [n for n in BLOCKS if n in found]
    if a.only:
        names = [n for n in names if n in a.only.split(",")]
    if a.check and problems:
        print("\n".join(problems))
        print("docs_run: FAILED")
        sys.exit(1)
    fresh = run(a.image, names)
    if a.check:
        for name in names:
            f, m = found[name]
            msg = compare(f, name, m.group(3).rstrip("\n").split("\n"), fresh[name], BLOCKS[name].masks)
            if msg:
                problems.append(msg + "\n  (make docs-run regenerates the blocks)")
        problems += prose_figures.check(texts, fresh, names)
        print("\n".join(problems) if problems else f"docs_run: {len(names)} blocks in docs/ agree with a run")
        sys.exit(1 if problems else 0)
    for p in problems:
        print(p, file=sys.stderr)
    for f in texts:
        text = texts[f]
        for name in sorted((n for n in names if found[n][0] == f), key=lambda n: -found[n][1].start()):
            m = found[name][1]
            text = (text[:m.start(2)] + BOOTS[BLOCKS[name].boot].label + text[m.end(2):m.start(3)]
                    + "\n".join(fresh[name]) + "\n" + text[m.end(3):])
        if text != texts[f]:
            open(os.path.join(DOCS, f), "w").write(text)
            print(f"docs_run: rewrote docs/{f}")


if __name__ == "__main__":
    main()
