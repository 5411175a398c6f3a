#!/usr/bin/env bash
# Makes sure qemu-system-aarch64 (with the raspi3b machine) is there.
set -euo pipefail
here=$(dirname "$0")
"$here/ensure-pkg.sh" qemu-system-aarch64 qemu-system-arm
if ! qemu-system-aarch64 -M help | grep -q '^raspi3b'; then
    echo "error: this qemu-system-aarch64 has no raspi3b machine; QEMU 6.0 or newer is needed" >&2
    exit 1
fi
