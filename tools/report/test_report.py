#!/usr/bin/env python3
"""Tests of the report tool: the record parser against every kind the kernel writes
(`cargo run -p records --example samples`), against a recorded QEMU log (checked against the
same log's own text lines), bad input, and the page in a real headless browser.
The last line is `report: N passed, M failed`."""
import html.parser
import os
import re
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import browser  # noqa: E402
import pyenv  # noqa: E402
from records import SCHEMA, Log  # noqa: E402

OUT = os.path.join(ROOT, "target", "report-test")
RECORDED = os.path.join(HERE, "testdata", "qemu-default.log")
RECORDED2 = os.path.join(HERE, "testdata", "qemu-cma64-nohuge.log")
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def samples():
    r = subprocess.run(["cargo", "run", "-q", "-p", "records", "--example", "samples"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return r.stdout


def report(*args):
    return subprocess.run([pyenv.python(), os.path.join(HERE, "report.py"), *args],
                          capture_output=True, text=True, timeout=300)


class Svgs(html.parser.HTMLParser):
    """Each <svg> of a page: its text and how many shapes it draws."""

    def __init__(self):
        super().__init__()
        self.svgs, self.depth = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            if self.depth == 0:
                self.svgs.append({"text": "", "shapes": 0})
            self.depth += 1
        elif self.depth and tag in ("path", "rect", "use", "image", "line", "polyline"):
            self.svgs[-1]["shapes"] += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.svgs[-1]["text"] += data + " "


def svgs_of(dom):
    p = Svgs()
    p.feed(dom)
    return p.svgs


@test
def every_kind_the_kernel_writes_parses():
    log = Log("samples", samples())
    check(not log.problems, f"problems: {log.problems}")
    kinds = [k for k, _ in log.records]
    check(sorted(kinds) == sorted(SCHEMA), f"the writer's kinds {kinds} and the parser's {list(SCHEMA)} differ")


@test
def the_schema_document_names_every_kind_and_field():
    doc = open(os.path.join(ROOT, "docs", "records.md")).read()
    for kind, fields in SCHEMA.items():
        check(f"`{kind}`" in doc, f"docs/records.md lacks kind {kind}")
        for f in fields:
            check(re.search(rf"`{re.escape(kind)}`[^\n]*\n(?:[^#][^\n]*\n)*?[^\n]*`{f}`", doc) or f"`{f}`" in doc,
                  f"docs/records.md lacks field {kind}.{f}")


@test
def parser_rejects_what_is_not_a_record():
    good = samples().splitlines()[1]
    text = "\n".join([
        "plain console text", "mm> meminfo",
        good.replace('"v":1', '"v":2'),                       # another schema version
        good.replace('"kind":"boot.memory"', '"kind":"nope"'),  # unknown kind
        good.replace('"max_order":16,', ''),                   # missing field
        good.replace('"max_order":16', '"max_order":"16"'),    # wrong type
        good[:len(good) // 2],                                 # truncated
        "@rec not json at all", "\x00\xff garbage",
        good])
    log = Log("bad", text)
    check(len(log.records) == 1, f"only the last line is a record: {log.records}")
    want = ["schema version 2", "unknown kind 'nope'", "missing max_order", "wrong type for max_order",
            "not whole JSON", "not whole JSON"]
    check(len(log.problems) == len(want), f"problems: {log.problems}")
    for p, w in zip(log.problems, want):
        check(w in p, f"expected {w!r} in {p!r}")


@test
def bad_logs_give_one_line_errors_not_tracebacks():
    with tempfile.TemporaryDirectory() as d:
        cases = {"empty.log": "", "text.log": "Booting mm-kernel\nmm> \n",
                 "v2.log": samples().replace('"v":1', '"v":2')}
        for name, text in cases.items():
            p = os.path.join(d, name)
            open(p, "w").write(text)
            r = report("--log", p, "--out", d)
            check(r.returncode == 1, f"{name}: exit {r.returncode}")
            lines = r.stderr.strip().splitlines()
            check(len(lines) == 1 and "holds no records" in lines[0] and "Traceback" not in r.stderr,
                  f"{name}: {r.stderr!r}")
        check("schema version 2" in report("--log", os.path.join(d, "v2.log"), "--out", d).stderr,
              "the version problem is not named")
        r = report("--log", os.path.join(d, "missing.log"), "--out", d)
        check(r.returncode == 1 and "cannot read" in r.stderr and "Traceback" not in r.stderr, r.stderr)


@test
def a_truncated_log_gives_a_page_that_says_so():
    text = open(RECORDED).read()
    cut = text[:text.index('"kind":"lab.fragment"') + 30]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "cut.log")
        open(p, "w").write(cut)
        r = report("--log", p, "--out", d)
        check(r.returncode == 0, r.stderr)
        page = open(os.path.join(d, "index.html")).read()
        check("not whole JSON" in page, "the cut record is not reported on the page")
        check("has no the fragmentation lab" in page or "no the fragmentation lab" in page,
              "the missing lab is not said")


def text_results(text):
    """The results as the kernel's human-readable `sweep:` lines say them."""
    out = {}
    m = re.search(r"sweep: __get_free_pages max order=(\d+) \(\d+ pages, (\d+) bytes\)", text)
    out["gfp"] = (int(m.group(1)), int(m.group(2))) if m else None
    m = re.search(r"sweep: kmalloc max size=(\d+) bytes", text)
    out["kmalloc"] = int(m.group(1)) if m else None
    m = re.search(r"sweep: vmalloc max size=(\d+) bytes \((\d+) pages\), [\d.]+% of (\d+) free bytes", text)
    out["vmalloc"] = (int(m.group(1)), int(m.group(3))) if m else None
    out["lab"] = [(p, int(b), int(a), int(n)) for p, b, a, n in re.findall(
        r"sweep: fragmented( vmalloc)?: max order=(\d+) before compaction, (\d+) after \((\d+) pages migrated", text)]
    m = re.search(r"sweep: leak check: free pages before=(\d+) after=(\d+)", text)
    out["leak"] = (int(m.group(1)), int(m.group(2))) if m else None
    return out


def check_records_agree_with_text(path):
    text = open(path).read()
    log = Log(path, text)
    check(not log.problems, f"{path}: {log.problems}")
    t = text_results(text)
    mx = {m["api"]: m for m in log.all("sweep.max")}
    check(t["gfp"] and (mx["gfp"]["order"], mx["gfp"]["bytes"]) == t["gfp"], f"gfp: {mx.get('gfp')} vs {t['gfp']}")
    check(mx["kmalloc"]["bytes"] == t["kmalloc"], f"kmalloc: {mx.get('kmalloc')} vs {t['kmalloc']}")
    check((mx["vmalloc"]["bytes"], mx["vmalloc"]["free_bytes"]) == t["vmalloc"], f"vmalloc: {mx['vmalloc']} vs {t['vmalloc']}")
    lab = [(f["order_before"], f["order_after"], f["migrated"]) for f in log.all("lab.fragment")]
    check(lab == [(b, a, n) for _, b, a, n in t["lab"]], f"lab: {lab} vs {t['lab']}")
    leak = log.one("sweep.leak")
    check((leak["before"], leak["after"]) == t["leak"], f"leak: {leak} vs {t['leak']}")
    steps = [s for s in log.all("sweep.step") if s["api"] == "gfp"]
    n_text = len(re.findall(r"^\[[\s\d.]+\]\s+order=\s*\d+, pages=.*__get_free_pages (?:OK|failed)", text, re.M))
    check(len(steps) == n_text, f"{len(steps)} gfp step records, {n_text} step lines")
    return log


@test
def the_recorded_logs_records_agree_with_their_text():
    for path in (RECORDED, RECORDED2):
        check_records_agree_with_text(path)


@test
def the_page_in_a_real_browser():
    os.makedirs(OUT, exist_ok=True)
    r = report("--log", RECORDED, "--log2", RECORDED2, "--out", OUT)
    check(r.returncode == 0, r.stderr)
    page = os.path.join(OUT, "index.html")
    dom, errors = browser.dump_dom(page)
    check(not errors, f"console errors: {errors}")
    svgs = svgs_of(dom)
    a, b = Log.read(RECORDED), Log.read(RECORDED2)
    n_maps = len(a.all("memmap")) + len(b.all("memmap"))
    # largest block, steps, vmalloc steps, buddyinfo x2, maps, bench (when the logs have it)
    want = 3 + 2 + n_maps + (1 if a.all("bench") or b.all("bench") else 0)
    check(len(svgs) == want, f"{len(svgs)} charts rendered, expected {want}")
    for s in svgs:
        check(s["shapes"] >= 5, f"an empty chart: {s['text'][:200]}")
    joined = [s["text"] for s in svgs]
    for label in ["Largest block per API", "largest single allocation", "Linux 5.10, Pi 3B+",
                  "__get_free_pages", "kmalloc", "vmalloc", "Time per sweep step", "order (2^order pages)",
                  "vmalloc size (MB)", "free blocks", a.label(), b.label()]:
        check(any(label in t for t in joined), f"no chart shows {label!r}")
    shot = os.path.join(OUT, "screenshot.png")
    errors = browser.screenshot(page, shot)
    check(not errors, f"console errors: {errors}")
    check(os.path.getsize(shot) > 20000, "the screenshot is nearly empty")


@test
def the_readmes_charts_are_the_tools_output():
    """docs/images' charts are regenerated from the recorded logs, not drawn by hand."""
    with tempfile.TemporaryDirectory() as d:
        r = report("--log", RECORDED, "--log2", RECORDED2, "--out", d, "--charts", d)
        check(r.returncode == 0, r.stderr)
        for name in ("report-largest-block.svg", "report-vmalloc-steps.svg"):
            got = open(os.path.join(d, name)).read()
            have = open(os.path.join(ROOT, "docs", "images", name)).read()
            check(got == have, f"docs/images/{name} differs from what the tool draws now: regenerate with "
                               f"tools/report/report.py --log {RECORDED} --log2 {RECORDED2} --charts docs/images")


@test
def the_console_error_check_can_fail():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "bad.html")
        open(p, "w").write("<html><body><script>console.error('broken chart')</script></body></html>")
        _, errors = browser.dump_dom(p)
        check(errors and "broken chart" in errors[0], f"a console error went unseen: {errors}")


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    passed = failed = 0
    for t in TESTS:
        if only not in t.__name__:
            continue
        try:
            t()
            print(f"test {t.__name__} ... ok", flush=True)
            passed += 1
        except Exception:
            print(f"test {t.__name__} ... FAILED\n{traceback.format_exc()}", flush=True)
            failed += 1
    if passed + failed == 0:
        print(f"report: no test matches {only!r}")
        sys.exit(1)
    print(f"report: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
