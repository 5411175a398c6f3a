#!/usr/bin/env bash
# Mutation testing of the mm core with cargo-mutants (see docs/testing.md).
#
#   tools/mutants.sh                 every shard of the core not yet finished, one after another
#   SHARD=3 tools/mutants.sh         only shard 3 (of MUTANTS_SHARDS)
#   MUTANTS_FILES="a.rs b.rs" ...    only these files (own output directory, not sharded),
#                                    MUTANTS_TESTS="t1 t2": with only these integration tests
#   tools/mutants.sh --diff [BASE]   only the mutants in `git diff BASE` (default main)
#
# Sharded and resumable: shard k of n writes mutants.out/shard-k-of-n/; a shard that ran to
# the end leaves a `done` file there and is skipped next time (delete the directory to run
# it again). An interrupted shard starts again from its beginning. After the runs,
# tools/mutants_summary.py prints the missed share per module over everything in
# mutants.out/.
#
# Knobs (environment): MUTANTS_SHARDS (16), MUTANTS_JOBS (1), MUTANTS_TIMEOUT (seconds per
# mutant's tests, 240; a mutant that hangs is counted as a timeout, not waited for),
# MUTANTS_NICE (19).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
PYTHON=${PYTHON:-python3}
SHARDS=${MUTANTS_SHARDS:-16}
JOBS=${MUTANTS_JOBS:-1}
TIMEOUT=${MUTANTS_TIMEOUT:-240}
NICE=${MUTANTS_NICE:-19}
OUT=${MUTANTS_OUT:-mutants.out}

if ! "$CARGO" mutants --version >/dev/null 2>&1; then
    echo "mutants: installing cargo-mutants (cargo install --locked cargo-mutants)"
    "$CARGO" install --locked cargo-mutants
fi

# The mm core: page_alloc (with migrate, compaction, cma), slab, vmalloc, pgtable. The
# test scaffolding in them is excluded by .cargo/mutants.toml.
CORE=(--file 'kernel/mm/src/page_alloc/**' --file 'kernel/mm/src/slab/**'
      --file 'kernel/mm/src/vmalloc/**' --file 'kernel/mm/src/pgtable/**')

# Exit codes of cargo mutants: 0 all caught, 2 some missed, 3 some timed out; those are
# finished runs. 1 is a usage error, 4 a failing baseline (the tests fail unmutated).
finished() { [ "$1" -eq 0 ] || [ "$1" -eq 2 ] || [ "$1" -eq 3 ]; }

run() { # run DIR ARGS...: one cargo-mutants run into DIR/mutants.out, marked done if it finished
    local dir=$1
    shift
    mkdir -p "$dir"
    rm -f "$dir/done"
    local rc=0
    # --copy-target: the scratch copy starts with this tree's built dependencies.
    nice -n "$NICE" "$CARGO" mutants -p mm --jobs "$JOBS" --timeout "$TIMEOUT" --copy-target=true \
        --output "$dir" "$@" || rc=$?
    if finished "$rc"; then
        date -u +%FT%TZ >"$dir/done"
    else
        echo "mutants: cargo mutants exited $rc in $dir (not marked done)" >&2
        return "$rc"
    fi
}

if [ "${1:-}" = "--diff" ]; then
    base=${2:-main}
    diff_file=$(mktemp)
    trap 'rm -f "$diff_file"' EXIT
    git diff "$base" -- kernel/mm/src >"$diff_file"
    if [ ! -s "$diff_file" ]; then
        echo "mutants-diff: no change to kernel/mm/src against $base"
        exit 0
    fi
    rc=0
    run "$OUT/diff" "${CORE[@]}" --in-diff "$diff_file" || rc=$?
    "$PYTHON" tools/mutants_summary.py "$OUT/diff"
    exit "$rc"
fi

if [ -n "${MUTANTS_FILES:-}" ]; then
    args=()
    # MUTANTS_TESTS="a b": only the unit tests and these integration tests (quicker,
    # for files those tests cover; without .cargo/mutants.toml's test arguments). Given
    # to every cargo call, so that each mutant's build links only those test binaries.
    if [ -n "${MUTANTS_TESTS:-}" ]; then
        args+=(--no-config --cargo-arg=--lib)
        for t in $MUTANTS_TESTS; do
            args+=("--cargo-arg=--test=$t")
        done
    fi
    name=files
    for f in $MUTANTS_FILES; do
        args+=(--file "$f")
        name="$name-$(basename "$f" .rs)"
    done
    run "$OUT/$name" "${args[@]}"
    "$PYTHON" tools/mutants_summary.py "$OUT"
    exit 0
fi

shards=$(seq 0 $((SHARDS - 1)))
[ -n "${SHARD:-}" ] && shards=$SHARD
for k in $shards; do
    dir="$OUT/shard-$k-of-$SHARDS"
    if [ -f "$dir/done" ]; then
        echo "mutants: shard $k/$SHARDS finished $(cat "$dir/done"), skipped"
        continue
    fi
    echo "mutants: shard $k/$SHARDS into $dir"
    run "$dir" "${CORE[@]}" --shard "$k/$SHARDS"
done
"$PYTHON" tools/mutants_summary.py "$OUT"
