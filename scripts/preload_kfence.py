#!/usr/bin/env python3
"""Planted memory bugs against the preload library's sampling detector (`make preload-kfence`).

Builds Preload/kfence_test.c into .build-preload/kfence_test with the system's cc (-O0
-rdynamic, so the bugs stay as written and backtrace_symbols_fd names the case
functions), then runs each case with
LD_PRELOAD=.build-preload/libkmalloc.so KMALLOC_SAMPLE=1 (every allocation sampled) and
checks the outcome:

- a planted bug: the process is killed by SIGABRT; stderr has the report's key at the
  start of a line (`kfence-oob-write:` ...), the object's size (`32-byte object`), the
  stack lines the kind calls for (allocated / freed / this access / this call), and a
  symbolized frame naming the case function under the allocation's stack (or, with no
  object, under the current one);
- a clean program: exit 0 (or the signal the program would die of without the library),
  the output expected, and no `kfence-` report.

    scripts/preload_kfence.py [--lib PATH] [--only NAME[,NAME]] [--verbose]

Prints `PASS <name>` or `FAIL <name>: <reason>` per case, then `N passed, N failed`;
exits 1 when a case failed. Standard library only.
"""
import argparse
import os
import re
import resource
import signal
import subprocess
import sys
import time

import preload_harness

DEFAULT_LIB = preload_harness.DEFAULT_LIB

# Stack lines each kind of report has (after the first line).
FAULT = ("allocated", "this access")
FREED_FAULT = ("allocated", "freed", "this access")
BAD_FREE = ("allocated", "freed", "this call")
CANARY = ("allocated", "this call")

# name: (key, object size or None, stack lines, extra patterns on stderr)
BUGS = {
    "oob_write_right": ("kfence-oob-write", 32, FAULT, [r"1 byte right of the 32-byte object"]),
    "oob_read_right": ("kfence-oob-read", 48, FAULT, [r"1 byte right of"]),
    "oob_write_left": ("kfence-oob-write", 40, FAULT, [r"1 bytes? left of"]),
    "oob_read_left": ("kfence-oob-read", 24, FAULT, [r"8 bytes left of"]),
    "oob_write_far": ("kfence-oob-write", 64, FAULT, [r"1001 bytes right of"]),
    "oob_write_memset": ("kfence-oob-write", 80, FAULT, []),
    "oob_read_strlen": ("kfence-oob-read", 16, FAULT, []),
    "oob_write_strcpy": ("kfence-oob-write", 16, FAULT, []),
    "calloc_overflow": ("kfence-oob-write", 64, FAULT, []),
    "posix_memalign_overflow": ("kfence-oob-write", 128, FAULT, []),
    "valloc_underflow": ("kfence-oob-read", 100, FAULT, [r"left of"]),
    "pvalloc_overflow": ("kfence-oob-write", 4096, FAULT, []),
    "reallocarray_read": ("kfence-oob-read", 96, FAULT, []),
    "realloc_overflow": ("kfence-oob-write", 96, FAULT, []),
    "uaf_read": ("kfence-uaf-read", 100, FREED_FAULT, [r"the freed 100-byte object"]),
    "uaf_write": ("kfence-uaf-write", 100, FREED_FAULT, [r"byte 50 of the freed"]),
    "uaf_read_memcpy": ("kfence-uaf-read", 64, FREED_FAULT, []),
    "uaf_write_other_thread": ("kfence-uaf-write", 72, FREED_FAULT, [r"\(free_it\+0x"]),
    "realloc_old_pointer": ("kfence-uaf-read", 32, FREED_FAULT, []),
    "aligned_alloc_uaf": ("kfence-uaf-read", 256, FREED_FAULT, [r"byte 255 of"]),
    "usable_size_freed": ("kfence-uaf-read", 50, FREED_FAULT, [r"the start of the freed 50-byte object"]),
    "double_free": ("kfence-double-free", 64, BAD_FREE, []),
    "double_free_later": ("kfence-double-free", 56, BAD_FREE, []),
    "memalign_double_free": ("kfence-double-free", 100, BAD_FREE, []),
    "free_after_realloc": ("kfence-double-free", 24, BAD_FREE, []),
    "realloc_freed": ("kfence-double-free", 30, BAD_FREE, []),
    "invalid_free_interior": ("kfence-invalid-free", 64, CANARY, [r"byte 16 of the 64-byte object"]),
    "invalid_free_guard": ("kfence-invalid-free", None, ("this call",), [r"no object of the pool"]),
    "canary_right": ("kfence-canary", 13, CANARY, [r"1 byte right of the 13-byte object"]),
    "canary_left": ("kfence-canary", 32, CANARY, [r"left of the 32-byte object"]),
    "canary_right_start": ("kfence-canary", 40, CANARY, [r"101 bytes right of"]),
    "calloc_canary": ("kfence-canary", 40, CANARY, []),
    # A program's SIGSEGV handler installed before the library set up gets the fault
    # outside the pool (and recovers); the pool overflow after it is still reported.
    "segv_chain_then_overflow": ("kfence-oob-write", 32, FAULT, []),
}

