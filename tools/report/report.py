#!/usr/bin/env python3
"""Writes the lab's results as one self-contained HTML page with SVG charts.

    python3 tools/report/report.py --log A.log [--log2 B.log] [--out target/report]

Reads the records of one UART log (or two, shown side by side) and writes OUT/index.html:
the largest block per API against Linux's figures from the lab documents, the time of each
sweep step, the vmalloc steps, buddyinfo before and after compaction, the lab's memory
maps, and the `bench` rows. No network, no script: matplotlib draws every chart to SVG
inline. A log with nothing to show gives a one-line error; a log that lacks a part gives
a page that says what is missing.
"""
import argparse
import html
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from records import Log  # noqa: E402

# Linux 5.10 on a Raspberry Pi 3B+, the kernel-lab documents' own figures: order 10
# (MAX_ORDER 11) for __get_free_pages, kmalloc up to 4 MiB, vmalloc about 826 MB of
# about 900 MB free before the OOM killer ended the sweep.
LINUX = {"gfp": 4 << 20, "kmalloc": 4 << 20, "vmalloc": 826 * 10**6}
API_NAMES = {"gfp": "__get_free_pages", "kmalloc": "kmalloc", "vmalloc": "vmalloc"}

# The memory map's cell letters (`memmap --plain`, docs/records.md) and the kernel's own
# colours for them (kernel/src/mm/memmap.rs, `rgb`): free cells in greens by the order of
# their largest free block, each migratetype its own hue.
def _free(o):
    return (f"free, order {o}", "#%02x%02x%02x" % (0, 70 + o * 11, 30 + o * 3))


MAP_COLOURS = {
    **{("0123456789abcdefg")[o]: _free(o) for o in range(17)},
    "U": ("Unmovable", "#dc322f"),
    "M": ("Movable", "#268bd2"),
    "E": ("Reclaimable", "#e6b400"),
    "H": ("HighAtomic", "#d33682"),
    "C": ("CMA", "#965ae6"),
    "I": ("isolated", "#ffffff"),
    "R": ("reserved", "#8c8c8c"),
    "-": ("no RAM", "#303030"),
}


def _plt():
    import matplotlib
    matplotlib.use("svg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 10, "axes.grid": True,
                         "grid.alpha": 0.3, "figure.dpi": 96,
                         "svg.hashsalt": "mm-kernel"})  # the same SVG for the same records
    return plt


def svg(fig):
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def human(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def largest(log):
    out = {}
    for m in log.all("sweep.max"):
        out[m["api"]] = m["bytes"]
    return out


def chart_largest(logs):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    apis = ["gfp", "kmalloc", "vmalloc"]
    series = [("Linux 5.10, Pi 3B+ (lab documents)", [LINUX[a] for a in apis])]
    for log in logs:
        got = largest(log)
        series.append((f"this kernel: {log.label()}", [got.get(a) or 0 for a in apis]))
    width = 0.8 / len(series)
    for i, (name, vals) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(apis))]
        bars = ax.bar(xs, [v / 2**20 for v in vals], width, label=name)
        for b, v in zip(bars, vals):
            ax.annotate(human(v) if v else "failed", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(apis)), [API_NAMES[a] for a in apis])
    ax.set_yscale("log")
    ax.set_ylabel("largest single allocation (MiB, log scale)")
    ax.set_title("Largest block per API")
    ax.legend(fontsize=8, loc="upper left")
    return svg(fig)


def log_chart(fig, ax, drawn, xlabel, ylabel, title):
    """A time chart's finish: a log y axis, its labels and legend; None if nothing was drawn."""
    if not drawn:
        _plt().close(fig)
        return None
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return svg(fig)


def chart_steps(logs):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    drawn = False
    for log in logs:
        for api, marker in (("gfp", "o"), ("kmalloc", "s")):
            steps = [s for s in log.all("sweep.step") if s["api"] == api and s["order"] is not None]
            if not steps:
                continue
            ok = [s for s in steps if s["ok"]]
            ax.plot([s["order"] for s in ok], [s["ns"] / 1000 for s in ok], marker=marker,
                    label=f"{API_NAMES[api]} ({log.label()})")
            drawn = True
    return log_chart(fig, ax, drawn, "order (2^order pages)", "time of the call (us, log scale)", "Time per sweep step")


def chart_vmalloc(logs):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    drawn = False
    for log in logs:
        steps = [s for s in log.all("sweep.step") if s["api"] == "vmalloc"]
        if not steps:
            continue
        ok = [s for s in steps if s["ok"]]
        ax.plot([s["bytes"] / 1e6 for s in ok], [s["ns"] / 1e6 for s in ok], marker=".",
                label=f"vmalloc OK ({log.label()})")
        bad = [s for s in steps if not s["ok"]]
        if bad:
            ax.scatter([s["bytes"] / 1e6 for s in bad], [s["ns"] / 1e6 for s in bad], marker="x",
                       color="red", label=f"vmalloc failed ({log.label()})", zorder=3)
        drawn = True
    return log_chart(fig, ax, drawn, "vmalloc size (MB)", "time of vmalloc + vfree (ms, log scale)", "The vmalloc steps")


