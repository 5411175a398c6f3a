#!/usr/bin/env python3
"""Import cycles between the files of a Rust crate: `make test` fails on any.

Each file of a crate's src/ is a module; file A depends on file B when A names a path
into B (`crate::..`, `super::..`, `$crate::..`, `use` groups expanded). A parent module
(mod.rs, lib.rs, main.rs) that re-exports its own children (`pub use`) or declares them
is structure, not a dependency. A set of files that reach each other (a strongly
connected component of more than one file) is a cycle: each is printed, and the exit
status is 1 if there is any.

Usage: modcycles.py CRATE_SRC_DIR [...]
       modcycles.py --edges CRATE_SRC_DIR    (every file's dependencies, for redrawing layers)
       modcycles.py --self-test              (two tiny crates in a temp dir: one cycle, none)
"""
import os
import re
import sys
import tempfile

PARENTS = ("mod.rs", "lib.rs", "main.rs")


def modpath(root, f):
    rel = os.path.relpath(f, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip(src):
    """Source without comments and string contents (paths in them are not imports)."""
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    return re.sub(r'"(\\.|[^"\\])*"', '""', src)


def expand(prefix, body):
    """`a::{b, c::{d, e}}` as a list of paths."""
    out, depth, cur = [], 0, ""
    for ch in body + ",":
        if ch == "{":
            depth += 1
        if ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            t = cur.strip()
            cur = ""
            if not t:
                continue
            m = re.match(r"([\w:]*?)::\{(.*)\}$", t, re.S)
            if m:
                out += expand(prefix + [p for p in m.group(1).split("::") if p], m.group(2))
            else:
                out.append(prefix + [p for p in t.split(" as ")[0].split("::") if p])
        else:
            cur += ch
    return out


def paths_in(src, me):
    """Every crate-relative path `src` names, from module `me`."""
    paths = []
    for m in re.finditer(r"\b(crate|super)((?:::\w+)*)::\{", src):
        i = j = m.end()
        depth = 1
        while depth and j < len(src):
            depth += {"{": 1, "}": -1}.get(src[j], 0)
            j += 1
        paths += expand([m.group(1)] + [p for p in m.group(2).split("::") if p], src[i:j - 1])
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", src):
        paths.append([m.group(1)] + [p for p in m.group(2).split("::") if p])
    out = []
    for p in paths:
        if p[0] == "crate":
            out.append(tuple(p[1:]))
        else:
            base, k = list(me), 0
            while k < len(p) and p[k] == "super":
                base, k = base[:-1], k + 1
            out.append(tuple(base + p[k:]))
    return out


def edges_of(root):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs"))
    mods = {modpath(root, f): f for f in files}
    # `#[macro_export]` macros live at the crate root (`crate::pr_info`): a path to one is
    # a dependency on the file that defines it.
    macros = {}
    for f in files:
        with open(f, errors="replace") as fh:
            for name in re.findall(r"#\[macro_export\]\s*macro_rules!\s*(\w+)", strip(fh.read())):
                macros[(name,)] = f
    edges = {f: set() for f in files}
    for f in files:
        me = modpath(root, f)
        parent = os.path.basename(f) in PARENTS
        with open(f, errors="replace") as fh:
            src = strip(fh.read())
        if parent:
            src = re.sub(r"\bpub(\([^)]*\))?\s+use\s+[^;]*;", "", src)
        for p in paths_in(src, me):
            if p[:1] in macros and p[:1] not in mods:
                if macros[p[:1]] != f:
                    edges[f].add(macros[p[:1]])
                continue
            # The longest prefix that is a file: `crate::a::b::item` -> a/b.rs or a.rs.
            for k in range(len(p), 0, -1):
                if p[:k] in mods:
                    g = mods[p[:k]]
                    if g != f and not (parent and p[:len(me)] == me):
                        edges[f].add(g)
                    break
    return edges


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def check(roots):
    bad = 0
    for root in roots:
        if not os.path.isdir(root):
            print(f"modcycles: {root}: no such directory", file=sys.stderr)
            return 2
        found = cycles(edges_of(root))
        for c in found:
            print(f"cycle of {len(c)} files: " + ", ".join(c))
        if not found:
            print(f"modcycles: {root}: no import cycle")
        bad += len(found)
    return 1 if bad else 0


def self_test():
    crates = {
        # a -> b -> c -> a through a use group, a super:: path and an exported macro.
        "cyclic": {
            "lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub use a::A;\n",
            "a.rs": "use crate::{b::B, d};\npub struct A;\n#[macro_export]\nmacro_rules! a_macro { () => { $crate::a::A } }\n",
            "b.rs": "pub struct B;\nfn f() { super::c::g() }\n",
            "c.rs": "pub fn g() { crate::a_macro!(); }\n",
            "d.rs": "// crate::a in a comment is no import\nconst S: &str = \"crate::a\";\n",
        },
        # The same files with c.rs not reaching back up, and a parent re-exporting children.
        "acyclic": {
            "lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub use a::A;\n",
            "a.rs": "use crate::{b::B, d};\npub struct A;\n#[macro_export]\nmacro_rules! a_macro { () => { $crate::a::A } }\n",
            "b.rs": "pub struct B;\nfn f() { super::c::g() }\n",
            "c.rs": "pub fn g() {}\n",
            "d.rs": "// crate::a in a comment is no import\nconst S: &str = \"crate::a\";\n",
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for name, files in crates.items():
            roots[name] = os.path.join(tmp, name, "src")
            os.makedirs(roots[name])
            for fn, text in files.items():
                with open(os.path.join(roots[name], fn), "w") as fh:
                    fh.write(text)
        got = cycles(edges_of(roots["cyclic"]))
        want = [sorted(os.path.join(roots["cyclic"], f) for f in ("a.rs", "b.rs", "c.rs"))]
        assert got == want, f"cyclic crate: expected {want}, got {got}"
        got = cycles(edges_of(roots["acyclic"]))
        assert got == [], f"acyclic crate: expected no cycle, got {got}"
        d = os.path.join(roots["acyclic"], "d.rs")
        assert edges_of(roots["acyclic"])[d] == set(), "a path in a comment or string counted"
    print("modcycles: self-test passed (a 3-file cycle found, none in the acyclic crate)")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--self-test"]:
        sys.exit(self_test())
    if args[:1] == ["--edges"]:
        for root in args[1:]:
            for f, deps in edges_of(root).items():
                print(f + ": " + " ".join(sorted(deps)))
        sys.exit(0)
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(check(args))
