#!/usr/bin/env bash
# Build a bootable Raspberry Pi 3B/3B+ SD-card image for kernel8.img, without root.
#
#   mksdcard.sh KERNEL_IMG OUTPUT_IMG [--firmware-dir DIR]
#       Write a 64 MiB MBR disk image: partition 1 starts at sector 2048, type 0x0C
#       (FAT32 LBA), bootable, holding kernel8.img, config.txt, cmdline.txt,
#       bootcode.bin, start.elf, fixup.dat and the Pi 3 device trees
#       (bcm2710-rpi-3-b.dtb, bcm2710-rpi-3-b-plus.dtb, bcm2710-rpi-3-a-plus.dtb).
#
#   mksdcard.sh --files-only DEST_DIR KERNEL_IMG [--firmware-dir DIR]
#       Copy the same files onto an already mounted boot partition.
#
# Firmware (bootcode.bin, start.elf, fixup.dat, and the device trees) comes from
# --firmware-dir, else from the FIRMWARE_DIR environment variable, else it is downloaded
# from the `boot/` folder of the official raspberrypi/firmware repository into
# ${XDG_CACHE_HOME:-$HOME/.cache}/mm-kernel/firmware (reused when already there).
# FIRMWARE_BASE_URL overrides the download location. The device trees carry the
# command line: the firmware writes its options and cmdline.txt's into the tree's
# /chosen/bootargs. A firmware directory without them still gives a card, with a warning
# (the firmware then passes the command line in ATAGS, which the kernel also reads).
# Files that are not what their names claim are refused (size; start.elf's ELF magic; a
# device tree's magic and header size). --files-only keeps a card's own config.txt and
# cmdline.txt as NAME.bak (then .bak.1, ...) when they differ from the repository's.
set -euo pipefail

PROG=$(basename "$0")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CONFIG_TXT="$REPO_ROOT/config.txt"
CMDLINE_TXT="$REPO_ROOT/cmdline.txt"

FIRMWARE_FILES=(bootcode.bin start.elf fixup.dat)
DTB_FILES=(bcm2710-rpi-3-b.dtb bcm2710-rpi-3-b-plus.dtb bcm2710-rpi-3-a-plus.dtb)
FIRMWARE_BASE_URL=${FIRMWARE_BASE_URL:-https://github.com/raspberrypi/firmware/raw/master/boot}
CACHE_DIR="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mm-kernel/firmware"

# Disk layout: 64 MiB image, 512-byte sectors, partition 1 from sector 2048 to the end.
SECTOR=512
IMAGE_MIB=64
PART_START=2048
IMAGE_SECTORS=$((IMAGE_MIB * 1024 * 1024 / SECTOR))
PART_SECTORS=$((IMAGE_SECTORS - PART_START))
PART_KB=$((PART_SECTORS * SECTOR / 1024))

# sfdisk and mkfs.vfat live in /sbin on Debian, often not in a normal user's PATH.
PATH="$PATH:/usr/sbin:/sbin"

die() {
    printf '%s: error: %s\n' "$PROG" "$1" >&2
    shift
    local line
    for line in "$@"; do
        printf '%s\n' "$line" >&2
    done
    exit 1
}

usage() {
    cat <<EOF
usage: $PROG KERNEL_IMG OUTPUT_IMG [--firmware-dir DIR]
       $PROG --files-only DEST_DIR KERNEL_IMG [--firmware-dir DIR]

Firmware directory: --firmware-dir DIR, else \$FIRMWARE_DIR, else download into
$CACHE_DIR.
EOF
}

# ---------------------------------------------------------------- arguments
files_only=0
dest_dir=""
firmware_dir="${FIRMWARE_DIR:-}"
positional=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --files-only)
            files_only=1
            [ $# -ge 2 ] || { usage >&2; die "--files-only needs DEST_DIR"; }
            dest_dir=$2
            shift 2
            ;;
        --firmware-dir)
            [ $# -ge 2 ] || { usage >&2; die "--firmware-dir needs a directory"; }
            firmware_dir=$2
            shift 2
            ;;
        --firmware-dir=*)
            firmware_dir=${1#--firmware-dir=}
            shift
            ;;
        --)
            shift
            positional+=("$@")
            break
            ;;
        -*)
            usage >&2
            die "unknown option: $1"
            ;;
        *)
            positional+=("$1")
            shift
            ;;
    esac
done

