#!/usr/bin/env python3
"""Reads the kernel's records (`@rec {...}` lines, schema version 1) out of a UART log.

The kernel prints them with `records=on` (kernel/records: the writer; docs/records.md: the
schema). Everything else in the log is ordinary console text and is passed over. What cannot
be read is said, never raised: `Log.problems` lists truncated or garbled record lines,
records of another schema version, unknown kinds and missing fields, one line each.

    python3 tools/report/records.py LOG      # prints a summary of what the log holds
"""
import json
import os
import re
import sys

VERSION = 1
PREFIX = "@rec "

U64, U32, STR, BOOL = "u64", "u32", "str", "bool"
OPT_U32, OPT_U64, LIST_U64 = "u32?", "u64?", "[u64]"

# kind -> {field: type}; kernel/records/src/lib.rs is the writer's side of the same table.
SCHEMA = {
    "boot.info": {"version": STR, "board": STR, "cmdline": STR},
    "boot.memory": {"ram_bytes": U64, "present_pages": U64, "managed_pages": U64,
                    "free_pages": U64, "max_order": U32, "cma_bytes": U64},
    "sweep.step": {"api": STR, "order": OPT_U32, "pages": U64, "bytes": U64, "ok": BOOL, "ns": U64},
    "sweep.bisect": {"pages": U64, "bytes": U64, "fail_pages": U64, "ns": U64},
    "sweep.max": {"api": STR, "order": OPT_U32, "bytes": OPT_U64, "free_bytes": OPT_U64},
    "sweep.huge": {"areas": U64, "huge_areas": U64, "blocks": U64, "pages": U64},
    "sweep.phase": {"phase": STR, "ns": U64},
    "sweep.leak": {"before": U64, "after": U64, "ok": BOOL},
    "sweep.interrupted": {"phase": STR},
    "buddyinfo": {"when": STR, "counts": LIST_U64},
    "memmap": {"when": STR, "start": U64, "cell_bytes": U64, "cells": STR},
    "lab.fragment": {"part": STR, "order_before": OPT_U32, "order_after": OPT_U32, "migrated": U64,
                     "ns": U64, "held": U64, "corrupt": U64},
    "lab.cma": {"region_bytes": U64, "ok": BOOL, "migrated": U64, "failed": U64, "corrupt": U64, "ns": U64},
    "stress": {"cpus": U32, "ops": U64, "seed": U64, "compact": BOOL, "ops_per_s": U64,
               "free_before": U64, "free_after": U64, "ok": BOOL},
    "bench": {"name": STR, "ours_ns": U64, "peer": STR, "peer_ns": U64},
}

_LINE = re.compile(r"^(?:\[\s*\d+\.\d+\]\s*)?" + re.escape(PREFIX) + r"(.*)$")


def _is(ty, v):
    if ty in (U64, U32):
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < (1 << (64 if ty == U64 else 32))
    if ty == STR:
        return isinstance(v, str)
    if ty == BOOL:
        return isinstance(v, bool)
    if ty in (OPT_U32, OPT_U64):
        return v is None or _is(ty[:-1], v)
    if ty == LIST_U64:
        return isinstance(v, list) and all(_is(U64, x) for x in v)
    raise ValueError(ty)


def check(rec):
    """None if `rec` (a parsed JSON object) is a valid record, else what is wrong."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if rec.get("v") != VERSION:
        return f"schema version {rec.get('v')!r} (this tool reads version {VERSION})"
    kind, data = rec.get("kind"), rec.get("data")
    if kind not in SCHEMA:
        return f"unknown kind {kind!r}"
    if not isinstance(data, dict):
        return f"{kind}: no data object"
    fields = SCHEMA[kind]
    missing = [f for f in fields if f not in data]
    if missing:
        return f"{kind}: missing {', '.join(missing)}"
    bad = [f"{f} (want {t})" for f, t in fields.items() if not _is(t, data[f])]
    if bad:
        return f"{kind}: wrong type for {', '.join(bad)}"
    return None


class Log:
    """The records of one log, in order, and the problems met reading it."""

    def __init__(self, name, text):
        self.name = name
        self.records = []  # (kind, data)
        self.problems = []  # "line N: what"
        self.lines = 0
        for n, line in enumerate(text.splitlines(), 1):
            self.lines += 1
            m = _LINE.match(line.rstrip("\r"))
            if not m:
                continue
            try:
                rec = json.loads(m.group(1))
            except json.JSONDecodeError as e:
                self.problems.append(f"line {n}: a record that is not whole JSON ({e.msg}; truncated log?)")
                continue
            why = check(rec)
            if why:
                self.problems.append(f"line {n}: {why}")
                continue
            self.records.append((rec["kind"], rec["data"]))

    @classmethod
    def read(cls, path):
        with open(path, "rb") as f:
            raw = f.read()
        return cls(path, raw.decode("utf-8", errors="replace"))

    def all(self, kind):
        return [d for k, d in self.records if k == kind]

    def one(self, kind):
        found = self.all(kind)
        return found[-1] if found else None

    def label(self):
        info = self.one("boot.info")
        if not info:
            return os.path.basename(self.name)
        words = [w for w in info["cmdline"].split() if not w.startswith("records")]
        return " ".join(words) if words else "default command line"


def main(argv):
    if len(argv) != 2:
        print("usage: records.py LOG", file=sys.stderr)
        return 2
    try:
        log = Log.read(argv[1])
    except OSError as e:
        print(f"records: cannot read {argv[1]}: {e.strerror}", file=sys.stderr)
        return 1
    counts = {}
    for kind, _ in log.records:
        counts[kind] = counts.get(kind, 0) + 1
    for kind in SCHEMA:
        if kind in counts:
            print(f"{kind:18} {counts[kind]}")
    for p in log.problems:
        print(f"problem: {p}")
    if not log.records:
        print(f"records: {argv[1]} holds no records (boot with records=on)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
