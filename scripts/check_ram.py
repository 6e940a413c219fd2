#!/usr/bin/env python3
"""`make run BOARD=virt` checks, before QEMU starts, that the image fits the RAM asked for.

    scripts/check_ram.py ELF MEM        (MEM as QEMU's -m: 2M, 512M, 1G, ...)

virt's RAM starts at 0x40000000 (riscv64 virt's at 0x80000000) and the image is
linked 2 MiB above it. With less RAM
than the image needs (`-m 2M`), QEMU still starts the CPU at an address with no memory
behind it: the fetch faults before any kernel code runs, so the kernel cannot report
anything and QEMU loops until killed. This check reports it instead and exits 2.

On riscv64-virt (a RISC-V image) it also refuses a MEM that is not a whole number of
MiB: OpenSBI would enlarge QEMU's device tree past the end of such RAM and hang before
the kernel runs.

It refuses exactly what the kernel's memInit would refuse ("RAM smaller than kernel +
page array + heap"): the image up to `__end`, then one 16-byte page entry per page of
RAM (rounded up to a page), then the heap's first 1 MiB, all below the end of RAM. With
the image of today that is `-m 4M` for the kernel and the test kernel; `-m 3M` is
refused.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from toolchain import toolchain_tool  # noqa: E402

IMAGE_OFFSET = 0x200000       # the image is linked 2 MiB above the RAM base
EM_RISCV = 243                 # the ELF header's e_machine for RISC-V
PAGE = 4096
PAGE_ENTRY_BYTES = 16          # PageEntry's size (the pages.entry_is_16_bytes scenario)
HEAP_INITIAL_BYTES = 1 << 20   # MemInit's kernelHeapInitialBytes


def main():
    elf, mem = sys.argv[1], sys.argv[2]
    match = re.fullmatch(r"(\d+)([KMGT]?)", mem.upper())
    if not match:
        sys.exit(f"check_ram: MEM={mem} is not a size like 512M or 1G")
    ram = int(match.group(1)) << {"": 20, "K": 10, "M": 20, "G": 30, "T": 40}[match.group(2)]
    with open(elf, "rb") as f:
        machine = int.from_bytes(f.read(20)[18:20], "little")
    if machine == EM_RISCV and ram % (1 << 20) != 0:
        # QEMU's riscv virt puts the device tree just below the last 2 MiB boundary of
        # RAM, and OpenSBI enlarges it in place: with RAM ending a few KiB past such a
        # boundary the firmware writes past the end of RAM and hangs before the kernel
        # runs. Whole MiB never end that way.
        print(f"make run: -m {mem} is not a whole number of MiB: on riscv64-virt OpenSBI would enlarge the "
              f"device tree past the end of RAM and hang before the kernel runs. Use MEM={-(-ram // (1 << 20))}M.",
              file=sys.stderr)
        sys.exit(2)
    symbols = subprocess.run([toolchain_tool("llvm-nm") or "llvm-nm", elf], capture_output=True, text=True, check=True).stdout
    start = int(re.search(r"^([0-9a-f]+) \w __kernel_start$", symbols, re.M).group(1), 16)
    end = int(re.search(r"^([0-9a-f]+) \w __end$", symbols, re.M).group(1), 16)
    ram_base = start - IMAGE_OFFSET
    # memInit places the page array and the heap at the first fit after __end.
    array = -(-(ram // PAGE) * PAGE_ENTRY_BYTES // PAGE) * PAGE
    needed = end + array + HEAP_INITIAL_BYTES
    if needed > ram_base + ram:
        print(f"make run: the kernel image [{start:#x}, {end:#x}) and its heap do not fit in -m {mem} "
              f"(RAM [{ram_base:#x}, {ram_base + ram:#x})): QEMU would start the CPU where there is no "
              f"RAM and the kernel could report nothing. It needs {needed - ram_base:#x} bytes of RAM: "
              f"MEM={-(-(needed - ram_base) // (1 << 20))}M or more.", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
