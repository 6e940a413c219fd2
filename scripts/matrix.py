#!/usr/bin/env python3
"""`make matrix`: the kernel and the test kernel over many machine configurations, each
checked against oracles the kernel does not control.

    scripts/matrix.py [--jobs N] [--only SUBSTRING] [--list] [--subset]

A configuration boots the kernel (ELF) and the test kernel (`quick`, plus `scribble`
up to SCRIBBLE_LIMIT of RAM) and passes when every boot ends as expected:

- exit 0 with the checks below, or a defined refusal line and status (too little RAM,
  bad arguments); a hang is killed at the time limit and fails;
- the memory map's last line is `exact`, no `MISMATCH`, no `FAIL` line, and the test
  kernel's summary agrees with its lines;
- the firmware-RAM figure of that line equals the RAM QEMU was given: the `-m` of virt
  and riscv64-virt (or the NUMA nodes' sizes), raspi3b's 1 GiB less the 64 MiB
  VideoCore split (960 MiB), raspi3ap's 512 MiB less it (448 MiB), raspi4b's 960 MiB
  below 1 GiB plus 1 GiB above; on the boards sized by `-m`, every range of the map lies
  in RAM, from the board's RAM base;
- `scribble`: every range hashed at entry intact after every free page was written,
  the initrd's hash equal to the file's, the image's .text+.rodata hash equal to the
  ELF's;
- nothing on QEMU's stderr under `-d guest_errors`.

Prints one PASS/FAIL line per configuration (with the first problems) and a closing
`N passed, N failed` with the wall time. `--subset` runs the configurations make test
runs (SUBSET). Run from the repository root after `make kernel testkernel image` for
raspi3b, raspi4b, virt and riscv64-virt.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import struct
import subprocess
import sys
import time

DT = ".build-dt"
MATRIX_DT = ".build-dt/matrix"
SCRIBBLE_LIMIT = 2 << 30       # scribbling writes ~5 s per GiB under TCG
BOOT_TIMEOUT = 120             # seconds; every boot ends well before (a hang is killed)
HALT_TIMEOUT = 20              # seconds for a boot whose defined end is the halt line
HALT_LINE = "power-off: no semihosting and no PSCI in the device tree; halted"
MiB = 1 << 20
GiB = 1 << 30
VIDEOCORE_SPLIT = 64 * MiB     # QEMU's raspi vcram-size default
RASPI_CORES = 4


class Board:
    """A machine QEMU models: its binary and `-M` name, the build whose kernels it boots,
    the firmware QEMU runs first, where its RAM starts, and either the RAM and cores it
    always has or None for both (sized by the configuration's `-m`, `-smp` and NUMA
    nodes, with `cpu` as `-cpu` when there is one)."""

    def __init__(self, binary, machine, build, ram_base, firmware=(), ram=None, cores=None, cpu=None):
        self.binary, self.machine, self.build, self.ram_base = binary, machine, build, ram_base
        self.firmware, self.ram, self.cores, self.cpu = list(firmware), ram, cores, cpu

    @property
    def sized(self):
        return self.ram is None


BOARDS = {
    "virt": Board("qemu-system-aarch64", "virt", "virt", 0x40000000, cpu="cortex-a53"),
    # OpenSBI (QEMU's own build, -bios default) enters the kernel in S-mode at 0x80200000.
    "riscv64-virt": Board("qemu-system-riscv64", "virt", "riscv64-virt", 0x80000000, firmware=["-bios", "default"]),
    "raspi3b": Board("qemu-system-aarch64", "raspi3b", "raspi3b", 0, ram=GiB - VIDEOCORE_SPLIT, cores=RASPI_CORES),
    "raspi3ap": Board("qemu-system-aarch64", "raspi3ap", "raspi3b", 0, ram=512 * MiB - VIDEOCORE_SPLIT, cores=RASPI_CORES),
    "raspi4b": Board("qemu-system-aarch64", "raspi4b", "raspi4b", 0, ram=GiB - VIDEOCORE_SPLIT + GiB, cores=RASPI_CORES),
}
# virt's 64-bit CPUs (the 32-bit ones cannot run an AArch64 image).
VIRT_CPUS = ["cortex-a35", "cortex-a53", "cortex-a55", "cortex-a57", "cortex-a72", "cortex-a76", "cortex-a710",
             "neoverse-n1", "neoverse-n2", "neoverse-v1", "a64fx", "max"]
# --ignore-guest-error TEXT (diagnosis only: to see what else fails while a known guest
# error floods every boot); never set by make matrix or make test.
IGNORED_GUEST_ERROR = None


def max_cpus():
    """ARCH_MAX_CPUS, the cores the kernel brings up at most (Sources/ArchSupport)."""
    for root, _, files in os.walk("Sources/ArchSupport"):
        for name in files:
            with open(os.path.join(root, name), errors="replace") as f:
                found = re.search(r"(?m)^#define ARCH_MAX_CPUS\s+(\d+)", f.read())
            if found:
                return int(found.group(1))
    return RASPI_CORES


REFUSE_TOO_LITTLE = r"(?m)^panic: memInit: RAM smaller than kernel \+ page array \+ heap"
BAD_ARGUMENTS = r"(?m)^test kernel: bad arguments: .*\ntest kernel: valid arguments: "
# riscv64 virt: QEMU puts the tree at the last 2 MiB boundary below the end of RAM less
# the tree's size and exits 1 when that lies below the image's end (-m 4M and less).
REFUSE_NO_ROOM_FOR_TREE = r"(?m)^qemu-system-riscv64: No enough memory to place DTB after kernel/initrd$"


def size_bytes(text):
    """QEMU's size `text` (512K, 64M, 2G) in bytes."""
    match = re.fullmatch(r"(\d+)([KMG]?)", text)
    return int(match.group(1)) << {"": 20, "K": 10, "M": 20, "G": 30}[match.group(2)]


