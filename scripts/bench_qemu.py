#!/usr/bin/env python3
"""`make bench-qemu`: guest instructions per operation on raspi3b, virt and riscv64-virt.

Boots the test kernel with the semihosting argument `bench` under QEMU's
`-icount shift=0`, where the guest's virtual clock advances one nanosecond per executed
instruction, so the counter difference around a loop is its instruction count. The
figures are deterministic: the same image gives the same counts on any host. (RISC-V
reads the time CSR, 10 MHz on QEMU's virt: a tick is 100 instructions there, so its
figures are exact to 100 instructions over a loop, a fraction of one per operation.)
Prints a table (or, with --json, one object per line). Two more boots of virt measure the
sampling detector: its kmalloc+kfree rows with `kfence=65536` (the default interval; the
fast path must not change) and with `kfence=1` (every allocation sampled: the cost of one
sampled pair).
"""
import json
import re
import subprocess
import sys

from run_tests import build, qemu_command

BOARDS = ["raspi3b", "virt", "riscv64-virt"]


def run(board, extra_args=()):
    if not build(board, "testkernel"):
        sys.exit(f"testkernel for {board} did not build")
    cmd = qemu_command(board, "1G", "testkernel", ["bench", *extra_args], extra=["-icount", "shift=0"])
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600).stdout
    out = out.decode(errors="replace").replace("\r", "")
    rows = re.findall(r"^bench (.+): (\d+) ([a-z ]+)/op \((\d+) ops\)$", out, re.M)
    if not rows:
        sys.exit(f"no bench lines from {board}:\n{out[-2000:]}")
    units.update({name: unit for name, _, unit, _ in rows})
    return {name: int(count) for name, count, _, _ in rows}


# Each row's unit: "instructions", or "full flushes" for the vm row that counts them.
units = {}


def main():
    results = {board: run(board) for board in BOARDS}
    names = list(results[BOARDS[0]])
    # The detector's rows (virt): the kmalloc rows again with the pool attached.
    for interval in (65536, 1):
        sampled = run("virt", [f"kfence={interval}"])
        for name in [n for n in names if n.startswith("kmalloc")]:
            row = f"{name}, kfence={interval}"
            units[row] = units[name]
            for board in BOARDS:
                results[board][row] = sampled[name] if board == "virt" else "-"
    names = [name for name in results["virt"] if all(name in results[board] for board in BOARDS)]
    if "--json" in sys.argv:
        for board in results:
            for name in names:
                if results[board][name] == "-":
                    continue
                print(json.dumps({"workload": "vm" if name.startswith("vm ") else "guest", "parameter": name,
                                  "allocator": board, "metric": units[name] + "/op", "value": results[board][name]}))
        return
    width = max(len(n) for n in names) + 2
    print("instructions per operation (QEMU -icount shift=0)")
    column = max(len(b) for b in BOARDS) + 2
    print("operation".ljust(width) + "".join(b.rjust(column) for b in BOARDS))
    for name in names:
        print(name.ljust(width) + "".join(str(results[b][name]).rjust(column) for b in BOARDS))


if __name__ == "__main__":
    main()
