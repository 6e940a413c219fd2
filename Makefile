# SwiftKernelMemory: build, boot and test the Embedded Swift memory subsystem.
#   make run  [BOARD=raspi3b|raspi4b|virt|riscv64-virt] [MEM=1G] [SEMIHOSTING=0]   boot the kernel under QEMU, show the memory map
#   make test                                 host swift test + every QEMU boot test
#   make matrix [ONLY=text] [JOBS=2]         kernel + test kernel over 101 QEMU configurations, against QEMU's -m, hashes, -d guest_errors
#   make debug [BOARD=..]                     QEMU waits for gdb on :1234
#   make symbolize [BOARD=..] [ELF=..] < report   an exception report as function file:line
#   make bench [JSON=1] [ONLY=threads] [QUICK=1]  host benchmark against the seed list, glibc, jemalloc and mimalloc; instructions per pair (callgrind)
#   make bench-qemu                           guest instructions per operation (-icount)
#   make bench-plot                           PNG plots of `make bench` into docs/
#   make fuzz [SECONDS=60]                    libFuzzer + AddressSanitizer on the model run
#   make fuzz-dtb [SECONDS=60]                libFuzzer + AddressSanitizer on the device tree reader
#   make asan-test                            the host tests under AddressSanitizer (but the SMP stress)
#   make tsan-test                            the thread tests (locks, SMP stress) under ThreadSanitizer
#   make preload                              .build-preload/libkmalloc.so: the heap as an LD_PRELOAD malloc
#   make realworld [QUICK=1] [RUNS=3] [SAMPLE=N]  real programs with libkmalloc.so against glibc (SAMPLE: KMALLOC_SAMPLE)
#   make preload-kfence                       planted memory bugs against libkmalloc.so's sampling detector
#   make preload-tcache                       libkmalloc.so's per-thread cache against the heap without it
#   make docs                                 DocC API documentation into .build-docs/; fails on an undocumented public symbol
#   make example                              build Examples/MinimalKernel (a kernel of its own on the package) and boot it on virt

BOARD ?= raspi3b
MEM ?= 1G
SWIFT ?= swift
# The architecture each board is: its target triple and its QEMU.
TRIPLE_riscv64-virt = riscv64-none-none-eabi
QEMU_BINARY_riscv64-virt = qemu-system-riscv64
TRIPLE = $(or $(TRIPLE_$(BOARD)),aarch64-none-none-elf)
QEMU ?= $(or $(QEMU_BINARY_$(BOARD)),qemu-system-aarch64)
PYTHON ?= python3
SECONDS ?= 60

SCRATCH = .build-$(BOARD)
KERNEL = $(SCRATCH)/release/kernel
TESTKERNEL = $(SCRATCH)/release/testkernel
# The toolsets hold flags only; the board's linker script (and the common.ld it
# includes, found on the -L path) is named here by absolute path, so the build works
# from any folder (`make -C`).
LINKER_DIR = $(CURDIR)/Sources/ArchSupport/linker
EMBEDDED_BUILD = $(SWIFT) build --triple $(TRIPLE) --toolset $(CURDIR)/qemu/$(BOARD).json -c release \
  --package-path $(CURDIR) --scratch-path $(CURDIR)/$(SCRATCH) \
  -Xlinker -T -Xlinker $(LINKER_DIR)/$(BOARD).ld -Xlinker -L -Xlinker $(LINKER_DIR)

QEMU_raspi3b = -M raspi3b
QEMU_raspi4b = -M raspi4b
# virt with four cores, as the Pis have: QEMU starts the secondaries powered off and the
# kernel brings them up with PSCI CPU_ON (HVC, as /psci says).
QEMU_virt = -M virt -cpu cortex-a53 -m $(MEM) -smp 4
# riscv64 virt with four harts under OpenSBI (-bios default: QEMU's own build of it),
# which enters the kernel in S-mode at 0x80200000; the kernel starts the other harts
# with SBI HSM hart_start.
QEMU_riscv64-virt = -M virt -m $(MEM) -smp 4 -bios default
# SEMIHOSTING=0: QEMU without semihosting; the kernel finds that out at boot and powers
# off instead (PSCI on virt, the PM watchdog on the Pis), so QEMU still ends with 0.
SEMIHOSTING ?= 1
QEMU_FLAGS = $(QEMU_$(BOARD)) -display none -monitor none -serial stdio \
  $(if $(filter 0,$(SEMIHOSTING)),,-semihosting-config enable=on,target=native)