class Config:
    """One machine: `board`, QEMU's machine arguments, the RAM it was given, and what
    each boot must end with."""

    def __init__(self, name, board="virt", mem="1G", cpu=None, smp=4, machine="", numa=(), extra=(),
                 initrd=None, dtb=None, semihosting=True, refusal=None, args=(), kernel=True, testkernel=True,
                 image=False, halts=False, expect=(), firmware_ram=None, check_ram_refuses=None):
        self.name, self.board, self.mem, self.cpu, self.smp = name, board, mem, cpu or BOARDS[board].cpu, smp
        self.machine, self.numa, self.extra, self.initrd, self.dtb = machine, numa, list(extra), initrd, dtb
        self.semihosting, self.refusal, self.args = semihosting, refusal, list(args)
        self.kernel, self.testkernel, self.image = kernel, testkernel, image
        # The defined end of a machine with no way to power off (virt secure=on without
        # semihosting: no PSCI in its tree): the kernel finishes, prints the halt line
        # and waits in wfi; the boot is stopped after HALT_TIMEOUT and judged by its output.
        self.halts = halts
        # Lines each boot must print besides the usual ones, and the RAM the firmware's
        # description claims when it differs from the machine's (a tree that overclaims).
        self.expect, self.firmware_ram = list(expect), firmware_ram
        # Whether `make run`'s scripts/check_ram.py refuses this -m: by default exactly
        # when the kernel boot is refused.
        self.check_ram_refuses = (refusal is not None and not testkernel) if check_ram_refuses is None else check_ram_refuses

    @property
    def ram(self):
        if not BOARDS[self.board].sized:
            return BOARDS[self.board].ram
        return sum(size_bytes(s) for s in self.numa) if self.numa else size_bytes(self.mem)

    @property
    def cores(self):
        return BOARDS[self.board].cores or self.smp

    def qemu(self, product, args):
        board = BOARDS[self.board]
        cmd = [board.binary, "-M", board.machine + self.machine]
        if board.sized:
            cmd += (["-cpu", self.cpu] if self.cpu else []) + ["-m", self.mem, "-smp", str(self.smp)]
            for i, size in enumerate(self.numa):
                cmd += ["-object", f"memory-backend-ram,id=m{i},size={size}", "-numa", f"node,memdev=m{i}"]
        cmd += board.firmware
        if self.initrd:
            cmd += ["-initrd", self.initrd]
        if self.dtb:
            cmd += ["-dtb", self.dtb]
        cmd += self.extra + ["-display", "none", "-monitor", "none", "-serial", "stdio", "-d", "guest_errors"]
        if self.semihosting:
            cmd += ["-semihosting-config", "enable=on,target=native,arg=" + product + "".join(",arg=" + a for a in args)]
        image = ".img" if self.image or self.initrd else ""
        return cmd + ["-kernel", f".build-{board.build}/release/{product}{image}"]