if [ "$files_only" -eq 1 ]; then
    [ ${#positional[@]} -eq 1 ] || { usage >&2; die "--files-only DEST_DIR takes exactly one KERNEL_IMG"; }
    kernel=${positional[0]}
    output=""
else
    [ ${#positional[@]} -eq 2 ] || { usage >&2; die "expected KERNEL_IMG and OUTPUT_IMG"; }
    kernel=${positional[0]}
    output=${positional[1]}
fi

# ---------------------------------------------------------------- inputs
check_kernel() {
    [ -e "$kernel" ] || die "kernel image not found: $kernel" \
        "Build it first (make kernel8.img) or give the path of the raw AArch64 binary."
    [ -f "$kernel" ] || die "kernel image is not a regular file: $kernel"
    [ -s "$kernel" ] || die "kernel image is empty: $kernel"
    local magic
    magic=$(head -c 4 -- "$kernel" | od -An -tx1 | tr -d ' \n')
    if [ "$magic" = "7f454c46" ]; then
        die "kernel image is an ELF file: $kernel" \
            "The firmware needs the raw binary (objcopy -O binary), i.e. kernel8.img."
    fi
}

check_config() {
    [ -f "$CONFIG_TXT" ] || die "config.txt not found at the repository root: $CONFIG_TXT"
    [ -f "$CMDLINE_TXT" ] || die "cmdline.txt not found at the repository root: $CMDLINE_TXT"
}

firmware_help() {
    cat <<EOF
Provide the Raspberry Pi firmware (${FIRMWARE_FILES[*]}) and the Pi 3 device trees
(${DTB_FILES[*]}) from the boot/ folder of the official raspberrypi/firmware repository
(https://github.com/raspberrypi/firmware/tree/master/boot) in one of these ways:
  * point at a directory holding them:
        FIRMWARE_DIR=/path/to/firmware/boot make sdcard
        $PROG KERNEL_IMG OUTPUT_IMG --firmware-dir /path/to/firmware/boot
  * download them by hand into the cache directory, which is then reused:
        mkdir -p $CACHE_DIR
        for f in ${FIRMWARE_FILES[*]} ${DTB_FILES[*]}; do
            curl -fL -o $CACHE_DIR/\$f $FIRMWARE_BASE_URL/\$f
        done
    (or copy them from the boot partition of any Raspberry Pi OS card;
     start.elf and fixup.dat must come from the same firmware release)
EOF
}

# Sets fw_dir to a directory that holds all three non-empty firmware files.
resolve_firmware() {
    local f
    if [ -n "$firmware_dir" ]; then
        [ -d "$firmware_dir" ] || die "firmware directory not found: $firmware_dir"
        for f in "${FIRMWARE_FILES[@]}"; do
            [ -f "$firmware_dir/$f" ] || die "firmware file missing: $firmware_dir/$f" \
                "The firmware directory must hold ${FIRMWARE_FILES[*]}."
            [ -s "$firmware_dir/$f" ] || die "firmware file is empty: $firmware_dir/$f"
        done
        fw_dir=$firmware_dir
        return
    fi

    mkdir -p -- "$CACHE_DIR" || die "cannot create the firmware cache directory $CACHE_DIR"
    for f in "${FIRMWARE_FILES[@]}" "${DTB_FILES[@]}"; do
        if [ -s "$CACHE_DIR/$f" ]; then
            continue
        fi
        local url="$FIRMWARE_BASE_URL/$f"
        local part="$CACHE_DIR/$f.part"
        printf '%s: downloading %s\n' "$PROG" "$url" >&2
        local ok=0
        if command -v curl >/dev/null 2>&1; then
            curl -fsSL --connect-timeout 15 --max-time 60 -o "$part" -- "$url" && ok=1
        elif command -v wget >/dev/null 2>&1; then
            wget -q -T 60 -t 1 -O "$part" -- "$url" && ok=1
        else
            die "neither curl nor wget is installed, cannot download the firmware" \
                "$(firmware_help)"
        fi
        if [ "$ok" -ne 1 ] || [ ! -s "$part" ]; then
            rm -f -- "$part"
            die "could not download $url (offline?)" "$(firmware_help)"
        fi
        mv -f -- "$part" "$CACHE_DIR/$f"
    done
    fw_dir=$CACHE_DIR
}

# Firmware and device trees must be what their names claim: a 6-byte placeholder, an
# HTML error page saved by a download, or a truncated copy gives a card that does not
# boot and says nothing. Sizes: the smallest of the official boot/ folder's releases,
# with room (bootcode.bin ~52 KB, start.elf ~2.9 MB, fixup.dat ~7 KB, dtbs ~30 KB).
min_size_of() {
    case "$1" in
        bootcode.bin) echo 16384 ;;
        start.elf) echo 1048576 ;;
        fixup.dat) echo 1024 ;;
        *.dtb) echo 1024 ;;
        *) echo 1 ;;
    esac
}