# name: (expected signal or 0 for exit 0, a pattern stdout must match)
CLEAN = {
    "clean": (0, r"^clean: ok$"),
    # A fault outside the pool, default disposition: SIGSEGV as without the library.
    "segv_default": (signal.SIGSEGV, None),
    # The program's own handler, installed after the library's, handles its fault.
    "segv_program_handler": (0, r"^recovered 1$"),
}
STDOUT = {"segv_chain_then_overflow": r"^recovered 1$"}


def stack_block(stderr, label):
    """The symbolized frame lines under the report's first `<label> on cpu` line."""
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"  {label} on cpu ") and ", backtrace:" in line:
            frames = []
            for following in lines[index + 1:]:
                if not following.startswith("    #"):
                    break
                frames.append(following)
            return frames
    return None


def check_bug(name, proc):
    key, size, stacks, extras = BUGS[name]
    err = proc.stderr
    if proc.returncode != -signal.SIGABRT:
        tail = err.strip().splitlines()[-1:] or [""]
        return f"ended with {describe(proc.returncode)}, not SIGABRT: {tail[0][:200]}"
    first = re.search(rf"(?m)^{re.escape(key)}: .*$", err)
    if not first:
        keys = re.findall(r"(?m)^(kfence-[a-z-]+):", err)
        return f"no `{key}:` line (report keys: {', '.join(keys) or 'none'})"
    if size is not None and not re.search(rf"\b{size}-byte object at 0x[0-9a-f]+ \(kmalloc, slot \d+\)", first.group(0)):
        return f"the report line does not give the {size}-byte object: {first.group(0)[:200]}"
    for label in stacks:
        frames = stack_block(err, label)
        if frames is None:
            return f"no `{label} on cpu N, backtrace:` line"
        if not frames:
            return f"the `{label}` stack is empty"
    where = "allocated" if "allocated" in stacks else stacks[-1]
    if not any(f"(case_{name}+0x" in frame for frame in stack_block(err, where)):
        return f"no symbolized frame naming case_{name} under `{where}`"
    for pattern in extras:
        if not re.search(pattern, err):
            return f"stderr lacks /{pattern}/"
    if name in STDOUT and not re.search(STDOUT[name], proc.stdout, re.M):
        return f"stdout lacks /{STDOUT[name]}/: {proc.stdout.strip()[:200]!r}"
    return None


def check_clean(name, proc):
    expected_signal, pattern = CLEAN[name]
    if "kfence-" in proc.stderr:
        line = next(line for line in proc.stderr.splitlines() if "kfence-" in line)
        return f"false report: {line[:200]}"
    wanted = -expected_signal if expected_signal else 0
    if proc.returncode != wanted:
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        return f"ended with {describe(proc.returncode)}, expected {describe(wanted)}: {tail[0][:200]}"
    if pattern and not re.search(pattern, proc.stdout, re.M):
        return f"stdout lacks /{pattern}/: {proc.stdout.strip()[:200]!r}"
    return None


def no_core_dumps():
    """In each case's process: its SIGABRT and SIGSEGV leave no core file behind."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def describe(status):
    if status < 0:
        try:
            return signal.Signals(-status).name
        except ValueError:
            return f"signal {-status}"
    return f"exit {status}"


def main():
    parser = argparse.ArgumentParser(description="planted memory bugs against libkmalloc.so's sampling detector")
    parser.add_argument("--lib", default=DEFAULT_LIB)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--verbose", action="store_true", help="print the stderr of failing cases")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    prepared = preload_harness.prepare(args.lib, "kfence_test.c", "kfence_test", ["-O0", "-g", "-rdynamic", "-pthread", "-w"])
    if prepared is None:
        return 1
    lib, binary = prepared
    listed = subprocess.run([binary, "list"], capture_output=True, text=True).stdout.split()
    unknown = sorted(set(listed) - set(BUGS) - set(CLEAN))
    names = [name for name in listed if name in BUGS or name in CLEAN]
    wanted = [name for name in args.only.split(",") if name]
    if wanted:
        names = [name for name in names if name in wanted]
    env = dict(os.environ)
    for name in ("KMALLOC_STATS", "KMALLOC_TRACE", "KMALLOC_SAMPLE_SLOTS", "MALLOC_CHECK_", "MALLOC_PERTURB_"):
        env.pop(name, None)
    env.update({"LD_PRELOAD": lib, "KMALLOC_SAMPLE": "1"})
    passed = failed = 0
    started = time.perf_counter()
    for name in unknown:
        failed += 1
        print(f"FAIL {name}: kfence_test lists it, the runner has no expectation for it", flush=True)
    for name in names:
        try:
            proc = subprocess.run([binary, name], env=env, capture_output=True, text=True, timeout=args.timeout,
                                  errors="replace", preexec_fn=no_core_dumps)
            reason = check_bug(name, proc) if name in BUGS else check_clean(name, proc)
        except subprocess.TimeoutExpired:
            proc, reason = None, f"timed out after {args.timeout:.0f} s"
        if reason:
            failed += 1
            print(f"FAIL {name}: {reason}", flush=True)
            if args.verbose and proc is not None:
                print(proc.stderr.rstrip())
        else:
            passed += 1
            print(f"PASS {name}", flush=True)
    print(f"{passed} passed, {failed} failed ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
