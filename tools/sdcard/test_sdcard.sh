#!/usr/bin/env bash
# Test tools/sdcard/mksdcard.sh and config.txt. No root, no network, no mounts.
#
#   test_sdcard.sh [KERNEL_IMG]
#
# Builds an SD-card image from KERNEL_IMG (without an argument: a random 100000-byte
# stand-in) and placeholder firmware files and device trees, then checks the MBR, the
# FAT contents, config.txt, cmdline.txt and the error paths. The firmware download is
# exercised from a file:// mirror (no network). Last line: "sdcard: N passed, M failed".
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
MKSD="$SCRIPT_DIR/mksdcard.sh"
CONFIG_TXT="$REPO_ROOT/config.txt"
CMDLINE_TXT="$REPO_ROOT/cmdline.txt"
PATH="$PATH:/usr/sbin:/sbin"

if [ $# -gt 1 ]; then
    echo "usage: $0 [KERNEL_IMG]" >&2
    exit 2
fi

for tool in python3 mdir mcopy cmp; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "test_sdcard.sh: missing tool $tool (apt-get install -y fdisk dosfstools mtools python3)" >&2
        exit 2
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_sdcard.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT

if [ $# -eq 1 ]; then
    if [ ! -f "$1" ]; then
        echo "test_sdcard.sh: kernel image not found: $1" >&2
        exit 2
    fi
    KERNEL=$(cd "$(dirname -- "$1")" && pwd)/$(basename -- "$1")
else
    KERNEL="$TMP/dummy-kernel8.img"
    head -c 100000 /dev/urandom >"$KERNEL"
fi

# Keep the tests hermetic: no firmware from the caller's environment, no real cache,
# no network (downloads are pointed at file:// URLs).
unset FIRMWARE_DIR
export XDG_CACHE_HOME="$TMP/cache"
export FIRMWARE_BASE_URL="file://$TMP/no-such-mirror"

FW="$TMP/fw"
mkdir -p "$FW"
DTBS="bcm2710-rpi-3-b.dtb bcm2710-rpi-3-b-plus.dtb bcm2710-rpi-3-a-plus.dtb"
# Realistic stand-ins (mksdcard.sh refuses what is not): bootcode.bin and fixup.dat of
# their real sizes, start.elf an ELF file of 1.5 MiB, the device trees minimal but valid
# flattened trees (magic, header size = file size) padded to a real tree's size.
# fake NAME PATH [SIZE]
fake() {
    python3 - "$1" "$2" "${3:-}" <<'EOF'
import os, struct, sys
name, path, size = sys.argv[1], sys.argv[2], sys.argv[3]
sizes = {"bootcode.bin": 52456, "start.elf": 1536 * 1024, "fixup.dat": 7314}
if name.endswith(".dtb"):
    strings = b"model\0"
    model = b"mm-kernel sdcard test " + name.encode() + b"\0"
    model += b"\0" * (-len(model) % 4)
    struct_blk = (struct.pack(">II", 1, 0) + struct.pack(">III", 3, len(model), 0) + model
                  + struct.pack(">I", 2) + struct.pack(">I", 9))
    off_rsv = 40
    off_struct = off_rsv + 16
    off_strings = off_struct + len(struct_blk)
    body = struct.pack(">QQ", 0, 0) + struct_blk + strings
    total = int(size) if size else 30000
    pad = total - 40 - len(body)
    hdr = struct.pack(">10I", 0xD00DFEED, total, off_struct, off_strings, off_rsv, 17, 16, 0,
                      len(strings), len(struct_blk))
    data = hdr + body + b"\0" * pad
else:
    n = int(size) if size else sizes[name]
    head = b"\x7fELF\x02\x01\x01" if name == "start.elf" else b""
    data = head + os.urandom(n - len(head))
open(path, "wb").write(data)
EOF
}
for f in bootcode.bin start.elf fixup.dat $DTBS; do
    fake "$f" "$FW/$f"
done

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$1"
}
fail() {
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$1"
    if [ -n "${2:-}" ]; then
        printf '%s\n' "$2" | sed 's/^/       | /'
    fi
}
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
    local desc=$1
    shift
    if "$@" >/dev/null 2>&1; then pass "$desc"; else fail "$desc"; fi
}
# expect_eq DESCRIPTION EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected: $2"$'\n'"actual:   $3"
    fi
}
# run COMMAND...: sets rc and out (stdout+stderr) without tripping set -e.
rc=0
out=""
run() {
    if out=$("$@" 2>&1); then rc=0; else rc=$?; fi
}
# le IMAGE OFFSET SIZE: little-endian unsigned integer at OFFSET, in decimal.
le() {
    python3 - "$1" "$2" "$3" <<'EOF' 2>/dev/null || echo "unreadable"
import sys
path, off, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    f.seek(off)
    data = f.read(size)
if len(data) != size:
    sys.exit(1)
print(int.from_bytes(data, "little"))
EOF
}
# ascii IMAGE OFFSET SIZE: bytes at OFFSET as text.
ascii() {
    python3 - "$1" "$2" "$3" <<'EOF' 2>/dev/null || echo "unreadable"
import sys
path, off, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    f.seek(off)
    print(f.read(size).decode("ascii", "replace").replace("\0", "."))
EOF
}