.PHONY: all kernel testkernel image run symbolize debug test matrix host-test qemu-test qemu tools bench bench-qemu bench-plot fuzz fuzz-dtb asan-test tsan-test preload realworld preload-kfence preload-tcache docs example clean

all: kernel

kernel:
	$(EMBEDDED_BUILD) --product kernel

testkernel:
	$(EMBEDDED_BUILD) --product testkernel

# Raw images with the arm64 Image header: QEMU (and loaders) boot them like Linux, with
# x0 = DTB and -initrd named in /chosen. On the Pis also the SD card's files:
# .build-<board>/release/sdcard/kernel8.img and config.txt (qemu/sdcard/<board>-config.txt).
OBJCOPY ?= $(shell command -v llvm-objcopy || echo $(dir $(shell command -v swift))llvm-objcopy)
image: kernel testkernel
	$(OBJCOPY) -O binary $(KERNEL) $(KERNEL).img
	$(OBJCOPY) -O binary $(TESTKERNEL) $(TESTKERNEL).img
	@if [ -f qemu/sdcard/$(BOARD)-config.txt ]; then \
	  mkdir -p $(SCRATCH)/release/sdcard && cp $(KERNEL).img $(SCRATCH)/release/sdcard/kernel8.img && \
	  cp qemu/sdcard/$(BOARD)-config.txt $(SCRATCH)/release/sdcard/config.txt && \
	  echo "SD card files: $(SCRATCH)/release/sdcard/kernel8.img and config.txt (README: boot on a real Raspberry Pi)"; fi

# QEMU with raspi4b (9.0+, from Debian's backports on Debian 12) and dtc, installed with
# apt-get when missing (scripts/install_qemu.sh).
qemu:
	@bash scripts/install_qemu.sh

# git, gcc, sqlite3, jq, xz and perl for `make realworld`, installed with apt-get when missing.
tools:
	@bash scripts/install_tools.sh

# A pasted exception report on stdin, symbolized against the image (scripts/symbolize).
ELF ?= $(KERNEL)
symbolize:
	@$(PYTHON) scripts/symbolize $(ELF)

run: qemu kernel
	@$(if $(filter virt riscv64-virt,$(BOARD)),$(PYTHON) scripts/check_ram.py $(KERNEL) $(MEM),true)
	$(QEMU) $(QEMU_FLAGS) -kernel $(KERNEL)

debug: qemu kernel
	@echo "QEMU is waiting for gdb: gdb-multiarch $(KERNEL) -ex 'source scripts/gdb/kmem.py' -ex 'target remote :1234' -ex 'break *main' -ex continue"
	@echo "  then: bt (or kmem bt, demangled), and after memInit: kmem map, kmem page ADDR, kmem heap, kmem check"
	$(QEMU) $(QEMU_FLAGS) -kernel $(KERNEL) -s -S

test: qemu tools
	$(PYTHON) scripts/run_tests.py

# Every configuration of scripts/matrix.py (docs/testing.md lists them): RAM sizes,
# NUMA nodes, cores, exception levels, initrds, trees, CPUs and boards (riscv64-virt
# among them), each checked against what QEMU was given. Needs the four boards' kernels,
# test kernels and images.
JOBS ?= 2
matrix: qemu
	$(MAKE) -s kernel testkernel image BOARD=raspi3b
	$(MAKE) -s kernel testkernel image BOARD=raspi4b
	$(MAKE) -s kernel testkernel image BOARD=virt
	$(MAKE) -s kernel testkernel image BOARD=riscv64-virt
	$(PYTHON) scripts/matrix.py --jobs $(JOBS) $(if $(ONLY),--only "$(ONLY)",)

