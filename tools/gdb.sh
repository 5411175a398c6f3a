#!/usr/bin/env bash
# gdb.sh QEMU IMAGE ELF PORT [GDB ARGS...]: QEMU raspi3b halted at reset with its gdb
# stub on 127.0.0.1:PORT (never on other interfaces), gdb-multiarch attached with the
# ELF's symbols; when gdb ends, that QEMU is killed by its PID, whatever way gdb ended.
# A QEMU left by an earlier run that was itself killed (its PID file remains) is ended
# first; anything else listening on the port is refused. The kernel's UART goes to
# target/gdb-uart.log (gdb owns the terminal): `tail -f target/gdb-uart.log` beside it.
set -euo pipefail
qemu=$1 image=$2 elf=$3 port=$4
shift 4
mkdir -p target
pidfile=target/gdb-qemu.pid
uartlog=target/gdb-uart.log

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if [ -f "$pidfile" ]; then
    old=$(cat "$pidfile")
    if [ -n "$old" ] && kill -0 "$old" 2>/dev/null && tr '\0' ' ' <"/proc/$old/cmdline" | grep -q -- "-gdb tcp:127.0.0.1:"; then
        echo "gdb: ending QEMU $old left by an earlier make gdb" >&2
        kill "$old" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$old" 2>/dev/null || true
    fi
    rm -f "$pidfile"
fi
if listening; then
    echo "error: something already listens on 127.0.0.1:$port; end it or use GDB_PORT=..." >&2
    exit 1
fi

"$qemu" -M raspi3b -kernel "$image" -display none -monitor none \
    -serial "file:$uartlog" -S -gdb "tcp:127.0.0.1:$port" &
qpid=$!
echo "$qpid" >"$pidfile"
cleanup() {
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
    rm -f "$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for _ in $(seq 100); do
    listening && break
    kill -0 "$qpid" 2>/dev/null || { echo "error: QEMU exited before its gdb stub listened" >&2; exit 1; }
    sleep 0.1
done
echo "gdb: QEMU $qpid halted at reset, stub on 127.0.0.1:$port, UART in $uartlog" >&2
# gdb ignores Ctrl-C for itself (it interrupts the target); the trap above still runs.
gdb-multiarch -q "$elf" -ex 'set architecture aarch64' -ex "target remote 127.0.0.1:$port" "$@"