IMG="$TMP/sdcard.img"
FAT="$IMG@@1M"
EXPECTED_FILES=$'::/bcm2710-rpi-3-a-plus.dtb\n::/bcm2710-rpi-3-b-plus.dtb\n::/bcm2710-rpi-3-b.dtb\n::/bootcode.bin\n::/cmdline.txt\n::/config.txt\n::/fixup.dat\n::/kernel8.img\n::/start.elf'

# ------------------------------------------------------------ config.txt
for setting in arm_64bit=1 kernel=kernel8.img kernel_address=0x80000 \
    init_uart_clock=48000000 enable_uart=1; do
    check "config.txt sets $setting" grep -qx -- "$setting" "$CONFIG_TXT"
done
# Nothing in config.txt may keep the command line from the kernel: no
# disable_commandline_tags (ATAGS are the fallback without a device tree), no
# device_tree= (an empty one turns the device tree off), no cmdline= elsewhere.
no_cmdline_blockers() { ! grep -qE '^[[:space:]]*(disable_commandline_tags|device_tree|cmdline)=' "$CONFIG_TXT"; }
check "config.txt does not defeat the command line" no_cmdline_blockers

# ------------------------------------------------------------ cmdline.txt
first_line=$(head -n 1 "$CMDLINE_TXT")
expect_eq "cmdline.txt: options on its first line" "sweep=all loglevel=7" "$first_line"
comments_only() { tail -n +2 "$CMDLINE_TXT" | grep -qvE '^(#.*|)$' && return 1 || return 0; }
check "cmdline.txt: every other line is a comment" comments_only
for opt in sweep= slub_debug loglevel= cmdline; do
    check "cmdline.txt documents $opt" grep -q -- "$opt" "$CMDLINE_TXT"
done
no_dtoverlay() { ! grep -q '^[[:space:]]*dtoverlay' "$CONFIG_TXT"; }
check "config.txt has no dtoverlay (no overlays/ on the card)" no_dtoverlay
bad_lines=$(grep -nvE '^(#.*|[a-z0-9_]+=[^[:space:]#]+|)$' "$CONFIG_TXT" || true)
expect_eq "config.txt: only key=value lines and whole-line comments" "" "$bad_lines"

# ------------------------------------------------------------ build the image
run "$MKSD" "$KERNEL" "$IMG" --firmware-dir "$FW"
if [ "$rc" -eq 0 ]; then pass "mksdcard.sh builds an image"; else fail "mksdcard.sh builds an image (exit $rc)" "$out"; fi
check "summary names the image" grep -qF -- "$IMG" <<<"$out"
check "summary gives the partition start" grep -q "start sector 2048" <<<"$out"

img_size=$(stat -c %s -- "$IMG" 2>/dev/null || echo missing)
expect_eq "image is 64 MiB" "$((64 * 1024 * 1024))" "$img_size"