def configurations():
    c = []
    # -m from the smallest that boots (and the one below, refused) to 16 GiB.
    c.append(Config("virt -m 3M (refused: too little RAM)", mem="3M", refusal=REFUSE_TOO_LITTLE, testkernel=False))
    for mem in ["4M", "6M", "8M", "16M", "32M", "64M", "96M", "128M", "256M", "512M", "1G", "2G", "3G", "4G", "6G",
                "8G", "12G", "16G"]:
        c.append(Config(f"virt -m {mem}", mem=mem))
    # NUMA: 2-4 nodes of uneven sizes, tiny first nodes, node boundaries inside the image.
    for nodes in [("512K", "1047040K"), ("1536K", "1047040K"), ("2M", "1022M"), ("2560K", "510M"), ("2200K", "100M"), ("3M", "61M"), ("64M", "960M"),
                  ("1G", "1G"), ("16M", "16M", "992M"), ("4M", "60M", "1G", "128M"), ("512M", "256M", "128M", "128M"),
                  ("1G", "3G")]:
        total = sum(size_bytes(n) for n in nodes)
        c.append(Config(f"virt NUMA {'+'.join(nodes)}", mem=f"{total >> 10}K", numa=nodes))
    # Cores.
    for smp in [1, 2, 3, 5, 8]:
        c.append(Config(f"virt -smp {smp}", smp=smp))
    c.append(Config("virt -smp 1 smp (skipped: one core)", smp=1, args=["smp", "ops=1000"], kernel=False))
    c.append(Config("virt -smp 4 smp ops=1000", args=["smp", "ops=1000"], kernel=False))
    c.append(Config("virt gic-version=3 -smp 8", machine=",gic-version=3", smp=8))
    c.append(Config("virt gic-version=3 -smp 17", machine=",gic-version=3", smp=17))
    c.append(Config("virt gic-version=3 -smp 32", machine=",gic-version=3", smp=32))
    c.append(Config("virt gic-version=3 -smp 17 smp ops=1000", machine=",gic-version=3", smp=17, args=["smp", "ops=1000"],
                    kernel=False))
    # Exception levels, with and without semihosting.
    for flag in ["secure=on", "virtualization=on", "secure=on,virtualization=on"]:
        c.append(Config(f"virt {flag}", machine="," + flag))
        c.append(Config(f"virt {flag}, no semihosting", machine="," + flag, semihosting=False, testkernel=False,
                        halts="secure=on" in flag))
    c.append(Config("virt, no semihosting", semihosting=False, testkernel=False))
    # Initrds and trees.
    c.append(Config("virt -initrd 300001 bytes", initrd=f"{MATRIX_DT}/initrd-small.img"))
    c.append(Config("virt -m 128M -initrd 24 MiB + 1", mem="128M", initrd=f"{MATRIX_DT}/initrd-large.img"))
    c.append(Config("virt -m 64M -initrd 300001 bytes", mem="64M", initrd=f"{MATRIX_DT}/initrd-small.img"))
    c.append(Config("virt NUMA 2M+1022M -initrd", mem="1024M", numa=("2M", "1022M"), initrd=f"{MATRIX_DT}/initrd-small.img"))
    c.append(Config("virt tree with /memreserve/ and /reserved-memory", dtb=f"{DT}/virt-reserved.dtb", image=True))
    c.append(Config("virt tree with 120 reservations every 8 MiB", dtb=f"{MATRIX_DT}/virt-many.dtb", image=True))
    c.append(Config("virt -m 2G tree with 120 reservations + -initrd", mem="2G", dtb=f"{MATRIX_DT}/virt-many-2G.dtb",
                    initrd=f"{MATRIX_DT}/initrd-small.img"))
    # CPUs.
    for cpu in VIRT_CPUS:
        if cpu != "cortex-a53":
            c.append(Config(f"virt -cpu {cpu}", cpu=cpu))
    # Raspberry Pi boards.
    c.append(Config("raspi3b", board="raspi3b"))
    c.append(Config("raspi3b, no semihosting", board="raspi3b", semihosting=False, testkernel=False))
    c.append(Config("raspi3b -dtb", board="raspi3b", dtb=f"{DT}/raspi3b.dtb", image=True))
    c.append(Config("raspi3ap (raspi3b image)", board="raspi3ap"))
    c.append(Config("raspi4b", board="raspi4b"))
    c.append(Config("raspi4b -dtb", board="raspi4b", dtb=f"{DT}/raspi4b.dtb", image=True))
    c.append(Config("raspi4b -dtb claiming 2 GiB more than the board has", board="raspi4b",
                    dtb=f"{MATRIX_DT}/raspi4b-overclaim.dtb", image=True, firmware_ram=BOARDS["raspi4b"].ram + 2 * GiB,
                    expect=[r"(?m)^RAM above 0x80000000 is more than the board has \(board revision\): 2048 MiB not used$"]))
    c.append(Config("raspi4b, no semihosting", board="raspi4b", semihosting=False, testkernel=False))
    # RISC-V 64: riscv64 virt under OpenSBI (S-mode, harts started with SBI HSM).
    rv = "riscv64-virt"
    for mem in ["3M", "4M"]:
        # QEMU refuses before the kernel runs; check_ram.py's bound (the image, its page
        # array and heap) refuses 3M but not 4M, where the tree's 2 MiB boundary is the limit.
        c.append(Config(f"riscv64-virt -m {mem} (refused by QEMU: no room for the tree)", board=rv, mem=mem,
                        refusal=REFUSE_NO_ROOM_FOR_TREE, testkernel=False, check_ram_refuses=mem == "3M"))
    for mem in ["5M", "64M", "128M", "512M", "1G", "2G", "4G", "16G"]:
        c.append(Config(f"riscv64-virt -m {mem}", board=rv, mem=mem))
    # The second node from inside the image's .text, or just past the image.
    for nodes in [("512M", "512M"), ("2200K", "61800K"), ("3M", "61M")]:
        c.append(Config(f"riscv64-virt NUMA {'+'.join(nodes)}", board=rv, mem=f"{sum(size_bytes(n) for n in nodes) >> 10}K",
                        numa=nodes))
    for smp in [1, 2, 8, 32]:
        c.append(Config(f"riscv64-virt -smp {smp}", board=rv, smp=smp))
    c.append(Config("riscv64-virt -smp 1 smp (skipped: one core)", board=rv, smp=1, args=["smp", "ops=1000"], kernel=False))
    c.append(Config("riscv64-virt smp ops=1000 vm-rounds=200", board=rv, args=["smp", "ops=1000", "vm-rounds=200"],
                    kernel=False))
    c.append(Config("riscv64-virt, no semihosting", board=rv, semihosting=False, testkernel=False))
    c.append(Config("riscv64-virt -initrd 300001 bytes", board=rv, initrd=f"{MATRIX_DT}/initrd-small.img"))
    c.append(Config("riscv64-virt -m 128M -initrd 24 MiB + 1", board=rv, mem="128M", initrd=f"{MATRIX_DT}/initrd-large.img"))
    c.append(Config("riscv64-virt bad argument frobnicate", board=rv, args=["frobnicate"], kernel=False,
                    refusal=BAD_ARGUMENTS))
    # Bad arguments: refused with the valid words and status 2.
    for bad in ["ops=-5", "fault=bogus", "frobnicate"]:
        c.append(Config(f"virt bad argument {bad}", args=["smp", bad] if bad.startswith("ops") else [bad],
                        kernel=False, refusal=BAD_ARGUMENTS))
    return c


