#!/usr/bin/env python3
"""`make test`: the host suite (swift test), every QEMU boot test, real programs on the
preload library (`make realworld QUICK=1`), the planted memory bugs against the preload
library's sampling detector (`make preload-kfence`) and the real programs again with
every allocation sampled (KMALLOC_SAMPLE=1), the preload library's per-thread cache
against the heap without it (`make preload-tcache`), about 20 configurations of `make matrix`
(scripts/matrix.py), a kernel of one's own built from
docs/your-kernel.md and from Examples/MinimalKernel and booted, `make docs` (no
undocumented public symbol), 60 s of heap fuzzing,
30 s of device-tree fuzzing and the host suite again under AddressSanitizer.

Each boot has a time limit. A boot fails on a FAIL line, a missing summary, a crash, a
hang or a non-zero exit status. The harness self-test boots the test kernel with a
deliberately failing case and passes only if that boot is reported as failing.
Ends with one line: `N passed, N failed` (and `, N skipped` when a board cannot be booted), counting each test once, in one unit (a test
case): each host test case, each guest case, each boot of the demo kernel, the harness
self-test, each real program of `make realworld QUICK=1` (and of its KMALLOC_SAMPLE=1
run), each case of `make preload-kfence` and of `make preload-tcache`, each consumer kernel, the
docs build, the fuzz run and the sanitizer run. A test-kernel boot counts its guest cases;
it adds one failure of its own only when the boot itself goes wrong beyond a failing
case (a crash, a hang, no summary, or an exit status that disagrees with the summary).
"""
import math
import os
import re
import shutil
import subprocess
import sys
import time

DT = ".build-dt"          # device trees and the initrd made for the firmware boots
INITRD_BYTES = 300_001    # an initrd whose end is not page aligned: 74 pages

# `make run`'s kernel (and the test kernel) bring up every core at boot: each prints its
# line, and the boot core how many are online.
CORES_ONLINE = [r"(?m)^cpu 1 online \(Cortex-A\d+, entered at EL\d\)$", r"(?m)^cpu 2 online \(", r"(?m)^cpu 3 online \(",
                r"(?m)^cores online: 4$"]

# The SMP stress (issue #15): every core runs 250,000 mixed operations of kmalloc/kfree,
# an object cache and page allocations, a third of its frees handed to another core
# (at least a quarter of all frees must cross cores); three seeds on every board. Each
# boot takes about 2 s under MTTCG on a 2-core host (README: All four cores).
SMP_SEEDS = {"virt": (1, 2, 3), "raspi3b": (1, 2, 3), "raspi4b": (1, 2, 3), "riscv64-virt": (1, 2)}
SMP_TIMEOUT = 300
# RISC-V has no broadcast TLB invalidation: every unmap of the kernel map stress is a
# remote fence through OpenSBI (IPIs to the other harts), ~12 ms each under QEMU on two
# host cores, so its private rounds are 200 per hart there (2,000 elsewhere).
SMP_EXTRA = {"riscv64-virt": ["vm-rounds=200"]}
SMP_OPS = 250_000
SMP_CHECKS = CORES_ONLINE + [r"(?m)^smp: \d+ ops on 4 cores, \d+ of \d+ frees cross-core, ok$"]

# riscv64 virt under OpenSBI: four harts started with SBI HSM.
HARTS_ONLINE = [r"(?m)^cpu 1 online \(RISC-V hart, entered at S-mode\)$", r"(?m)^cpu 2 online \(", r"(?m)^cpu 3 online \(",
                r"(?m)^cores online: 4$"]


def opensbi_check(out):
    """OpenSBI's own account of what S-mode may not touch (its banner's `Domain0
    RegionNN: start-end M: (...) S/U: ()` lines inside RAM), against the kernel's map:
    each such range lies in `no-map` (or `reserved`) runs, none in pages the kernel uses
    or hands out; and RAM between OpenSBI's regions and the kernel is free (the SBI
    firmware describes all it keeps)."""
    protected = [(int(a, 16), int(b, 16) + 1) for a, b in
                 re.findall(r"(?m)^Domain0 Region\d+ +: 0x([0-9a-f]+)-0x([0-9a-f]+) M: \([A-Z,]*\) S/U: \(\)$", out)]
    protected = [(a, b) for a, b in protected if a >= 0x80000000]
    if not protected:
        return "no OpenSBI domain region closed to S-mode inside RAM in the output (the banner is the oracle)"
    runs = [(kind, int(a, 16), int(b, 16)) for kind, a, b in
            re.findall(r"(?m)^  ([a-z-]+) +\[0x([0-9a-f]+), 0x([0-9a-f]+)\) \d+ pages", out)]
    for start, end in protected:
        for kind, a, b in runs:
            if a < end and start < b and kind not in ("no-map", "reserved"):
                return f"OpenSBI's region [{start:#x}, {end:#x}) overlaps the kernel's {kind} run [{a:#x}, {b:#x})"
        covered = sum(min(b, end) - max(a, start) for kind, a, b in runs
                      if kind in ("no-map", "reserved") and a < end and start < b)
        if covered != end - start:
            return f"OpenSBI's region [{start:#x}, {end:#x}) is not wholly reserved in the kernel's map"
    top = max(end for _, end in protected)
    kernel = next((a for kind, a, _ in runs if kind == "kernel"), None)
    if kernel is not None and top < kernel and not any(kind == "free" and a == top and b == kernel for kind, a, b in runs):
        return f"RAM [{top:#x}, {kernel:#x}) between OpenSBI and the kernel is not one free run"
    return None


OPENSBI_RESERVED = opensbi_check

NUMA = ["-object", "memory-backend-ram,id=m0,size=1G", "-object", "memory-backend-ram,id=m1,size=1G",
        "-numa", "node,memdev=m0", "-numa", "node,memdev=m1"]