# ------------------------------------------------------------ MBR
expect_eq "MBR signature 0x55AA" "$((0xAA55))" "$(le "$IMG" 510 2)"
expect_eq "partition 1 bootable flag 0x80" "$((0x80))" "$(le "$IMG" 446 1)"
expect_eq "partition 1 type 0x0C (FAT32 LBA)" "$((0x0C))" "$(le "$IMG" 450 1)"
expect_eq "partition 1 start LBA 2048" "2048" "$(le "$IMG" 454 4)"
expect_eq "partition 1 runs to the end of the image" "$((64 * 2048 - 2048))" "$(le "$IMG" 458 4)"
expect_eq "partitions 2-4 unused" "0" "$(le "$IMG" 462 48)"

# ------------------------------------------------------------ FAT filesystem
expect_eq "FAT boot sector signature at the partition" "$((0xAA55))" "$(le "$IMG" $((1048576 + 510)) 2)"
expect_eq "filesystem is FAT32" "FAT32   " "$(ascii "$IMG" $((1048576 + 82)) 8)"
expect_eq "volume label BOOT" "BOOT       " "$(ascii "$IMG" $((1048576 + 71)) 11)"
expect_eq "FAT: 512-byte sectors" "512" "$(le "$IMG" $((1048576 + 11)) 2)"
expect_eq "FAT: one sector per cluster" "1" "$(le "$IMG" $((1048576 + 13)) 1)"
expect_eq "FAT: hidden sectors = partition start" "2048" "$(le "$IMG" $((1048576 + 28)) 4)"

listing=$(mdir -b -i "$FAT" :: 2>&1 | LC_ALL=C sort || true)
expect_eq "FAT holds exactly the boot files, device trees and cmdline.txt" "$EXPECTED_FILES" "$listing"

BACK="$TMP/back"
mkdir -p "$BACK"
# fat_equals NAME FILE: copy NAME out of the image and compare it with FILE.
fat_equals() { mcopy -n -i "$FAT" "::$1" "$BACK/$1" && cmp -s "$BACK/$1" "$2"; }
mtype_equals() { mtype -i "$FAT" "::$1" | cmp -s - "$2"; }
check "kernel8.img in the image equals $KERNEL" fat_equals kernel8.img "$KERNEL"
check "config.txt in the image equals the repository's" fat_equals config.txt "$CONFIG_TXT"
check "cmdline.txt in the image equals the repository's" fat_equals cmdline.txt "$CMDLINE_TXT"
for f in bootcode.bin start.elf fixup.dat $DTBS; do
    check "$f in the image equals the placeholder" fat_equals "$f" "$FW/$f"
done
check "mtype prints the same kernel bytes" mtype_equals kernel8.img "$KERNEL"

# ------------------------------------------------------------ error paths
FW_BAD="$TMP/fw-bad"
mkdir -p "$FW_BAD"
cp "$FW/bootcode.bin" "$FW/start.elf" "$FW_BAD/"
run "$MKSD" "$KERNEL" "$TMP/bad.img" --firmware-dir "$FW_BAD"
check "missing fixup.dat: non-zero exit" test "$rc" -ne 0
check "missing fixup.dat: message names it" grep -q "fixup.dat" <<<"$out"
check "missing fixup.dat: no image left behind" test ! -e "$TMP/bad.img"

: >"$FW_BAD/fixup.dat"
run "$MKSD" "$KERNEL" "$TMP/bad.img" --firmware-dir "$FW_BAD"
check "empty fixup.dat: non-zero exit" test "$rc" -ne 0
check "empty fixup.dat: message says empty" grep -q "fixup.dat.*empty\|empty.*fixup.dat" <<<"$out"