host-test:
	$(SWIFT) test

qemu-test: qemu tools
	$(PYTHON) scripts/run_tests.py --skip-host

# jemalloc and mimalloc (which membench loads with dlopen) and valgrind come from Debian's
# packages when missing (scripts/install_bench_tools.sh; a failed install skips them).
# After membench (or alone with ONLY=instructions), scripts/bench_instructions.py counts
# instructions per malloc+free pair under callgrind, libkmalloc.so preloaded for the project
# (built when missing, as `make preload` does).
bench:
	@bash scripts/install_bench_tools.sh
	$(if $(filter instructions,$(ONLY)),,$(SWIFT) run -c release --scratch-path .build-bench membench $(if $(JSON),--json,) $(if $(ONLY),--only $(ONLY),) $(if $(QUICK),--quick,))
	$(if $(filter-out instructions,$(ONLY)),,@bash scripts/build_preload.sh >/dev/null)
	$(if $(filter-out instructions,$(ONLY)),,$(PYTHON) scripts/bench_instructions.py $(if $(JSON),--json,) $(if $(QUICK),--quick,))

bench-qemu: qemu
	$(PYTHON) scripts/bench_qemu.py $(if $(JSON),--json,)

# matplotlib comes from PyPI when it is missing.
bench-plot:
	@$(PYTHON) -c "import matplotlib" 2>/dev/null || $(PYTHON) -m pip install -q matplotlib
	$(SWIFT) run -c release --scratch-path .build-bench membench --json > docs/bench.jsonl
	$(PYTHON) scripts/bench_plot.py docs/bench.jsonl docs

# New inputs go to .build-fuzz/corpus, crashes to .build-fuzz/findings; Fuzz/corpus is
# the committed seed corpus (swift test replays it).
# swift build's --sanitize=fuzzer links libFuzzer but, with Swift 6.3 on a fresh build,
# hands the compiler no coverage instrumentation: without FUZZ_COVERAGE libFuzzer runs
# blind ("no interesting inputs"), so the coverage flags are named here.
FUZZ_COVERAGE = -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table
fuzz:
	$(SWIFT) build -c release --sanitize=fuzzer --sanitize=address --product heapfuzz \
	  --scratch-path .build-fuzz -Xswiftc -DFUZZING $(FUZZ_COVERAGE)
	mkdir -p .build-fuzz/corpus .build-fuzz/findings
	.build-fuzz/release/heapfuzz -max_total_time=$(SECONDS) -print_final_stats=1 \
	  -artifact_prefix=.build-fuzz/findings/ .build-fuzz/corpus Fuzz/corpus

# The device tree reader's fuzzer; seeds in Fuzz/dtb-corpus (QEMU's and the test trees,
# compacted by dtc), new inputs in .build-fuzz/dtb-corpus.
fuzz-dtb:
	$(SWIFT) build -c release --sanitize=fuzzer --sanitize=address --product dtbfuzz \
	  --scratch-path .build-fuzz -Xswiftc -DFUZZING $(FUZZ_COVERAGE)
	mkdir -p .build-fuzz/dtb-corpus .build-fuzz/findings
	.build-fuzz/release/dtbfuzz -max_total_time=$(SECONDS) -print_final_stats=1 -max_len=65536 \
	  -artifact_prefix=.build-fuzz/findings/dtb- .build-fuzz/dtb-corpus Fuzz/dtb-corpus

# LeakSanitizer skips only the XCTest runner's own objects (scripts/lsan.supp). The model
# test runs 10 of its 100 seeds (a seed takes ~16 s under ASan; `make fuzz` runs the model
# under ASan too, and the plain run has all 100). The
# SMP stress (2, 4 and 8 threads x 250,000 operations) is left to the plain run and to
# tsan-test: with it, this stage took 698 s of a fresh clone's make test (470 s before).
asan-test:
	KMEM_MODEL_SEEDS=10 LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp $(SWIFT) test --sanitize=address --scratch-path .build-asan \
	  --skip SMPStressTests