# About 20 configurations for make test, one of each class (scripts/run_tests.py).
SUBSET = ["virt -m 3M (refused: too little RAM)", "virt -m 4M", "virt -m 64M", "virt -m 6G", "virt NUMA 2M+1022M",
          "virt NUMA 2560K+510M", "virt NUMA 4M+60M+1G+128M", "virt gic-version=3 -smp 17", "virt -smp 1 smp (skipped: one core)",
          "virt secure=on, no semihosting", "virt virtualization=on", "virt -m 128M -initrd 24 MiB + 1",
          "virt tree with 120 reservations every 8 MiB", "virt -cpu max", "raspi3ap (raspi3b image)",
          "virt bad argument ops=-5", "riscv64-virt -m 4M (refused by QEMU: no room for the tree)",
          "riscv64-virt NUMA 2200K+61800K", "riscv64-virt -m 128M -initrd 24 MiB + 1"]


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def text_rodata(elf):
    """(end address, FNV-1a of the bytes) of the ELF's .text through .rodata."""
    with open(elf, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = sections[shstrndx][4]

    def name(s):
        start = names_offset + s[0]
        return data[start:data.index(b"\0", start)].decode()
    by_name = {name(s): s for s in sections}
    text, rodata = by_name[".text"], by_name[".rodata"]
    end = rodata[3] + rodata[5]
    return end, fnv1a(data[text[4]:rodata[4] + rodata[5]])


def make_files():
    """The initrds and the trees with many reservations (dtc), beside run_tests' trees."""
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    import run_tests
    run_tests.make_trees()
    os.makedirs(MATRIX_DT, exist_ok=True)
    for name, size in [("initrd-small", 300_001), ("initrd-large", 24 * MiB + 1)]:
        with open(f"{MATRIX_DT}/{name}.img", "wb") as f:
            f.write(bytes((i * 7 + i // 4096) & 0xFF for i in range(size)))
    # A raspi4b tree that claims 2 GiB more than the 2 GiB board has.
    with open("qemu/dt/raspi4b.dts") as f:
        dts = f.read()
    # A node of its own, named ram@ (device_type "memory"): QEMU replaces every node
    # named memory with its own, but leaves this one.
    claimed = dts.replace("\treserved-memory {", "\tram@80000000 {\n\t\tdevice_type = \"memory\";\n"
                          "\t\treg = <0x80000000 0x80000000>;\n\t};\n\treserved-memory {", 1)
    assert claimed != dts, "qemu/dt/raspi4b.dts: no reserved-memory node to put the claim before"
    with open(f"{MATRIX_DT}/raspi4b-overclaim.dts", "w") as f:
        f.write(claimed)
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", f"{MATRIX_DT}/raspi4b-overclaim.dtb",
                    f"{MATRIX_DT}/raspi4b-overclaim.dts"], check=True)
    for name, mem in [("virt-many", "1G"), ("virt-many-2G", "2G")]:
        subprocess.run(["qemu-system-aarch64", "-M", f"virt,dumpdtb={MATRIX_DT}/{name}-base.dtb", "-cpu", "cortex-a53",
                        "-m", mem, "-smp", "4", "-display", "none"], check=True, capture_output=True)
        dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", f"{MATRIX_DT}/{name}-base.dtb"], check=True,
                             capture_output=True, text=True).stdout
        # 60 /memreserve/ and 60 /reserved-memory children (every third no-map, some
        # unaligned), one every 8 MiB from 16 MiB on: no 64 MiB run stays free.
        memreserve = "".join(f"/memreserve/ {0x41000000 + i * 0x1000000:#x} 0x10000;\n" for i in range(60))
        children = "".join(
            f"\t\tr@{0x41800000 + i * 0x1000000 + (i % 5) * 0x123:x} {{\n\t\t\treg = <0x00 {0x41800000 + i * 0x1000000 + (i % 5) * 0x123:#x} 0x00 0x3000>;\n"
            + ("\t\t\tno-map;\n" if i % 3 == 0 else "") + "\t\t};\n" for i in range(60))
        dts = dts.replace("/dts-v1/;", "/dts-v1/;\n" + memreserve, 1)
        dts = dts[:dts.rindex("};")] + ("\treserved-memory {\n\t\t#address-cells = <0x02>;\n\t\t#size-cells = <0x02>;\n"
                                        "\t\tranges;\n" + children + "\t};\n") + "};\n"
        with open(f"{MATRIX_DT}/{name}.dts", "w") as f:
            f.write(dts)
        subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", f"{MATRIX_DT}/{name}.dtb", f"{MATRIX_DT}/{name}.dts"],
                       check=True)


