# mm-kernel: build, run and test the Raspberry Pi 3 memory-management kernel.
#
#   make          build kernel8.img (raw image for 0x80000) beside the ELF in target/
#   make qemu     boot it in QEMU raspi3b on this terminal (the main job), with the
#                 project's device tree; CMDLINE="sweep=off slub_debug" sets the kernel
#                 command line (up to 2,048 bytes)
#   make test     every test: import-cycle check, host unit/property tests, QEMU integration
#                 tests, SD image
#   make test-qemu K=name   only the QEMU tests whose name contains `name`
#   make sweep    boot headless, run the allocation sweep, power off; pass/fail
#   make report   boot headless with records=on and write target/report/index.html (charts);
#                 LOG=pi.log reads a saved UART log instead, LOG2=b.log puts a second run beside it
#   make mutants  mutation testing of the mm core (cargo-mutants), sharded and resumable:
#                 SHARD=k runs one shard of MUTANTS_SHARDS; docs/testing.md
#   make mutants-diff [BASE=main]   only the mutants in the change against BASE
#   make bench    instructions per operation of ours and each peer (callgrind), one table;
#                 criterion, ratios and spreads go to target/bench.log (V=1: to the terminal)
#   make bench-ir the instruction table only (make bench-ir-docs rewrites docs/performance.md and README.md's)
#   make bench-ablate  what each fast-path check and slab tunable costs (what-if builds, callgrind)
#   make docs-run rewrite the example output in README.md and docs/ from real runs in QEMU
#   make gdb      QEMU halted with a gdb stub on 127.0.0.1:$(GDB_PORT), gdb attached
#                 with symbols; QEMU ends with gdb (GDB_ARGS="-batch -ex ..." scripts it)
#   make chainboot DEV_SERIAL=/dev/ttyUSB0   send kernel8.img to the chainloader on
#                 the Pi over the UART, then be its terminal (Ctrl-] leaves); the loader's
#                 card: make chainboot-sdcard (image) or chainboot-files DEST=...
#   make objdump | readelf | nm | clippy | doc | sdcard | sdcard-files DEST=... | clean

TARGET      := aarch64-unknown-none-softfloat
PROFILE     := release
ELF         := target/$(TARGET)/$(PROFILE)/kernel
IMG         := kernel8.img
LOADER_ELF  := target/$(TARGET)/$(PROFILE)/chainloader
LOADER_IMG  := chainloader.img
CHAINBOOT_SDCARD_IMG ?= sdcard-chainboot.img
DEV_SERIAL  ?=
CARGO       ?= cargo
# Cargo for the target: rustc's warning about the erratum feature, explained once
# (tools/cargo_target.py says why).
TCARGO       = $(PYTHON) tools/cargo_target.py $(CARGO)
PYTHON      ?= python3
HOST_TRIPLE  = $(shell rustc -vV | sed -n 's/^host: //p')
LLVM_BIN     = $(shell rustc --print sysroot)/lib/rustlib/$(HOST_TRIPLE)/bin
QEMU        ?= qemu-system-aarch64
# QEMU's default threading (one host thread per vCPU): idle cores sleep in wfi and cost
# nothing (tools/qemu_threading.py measures it against thread=single).
# mon:stdio: Ctrl-A X leaves QEMU, Ctrl-A C its monitor; Ctrl-C goes to the kernel.
# The project's device tree (tools/dts/, compiled by dtc) as the firmware passes one: the
# command line goes to /chosen/bootargs and may be 2,048 bytes; without -dtb QEMU writes
# ATAGS, whose text its own boot code overwrites past about 460 bytes.
DTS         := tools/dts/rpi-3-b-plus.dts
DTB         := target/rpi-3-b-plus.dtb
QEMU_ARGS   := -M raspi3b -kernel $(IMG) -dtb $(DTB) -serial mon:stdio -display none
CMDLINE     ?=
GDB_PORT    ?= 1234
GDB_ARGS    ?=
K           ?=
LOG         ?=
LOG2        ?=
FIRMWARE_DIR ?=
SDCARD_IMG  ?= sdcard.img