def chart_buddyinfo(log):
    snaps = log.all("buddyinfo")
    if not snaps:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(snaps)
    for i, s in enumerate(snaps):
        xs = [o + (i - (len(snaps) - 1) / 2) * width for o in range(len(s["counts"]))]
        ax.bar(xs, s["counts"], width, label=s["when"])
    ax.set_yscale("symlog")
    ax.set_xlabel("order")
    ax.set_ylabel("free blocks (symlog)")
    ax.set_title(f"buddyinfo ({log.label()})")
    ax.legend(fontsize=8)
    return svg(fig)


def chart_memmap(m):
    plt = _plt()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    letters = list(MAP_COLOURS)
    cells = m["cells"]
    cols = 32
    rows = (len(cells) + cols - 1) // cols
    grid = [[len(letters)] * cols for _ in range(rows)]
    for i, c in enumerate(cells):
        grid[i // cols][i % cols] = letters.index(c) if c in MAP_COLOURS else len(letters)
    cmap = ListedColormap([MAP_COLOURS[c][1] for c in letters] + ["#ffffff"])
    fig, ax = plt.subplots(figsize=(7, 0.25 * rows + 1.2))
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(letters), aspect="auto", interpolation="nearest")
    ax.grid(False)
    row_bytes = cols * m["cell_bytes"]
    ax.set_yticks(range(rows), [f"0x{m['start'] + r * row_bytes:08x}" for r in range(rows)], fontsize=7)
    ax.set_xticks([])
    ax.set_xlabel(f"one cell = {human(m['cell_bytes'])}, {cols} cells a row")
    ax.set_title(f"memory map: {m['when']}")
    present = [c for c in letters if c in cells]
    ax.legend(handles=[Patch(color=MAP_COLOURS[c][1], label=MAP_COLOURS[c][0]) for c in present],
              fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return svg(fig)


def chart_bench(logs):
    rows = []
    for log in logs:
        by = {}
        for b in log.all("bench"):
            if b["ours_ns"]:
                by.setdefault((b["name"], b["peer"]), []).append(b["peer_ns"] / b["ours_ns"])
        rows.append((log, by))
    if not any(by for _, by in rows):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = sorted({k for _, by in rows for k in by})
    width = 0.8 / len(rows)
    for i, (log, by) in enumerate(rows):
        meds, lo, hi = [], [], []
        for k in names:
            r = sorted(by.get(k, [0]))
            med = r[len(r) // 2]
            meds.append(med)
            lo.append(med - r[0])
            hi.append(r[-1] - med)
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=log.label())
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), [f"{n}\nvs {p}" for n, p in names], fontsize=7)
    ax.set_ylabel("peer time / our time (x faster)")
    ax.set_title("In-kernel bench: ratio, median and spread over rounds")
    ax.legend(fontsize=8)
    return svg(fig)


def table(rows):
    out = ["<table>"]
    for i, r in enumerate(rows):
        tag = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def summary(log):
    rows = [["result", "value"]]
    for m in log.all("sweep.max"):
        v = human(m["bytes"]) if m["bytes"] else "failed at the smallest size"
        if m["api"] == "gfp" and m["order"] is not None:
            v = f"order {m['order']} ({v})"
        if m["free_bytes"]:
            v += f", {100 * m['bytes'] / m['free_bytes']:.1f}% of {human(m['free_bytes'])} free"
        rows.append([f"largest {API_NAMES.get(m['api'], m['api'])}", v])
    for f in log.all("lab.fragment"):
        rows.append([f"fragmentation lab ({f['part']})",
                     f"max order {f['order_before']} before compaction, {f['order_after']} after; "
                     f"{f['migrated']} pages migrated in {f['ns'] / 1e6:.0f} ms; {f['corrupt']} corrupted"])
    for c in log.all("lab.cma"):
        rows.append(["CMA part", f"{human(c['region_bytes'])} area: cma_alloc {'succeeded' if c['ok'] else 'failed'}, "
                                 f"{c['migrated']} blocks migrated, {c['failed']} failed"])
    for leak in log.all("sweep.leak"):
        rows.append(["leak check", f"free pages before={leak['before']} after={leak['after']} "
                                   f"{'OK' if leak['ok'] else 'LEAK'}"])
    for s in log.all("stress"):
        rows.append([f"stress seed {s['seed']}", f"{s['cpus']} CPUs, {s['ops_per_s']} ops/s, "
                                                 f"{'no leak' if s['ok'] else 'LEAK'}"])
    return rows