def run(cmd, timeout=BOOT_TIMEOUT):
    """(serial output, stderr, exit status or None on a hang, seconds)."""
    started = time.time()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        out, err, status = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out, err, status = e.stdout or b"", e.stderr or b"", None
    return (out.decode(errors="replace").replace("\r", ""), err.decode(errors="replace"), status, time.time() - started)


def check_boot(config, product, out, err, status, refusal, texts):
    """The problems of one boot, [] when it ended as expected."""
    problems = []
    if status is None:
        return [f"{product}: hung until the {BOOT_TIMEOUT} s limit; last line: "
                + (out.strip().splitlines() or ["(no output)"])[-1][:160]]
    # A refusal may be QEMU's own line (riscv64-virt's tree placement), which is no guest error.
    guest = [line for line in err.splitlines() if line.strip() and not (IGNORED_GUEST_ERROR and IGNORED_GUEST_ERROR in line)
             and not (refusal and re.search(refusal, line))]
    if guest:
        problems.append(f"{product}: QEMU -d guest_errors: {guest[0][:160]}" + (f" (+{len(guest) - 1} lines)" if len(guest) > 1 else ""))
    if refusal:
        if not re.search(refusal, out) and not re.search(refusal, err):
            problems.append(f"{product}: exit {status}, no refusal line matching {refusal!r}; last: "
                            + (out.strip().splitlines() or ["(none)"])[-1][:160])
        elif status in (0, None):
            problems.append(f"{product}: refusal line but exit {status}")
        return problems
    panic = re.search(r"(?m)^(panic: .*|exception: .*)$", out)
    if panic:
        # Everything after it is missing: the line and the status say it all.
        return problems + [f"{product}: {panic.group(1)[:200]}, exit {status}"]
    if "MISMATCH" in out:
        problems.append(f"{product}: {re.search(r'(?m)^.*MISMATCH.*$', out).group(0).strip()}")
    elif not re.search(r"(?m)^  total .*: exact$", out):
        problems.append(f"{product}: no exact total line")
    ram = re.search(r"(?m)firmware's RAM (\d+) bytes", out)
    claimed = config.firmware_ram or config.ram
    if ram and int(ram.group(1)) != claimed:
        problems.append(f"{product}: firmware's RAM {int(ram.group(1))} bytes, QEMU was given {config.ram}")
    managed = re.search(r"(?m)^  total (\d+) pages", out)
    if managed and int(managed.group(1)) * 4096 > config.ram:
        problems.append(f"{product}: {int(managed.group(1))} pages managed, more than the {config.ram} bytes QEMU gave")
    board = BOARDS[config.board]
    if board.sized:
        base, end = board.ram_base, board.ram_base + config.ram
        outside = [r for r in re.findall(r"(?m)^  [a-z-]+ +\[0x([0-9a-f]+), 0x([0-9a-f]+)\)", out)
                   if int(r[0], 16) < base or int(r[1], 16) > end]
        if outside:
            problems.append(f"{product}: map range [0x{outside[0][0]}, 0x{outside[0][1]}) outside RAM [{base:#x}, {end:#x})")
    for pattern in config.expect:
        if not re.search(pattern, out):
            problems.append(f"{product}: no line matching {pattern!r}")
    if product == "kernel":
        online = re.search(r"(?m)^cores online: (\d+)$", out)
        expected = min(config.cores, max_cpus())
        if not online or int(online.group(1)) != expected:
            problems.append(f"kernel: {online.group(0) if online else 'no cores online line'}, expected {expected} "
                            f"(QEMU's {config.cores}, at most ARCH_MAX_CPUS {max_cpus()})")
        if status != 0:
            problems.append(f"kernel: exit {status}")
        if config.semihosting and "heapCheck: ok" not in out:
            problems.append("kernel: no heapCheck: ok")
        if not config.semihosting and "bye" not in out:
            problems.append("kernel without semihosting: no bye")
        return problems
    fails = re.findall(r"(?m)^FAIL .*$", out)
    oks = re.findall(r"(?m)^ok   .*$", out)
    summary = re.search(r"(?m)^(\d+) passed, (\d+) failed$", out)
    problems += [f"testkernel: {f[:200]}" for f in fails[:3]]
    if not summary or int(summary.group(1)) != len(oks) or int(summary.group(2)) != len(fails):
        problems.append("testkernel: no summary agreeing with its lines")
    if status != 0:
        problems.append(f"testkernel: exit {status}")
    if "scribble" in " ".join(texts):
        for line in re.findall(r"(?m)^scribble: .* CHANGED$", out):
            problems.append("testkernel: " + line)
        image = re.search(r"(?m)^scribble: kernel text\+rodata \[0x[0-9a-f]+, 0x[0-9a-f]+\) fnv 0x([0-9a-f]+)", out)
        if not image or int(image.group(1), 16) != texts["hash"]:
            problems.append("testkernel: the image's .text+.rodata hash differs from the ELF's (or is missing)")
        if config.initrd:
            with open(config.initrd, "rb") as f:
                expected = fnv1a(f.read())
            initrd = re.search(r"(?m)^scribble: initrd \[0x[0-9a-f]+, 0x[0-9a-f]+\) fnv 0x([0-9a-f]+)", out)
            if not initrd or int(initrd.group(1), 16) != expected:
                problems.append("testkernel: the initrd's hash differs from the file's (or is missing)")
    return problems