# be32 FILE OFFSET: the big-endian 32-bit word at OFFSET, in decimal.
be32() { od -An -tu4 --endian=big -j "$2" -N 4 -- "$1" | tr -d ' \n'; }

# check_boot_file NAME PATH: dies unless PATH looks like a real NAME.
check_boot_file() {
    local name=$1 path=$2 size min magic
    size=$(size_of "$path")
    min=$(min_size_of "$name")
    local hint="Take it from the boot/ folder of raspberrypi/firmware (see make sdcard's help), or delete it from $CACHE_DIR to download it again."
    [ "$size" -ge "$min" ] || die "$path is $size bytes: not a real $name (at least $min bytes expected)" "$hint"
    magic=$(head -c 4 -- "$path" | od -An -tx1 | tr -d ' \n')
    case "$name" in
        start.elf)
            [ "$magic" = "7f454c46" ] || die "$path is not an ELF file (magic $magic): not a real start.elf" "$hint"
            ;;
        *.dtb)
            [ "$magic" = "d00dfeed" ] || die "$path is not a flattened device tree (magic $magic, expected d00dfeed)" "$hint"
            local total
            total=$(be32 "$path" 4)
            [ "$total" = "$size" ] || die "$path: the device tree's header says $total bytes, the file has $size (truncated or padded)" "$hint"
            ;;
    esac
}

# ---------------------------------------------------------------- tools
ensure_tools() {
    local missing=() t
    for t in sfdisk mkfs.vfat mcopy; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ ${#missing[@]} -eq 0 ] && return
    local pkgs=(fdisk dosfstools mtools)
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        printf '%s: missing %s; running apt-get install -y %s\n' \
            "$PROG" "${missing[*]}" "${pkgs[*]}" >&2
        if ! apt-get install -y "${pkgs[@]}"; then
            apt-get update || true
            apt-get install -y "${pkgs[@]}" || die "apt-get install -y ${pkgs[*]} failed"
        fi
        for t in "${missing[@]}"; do
            command -v "$t" >/dev/null 2>&1 || die "$t still missing after apt-get install"
        done
        return
    fi
    die "missing tools: ${missing[*]}" \
        "Install them with: sudo apt-get install -y ${pkgs[*]}"
}

size_of() { stat -c %s -- "$1"; }

print_files() { # NAME=SOURCE pairs
    local pair name src
    for pair in "$@"; do
        name=${pair%%=*}
        src=${pair#*=}
        printf '  %-26s %10s bytes\n' "$name" "$(size_of "$src")"
    done
}

# ---------------------------------------------------------------- main
check_kernel
check_config
if [ "$files_only" -eq 1 ]; then
    [ -e "$dest_dir" ] || die "destination not found: $dest_dir" \
        "Mount the SD card's boot (FAT) partition and pass its mount point, e.g. DEST=/media/\$USER/boot."
    [ -d "$dest_dir" ] || die "destination is not a directory: $dest_dir"
    [ -w "$dest_dir" ] || die "destination is not writable: $dest_dir"
fi
fw_dir=""
resolve_firmware

files=("kernel8.img=$kernel" "config.txt=$CONFIG_TXT" "cmdline.txt=$CMDLINE_TXT")
for f in "${FIRMWARE_FILES[@]}"; do
    files+=("$f=$fw_dir/$f")
done
missing_dtbs=()
for f in "${DTB_FILES[@]}"; do
    if [ -s "$fw_dir/$f" ]; then
        files+=("$f=$fw_dir/$f")
    else
        missing_dtbs+=("$f")
    fi
done
for pair in "${files[@]}"; do
    case "${pair%%=*}" in
        kernel8.img | config.txt | cmdline.txt) ;;
        *) check_boot_file "${pair%%=*}" "${pair#*=}" ;;
    esac
