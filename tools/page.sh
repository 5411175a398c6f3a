#!/bin/sh
# page.sh CMD ARGS...: runs CMD; a failure of CMD is the script's failure (its status,
# its error on stderr). The output goes through $PAGER (less) only when stdout is a
# terminal, after CMD has succeeded, so a pager never hides a failure.
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
"$@" >"$out" || exit $?
if [ -t 1 ]; then
    ${PAGER:-less} "$out"
else
    cat "$out"
fi