def pages_of(out, owners):
    """The set of page numbers the map lists under one of `owners` (None: every owner but
    those the kernel places itself: free, page-array, heap)."""
    pages = set()
    for owner, start, end in re.findall(r"(?m)^  ([a-z-]+) +\[0x([0-9a-f]+), 0x([0-9a-f]+)\)", out):
        if (owner in owners) if owners else owner not in ("free", "page-array", "heap"):
            pages.update(range(int(start, 16) >> 12, int(end, 16) >> 12))
    return pages


def numa_free_problem(config, out):
    """NUMA nodes split the same RAM: a page that a plain `-m` of the same size reserves
    (the tree, firmware's, the kernel, the initrd, reserved ranges) must not be free."""
    plain = Config("plain", board=config.board, mem=config.mem, cpu=config.cpu, smp=config.smp, initrd=config.initrd)
    plain_out, _, status, _ = run(plain.qemu("kernel", []))
    if status != 0:
        return None   # the plain boot's own configuration reports it
    wrong = sorted(pages_of(out, ("free",)) & pages_of(plain_out, None))
    if not wrong:
        return None
    return (f"kernel: {len(wrong)} pages free with NUMA that plain -m {config.mem} reserves "
            f"(first 0x{wrong[0] << 12:x})")


def unmodelled(configs):
    """The configurations whose board the installed QEMU does not model (raspi4b needs
    QEMU 9.0+, riscv64-virt qemu-system-riscv64)."""
    listings = {}
    for binary in {BOARDS[c.board].binary for c in configs}:
        listings[binary] = (subprocess.run([binary, "-M", "help"], capture_output=True, text=True).stdout
                            if shutil.which(binary) else "")
    return [c for c in configs if not re.search(rf"(?m)^{BOARDS[c.board].machine}\s", listings[BOARDS[c.board].binary])]