done
if [ ${#missing_dtbs[@]} -gt 0 ]; then
    printf '%s: warning: not in %s: %s\n' "$PROG" "$fw_dir" "${missing_dtbs[*]}" >&2
    printf '  Without its device tree a board gets cmdline.txt through ATAGS only; copy the\n' >&2
    printf '  .dtb files from the same boot/ folder as start.elf.\n' >&2
fi

# backup_of FILE: FILE.bak, or FILE.bak.1, .2 ... (an earlier backup is never overwritten).
backup_of() {
    local b="$1.bak" n=1
    while [ -e "$b" ]; do
        b="$1.bak.$n"
        n=$((n + 1))
    done
    printf '%s' "$b"
}

if [ "$files_only" -eq 1 ]; then
    # The card's own config.txt and cmdline.txt are kept when they differ from ours.
    for name in config.txt cmdline.txt; do
        src=$CONFIG_TXT
        [ "$name" = cmdline.txt ] && src=$CMDLINE_TXT
        if [ -f "$dest_dir/$name" ] && ! cmp -s -- "$dest_dir/$name" "$src"; then
            bak=$(backup_of "$dest_dir/$name")
            cp -p -- "$dest_dir/$name" "$bak" || die "could not back up $dest_dir/$name"
            printf 'kept the card'"'"'s %s as %s\n' "$name" "$bak"
        fi
    done
    for pair in "${files[@]}"; do
        cp -- "${pair#*=}" "$dest_dir/${pair%%=*}" || die "copying ${pair%%=*} to $dest_dir failed"
    done
    sync
    printf 'boot files copied to %s (firmware from %s):\n' "$dest_dir" "$fw_dir"
    print_files "${files[@]}"
    printf 'Unmount the card before removing it.\n'
    exit 0
fi

if [ -e "$output" ] && [ ! -f "$output" ]; then
    die "output exists and is not a regular file: $output" \
        "This writes an image file; copy it to the card afterwards with dd."
fi
ensure_tools

out_dir=$(dirname -- "$output")
[ -d "$out_dir" ] || die "output directory not found: $out_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/mksdcard.XXXXXX")
tmp_out=$(mktemp "$out_dir/.$(basename -- "$output").XXXXXX")
cleanup() { rm -rf -- "$work"; rm -f -- "$tmp_out"; }
trap cleanup EXIT

part="$work/part.img"
log="$work/log"

# Disk image with one partition: start 2048, rest of the disk, type 0x0C, bootable.
truncate -s "$((IMAGE_SECTORS * SECTOR))" "$tmp_out"
printf 'label: dos\nunit: sectors\nstart=%d, size=%d, type=c, bootable\n' \
    "$PART_START" "$PART_SECTORS" |
    sfdisk --no-reread --no-tell-kernel -q "$tmp_out" >"$log" 2>&1 ||
    die "sfdisk failed:" "$(cat "$log")"

# FAT32 filesystem in a separate file, filled with mtools, then placed at the partition.
# -h: "hidden sectors" in the boot sector = the partition's start, as on a real card.
# -S 512 -s 1: 512-byte sectors, one sector per cluster, as Raspberry Pi OS images use
# (some boot ROMs, e.g. early CM3s, fail on FAT32 with larger clusters).
mkfs.vfat -F 32 -n BOOT -S 512 -s 1 -h "$PART_START" -C "$part" "$PART_KB" >"$log" 2>&1 ||
    die "mkfs.vfat failed:" "$(cat "$log")"
for pair in "${files[@]}"; do
    mcopy -i "$part" -- "${pair#*=}" "::${pair%%=*}" >"$log" 2>&1 ||
        die "mcopy of ${pair%%=*} failed:" "$(cat "$log")"
done
dd if="$part" of="$tmp_out" bs="$SECTOR" seek="$PART_START" conv=notrunc status=none ||
    die "dd of the partition into the image failed"

chmod 644 "$tmp_out"
mv -f -- "$tmp_out" "$output"

printf 'SD-card image: %s\n' "$output"
printf '  size:        %d bytes (%d MiB)\n' "$(size_of "$output")" "$IMAGE_MIB"
printf '  partition 1: start sector %d (byte offset %d), %d sectors, FAT32 (type 0x0C), bootable\n' \
    "$PART_START" "$((PART_START * SECTOR))" "$PART_SECTORS"
printf '  firmware:    %s\n' "$fw_dir"
printf 'files:\n'
print_files "${files[@]}"
printf 'Write it with: sudo dd if=%s of=/dev/sdX bs=4M conv=fsync status=progress\n' "$output"
