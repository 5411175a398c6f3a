"""The figures that docs/*.md quote in their prose, checked against the runs that
tools/docs_run.py makes for the marked blocks (it calls `check` under --check).

Each Figure names the page, a pattern that finds the figure in the prose (its first group is
the figure), the block whose fresh run holds it, and how the figure follows from that run's
lines. A pattern that no longer matches the page fails too, so this list cannot silently
outlive the sentence it checks. Figures that move from build to build are quoted rounded
("about 69,000", `about`), so that only a real change fails.

Not here, on purpose: the Linux reference figures (the lab documents' own), constants of the
code or the board (1,024 handles, 2,048 bytes of command line, 480 cells for 960 MiB), and
timings, which the pages either leave to the blocks or label as one measurement of a host.
"""
import re

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def grab(lines, rx):
    """The first group of the first line matching `rx`."""
    for line in lines:
        m = re.search(rx, line)
        if m:
            return m.group(1)
    raise ValueError(f"no line of the run matches {rx!r}")


def about(n):
    """`n` to two significant figures with thousands separators: 69189 -> 69,000."""
    n = int(n)
    digits = len(str(n))
    r = round(n, -(digits - 2)) if digits > 2 else n
    return f"{r:,}"


def commas(n):
    return f"{int(n):,}"


class Figure:
    def __init__(self, page, prose, block, value, what):
        self.page, self.prose, self.block, self.value, self.what = page, prose, block, value, what


FIGURES = [
    Figure("lab.md", r"\*\*(\d+\.\d) % of free memory\*\*", "lab-sweep",
           lambda b: grab(b, r"sweep: vmalloc max size=.*, (\d+\.\d)% of"), "the largest vmalloc's share of free memory"),
    Figure("lab.md", r"Why (\d+\.\d) % and not 100 %", "lab-sweep",
           lambda b: grab(b, r"sweep: vmalloc max size=.*, (\d+\.\d)% of"), "the largest vmalloc's share of free memory"),
    Figure("lab.md", r"low watermark\n?\s*\(([\d,]+) kB here", "lab-sweep",
           lambda b: commas(grab(b, r"Normal free:.* low:(\d+)kB")), "the zone's low watermark"),
    Figure("lab.md", r"as on a fresh boot; about ([\d,]+) pages migrated", "lab-fragment",
           lambda b: about(grab(b, r"sweep: fragmented: .*\((\d+) pages migrated")), "pages migrated by the first part"),
    Figure("lab.md", r"about ([\d,]+) pages moved through their PTEs", "lab-fragment",
           lambda b: about(grab(b, r"sweep: fragmented vmalloc: .*\((\d+) pages migrated")),
           "pages migrated by the vmalloc part"),
    Figure("lab.md", r"the kept pages, about ([\d,]+) \(", "lab-fragment",
           lambda b: about(grab(b, r"^\[[ \d.]+\]  (\d+) filler pages held")), "the first part's filler pages"),
    Figure("lab.md", r"the kept pages, about [\d,]+ \((\d+) MiB\)", "lab-fragment",
           lambda b: about(round(int(grab(b, r"^\[[ \d.]+\]  (\d+) filler pages held")) * 4096 / 2**20)),
           "the first part's filler in MiB"),
    Figure("lab.md", r"order (\d+) before \(a hole", "lab-fragment",
           lambda b: grab(b, r"fragmented vmalloc: max order=(\d+) before"), "the vmalloc part's order before compaction"),
    Figure("lab.md", r"`cma=16M`: \*\*OK\*\*, ([\d,]+) borrowed blocks migrated out", "lab-cma",
           lambda b: commas(grab(b, r"(\d+) borrowed blocks migrated out")), "blocks the CMA part migrated"),
    Figure("lab.md", r"the scanners stop at order (\d+), the\s+last step empties the block at 256 MiB", "lab-half",
           lambda b: grab(b, r"scanners met at order (\d+); emptied order-16 block \[mem 0x10000000-"),
           "where the scanners stop with half of memory held"),
    Figure("usage.md", r"`bad-page-free` \((\w+) wrong frees", "usage-bad-free",
           lambda b: WORDS[sum(1 for line in b if "WARNING: free_pages" in line)], "the wrong frees"),
    Figure("usage.md", r"\(`(cma: Reserved [^`]*)`\)", "lab-cma",
           lambda b: grab(b, r"\] (cma: Reserved .*)$"), "the CMA area's line"),
    Figure("performance.md", r"the random-size batch went \d+ -> (\d+)\s+instructions per\s+operation",
           "perf-bench-icount",
           lambda b: grab(b, r"kmalloc random 8-2048 x1000, random free: .*instructions/op (\d+) vs"),
           "the kernel's random-size batch, instructions per operation"),
]


def check(texts, fresh, names):
    """Problems (strings) with the figures whose blocks are among `names`."""
    problems = []
    for f in FIGURES:
        if f.block not in names:
            continue
        text = texts[f.page]
        hits = list(re.finditer(f.prose, text))
        if not hits:
            problems.append(f"docs/{f.page}: no longer says {f.prose!r} ({f.what}): "
                            "update tools/prose_figures.py with the sentence")
            continue
        try:
            want = f.value(fresh[f.block])
        except ValueError as e:
            problems.append(f"docs/{f.page}: {f.what}: {e} (block run:{f.block})")
            continue
        for m in hits:
            have = m.group(1)
            if have != want:
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"docs/{f.page}:{line}: the prose says {have!r} for {f.what}, "
                                f"a run says {want!r} (block run:{f.block})")
    return problems