# Files that are not what they claim are refused, with the reason, and no image is left.
# refused WHAT NAME EXPECTED_MESSAGE: NAME in a copy of the firmware replaced by $TMP/bogus.
refused() {
    local dir="$TMP/fw-refused"
    rm -rf -- "$dir" "$TMP/bad.img"
    cp -r -- "$FW" "$dir"
    cp -- "$TMP/bogus" "$dir/$2"
    run "$MKSD" "$KERNEL" "$TMP/bad.img" --firmware-dir "$dir"
    if [ "$rc" -ne 0 ] && grep -q -- "$3" <<<"$out" && [ ! -e "$TMP/bad.img" ]; then
        pass "$1 refused"
    else
        fail "$1 refused (exit $rc)" "$out"
    fi
}
printf 'dummy\n' >"$TMP/bogus"
refused "a 6-byte start.elf" start.elf "start.elf is 6 bytes: not a real start.elf"
head -c 2000000 /dev/urandom >"$TMP/bogus"
refused "a start.elf that is not an ELF file" start.elf "not an ELF file"
printf 'x' >"$TMP/bogus"
refused "a 1-byte bootcode.bin" bootcode.bin "not a real bootcode.bin"
refused "a 1-byte fixup.dat" fixup.dat "not a real fixup.dat"
{ printf '<!DOCTYPE html><html>404'; head -c 40000 /dev/zero; } >"$TMP/bogus"
refused "an HTML page saved as a device tree" bcm2710-rpi-3-b-plus.dtb "not a flattened device tree"
fake bcm2710-rpi-3-b.dtb "$TMP/bogus" 30000
head -c 20000 "$TMP/bogus" >"$TMP/bogus.cut" && mv "$TMP/bogus.cut" "$TMP/bogus"
refused "a truncated device tree" bcm2710-rpi-3-b.dtb "header says 30000 bytes, the file has 20000"

run "$MKSD" "$TMP/no-such-kernel8.img" "$TMP/bad.img" --firmware-dir "$FW"
check "missing kernel: non-zero exit" test "$rc" -ne 0
check "missing kernel: message names it" grep -q "no-such-kernel8.img" <<<"$out"

run "$MKSD" "$KERNEL" "$TMP/bad.img"
check "no firmware and offline: non-zero exit" test "$rc" -ne 0
check "no firmware and offline: explains FIRMWARE_DIR" grep -q "FIRMWARE_DIR=" <<<"$out"
check "no firmware and offline: names the device trees" grep -q "bcm2710-rpi-3-b-plus.dtb" <<<"$out"
check "no firmware and offline: names raspberrypi/firmware's boot/ folder" grep -q "raspberrypi/firmware/tree/master/boot" <<<"$out"
check "no firmware and offline: does not send users to Debian's raspi-firmware" test "$(grep -c raspi-firmware <<<"$out")" -eq 0

# A firmware directory without device trees: a card all the same, with a warning.
FW_NODT="$TMP/fw-nodt"
mkdir -p "$FW_NODT"
cp "$FW/bootcode.bin" "$FW/start.elf" "$FW/fixup.dat" "$FW_NODT/"
run "$MKSD" "$KERNEL" "$TMP/nodt.img" --firmware-dir "$FW_NODT"
check "no device trees: image built" test "$rc" -eq 0 -a -f "$TMP/nodt.img"
check "no device trees: warning names them" grep -q "warning: .*bcm2710-rpi-3-b-plus.dtb" <<<"$out"
nodt_listing=$(mdir -b -i "$TMP/nodt.img@@1M" :: 2>&1 | LC_ALL=C sort | tr '\n' ' ' || true)
expect_eq "no device trees: cmdline.txt still on the card" \
    "::/bootcode.bin ::/cmdline.txt ::/config.txt ::/fixup.dat ::/kernel8.img ::/start.elf " "$nodt_listing"

run "$MKSD" "$KERNEL" "$TMP/bad.img" --firmware-dir "$TMP/no-such-dir"
check "nonexistent --firmware-dir: non-zero exit" test "$rc" -ne 0

run "$MKSD" "$KERNEL"
check "missing OUTPUT_IMG argument: non-zero exit" test "$rc" -ne 0

# ------------------------------------------------------------ --files-only
DEST="$TMP/boot"
mkdir -p "$DEST"
run "$MKSD" --files-only "$DEST" "$KERNEL" --firmware-dir "$FW"
check "--files-only: exit 0" test "$rc" -eq 0
expect_eq "--files-only: exactly the boot files" \
    $'bcm2710-rpi-3-a-plus.dtb\nbcm2710-rpi-3-b-plus.dtb\nbcm2710-rpi-3-b.dtb\nbootcode.bin\ncmdline.txt\nconfig.txt\nfixup.dat\nkernel8.img\nstart.elf' \
    "$(cd "$DEST" && LC_ALL=C ls -A)"