def missing_parts(log):
    need = {"sweep.max": "the sweep's results (boot with sweep=all or sweep=pages,kmalloc,vmalloc)",
            "sweep.step": "the sweep's steps",
            "lab.fragment": "the fragmentation lab (sweep=fragment)",
            "buddyinfo": "buddyinfo snapshots",
            "memmap": "memory maps"}
    return [what for kind, what in need.items() if not log.all(kind)]


CSS = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}
.runs{display:flex;gap:1em;flex-wrap:wrap}.run{flex:1;min-width:440px}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.4em .8em}
figure{margin:.5em 0}svg{max-width:100%;height:auto}"""


def page(logs):
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>mm-kernel lab report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>mm-kernel: the allocation lab's results</h1>"]
    parts.append("<p>Runs: " + "; ".join(f"<b>{html.escape(log.label())}</b> ({html.escape(os.path.basename(log.name))}, "
                                         f"{len(log.records)} records)" for log in logs) + "</p>")
    for log in logs:
        for p in log.problems[:20]:
            parts.append(f"<p class='warn'>{html.escape(os.path.basename(log.name))}: {html.escape(p)}</p>")
        if len(log.problems) > 20:
            parts.append(f"<p class='warn'>... and {len(log.problems) - 20} more problems</p>")
        for what in missing_parts(log):
            parts.append(f"<p class='warn'>{html.escape(os.path.basename(log.name))} has no {html.escape(what)}.</p>")
        for i in log.all("sweep.interrupted"):
            parts.append(f"<p class='warn'>{html.escape(os.path.basename(log.name))}: the run was interrupted "
                         f"during {html.escape(i['phase'])}; its figures are not results.</p>")

    def section(title, charts, note=""):
        charts = [c for c in charts if c]
        if not charts:
            return
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if note:
            parts.append(f"<p>{note}</p>")
        parts.append("<div class='runs'>" + "".join(f"<figure class='run'>{c}</figure>" for c in charts) + "</div>")

    parts.append("<h2>Summary</h2><div class='runs'>" +
                 "".join(f"<div class='run'><h3>{html.escape(log.label())}</h3>{table(summary(log))}</div>"
                         for log in logs) + "</div>")
    if any(log.all("sweep.max") for log in logs):
        section("Largest block per API", [chart_largest(logs)],
                "Linux stops at order 10 (MAX_ORDER 11) and its vmalloc sweep ends in the OOM killer; "
                "this kernel's largest block is the largest aligned block of free RAM.")
    section("Time per sweep step", [chart_steps(logs)])
    section("The vmalloc steps", [chart_vmalloc(logs)])
    section("buddyinfo before and after compaction", [chart_buddyinfo(log) for log in logs])
    maps = [(log, m) for log in logs for m in log.all("memmap")]
    if maps:
        parts.append("<h2>Memory maps of the lab</h2><div class='runs'>")
        for log, m in maps:
            parts.append(f"<figure class='run'>{chart_memmap(m)}<figcaption>{html.escape(log.label())}"
                         f"</figcaption></figure>")
        parts.append("</div>")
    section("In-kernel bench", [chart_bench(logs)])
    parts.append("<p><small>Made by tools/report/report.py from the kernel's records "
                 "(schema version 1, docs/records.md).</small></p></body></html>")
    return "\n".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="a UART log of a boot with records=on")
    ap.add_argument("--log2", help="a second log, shown side by side")
    ap.add_argument("--out", default="target/report", help="folder for index.html")
    ap.add_argument("--charts", help="also write the largest-block and vmalloc charts as SVG files here "
                                     "(the README's pictures: docs/images)")
    a = ap.parse_args(argv)
    logs = []
    for path in [a.log] + ([a.log2] if a.log2 else []):
        try:
            logs.append(Log.read(path))
        except OSError as e:
            print(f"report: cannot read {path}: {e.strerror}", file=sys.stderr)
            return 1
    for log in logs:
        if not log.records:
            why = f" ({log.problems[0]})" if log.problems else ""
            print(f"report: {log.name} holds no records{why}: boot with records=on "
                  f"(make report does) or give the UART log of such a boot", file=sys.stderr)
            return 1
    os.makedirs(a.out, exist_ok=True)
    out = os.path.join(a.out, "index.html")
    with open(out, "w", encoding="utf-8") as f:
        f.write(page(logs))
    for log in logs:
        for p in log.problems:
            print(f"report: {log.name}: {p}", file=sys.stderr)
    if a.charts:
        os.makedirs(a.charts, exist_ok=True)
        for name, chart in (("report-largest-block.svg", chart_largest(logs)),
                            ("report-vmalloc-steps.svg", chart_vmalloc(logs))):
            if chart:
                with open(os.path.join(a.charts, name), "w", encoding="utf-8") as f:
                    f.write('<?xml version="1.0" encoding="utf-8" standalone="no"?>\n' + chart)
    print(f"report: wrote {out} ({', '.join(f'{len(log.records)} records from {log.name}' for log in logs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