.PHONY: all build qemu test test-cycles test-host test-errata test-qemu test-sdcard test-gdb test-report report sweep docs-run bench bench-ir bench-ir-docs bench-ir-check bench-ablate bench-ablate-docs test-bench-ir mutants mutants-diff gdb objdump readelf nm clippy doc \
        fmt sdcard sdcard-files chainloader chainboot chainboot-sdcard chainboot-files clean ensure-qemu ensure-sdtools ensure-toolchain FORCE

all: $(IMG)

# The first cargo call installs the pinned toolchain, target and llvm-tools
# (rust-toolchain.toml); this makes sure of the last two on older rustups.
ensure-toolchain:
	@rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' || rustup component add llvm-tools
	@rustup target list --installed 2>/dev/null | grep -q '^$(TARGET)$$' || rustup target add $(TARGET)

$(IMG): ensure-toolchain FORCE
	$(TCARGO) build -p kernel --bin kernel --target $(TARGET) --$(PROFILE)
	$(PYTHON) tools/ksyms.py $(LLVM_BIN)/llvm-nm $(LLVM_BIN)/llvm-objcopy $(ELF)
	$(LLVM_BIN)/llvm-objcopy -O binary $(ELF) $(IMG)
	@echo "built $(IMG) ($$(stat -c %s $(IMG)) bytes) from $(ELF)"

build: $(IMG)

# The chainloader (chainloader/): a few KiB that go on the card as kernel8.img once.
$(LOADER_IMG): ensure-toolchain FORCE
	$(TCARGO) build -p chainloader --bin chainloader --target $(TARGET) --$(PROFILE)
	$(LLVM_BIN)/llvm-objcopy -O binary $(LOADER_ELF) $(LOADER_IMG)
	@echo "built $(LOADER_IMG) ($$(stat -c %s $(LOADER_IMG)) bytes) from $(LOADER_ELF)"

chainloader: $(LOADER_IMG)

ensure-qemu:
	@tools/ensure-qemu.sh

# What the SD-card image and its test need (sfdisk, mkfs.vfat, mtools), installed like QEMU.
ensure-sdtools:
	@tools/ensure-pkg.sh sfdisk fdisk
	@tools/ensure-pkg.sh mkfs.vfat dosfstools
	@tools/ensure-pkg.sh mdir mtools

$(DTB): $(DTS)
	@tools/ensure-pkg.sh dtc device-tree-compiler
	@mkdir -p $(dir $@)
	dtc -q -I dts -O dtb -o $@ $<

qemu: $(IMG) $(DTB) ensure-qemu
	$(QEMU) $(QEMU_ARGS) $(if $(CMDLINE),-append "$(CMDLINE)")

test: test-cycles test-host test-errata test-qemu test-sdcard test-gdb test-report test-bench-ir
	@echo "make test: all passed"

# No import cycle between the files of a kernel crate (each module uses only the ones
# below it: ARCHITECTURE.md's layers).
CYCLE_CHECKED := kernel/src kernel/mm/src kernel/records/src boot/src board/src chainloader/src \
                 kernel/consts/src
test-cycles:
	$(PYTHON) tools/modcycles.py --self-test
	$(PYTHON) tools/modcycles.py $(CYCLE_CHECKED)

# Every host test under cargo-nextest's time limit (.config/nextest.toml): a hanging test
# fails with its name. nextest does not run doctests: cargo test --doc does, under an
# outer timeout.
test-host:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest
	$(CARGO) nextest run --workspace
	timeout --kill-after=10 600 $(CARGO) test --workspace --doc

# Cortex-A53 r0p4 errata 835769/843419: no unpatched sequence in the linked kernel.
test-errata: $(IMG)
	$(PYTHON) tools/errata_scan.py --self-test
	$(PYTHON) tools/errata_scan.py $(LLVM_BIN)/llvm-objdump $(ELF)

