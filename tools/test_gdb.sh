#!/usr/bin/env bash
# test_gdb.sh: `make gdb` twice in a row with a scripted, batch-mode gdb. Each must
# reach the halted CPU (read its pc, and stepi moves it), and no QEMU may be left afterwards, nor its PID
# file or its port. Then a stale PID file of a running stub is cleaned up by the next run.
set -euo pipefail
# A port of its own, so parallel runs on one machine do not meet.
port=${GDB_PORT:-$((20000 + $$ % 20000))}
fail() { echo "test_gdb: FAILED: $*" >&2; exit 1; }
run() {
    timeout 120 make -s gdb GDB_PORT="$port" GDB_ARGS="-batch -ex 'info registers pc' -ex 'stepi' -ex 'info registers pc'" 2>&1
}
for i in 1 2; do
    out=$(run) || fail "make gdb run $i: $out"
    echo "$out" | grep -Eq '^pc +0x[0-9a-f]+' || fail "run $i: gdb read no pc: $out"
    # stepi must have executed an instruction: the second pc differs from the first.
    pcs=$(echo "$out" | sed -n 's/^pc  *\(0x[0-9a-f]*\).*/\1/p')
    [ "$(echo "$pcs" | wc -l)" -eq 2 ] || fail "run $i: expected two pc readings: $out"
    [ "$(echo "$pcs" | sed -n 1p)" != "$(echo "$pcs" | sed -n 2p)" ] || fail "run $i: stepi did not move the pc: $out"
    echo "test_gdb: run $i: stepi moved the pc $(echo $pcs | sed 's/ / -> /')"
    [ ! -f target/gdb-qemu.pid ] || fail "run $i left target/gdb-qemu.pid"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "run $i: a stub still listens on $port"; fi
    pgrep -f -- "-gdb tcp:127.0.0.1:$port" >/dev/null && fail "run $i left a QEMU running"
    echo "test_gdb: run $i ok, no QEMU left"
done
# gdb's bt on core 0 and on a secondary core ends at the stack's final frame record (the
# entry code), never in "corrupt stack?".
out=$(timeout 120 make -s gdb GDB_PORT="$port" GDB_ARGS="-batch -ex 'break kernel::shell::run' -ex c -ex bt -ex 'thread 2' -ex bt" 2>&1) \
    || fail "make gdb for bt: $out"
echo "$out" | grep -Eq '^#[0-9]+ .* in boot_high \(\)$' || fail "core 0's bt does not end in boot_high: $out"
echo "$out" | grep -Eq '^#[0-9]+ .* in secondary_high \(\)$' || fail "core 1's bt does not end in secondary_high: $out"
if echo "$out" | grep -q "Backtrace stopped"; then fail "bt stopped on a corrupt frame: $out"; fi
echo "test_gdb: bt ends cleanly on core 0 and core 1"
# A QEMU whose make gdb was killed: its PID file remains and the next run ends it.
qemu-system-aarch64 -M raspi3b -kernel kernel8.img -display none -monitor none -serial null -S \
    -gdb "tcp:127.0.0.1:$port" &
stale=$!
echo "$stale" >target/gdb-qemu.pid
sleep 1
out=$(run) || { kill "$stale" 2>/dev/null; fail "make gdb after a stale stub: $out"; }
echo "$out" | grep -q "ending QEMU $stale left by an earlier make gdb" || fail "stale QEMU not reported: $out"
kill -0 "$stale" 2>/dev/null && { kill "$stale"; fail "stale QEMU $stale still runs"; }
wait "$stale" 2>/dev/null || true
echo "test_gdb: a stale stub is ended; all ok"
