#!/usr/bin/env python3
"""cargo_target.py CARGO ARGS...: runs cargo for the bare-metal target with its stderr
filtered of one known warning, explained once instead.

The Cortex-A53 erratum 835769 fix is LLVM's target feature `fix-cortex-a53-835769`
(.cargo/config.toml says why it is on); rustc passes it through but does not know it,
and warns on every crate: "unknown and unstable feature specified for
`-Ctarget-feature`: `fix-cortex-a53-835769` ... might be unsound". rustc has no switch
to allow it (it is not a lint) and LLVM no longer takes the option form, so this
wrapper drops that warning and its "generated 1 warning" tallies and prints one note.
Everything else passes through as it comes; the exit status is cargo's.
"""
import os
import subprocess
import sys

FEATURE = "fix-cortex-a53-835769"


def main():
    cmd = sys.argv[1:]
    if not cmd:
        sys.exit("usage: cargo_target.py CARGO ARGS...")
    if sys.stderr.isatty() and not any(a.startswith("--color") for a in cmd):
        cmd = cmd[:2] + ["--color=always"] + cmd[2:]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    hidden = 0
    skipping = False
    for raw in proc.stderr:
        line = raw.decode(errors="replace")
        plain = strip_ansi(line)
        if plain.startswith("warning: unknown and unstable feature") and FEATURE in plain:
            skipping, hidden = True, hidden + 1
            continue
        if skipping:
            # The warning's body: `  |`, `  = note: ...`, `  = help: ...`, then a blank line.
            if plain.strip() == "" or plain.lstrip().startswith(("|", "=")):
                if plain.strip() == "":
                    skipping = False
                continue
            skipping = False
        if plain.startswith("warning: `") and plain.rstrip().endswith(("generated 1 warning",
                                                                         "generated 1 warning (1 duplicate)")):
            continue
        sys.stderr.write(line)
        sys.stderr.flush()
    rc = proc.wait()
    if hidden:
        sys.stderr.write(f"note: rustc's \"unknown and unstable feature {FEATURE}\" warning is expected "
                         "(the Cortex-A53 erratum fix, see .cargo/config.toml) and was left out\n")
    sys.exit(rc)


def strip_ansi(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\x1b":
            j = i + 1
            if j < len(s) and s[j] == "[":
                j += 1
                while j < len(s) and not s[j].isalpha():
                    j += 1
            i = j + 1
            continue
        out.append(s[i])
        i += 1
    return "".join(out)


if __name__ == "__main__":
    main()
