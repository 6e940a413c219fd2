#!/usr/bin/env python3
"""`make bench-qemu`: guest instructions per operation on both boards.

Boots the test kernel with the semihosting argument `bench` under QEMU's
`-icount shift=0`, where the guest's virtual clock advances one nanosecond per executed
instruction, so the counter difference around a loop is its instruction count. The
figures are deterministic: the same image gives the same counts on any host.
Prints a table (or, with --json, one object per line).
"""
import json
import re
import subprocess
import sys

BOARDS = [("raspi3b", ["-M", "raspi3b"]), ("virt", ["-M", "virt", "-cpu", "cortex-a53", "-m", "1G"])]


def run(board, machine):
    build = subprocess.run(["make", "-s", "testkernel", f"BOARD={board}"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    if build.returncode != 0:
        sys.exit(build.stdout)
    cmd = ["qemu-system-aarch64", *machine, "-icount", "shift=0", "-display", "none", "-monitor", "none",
           "-serial", "stdio", "-semihosting-config", "enable=on,target=native,arg=testkernel,arg=bench",
           "-kernel", f".build-{board}/release/testkernel"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600).stdout
    out = out.decode(errors="replace").replace("\r", "")
    rows = re.findall(r"^bench (.+): (\d+) instructions/op \((\d+) ops\)$", out, re.M)
    if not rows:
        sys.exit(f"no bench lines from {board}:\n{out[-2000:]}")
    return {name: int(count) for name, count, _ in rows}


def main():
    results = {board: run(board, machine) for board, machine in BOARDS}
    names = list(results[BOARDS[0][0]])
    if "--json" in sys.argv:
        for board in results:
            for name in names:
                print(json.dumps({"workload": "guest", "parameter": name, "allocator": board,
                                  "metric": "instructions/op", "value": results[board][name]}))
        return
    width = max(len(n) for n in names) + 2
    print("instructions per operation (QEMU -icount shift=0)")
    print("operation".ljust(width) + "".join(b.rjust(10) for b, _ in BOARDS))
    for name in names:
        print(name.ljust(width) + "".join(str(results[b][name]).rjust(10) for b, _ in BOARDS))


if __name__ == "__main__":
    main()