BOOTS = [
    # (board, memory, product, extra semihosting args, expect success, timeout s, extra QEMU args, label, checks)
    # A check is a regex the output must match, or a function of the output returning an error or None.
    # The full case list runs once per board (raspi3b, virt 1G, raspi4b); the boots that
    # vary the memory map pass `quick` (no 100,000-operation model: it runs in a scenario
    # run of its own, whatever the map, and took ~11 s of every virt boot's ~18 s).
    ("raspi3b", "1G", "kernel", [], True, 60, [], "",
     [r"(?m)^SwiftKernelMemory: board raspi3b \(Raspberry Pi 3 Model B, 1024 MiB, revision 0xa02082\), entered at EL",
      *CORES_ONLINE]),
    ("virt", "1G", "kernel", [], True, 60, [], "", CORES_ONLINE),
    ("raspi3b", "1G", "testkernel", [], True, 300, [], "", []),
    ("virt", "128M", "testkernel", ["quick"], True, 300, [], "", []),
    ("virt", "1G", "testkernel", [], True, 300, [], "", []),
    ("virt", "4G", "testkernel", ["quick"], True, 600, [], "", []),
    ("virt", "1G", "testkernel", ["quick", "fail-on-purpose"], False, 300, [], "", []),
    # Firmware's memory as it really is (issue #12).
    # Both /memory nodes are read; they touch, so they are merged into one range, free
    # through the second node's end.
    ("virt", "2G", "testkernel", ["quick"], True, 300, NUMA, "two NUMA memory nodes",
     [r"(?m)^device tree at 0x[0-9a-f]+ \(\d+ bytes\): 2 RAM ranges,",
      r"(?m)^RAM \[0x40000000, 0xc0000000\) 2048 MiB, from the device tree$",
      r"(?m)^  free +\[0x[0-9a-f]+, 0xc0000000\) \d+ pages rw-$"]),
    ("virt", "1G", "testkernel.img", ["quick"], True, 300, ["-initrd", f"{DT}/initrd.img"], "raw image with -initrd",
     [r"(?m)^  initrd +\[0x[0-9a-f]+, 0x[0-9a-f]+\) 74 pages rw-$", r"initrd\n"]),
    ("virt", "1G", "testkernel", ["quick"], True, 300, ["-dtb", f"{DT}/virt-reserved.dtb"], "tree with /memreserve/ and /reserved-memory",
     [r"(?m)^  reserved +\[0x4c000000, 0x4c010000\) 16 pages rw-$",
      r"(?m)^  no-map +\[0x50000000, 0x50200000\) 512 pages --- not mapped$",
      r"(?m)^  reserved +\[0x51000000, 0x51004000\) 4 pages rw-$"]),
    ("virt", "1G", "testkernel.img", ["quick"], True, 300, ["-dtb", f"{DT}/virt-reserved.dtb"], "tree placed high, end not page aligned",
     [lambda out: dtb_region_check(out, high=True)]),
    ("raspi3b", "1G", "testkernel.img", ["quick"], True, 300, ["-dtb", f"{DT}/raspi3b.dtb"], "raw image with -dtb",
     [r"(?m)^RAM \[0x00000000, 0x3c000000\) 960 MiB, from the device tree$",
      r"(?m)^  reserved +\[0x00000000, 0x00001000\) 1 pages rw-$",
      r"(?m)^  no-map +\[0x3b000000, 0x3b001000\) 1 pages --- not mapped$",
      lambda out: dtb_region_check(out, high=False)]),
    # Raspberry Pi 4B (QEMU 9+): RAM below 1 GiB from the mailbox or the tree, above it from
    # the board revision.
    ("raspi4b", "2G", "kernel", [], True, 60, [], "",
     [r"(?m)^SwiftKernelMemory: board raspi4b \(Raspberry Pi 4 Model B, 2048 MiB, revision 0x[0-9a-f]+\), entered at EL",
      r"(?m)^RAM \[0x00000000, 0x3c000000\) 960 MiB, from the mailbox$",
      r"(?m)^RAM \[0x40000000, 0x80000000\) 1024 MiB, from the board revision$", *CORES_ONLINE]),
    ("raspi4b", "2G", "testkernel", [], True, 600, [], "", [r"(?m)^  free +\[0x[0-9a-f]+, 0x80000000\) \d+ pages rw-$"]),
    # The SD card's kernel8.img as the Pi firmware starts it: at 0x200000, at EL2, x0 = DTB.
    # Its cores 1-3 wait in QEMU's boot stub, as in the firmware's armstub on hardware, and
    # are released through the same spin table.
    ("raspi3b", "1G", "sdcard/kernel8.img", [], True, 60, ["-dtb", f"{DT}/raspi3b.dtb"], "SD card image as firmware loads it",
     [r"(?m)^SwiftKernelMemory: board raspi3b \(Raspberry Pi 3 Model B, 1024 MiB, revision 0xa02082\), entered at EL2, running at EL1$",
      *CORES_ONLINE]),
    ("raspi4b", "2G", "sdcard/kernel8.img", [], True, 60, ["-dtb", f"{DT}/raspi4b.dtb"], "SD card image as firmware loads it",
     [r"(?m)^SwiftKernelMemory: board raspi4b \(Raspberry Pi 4 Model B, 2048 MiB, revision 0x[0-9a-f]+\), entered at EL2, running at EL1$",
      *CORES_ONLINE]),
    ("raspi4b", "2G", "testkernel.img", ["quick"], True, 600, ["-dtb", f"{DT}/raspi4b.dtb"], "raw image with -dtb",
     [r"(?m)^RAM \[0x00000000, 0x3c000000\) 960 MiB, from the device tree$",
      r"(?m)^RAM \[0x40000000, 0x80000000\) 1024 MiB, from the board revision$",
      r"(?m)^  no-map +\[0x3b000000, 0x3b001000\) 1 pages --- not mapped$",
      lambda out: dtb_region_check(out, high=False)]),
    # RISC-V 64 (QEMU virt, OpenSBI, S-mode): the demo kernel with 128 MiB and 2 GiB,
    # the whole test kernel, four harts each time.
    ("riscv64-virt", "128M", "kernel", [], True, 60, [], "", [*HARTS_ONLINE, OPENSBI_RESERVED,
     r"(?m)^SwiftKernelMemory: board riscv64-virt, entered at S-mode, running at S-mode$",
     r"(?m)^RAM \[0x80000000, 0x88000000\) 128 MiB, from the device tree$"]),
    ("riscv64-virt", "2G", "kernel", [], True, 60, [], "", [*HARTS_ONLINE, OPENSBI_RESERVED,
     r"(?m)^RAM \[0x80000000, 0x100000000\) 2048 MiB, from the device tree$"]),
    ("riscv64-virt", "1G", "testkernel", [], True, 600, [], "", [*HARTS_ONLINE, OPENSBI_RESERVED]),
    # The raw image (the Linux RISC-V image header) as OpenSBI's next stage, with an initrd.
    ("riscv64-virt", "1G", "testkernel.img", ["quick"], True, 300, ["-initrd", f"{DT}/initrd.img"], "raw image with -initrd",
     [r"(?m)^  initrd +\[0x[0-9a-f]+, 0x[0-9a-f]+\) 74 pages rw-$", OPENSBI_RESERVED]),
] + [(board, "1G", "testkernel", ["smp", f"seed={seed}", f"ops={SMP_OPS}", *SMP_EXTRA.get(board, [])], True, SMP_TIMEOUT, [],
      "SMP stress",
      SMP_CHECKS if board != "riscv64-virt" else HARTS_ONLINE + SMP_CHECKS[-1:])
      for board in ("virt", "raspi3b", "raspi4b", "riscv64-virt") for seed in SMP_SEEDS[board]] + [
    # The sampling detector on: from /chosen/bootargs in the kernel; every allocation of
    # the SMP stress sampled (frees from other cores included) with no report.
    ("virt", "1G", "kernel", [], True, 60, ["-append", "kfence=1"], "kfence=1 in /chosen/bootargs",
     [r"(?m)^kfence: 255 slots at \[0x[0-9a-f]+, 0x[0-9a-f]+\), one allocation in 1 per cpu$"]),
    ("virt", "1G", "testkernel", ["smp", "seed=1", f"ops={SMP_OPS}", "kfence=1"], True, SMP_TIMEOUT, [],
     "SMP stress, every allocation sampled",
     SMP_CHECKS + [r"(?m)^kfence: 255 slots at \[0x[0-9a-f]+, 0x[0-9a-f]+\), one allocation in 1 per cpu$"])]