# dtc compiles the Raspberry Pi 3B+ device tree (tools/dts/) for the firmware-style boot.
test-qemu: $(IMG) $(LOADER_IMG) ensure-qemu
	@tools/ensure-pkg.sh dtc device-tree-compiler
	$(PYTHON) tools/test_qemu.py --image $(IMG) --elf $(ELF) --loader $(LOADER_IMG) $(if $(K),-k $(K))

# make gdb twice with a batch-mode gdb: each reaches the CPU, no QEMU is left behind.
test-gdb: $(IMG) ensure-qemu
	@command -v gdb-multiarch >/dev/null 2>&1 || tools/ensure-pkg.sh gdb-multiarch gdb-multiarch
	tools/test_gdb.sh

test-sdcard: $(IMG) ensure-sdtools
	tools/sdcard/test_sdcard.sh $(IMG)

# Host benchmarks of the allocator core against buddy_system_allocator,
# linked_list_allocator, talc, mimalloc and the host malloc: criterion, its ratio table and
# the side-by-side spreads into target/bench.log (V=1 prints them), then the figure of
# record, instructions per operation counted by callgrind (tools/bench/ir_table.py, which
# also writes target/bench-ir.json).
ifeq ($(V),1)
BENCH_LOG :=
else
BENCH_LOG := >>target/bench.log 2>&1
endif
bench:
	@mkdir -p target && : >target/bench.log
	@$(if $(BENCH_LOG),echo "criterion, ratios and spreads: target/bench.log")
	$(CARGO) bench -p mm-bench --bench allocators $(BENCH_LOG)
	$(CARGO) run -q -p mm-bench --release --bin ratios $(BENCH_LOG)
	$(CARGO) run -q -p mm-bench --release --bin spread $(BENCH_LOG)
	$(PYTHON) tools/bench/ir_table.py

bench-ir:
	$(PYTHON) tools/bench/ir_table.py

# Every generated page from real runs of this image: README.md's run blocks
# (tools/readme_run.py), docs/console.md (tools/console_doc.py) and the marked output
# blocks of docs/*.md (tools/docs_run.py); the QEMU tests readme_output_is_a_real_run,
# console_doc_matches_help and docs_output_is_a_real_run check them.
docs-run: $(IMG) ensure-qemu
	@tools/ensure-pkg.sh dtc device-tree-compiler
	$(PYTHON) tools/readme_run.py --image $(IMG)
	$(PYTHON) tools/console_doc.py --image $(IMG)
	$(PYTHON) tools/docs_run.py --image $(IMG)

bench-ir-docs:
	$(PYTHON) tools/bench/ir_table.py --docs docs/performance.md --docs README.md

bench-ir-check:
	$(PYTHON) tools/bench/ir_table.py --check docs/performance.md --check README.md

# What the fast paths' checks and the slab's tunables cost: what-if builds of the committed
# tree counted by callgrind (tools/bench/ablate.py, about 2 minutes); -docs rewrites the
# tables in docs/performance.md.
bench-ablate:
	$(PYTHON) tools/bench/ablate.py

bench-ablate-docs:
	$(PYTHON) tools/bench/ablate.py --docs docs/performance.md

# The instruction tables quoted in README.md and docs/performance.md agree with a fresh
# callgrind count (within 3 %; counts do not move with the host's load), and every what-if
# edit of tools/bench/ablate.py still applies to the sources.
test-bench-ir: bench-ir-check
	$(PYTHON) tools/bench/ablate.py --check-edits --check docs/performance.md

# The report tool against the records crate, a recorded log, bad input and headless Chromium
# (Debian's chromium, installed on first use like QEMU).
test-report:
	$(PYTHON) tools/report/test_report.py

# The lab's results as a page: target/report/index.html (tools/report/make_report.py).
ifeq ($(LOG),)
report: $(IMG) ensure-qemu
	$(PYTHON) tools/report/make_report.py --image $(IMG) $(if $(CMDLINE),--cmdline "$(CMDLINE)") $(if $(LOG2),--log2 $(LOG2))