# The tests that run threads (the locks, the SMP stress with 2, 4 and 8 threads, four
# threads on one address space) under ThreadSanitizer; a report fails the run
# (TSAN_OPTIONS halt_on_error, exit code 66).
tsan-test:
	TSAN_OPTIONS="halt_on_error=1 exitcode=66" $(SWIFT) test --sanitize=thread --scratch-path .build-tsan \
	  --filter 'SMPStressTests|ConcurrentDoubleFreeTests|RaceTests|ReentryTests|LockTests|IndependentHeapsTests|AddressSpaceStressTests'

# KernelHeap and PageFrames in Embedded Swift for x86_64 Linux, with the C names from
# Preload/shim.c (scripts/build_preload.sh); `realworld` compares real programs' output,
# wall time and peak RSS with it preloaded and with glibc (scripts/realworld.py), the
# library's sampling detector at its default interval unless SAMPLE=N (KMALLOC_SAMPLE;
# SAMPLE_SLOTS=N: KMALLOC_SAMPLE_SLOTS); `preload-kfence` runs the planted memory bugs of
# Preload/kfence_test.c against the detector with KMALLOC_SAMPLE=1
# (scripts/preload_kfence.py); `preload-tcache` runs Preload/tcache_test.c's cases for
# the per-thread cache with it on and off (scripts/preload_tcache.py).
preload:
	bash scripts/build_preload.sh

realworld: preload tools
	$(PYTHON) scripts/realworld.py $(if $(QUICK),--quick,) $(if $(RUNS),--runs $(RUNS),) \
	  $(if $(SAMPLE),--sample $(SAMPLE),) $(if $(SAMPLE_SLOTS),--sample-slots $(SAMPLE_SLOTS),)

preload-kfence: preload
	$(PYTHON) scripts/preload_kfence.py

preload-tcache: preload
	$(PYTHON) scripts/preload_tcache.py

# The API documentation of the public modules, one combined DocC archive, made by
# swift-docc-plugin from the machine's local package copies: KMEM_DOCS=1 adds the plugin
# to Package.swift for this command only, so packages depending on this one never
# resolve it. docc's warnings (unresolved links, undocumented parameters) fail the run;
# so does a public symbol without a doc comment summary (scripts/check_doc_coverage.py,
# over the symbol graphs the plugin extracted), and a bad-input table in the KernelMemory
# catalog that differs from README's (scripts/check_bad_input_table.py).
DOC_MODULES = KernelSync PageFrames KernelHeap FlattenedDeviceTree MemInit KernelPlatform KernelMemory VirtualMemory TranslationFormats
DOCS = .build-docs
DOCS_ARCHIVE = $(DOCS)/SwiftKernelMemory.doccarchive
docs:
	$(PYTHON) scripts/check_bad_input_table.py
	KMEM_DOCS=1 $(SWIFT) package --scratch-path $(DOCS) --allow-writing-to-directory $(DOCS) \
	  generate-documentation $(addprefix --target ,$(DOC_MODULES)) \
	  --enable-experimental-combined-documentation --warnings-as-errors \
	  --output-path $(DOCS_ARCHIVE)
	$(PYTHON) scripts/check_doc_coverage.py $(addprefix --module ,$(DOC_MODULES)) $(DOCS)/*/extracted-symbols
	@echo "API documentation: $(DOCS_ARCHIVE) (open $(DOCS_ARCHIVE)/index.html through a web server,"
	@echo "  e.g. python3 -m http.server -d $(DOCS_ARCHIVE), then http://localhost:8000/documentation/kernelmemory)"

# A kernel of its own that depends on this package by path (docs/your-kernel.md):
# built with its own toolset and linker script, booted on virt; exits 0.
example: qemu
	$(PYTHON) scripts/check_consumer.py example

clean:
	rm -rf .build .build-raspi3b .build-raspi4b .build-virt .build-bench .build-fuzz .build-asan .build-dt .build-preload .build-docs