BOARDS = ("raspi3b", "raspi4b", "virt", "riscv64-virt")


def qemu_has(board):
    """Whether the installed QEMU models `board` (raspi4b needs QEMU 9.0 or later;
    riscv64-virt needs qemu-system-riscv64 and its OpenSBI)."""
    binary = "qemu-system-riscv64" if board == "riscv64-virt" else "qemu-system-aarch64"
    if shutil.which(binary) is None:
        return False
    listing = subprocess.run([binary, "-M", "help"], capture_output=True, text=True).stdout
    return re.search(rf"(?m)^{'virt' if board == 'riscv64-virt' else board}\s", listing) is not None


def dtb_region_check(out, high):
    """The tree the kernel found is reserved exactly: the pages from its first byte to
    its last, as the map shows; `high`: it lies above the heap and its end is not page
    aligned (how loaders pass it)."""
    found = re.search(r"(?m)^device tree at 0x([0-9a-f]+) \((\d+) bytes\)", out)
    heap = re.search(r"(?m)^heap \[0x([0-9a-f]+), 0x([0-9a-f]+)\)", out)
    if not found or not heap:
        return "no device tree or heap line"
    address, size = int(found.group(1), 16), int(found.group(2))
    start, end = address // 4096 * 4096, math.ceil((address + size) / 4096) * 4096
    line = re.search(r"(?m)^  dtb +\[0x%08x, 0x%08x\) %d pages rw-$" % (start, end, (end - start) // 4096), out)
    if not line:
        return f"no dtb region [{start:#x}, {end:#x}) in the map"
    if high and not (address >= int(heap.group(2), 16) and (address + size) % 4096 != 0):
        return f"tree at {address:#x} ({size} bytes) is not above the heap with an unaligned end"
    return None


def make_trees():
    """The device trees and initrd the firmware boots use: QEMU's own virt tree, dumped
    and given /memreserve/ and /reserved-memory (one no-map child, one unaligned) with
    dtc; the raspi3b tree from qemu/dt; an initrd of INITRD_BYTES."""
    os.makedirs(DT, exist_ok=True)
    with open(f"{DT}/initrd.img", "wb") as f:
        f.write(bytes((i * 7) & 0xFF for i in range(INITRD_BYTES)))
    subprocess.run(["qemu-system-aarch64", "-M", f"virt,dumpdtb={DT}/virt.dtb", "-cpu", "cortex-a53", "-m", "1G",
                    "-smp", "4", "-display", "none"], check=True, capture_output=True)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", f"{DT}/virt.dtb"], check=True,
                         capture_output=True, text=True).stdout
    dts = dts.replace("/dts-v1/;", "/dts-v1/;\n/memreserve/ 0x4c000000 0x10000;", 1)
    reserved = """
\treserved-memory {
\t\t#address-cells = <0x02>;
\t\t#size-cells = <0x02>;
\t\tranges;
\t\tsecure@50000000 {
\t\t\treg = <0x00 0x50000000 0x00 0x200000>;
\t\t\tno-map;
\t\t};
\t\tshared@51000123 {
\t\t\treg = <0x00 0x51000123 0x00 0x3000>;
\t\t};
\t};
"""
    dts = dts[:dts.rindex("};")] + reserved + "};\n"
    with open(f"{DT}/virt-reserved.dts", "w") as f:
        f.write(dts)
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", f"{DT}/virt-reserved.dtb", f"{DT}/virt-reserved.dts"], check=True)
    for board in ("raspi3b", "raspi4b"):
        subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", f"{DT}/{board}.dtb", f"qemu/dt/{board}.dts"], check=True)

passed = 0
failed = 0
skipped = 0   # boots this QEMU cannot run: never counted as passed


def count(ok, label):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(("PASS " if ok else "FAIL ") + label, flush=True)


def capture(cmd):
    """Runs `cmd`, stdout and stderr together as text."""
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def host_tests():
    global passed, failed
    print("== host: swift test", flush=True)
    started = time.time()
    proc = capture(["swift", "test"])
    out = proc.stdout
    sys.stdout.write("\n".join(l for l in out.splitlines() if not re.search(r"(started|passed after)", l)) + "\n")
    # Swift Testing prints one line per test case result; count test cases.
    case_pass = len(re.findall(r"^✔ Test (?!run with).* passed after", out, re.M))
    case_fail = len(re.findall(r"^✘ Test (?!run with).* failed after", out, re.M))
    if proc.returncode != 0 and case_fail == 0:
        case_fail = 1
    passed += case_pass
    failed += case_fail
    print(f"host: {case_pass} passed, {case_fail} failed ({time.time() - started:.0f} s)", flush=True)


def build(board, product):
    proc = capture(["make", "-s", product, f"BOARD={board}"])
    if proc.returncode != 0:
        print(proc.stdout)
    return proc.returncode == 0


def qemu_command(board, mem, product, args, extra=(), semihosting=True):
    """QEMU booting `.build-<board>/release/<product>` with semihosting arguments `args`
    (an ELF, or a raw image `<product>.img` booted like a Linux Image); without
    semihosting when `semihosting` is false."""
    machine = ["-M", board] if board.startswith("raspi") else ["-M", "virt", "-cpu", "cortex-a53", "-m", mem, "-smp", "4"]
    binary = "qemu-system-aarch64"
    if board == "riscv64-virt":
        machine = ["-M", "virt", "-m", mem, "-smp", "4", "-bios", "default"]
        binary = "qemu-system-riscv64"
    config = ["-semihosting-config", "enable=on,target=native,arg=" + product + "".join(",arg=" + a for a in args)]
    return [binary, *machine, *extra, "-display", "none", "-monitor", "none", "-serial", "stdio",
            *(config if semihosting else []), "-kernel", f".build-{board}/release/{product}"]


def boot(board, mem, product, args, expect_success, timeout, extra, what, checks):
    global passed, failed
    # The Pis have their fixed RAM; only virt is given -m.
    label = f"boot {product} on {board}" + (f" -m {mem}" if board.endswith("virt") else "") + (" " + " ".join(args) if args else "")
    if what:
        label += f" ({what})"
    print(f"== {label}", flush=True)
    out, status, elapsed = run_qemu(qemu_command(board, mem, product, args, extra), timeout)
    fails = re.findall(r"^FAIL .*$", out, re.M)
    summary = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    problems = []
    for check in checks:
        if callable(check):
            problem = check(out)
        else:
            problem = None if re.search(check, out) else f"output lacks {check}"
        if problem:
            problems.append(problem)
    if not re.search(r"(?m)^  total .*: exact$", out):
        problems.append("the map's closing line is not exact")
    for problem in problems:
        print("  " + problem)
    if os.path.basename(product).startswith("kernel"):
        ok = status == 0 and "heapCheck: ok" in out and "panic" not in out and not problems
        if not ok:
            print(out[-3000:])
        count(ok, f"{label}: exit {status}, {elapsed:.1f} s")
        return
    if expect_success:
        oks = re.findall(r"^ok   .*$", out, re.M)
        passed += len(oks)
        for line in fails:
            print(line)
        failed += len(fails)
        # The boot's own verdict: every case reported, summary agrees, exit status 0.
        consistent = summary is not None and int(summary.group(1)) == len(oks) and int(summary.group(2)) == len(fails)
        boot_ok = status == (0 if not fails else 1) and consistent and not problems
        if not boot_ok:
            print(out[-3000:])
            failed += 1
        print(("PASS " if boot_ok and not fails else "FAIL ") +
              f"{label}: exit {status}, {summary.group(0) if summary else 'no summary'}, {elapsed:.1f} s", flush=True)
    else:
        # The harness self-test: the deliberate failure must surface as a failing boot.
        noticed = status not in (0, None) and summary is not None and int(summary.group(2)) > 0 and \
            any("harness.fail_on_purpose" in f for f in fails)
        count(noticed, f"{label}: failing guest check detected (exit {status})")


def too_little_ram():
    """`make run BOARD=virt MEM=2M`: the image cannot be in RAM; a clear line and a
    non-zero exit, not a hang."""
    label = "make run BOARD=virt MEM=2M (the kernel outside RAM)"
    print(f"== {label}", flush=True)
    out, status, elapsed = run_qemu(["make", "-s", "run", "BOARD=virt", "MEM=2M"], 120)
    ok = status not in (0, None) and re.search(r"do not fit in -m 2M .*MEM=4M or more", out) is not None
    if not ok:
        print(out[-2000:] if status is not None else "  hung until the 120 s timeout")
    count(ok, f"{label}: exit {status}, {elapsed:.1f} s")


def gdb_session():
    """gdb-multiarch in batch mode against QEMU's gdb stub (-S: stopped at the first
    instruction): break in the Swift entry point `main`, continue, backtrace, then
    stop at `arch_exit` (after memInit) and run every kmem command of
    scripts/gdb/kmem.py, checking each one's output against the boot log."""
    global skipped
    label = "gdb session: break *main, bt, kmem map/page/heap/check/bt (virt)"
    gdb = shutil.which("gdb-multiarch")
    if not gdb:
        skipped += 1
        print(f"SKIP {label}: gdb-multiarch is not installed (scripts/install_tools.sh installs it)", flush=True)
        return
    print(f"== {label}", flush=True)
    port = 41000 + os.getpid() % 1000
    qemu = subprocess.Popen(qemu_command("virt", "1G", "kernel", [], extra=["-gdb", f"tcp::{port}", "-S"]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    commands = ["source scripts/gdb/kmem.py", f"target remote :{port}", "break *main", "continue", "bt", "delete 1",
                "break arch_exit", "continue", "kmem map", "kmem page 0x40200000", "kmem heap", "kmem check",
                "kmem bt", "kill"]
    args = [gdb, "-q", "-batch", "-nx", ".build-virt/release/kernel"]
    for command in commands:
        args += ["-ex", command]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\n(gdb hung until the 120 s timeout)"
    finally:
        qemu.kill()
        serial = qemu.communicate()[0].decode(errors="replace").replace("\r", "")
    kernel_line = re.search(r"(?m)^  kernel +\[0x[0-9a-f]+, 0x[0-9a-f]+\) \d+ pages r-x, r--, rw-, --- guard$", serial)
    checks = [
        # With four cores gdb names the thread: "Thread 1 hit Breakpoint 1, ...".
        (r"(?m)^(Thread \d+ hit )?Breakpoint 1, (0x[0-9a-f]+ in )?\w*main \(", "the breakpoint in main was not hit"),
        (r"(?m)^#0 .*main", "no backtrace from main"),
        (re.escape(kernel_line.group(0)) if kernel_line else r"^\b$", "kmem map differs from the boot log's kernel line"),
        (r"(?m)^  total \d+ pages = \d+ bytes; firmware's RAM \d+ bytes: exact$", "kmem map has no exact total"),
        (r"(?m)^page 0x40200000: entry \d+, owner kernel", "kmem page does not name the kernel as the owner"),
        (r"(?m)^claimed bytes +1048576$", "kmem heap lacks the initial 1 MiB"),
        (r"(?m)^heapCheck: ok$", "kmem check: heapCheck not ok"),
        (r"(?m)^page invariants: ok$", "kmem check: page invariants not ok"),
        (r"static Machine\.exit\(_:\)", "kmem bt did not demangle Machine.exit"),
    ]
    problems = [message for pattern, message in checks if not re.search(pattern, out)]
    for problem in problems:
        print("  " + problem)
    if problems:
        print("\n".join(line for line in out.splitlines() if "During symbol reading" not in line)[-3000:])
    count(not problems, label)


def wrong_address_boot(board):
    """The SD card's kernel8.img loaded where old firmware puts it (0x80000) instead of
    0x200000: one clear line on the UART, then it halts (the boot is ended after 10 s)."""
    label = f"kernel8.img on {board} loaded at 0x80000, linked at 0x200000"
    print(f"== {label}", flush=True)
    image = f".build-{board}/release/sdcard/kernel8.img"
    cmd = ["qemu-system-aarch64", "-M", board, "-display", "none", "-monitor", "none", "-serial", "stdio",
           "-device", f"loader,file={image},addr=0x80000,force-raw=on", "-device", "loader,addr=0x80000,cpu-num=0"]
    out, status, elapsed = run_qemu(cmd, 10)
    expected = (r"(?m)^SwiftKernelMemory: loaded at 0x0000000000080000, linked at 0x0000000000200000: "
                r"the image must be loaded at the address it was linked for")
    ok = re.search(expected, out) is not None and status is None
    if not ok:
        print(out[-2000:])
    count(ok, f"{label}: the line, then halted ({'still halted at 10 s' if status is None else f'exit {status}'})")


# Deliberate faults (issue #14): (board, fault argument, the report line expected).
FAULTS = [
    ("virt", "data-abort", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x96000004: data abort, FAR 0x1000000000000\)$"),
    ("virt", "undefined", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x2000000: undefined instruction, FAR 0x[0-9a-f]+\)$"),
    ("virt", "brk", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0xf2000001: BRK, FAR 0x[0-9a-f]+\)$"),
    ("raspi3b", "data-abort", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x96000004: data abort, FAR 0x1000000000000\)$"),
    # The kernel map's faults: the line after the report says what the tables hold at FAR.
    ("virt", "stack-overflow", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x96[0-9a-f]{6}: data abort, FAR 0x[0-9a-f]+\)\n"
                               r"  kernel stack overflow on cpu 0 \(guard page at 0x4000[0-9a-f]{8}\)$"),
    ("virt", "write-text", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x96[0-9a-f]{6}: data abort, FAR 0x40200040\)\n"
                           r"  permission fault: write to \.text \[0x40200000, 0x[0-9a-f]+\) r-x$"),
    ("virt", "exec-heap", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x86[0-9a-f]{6}: instruction abort, FAR 0x[0-9a-f]+\)\n"
                          r"  permission fault: instruction fetch from direct map \[0x[0-9a-f]+, 0x[0-9a-f]+\) rw-$"),
    ("virt", "vmalloc-guard", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x96[0-9a-f]{6}: data abort, FAR 0x4000[0-9a-f]{8}\)\n"
                              r"  guard page of vmalloc area \[0x4000[0-9a-f]{8}, 0x4000[0-9a-f]{8}\)$"),
    ("virt", "boot-stack-overflow", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(ESR 0x96[0-9a-f]{6}: data abort, FAR 0x[0-9a-f]+\)\n"
                                    r"  kernel stack overflow on cpu 0 \(guard page at 0x402[0-9a-f]{5}\)$"),
    ("raspi3b", "stack-overflow", r"(?m)^  kernel stack overflow on cpu 0 \(guard page at 0x4000[0-9a-f]{8}\)$"),
    ("raspi3b", "write-text", r"(?m)^  permission fault: write to \.text \[0x[0-9a-f]+, 0x[0-9a-f]+\) r-x$"),
    # RISC-V: a load from an address no Sv39 table can map, an illegal instruction, an
    # ebreak; each with scause decoded.
    ("riscv64-virt", "data-abort", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(scause 0xd: load page fault, stval 0x1000000000000\)$"),
    ("riscv64-virt", "undefined", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(scause 0x2: illegal instruction, stval 0x[0-9a-f]+\)$"),
    ("riscv64-virt", "brk", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(scause 0x3: breakpoint, stval 0x[0-9a-f]+\)$"),
    # The Sv39 kernel map's faults, described as on AArch64 (vmalloc from 128 GiB).
    ("riscv64-virt", "stack-overflow", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(scause 0xf: store page fault, stval 0x20[0-9a-f]{8}\)\n"
                                       r"  kernel stack overflow on cpu 0 \(guard page at 0x20[0-9a-f]{8}\)$"),
    ("riscv64-virt", "write-text", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(scause 0xf: store page fault, stval 0x80200040\)\n"
                                   r"  permission fault: write to \.text \[0x80200000, 0x[0-9a-f]+\) r-x$"),
    ("riscv64-virt", "exec-heap", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(scause 0xc: instruction page fault, stval 0x[0-9a-f]+\)\n"
                                  r"  permission fault: instruction fetch from direct map \[0x[0-9a-f]+, 0x[0-9a-f]+\) rw-$"),
    ("riscv64-virt", "vmalloc-guard", r"(?m)^exception: synchronous at 0x[0-9a-f]+ \(scause 0xf: store page fault, stval 0x20[0-9a-f]{8}\)\n"
                                      r"  guard page of vmalloc area \[0x20[0-9a-f]{8}, 0x20[0-9a-f]{8}\)$"),
    ("riscv64-virt", "boot-stack-overflow", r"(?m)^  kernel stack overflow on cpu 0 \(guard page at 0x802[0-9a-f]{5}\)$"),
]


# Planted memory bugs for the sampling detector (fault=kfence-BUG kfence=1 on virt, two
# of them on raspi3b too): (bug, the report line's start, the offset's words, the object's
# size and cache, whether a data abort reports it, whether the object was freed before,
# what the line ends with after the object).
OBJECT = r"0x[0-9a-f]+: {what} the {freed}{size}-byte object at 0x[0-9a-f]+ \({cache}, slot \d+\){tail}$"
KFENCE_BUGS = [
    ("oob-write", "kfence-oob-write: out-of-bounds write at", "1 byte right of", 32, "kmalloc", True, False),
    ("oob-read", "kfence-oob-read: out-of-bounds read at", "1 byte right of", 32, "kmalloc", True, False),
    ("underflow-write", "kfence-oob-write: out-of-bounds write at", "4 bytes left of", 48, "kmalloc", True, False),
    ("underflow-read", "kfence-oob-read: out-of-bounds read at", "1 byte left of", 48, "kmalloc", True, False),
    ("uaf-write", "kfence-uaf-write: use-after-free write at", "byte 8 of", 64, "kmalloc", True, True),
    ("uaf-read", "kfence-uaf-read: use-after-free read at", "the start of", 64, "kmalloc", True, True),
    ("double-free", "kfence-double-free: double free of", "the start of", 64, "kmalloc", False, True),
    ("invalid-free", "kfence-invalid-free: invalid free of", "byte 16 of", 64, "kmalloc", False, False),
    ("canary", "kfence-canary: canary bytes overwritten at", "1 byte right of", 13, "kmalloc", False, False),
    ("cache-oob-write", "kfence-oob-write: out-of-bounds write at", "1 byte right of", 48, "object cache #\\d+", True, False),
    ("cache-uaf-read", "kfence-uaf-read: use-after-free read at", "byte 40 of", 80, "object cache #\\d+", True, True),
    ("cache-double-free", "kfence-double-free: double free of", "the start of", 96, "object cache #\\d+", False, True),
    ("cache-wrong-free", "kfence-invalid-free: invalid free of", "the start of", 64, "kmalloc", False, False,
     ", freed as another cache's object"),
    ("realloc-uaf", "kfence-uaf-read: use-after-free read at", "byte 8 of", 40, "kmalloc", True, True),
    ("aligned-oob-write", "kfence-oob-write: out-of-bounds write at", "29 bytes right of", 100, "kmalloc", True, False),
    ("calloc-oob-read", "kfence-oob-read: out-of-bounds read at", "13 bytes right of", 100, "kmalloc", True, False),
]


def kfence_boot(bug, line, what, size, cache, faults, freed, tail="", board="virt"):
    """A planted bug with every allocation sampled: the detector's report line (its key,
    the offset, the object's size and cache), the allocation stack (and the free's), which
    scripts/symbolize resolves to the planting function, and exit status 4."""
    label = f"fault=kfence-{bug} kfence=1 on {board}"
    print(f"== {label}", flush=True)
    out, status, elapsed = run_qemu(qemu_command(board, "1G", "testkernel", [f"fault=kfence-{bug}", "kfence=1"]), 60)
    problems = []
    if status != 4:
        problems.append(f"exit status {status}, expected 4")
    expected = "(?m)^" + re.escape(line) + " " + OBJECT.format(what=re.escape(what), freed="freed " if freed else "",
                                                              size=size, cache=cache, tail=re.escape(tail))
    if not re.search(expected, out):
        problems.append("no report line matching " + expected)
    data_abort = (r"\(scause 0x[df]: (load|store) page fault, stval 0x[0-9a-f]+\)" if board == "riscv64-virt"
                  else r"\(ESR 0x96[0-9a-f]{6}: data abort, FAR 0x[0-9a-f]+\)")
    if faults and not re.search(r"(?m)^exception: synchronous at 0x[0-9a-f]+ " + data_abort + "$", out):
        problems.append("no data abort reported before the detector's line")
    stacks = ["allocated"] + (["freed"] if freed else [])
    for stack in stacks:
        if not re.search(rf"(?m)^  {stack} on cpu 0, backtrace:( 0x[0-9a-f]+)+$", out):
            problems.append(f"no {stack} stack")
    if not problems:
        lines = subprocess.run([sys.executable, "scripts/symbolize", f".build-{board}/release/testkernel"], input=out,
                               capture_output=True, text=True).stdout
        sections = re.split(r"(?m)^(allocated on cpu 0:|freed on cpu 0:|exception at .*)$", lines)
        named = {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}
        for stack in stacks:
            if "plant(_:)" not in named.get(f"{stack} on cpu 0:", ""):
                problems.append(f"scripts/symbolize did not name plant(_:) in the {stack} stack:\n" + lines)
    for problem in problems:
        print("  " + problem)
    if problems:
        print(out[-2500:])
    count(not problems, f"{label}: exit {status}, {elapsed:.1f} s")


# The memory modules name no architecture: what one architecture needs lives in
# Sources/Arch and Sources/ArchSupport (docs/architectures.md).
MEMORY_MODULES = ["PageFrames", "KernelHeap", "MemInit", "KernelSync", "KernelSyncAtomics", "KernelMemory", "VirtualMemory"]
ARCHITECTURE_WORDS = re.compile(r"aarch64|arm64|armv[78]|\barm\b|risc-?v|\bsv39\b|tpidr|ldaxr|stlxr|\bEL[0-3]\b|tlbi|"
                                r"\bmair|ttbr|x86|cortex|\bpsci\b|mpidr|sfence|\bsatp\b|opensbi|\bsbi\b|\bhart", re.I)


def architecture_names_check():
    """No architecture is named in the memory modules' sources (code, comments and
    their DocC catalogs): one test."""
    label = "no architecture named in " + ", ".join(MEMORY_MODULES)
    print(f"== {label}", flush=True)
    found = []
    for module in MEMORY_MODULES:
        for folder, _, files in os.walk(os.path.join("Sources", module)):
            for name in files:
                path = os.path.join(folder, name)
                with open(path, errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        if ARCHITECTURE_WORDS.search(line):
                            found.append(f"  {path}:{number}: {line.strip()[:120]}")
    for line in found[:20]:
        print(line)
    count(not found, f"{label}: {len(found)} lines name one")


def softfloat_check():
    """The riscv64 kernel's own soft-float routines against the host's hardware
    (scripts/softfloat_check.py): one test."""
    label = "softfloat routines of the riscv64 kernel against the host's hardware"
    print(f"== {label}", flush=True)
    started = time.time()
    proc = subprocess.run([sys.executable, "scripts/softfloat_check.py"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    ok = proc.returncode == 0 and re.search(r"(?m)^softfloat: \d+ cases, 0 differ$", proc.stdout) is not None
    if not ok:
        print(proc.stdout[-2000:])
    count(ok, f"{label}: {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else 'no output'}, "
              f"{time.time() - started:.1f} s")


def run_qemu(cmd, timeout):
    """(output, exit status or None on a hang, seconds)."""
    started = time.time()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        return proc.stdout.decode(errors="replace").replace("\r", ""), proc.returncode, time.time() - started
    except subprocess.TimeoutExpired as e:
        return (e.stdout or b"").decode(errors="replace").replace("\r", ""), None, time.time() - started


def fault_boot(board, fault, expected):
    """The test kernel takes a deliberate exception: the report line, registers and a
    backtrace, then exit status 4 (semihosting). A hang is a failure of its own."""
    label = f"fault={fault} on {board}"
    print(f"== {label}", flush=True)
    out, status, elapsed = run_qemu(qemu_command(board, "1G", "testkernel", [f"fault={fault}"]), 60)
    problems = []
    if status is None:
        problems.append("hung until the 60 s timeout")
    elif status != 4:
        problems.append(f"exit status {status}, expected 4")
    if not re.search(expected, out):
        problems.append("no report line matching " + expected)
    if not re.search(r"(?m)^  backtrace: 0x[0-9a-f]+( 0x[0-9a-f]+)+$", out) or \
            not re.search(r"(?m)^  (x0  |ra  )0x[0-9a-f]{16} ", out):
        problems.append("no registers or backtrace after the report line")
    if fault == "brk" and not problems:
        # scripts/symbolize turns the report into function file:line.
        lines = subprocess.run([sys.executable, "scripts/symbolize", f".build-{board}/release/testkernel"], input=out,
                               capture_output=True, text=True).stdout
        if not re.search(r"arch_fault_brk +Sources/ArchSupport/(aarch64|riscv64)/exception\.c:\d+", lines) or \
                not re.search(r"TestKernel_main +Sources/TestKernel/main\.swift:\d+", lines):
            problems.append("scripts/symbolize did not name arch_fault_brk and the test kernel's main:\n" + lines)
    for problem in problems:
        print("  " + problem)
    if problems:
        print(out[-2000:])
    count(not problems, f"{label}: exit {status}, {elapsed:.1f} s")


def canary_boot(board):
    """The test kernel overwrites core 3's stack canary (as an overflow of its stack
    would) and exits with 0: the exit path must report it with the core's number and
    turn the status into 5."""
    label = f"fault=stack-canary on {board}"
    print(f"== {label}", flush=True)
    out, status, elapsed = run_qemu(qemu_command(board, "1G", "testkernel", ["fault=stack-canary"]), 60)
    ok = status == 5 and re.search(r"(?m)^exit: stack canary of cpu 3 overwritten 0x[0-9a-f]+$", out) is not None
    if not ok:
        print(out[-2000:] if status is not None else "  hung until the 60 s timeout")
    count(ok, f"{label}: exit {status}, {elapsed:.1f} s")


def no_semihosting_boot(board):
    """`make run SEMIHOSTING=0`: the kernel finds no semihosting and powers off; QEMU
    must end with status 0 after the map, well before the timeout."""
    label = f"kernel on {board} without semihosting (make run SEMIHOSTING=0)"
    print(f"== {label}", flush=True)
    out, status, elapsed = run_qemu(qemu_command(board, "1G", "kernel", [], semihosting=False), 60)
    ok = status == 0 and "bye" in out and re.search(r"(?m)^  total .*: exact$", out) is not None
    if not ok:
        print(out[-2000:] if status is not None else "  hung until the 60 s timeout")
    count(ok, f"{label}: exit {status}, {elapsed:.1f} s")


def machine_configuration_boots():
    """Issue #29's cores, firmware and UART: the kernel on virt as QEMU enters it at EL3
    (secure=on, no firmware: no /psci, every core started at the entry) and at EL2, with
    17 cores (GICv3: core 16 is MPIDR 0x100), with and without semihosting; and every
    board under -d guest_errors (the PL011 enabled: nothing reported). Self-contained:
    its own QEMU command lines."""
    def virt(options, smp, semihosting=True, extra=()):
        config = ["-semihosting-config", "enable=on,target=native,arg=kernel"] if semihosting else []
        return ["qemu-system-aarch64", "-M", "virt" + options, "-cpu", "cortex-a53", "-m", "1G", "-smp", str(smp),
                *extra, "-display", "none", "-monitor", "none", "-serial", "stdio", *config,
                "-kernel", ".build-virt/release/kernel"]
    halt_line = r"(?m)^power-off: no semihosting and no PSCI in the device tree; halted$"
    # (label, command, timeout, expected exit status (None: halts, killed at the timeout), required lines)
    cases = [
        ("virt secure=on gic-version=3 -smp 17", virt(",secure=on,gic-version=3", 17), 60, 0,
         [r"(?m)^cores online: 17$", r"(?m)^cpu 16 online \(Cortex-A53, entered at EL3\)$", r"(?m)^bye$"]),
        ("virt virtualization=on gic-version=3 -smp 17", virt(",virtualization=on,gic-version=3", 17), 60, 0,
         [r"(?m)^cores online: 17$", r"(?m)^cpu 16 online \(Cortex-A53, entered at EL2\)$", r"(?m)^bye$"]),
        ("virt secure=on -smp 4 without semihosting", virt(",secure=on", 4, semihosting=False), 10, None,
         [r"(?m)^cores online: 4$", r"(?m)^bye$", halt_line]),
        ("virt virtualization=on -smp 4 without semihosting", virt(",virtualization=on", 4, semihosting=False), 60, 0,
         [r"(?m)^cores online: 4$", r"(?m)^bye$"]),
        ("virt -d guest_errors", virt("", 4, extra=("-d", "guest_errors")), 60, 0, [r"(?m)^cores online: 4$"]),
    ]
    for board in ("raspi3b", "raspi4b"):
        if qemu_has(board):
            cases.append((f"{board} -d guest_errors", qemu_command(board, "1G", "kernel", [], extra=("-d", "guest_errors")),
                          60, 0, [r"(?m)^cores online: 4$"]))
    for label, cmd, timeout, expected, checks in cases:
        print(f"== {label}", flush=True)
        out, status, elapsed = run_qemu(cmd, timeout)
        missing = [c for c in checks if re.search(c, out) is None]
        ok = status == expected and not missing and "disabled UART" not in out
        if not ok:
            print(out[-2000:], "\n  missing:", missing)
        count(ok, f"{label}: exit {status}, {elapsed:.1f} s")


def fuzz(seconds, target="fuzz", name="heapfuzz"):
    """`make <target>` for `seconds`: passes when libFuzzer ends without a finding."""
    print(f"== fuzz: {name} for {seconds} s (libFuzzer + AddressSanitizer)", flush=True)
    started = time.time()
    proc = capture(["make", "-s", target, f"SECONDS={seconds}"])
    out = proc.stdout
    runs = re.search(r"stat::number_of_executed_units:\s+(\d+)", out)
    # A build without coverage instrumentation would "pass" without exploring anything.
    instrumented = re.search(r"INITED cov: [1-9]", out) is not None
    ok = proc.returncode == 0 and runs is not None and instrumented
    if not ok:
        print(out[-4000:] if instrumented else "libFuzzer saw no coverage: the fuzz build lacks -sanitize-coverage (FUZZ_COVERAGE in the Makefile)\n" + out[-2000:])
    count(ok, f"{name} {seconds} s: {runs.group(1) if runs else '?'} inputs, exit {proc.returncode}, "
              f"{time.time() - started:.0f} s with the build")


def asan_tests():
    """The host suite under AddressSanitizer: passes when `swift test` does."""
    print("== host: swift test --sanitize=address", flush=True)
    started = time.time()
    proc = capture(["make", "-s", "asan-test"])
    out = proc.stdout
    cases = len(re.findall(r"^✔ Test (?!run with).* passed after", out, re.M))
    ok = proc.returncode == 0 and "Sanitizer" not in out
    if not ok:
        print(out[-4000:])
    count(ok, f"host tests under AddressSanitizer: {cases} cases, exit {proc.returncode}, {time.time() - started:.0f} s")


def tsan_tests():
    """The thread tests (locks, SMP stress with 2/4/8 threads) under ThreadSanitizer:
    passes when they pass and TSan reports nothing."""
    print("== host: swift test --sanitize=thread (thread tests)", flush=True)
    started = time.time()
    proc = capture(["make", "-s", "tsan-test"])
    out = proc.stdout
    cases = len(re.findall(r"^✔ Test (?!run with).* passed after", out, re.M))
    ok = proc.returncode == 0 and "ThreadSanitizer" not in out and cases > 0
    if not ok:
        print(out[-6000:])
    count(ok, f"thread tests under ThreadSanitizer: {cases} cases, exit {proc.returncode}, {time.time() - started:.0f} s")


def realworld():
    """`make realworld QUICK=1`: real programs with the preload library (the same
    KernelHeap and PageFrames sources in Embedded Swift for x86_64 Linux) and with glibc;
    each program is one test, failing when its output or exit status differs, it
    reports bad input, or the library was not loaded."""
    print("== realworld: real programs on libkmalloc.so against glibc (quick)", flush=True)
    started = time.time()
    global preload_built
    built = capture(["make", "-s", "preload"])
    preload_built = built.returncode == 0
    if built.returncode != 0:
        print(built.stdout[-3000:])
        count(False, "build the preload library (make preload)")
        return
    proc = capture([sys.executable, "scripts/realworld.py", "--quick"])
    tally_runner(proc.stdout, proc.returncode, "realworld", "programs", started)


def tally_runner(out, returncode, label, what, started):
    """Counts a sub-runner's `PASS`/`FAIL`/`SKIP` lines, one test each, and prints its
    output without its own closing count (this harness's last line is the only total).
    A runner that failed without a FAIL line, or passed nothing, is one failure more."""
    global passed, failed, skipped
    print(re.sub(r"(?m)^\d+ passed, \d+ failed.*\n?", "", out).rstrip())
    passes = re.findall(r"^PASS ", out, re.M)
    fails = re.findall(r"^FAIL ", out, re.M)
    skips = re.findall(r"^SKIP ", out, re.M)
    passed += len(passes)
    failed += len(fails)
    skipped += len(skips)
    if returncode != 0 and not fails or not passes:
        count(False, f"{label} ended with exit {returncode} and {len(passes)} passing {what}")
    print(f"{label}: {len(passes)} passed, {len(fails)} failed, {len(skips)} skipped ({time.time() - started:.0f} s)", flush=True)


preload_built = False


def preload_kfence():
    """The preload library's sampling detector: `make preload-kfence` (the planted
    memory bugs of Preload/kfence_test.c and its clean programs, KMALLOC_SAMPLE=1, each
    case one test), then the quick real programs with KMALLOC_SAMPLE=1 (each one test,
    as in realworld: output and exit status as glibc's, and no report)."""
    print("== preload-kfence: planted memory bugs against libkmalloc.so's sampling detector (KMALLOC_SAMPLE=1)", flush=True)
    started = time.time()
    if not preload_built:
        count(False, "preload-kfence: no preload library (make preload failed)")
        return
    proc = capture([sys.executable, "scripts/preload_kfence.py"])
    tally_runner(proc.stdout, proc.returncode, "preload-kfence", "cases", started)

    print("== realworld with KMALLOC_SAMPLE=1: real programs, every allocation sampled while the pool has room", flush=True)
    started = time.time()
    proc = capture([sys.executable, "scripts/realworld.py", "--quick", "--sample", "1"])
    out = re.sub(r"(?m)^(PASS|FAIL|SKIP) ", r"\1 sample=1 ", proc.stdout)
    tally_runner(out, proc.returncode, "realworld sample=1", "programs", started)


def preload_tcache():
    """The preload library's per-thread cache: `make preload-tcache` (Preload/tcache_test.c's
    cases with the cache on and with KMALLOC_TCACHE=0, each case one test)."""
    print("== preload-tcache: libkmalloc.so's per-thread cache against the heap without it", flush=True)
    started = time.time()
    if not preload_built:
        count(False, "preload-tcache: no preload library (make preload failed)")
        return
    proc = capture([sys.executable, "scripts/preload_tcache.py"])
    tally_runner(proc.stdout, proc.returncode, "preload-tcache", "cases", started)


def consumer():
    """A kernel of one's own on the package (scripts/check_consumer.py): a new package
    made of docs/your-kernel.md's files, and Examples/MinimalKernel, each built and
    booted on virt; one test each."""
    global passed, failed
    print("== consumer: a kernel of one's own, from the docs and from Examples/MinimalKernel", flush=True)
    proc = capture([sys.executable, "scripts/check_consumer.py"])
    out = proc.stdout
    print(out.rstrip())
    passes = re.findall(r"^PASS ", out, re.M)
    fails = re.findall(r"^FAIL ", out, re.M)
    passed += len(passes)
    failed += len(fails)
    if proc.returncode != 0 and not fails or len(passes) + len(fails) != 2:
        count(False, f"consumer checks ended with exit {proc.returncode}")


def matrix_subset():
    """About 20 configurations of `make matrix` (scripts/matrix.py SUBSET), one of each
    class: RAM sizes, NUMA nodes, cores, exception levels, initrds, trees, CPUs, boards,
    bad arguments, and three on riscv64-virt; each checked against the oracles there
    (the RAM QEMU was given, the scribble hashes, no guest error) and counted as one test."""
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    import matrix
    print("== matrix subset (scripts/matrix.py --subset)", flush=True)
    matrix.make_files()
    texts = matrix.image_texts()
    global skipped
    configs = [config for config in matrix.configurations() if config.name in matrix.SUBSET]
    unmodelled = matrix.unmodelled(configs)
    for config in configs:
        if config in unmodelled:
            skipped += 1
            print(f"SKIP matrix {config.name}: this QEMU does not model {config.board}", flush=True)
            continue
        ok, line = matrix.run_config(config, texts)
        count(ok, "matrix " + line)


def docs():
    """`make docs`: the DocC archive builds with no docc warning, every public symbol of
    the documented modules has a summary, and the catalog's bad-input table is README's."""
    print("== docs: make docs", flush=True)
    started = time.time()
    proc = capture(["make", "-s", "docs"])
    out = proc.stdout
    summary = re.search(r"check_doc_coverage: all (\d+) public symbols have a summary", out)
    ok = proc.returncode == 0 and summary is not None
    if not ok:
        print(out[-4000:])
    count(ok, f"make docs: {summary.group(1) if summary else '?'} public symbols documented, no docc warning, "
              f"{time.time() - started:.0f} s")


def main():
    global skipped
    if "--skip-host" not in sys.argv:
        host_tests()
    for board in BOARDS:
        if not qemu_has(board):
            print(f"SKIP building for {board}: this QEMU does not model it (raspi4b needs QEMU 9.0+)", flush=True)
            continue
        for product in ("kernel", "testkernel", "image"):
            print(f"== build {product} for {board}", flush=True)
            if not build(board, product):
                count(False, f"build {product} for {board}")
                print(f"{passed} passed, {failed} failed")
                return 1
    make_trees()
    for spec in BOOTS:
        if not qemu_has(spec[0]):
            skipped += 1
            print(f"SKIP boot {spec[2]} on {spec[0]}: this QEMU does not model {spec[0]} (needs QEMU 9.0+; "
                  f"scripts/install_qemu.sh installs it from Debian's backports)", flush=True)
            continue
        boot(*spec)
    for board, fault, expected in FAULTS:
        if qemu_has(board):
            fault_boot(board, fault, expected)
    for bug in KFENCE_BUGS:
        kfence_boot(*bug)
    # The same detector on a Pi's kernel map.
    for bug in KFENCE_BUGS[:1] + KFENCE_BUGS[5:6]:
        for board in ("raspi3b", "riscv64-virt"):
            if qemu_has(board):
                kfence_boot(*bug, board=board)
    for board in ("virt", "raspi3b", "riscv64-virt"):
        if qemu_has(board):
            canary_boot(board)
    for board in BOARDS:
        if qemu_has(board):
            no_semihosting_boot(board)
    for board in ("raspi3b", "raspi4b"):
        if qemu_has(board):
            wrong_address_boot(board)
    machine_configuration_boots()
    softfloat_check()
    architecture_names_check()
    too_little_ram()
    matrix_subset()
    gdb_session()
    consumer()
    if "--skip-host" not in sys.argv:
        docs()
    if "--skip-host" not in sys.argv:
        realworld()
        preload_kfence()
        preload_tcache()
        fuzz(60)
        fuzz(30, "fuzz-dtb", "dtbfuzz")
        asan_tests()
        tsan_tests()
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