else
report:
	$(PYTHON) tools/report/make_report.py --log $(LOG) $(if $(LOG2),--log2 $(LOG2))
endif

# Mutation testing (tools/mutants.sh): installs cargo-mutants on first use; results in
# mutants.out/, missed share per module printed by tools/mutants_summary.py.
mutants:
	tools/mutants.sh

BASE ?= main
mutants-diff:
	tools/mutants.sh --diff $(BASE)

sweep: $(IMG) ensure-qemu
	@tools/ensure-pkg.sh dtc device-tree-compiler
	$(PYTHON) tools/qemu_run.py --image $(IMG) --sweep

gdb: $(IMG) ensure-qemu
	@command -v gdb-multiarch >/dev/null 2>&1 || tools/ensure-pkg.sh gdb-multiarch gdb-multiarch
	tools/gdb.sh $(QEMU) $(IMG) $(ELF) $(GDB_PORT) $(GDB_ARGS)

objdump: $(IMG)
	@tools/page.sh $(LLVM_BIN)/llvm-objdump -d -C --no-show-raw-insn $(ELF)

# rustup's llvm-tools ship llvm-readobj; --elf-output-style=GNU prints readelf's format.
readelf: $(IMG)
	@tools/page.sh $(LLVM_BIN)/llvm-readobj --elf-output-style=GNU --file-headers --program-headers --section-headers --symbols --demangle $(ELF)

nm: $(IMG)
	$(LLVM_BIN)/llvm-nm -n -C $(ELF)

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(TCARGO) clippy -p kernel -p consts -p boot -p board -p mm -p chainloader --target $(TARGET) -- -D warnings

fmt:
	$(CARGO) fmt --all

# The kernel's crates for the target (the UART, GPIO, mailbox, MMU and SMP code exists
# only there), with their private items: the documentation is for the kernel's developers.
doc: ensure-toolchain
	$(TCARGO) doc -p kernel -p consts -p boot -p board -p mm --no-deps --document-private-items --target $(TARGET)
	@echo "documentation in target/$(TARGET)/doc/kernel/index.html"

sdcard: $(IMG) ensure-sdtools
	FIRMWARE_DIR="$(FIRMWARE_DIR)" tools/sdcard/mksdcard.sh $(IMG) $(SDCARD_IMG)

sdcard-files: $(IMG) ensure-sdtools
	@test -n "$(DEST)" || { echo "usage: make sdcard-files DEST=/media/\$$USER/boot" >&2; exit 1; }
	FIRMWARE_DIR="$(FIRMWARE_DIR)" tools/sdcard/mksdcard.sh --files-only "$(DEST)" $(IMG)

chainboot: $(IMG) $(LOADER_IMG)
	@test -n "$(DEV_SERIAL)" || { echo "usage: make chainboot DEV_SERIAL=/dev/ttyUSB0 (the card holds the loader: make chainboot-sdcard)" >&2; exit 1; }
	$(PYTHON) tools/chainboot.py --device $(DEV_SERIAL) $(IMG)

chainboot-sdcard: $(LOADER_IMG) ensure-sdtools
	FIRMWARE_DIR="$(FIRMWARE_DIR)" tools/sdcard/mksdcard.sh $(LOADER_IMG) $(CHAINBOOT_SDCARD_IMG)

chainboot-files: $(LOADER_IMG) ensure-sdtools
	@test -n "$(DEST)" || { echo "usage: make chainboot-files DEST=/media/\$$USER/boot" >&2; exit 1; }
	FIRMWARE_DIR="$(FIRMWARE_DIR)" tools/sdcard/mksdcard.sh --files-only "$(DEST)" $(LOADER_IMG)

clean:
	$(CARGO) clean
	rm -f $(IMG) $(LOADER_IMG) $(SDCARD_IMG) $(CHAINBOOT_SDCARD_IMG)