check "--files-only: kernel8.img copied" cmp -s "$DEST/kernel8.img" "$KERNEL"
check "--files-only: config.txt copied" cmp -s "$DEST/config.txt" "$CONFIG_TXT"
check "--files-only: cmdline.txt copied" cmp -s "$DEST/cmdline.txt" "$CMDLINE_TXT"
for f in bootcode.bin start.elf fixup.dat $DTBS; do
    check "--files-only: $f copied" cmp -s "$DEST/$f" "$FW/$f"
done

# A card's own config.txt and cmdline.txt are kept (never an earlier backup overwritten);
# files equal to ours are not backed up.
run "$MKSD" --files-only "$DEST" "$KERNEL" --firmware-dir "$FW"
check "--files-only again over our own files: no backup" test "$rc" -eq 0 -a ! -e "$DEST/config.txt.bak"
printf 'arm_64bit=1\n# the user'"'"'s own\n' >"$DEST/config.txt"
printf 'first backup\n' >"$DEST/config.txt.bak"
run "$MKSD" --files-only "$DEST" "$KERNEL" --firmware-dir "$FW"
check "--files-only over a card's config.txt: exit 0" test "$rc" -eq 0
check "--files-only: the card's config.txt kept as config.txt.bak.1" grep -q "the user's own" "$DEST/config.txt.bak.1"
check "--files-only: an earlier config.txt.bak is not overwritten" grep -qx "first backup" "$DEST/config.txt.bak"
check "--files-only: says where the old config.txt went" grep -q "kept the card's config.txt as .*config.txt.bak.1" <<<"$out"
check "--files-only: config.txt replaced by ours" cmp -s "$DEST/config.txt" "$CONFIG_TXT"
rm -f "$DEST/config.txt.bak" "$DEST/config.txt.bak.1"

run "$MKSD" --files-only "$TMP/no-such-mount" "$KERNEL" --firmware-dir "$FW"
check "--files-only to a missing directory: non-zero exit" test "$rc" -ne 0
check "--files-only to a missing directory: message names it" grep -q "no-such-mount" <<<"$out"
touch "$TMP/a-file"
run "$MKSD" --files-only "$TMP/a-file" "$KERNEL" --firmware-dir "$FW"
check "--files-only to a regular file: non-zero exit" test "$rc" -ne 0

# FIRMWARE_DIR from the environment.
DEST2="$TMP/boot-env"
mkdir -p "$DEST2"
run env FIRMWARE_DIR="$FW" "$MKSD" --files-only "$DEST2" "$KERNEL"
# ran_and_same A B: the last run succeeded and files A and B are equal.
ran_and_same() { [ "$rc" -eq 0 ] && cmp -s "$1" "$2"; }
check "FIRMWARE_DIR env is honoured" ran_and_same "$DEST2/start.elf" "$FW/start.elf"

# Download into the cache (from a file:// mirror), then reuse the cache offline.
DEST3="$TMP/boot-dl"
mkdir -p "$DEST3"
run env FIRMWARE_BASE_URL="file://$FW" "$MKSD" --files-only "$DEST3" "$KERNEL"
check "download fills the firmware cache" \
    ran_and_same "$XDG_CACHE_HOME/mm-kernel/firmware/fixup.dat" "$FW/fixup.dat"
check "download fetches the device trees" \
    ran_and_same "$XDG_CACHE_HOME/mm-kernel/firmware/bcm2710-rpi-3-b-plus.dtb" "$FW/bcm2710-rpi-3-b-plus.dtb"
check "downloaded device trees reach the card" cmp -s "$DEST3/bcm2710-rpi-3-a-plus.dtb" "$FW/bcm2710-rpi-3-a-plus.dtb"
run "$MKSD" "$KERNEL" "$TMP/cached.img"
check "cached firmware is reused when offline" test "$rc" -eq 0

# Relative paths, run from another working directory.
cp -- "$KERNEL" "$TMP/rel-kernel.img"
run bash -c 'cd "$1" && "$2" rel-kernel.img rel.img --firmware-dir fw' _ "$TMP" "$MKSD"
check "relative paths from another working directory" test "$rc" -eq 0 -a -f "$TMP/rel.img"

echo "sdcard: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