def image_texts():
    """Each build's test kernel .text+.rodata (end, hash), for the scribble oracle."""
    return {b.build: text_rodata(f".build-{b.build}/release/testkernel") for b in BOARDS.values()
            if os.path.exists(f".build-{b.build}/release/testkernel")}


def run_config(config, texts):
    """(ok, line) for one configuration."""
    started = time.time()
    problems = []
    if config.kernel:
        out, err, status, _ = run(config.qemu("kernel", []), HALT_TIMEOUT if config.halts else BOOT_TIMEOUT)
        if config.halts:
            lines = out.strip().splitlines()
            if status is None and lines and lines[-1].strip() == HALT_LINE:
                status = 0   # the defined end: halted with its line, everything before it checked below
            else:
                problems.append(f"kernel: expected to end with {HALT_LINE!r}, got exit {status}, last line: "
                                + (lines or ["(none)"])[-1][:160])
        problems += check_boot(config, "kernel", out, err, status, config.refusal if not config.testkernel else None, {})
        if BOARDS[config.board].sized and not config.numa:
            # `make run`'s check (scripts/check_ram.py) refuses exactly the -m the
            # configuration says: on virt what the kernel refuses.
            check = subprocess.run([sys.executable, "scripts/check_ram.py",
                                    f".build-{BOARDS[config.board].build}/release/kernel", config.mem],
                                   capture_output=True, text=True)
            if (check.returncode != 0) != config.check_ram_refuses:
                problems.append(f"scripts/check_ram.py exits {check.returncode} for -m {config.mem}, expected it to "
                                + ("refuse it" if config.check_ram_refuses else "accept it"))
        if config.numa and status == 0:
            problem = numa_free_problem(config, out)
            if problem:
                problems.append(problem)
    if config.testkernel and config.semihosting:
        args = list(config.args) or ["quick"]
        scribble = {}
        if not config.args and config.ram <= SCRIBBLE_LIMIT and config.refusal is None:
            end, digest = texts[BOARDS[config.board].build]
            args += ["scribble", f"text={end:x}"]
            scribble = {"scribble": True, "hash": digest}
        out, err, status, _ = run(config.qemu("testkernel", args))
        problems += check_boot(config, "testkernel " + " ".join(args), out, err, status, config.refusal, scribble)
        if not problems and config.args and config.args[0] == "smp" and config.refusal is None:
            if config.smp == 1 and not re.search(r"(?m)^skip kernel\.smp_stress \(needs 2 or more cores online, 1 online\)$", out):
                problems.append("testkernel smp on one core: no skip line")
            if config.smp > 1 and not re.search(r"(?m)^smp: \d+ ops on \d+ cores, \d+ of \d+ frees cross-core, ok$", out):
                problems.append("testkernel smp: no ok line")
    line = f"{config.name}: {time.time() - started:.1f} s" + "".join("\n    " + p for p in problems)
    return not problems, line


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default=None)
    parser.add_argument("--subset", action="store_true")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--ignore-guest-error", default=None, help="diagnosis only: leave out guest errors containing this")
    options = parser.parse_args()
    global IGNORED_GUEST_ERROR
    IGNORED_GUEST_ERROR = options.ignore_guest_error
    configs = configurations()
    if options.subset:
        configs = [c for c in configs if c.name in SUBSET]
    if options.only:
        configs = [c for c in configs if options.only in c.name]
    if options.list:
        for c in configs:
            print(c.name)
        print(f"{len(configs)} configurations")
        return 0
    skipped = unmodelled(configs)
    configs = [c for c in configs if c not in skipped]
    for c in skipped:
        print(f"SKIP {c.name}: this QEMU does not model {c.board}", flush=True)
    make_files()
    texts = image_texts()
    started = time.time()
    passed = failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=options.jobs) as pool:
        for ok, line in pool.map(lambda c: run_config(c, texts), configs):
            passed += ok
            failed += not ok
            print(("PASS " if ok else "FAIL ") + line, flush=True)
    print(f"matrix: {passed} passed, {failed} failed" + (f", {len(skipped)} skipped" if skipped else "")
          + f" ({len(configs)} configurations, {time.time() - started:.0f} s)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
