#!/usr/bin/env bash
# ensure-pkg.sh COMMAND PACKAGE: installs a Debian/Ubuntu package when COMMAND is
# missing (as root, or through sudo), or says exactly what to run.
set -euo pipefail
cmd=$1 pkg=$2
command -v "$cmd" >/dev/null 2>&1 && exit 0
# Wait for another apt/dpkg (a parallel build, unattended upgrades) instead of failing.
install() {
    "$@" apt-get -o DPkg::Lock::Timeout=600 install -y "$pkg" ||
        { "$@" apt-get -o DPkg::Lock::Timeout=600 update && "$@" apt-get -o DPkg::Lock::Timeout=600 install -y "$pkg"; }
}
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "$cmd not found: installing $pkg with apt-get" >&2
        install env DEBIAN_FRONTEND=noninteractive
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "$cmd not found: installing $pkg with sudo apt-get" >&2
        install sudo env DEBIAN_FRONTEND=noninteractive
    fi
fi
command -v "$cmd" >/dev/null 2>&1 && exit 0
echo "error: $cmd is required. Install it with:  sudo apt-get install -y $pkg" >&2
exit 1
