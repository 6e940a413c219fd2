#!/usr/bin/env python3
"""The preload library's per-thread cache (`make preload-tcache`).

Builds Preload/tcache_test.c into .build-preload/tcache_test with the system's cc and
runs each case with LD_PRELOAD=.build-preload/libkmalloc.so twice: with the cache on
(the default) and with KMALLOC_TCACHE=0, where the heap alone decides every free. The
run without the cache is the reference for the run with it:

- both runs exit 0 and print the same lines (besides the `expect:` lines, whose
  addresses differ between runs);
- in each run, the reports on stderr (`function: double free 0x...`) are exactly the
  ones its `expect:` lines name: a double free of an object in a bin is reported as the
  heap reports one, and an object of an exited thread's bins is the heap's again;
- with KMALLOC_STATS, the exit line's `slab_objects` (live size-class objects, counted
  by the heap) is the same in both runs: the threads' bins went back to the heap when
  the threads exited.

    scripts/preload_tcache.py [--lib PATH] [--only NAME[,NAME]]

Prints `PASS <name>` or `FAIL <name>: <reason>` per case, then `N passed, N failed`;
exits 1 when a case failed. Standard library only.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import preload_harness

DEFAULT_LIB = preload_harness.DEFAULT_LIB
CASES = ["double_free", "cross_thread", "thread_exit", "fork"]
# Cases whose exit line's slab_objects must agree between the two runs.
COUNTED = {"thread_exit"}
REPORT = re.compile(r"(?m)^([a-z_]+: [a-z -]+ 0x[0-9a-f]+)$")


def run(binary, name, env, timeout):
    """One run: (stdout lines without `expect:`, expected reports, reported, exit status,
    slab_objects or None, stderr)."""
    with tempfile.TemporaryDirectory() as work:
        stats = os.path.join(work, "stats")
        proc = subprocess.run([binary, name], env=dict(env, KMALLOC_STATS=stats), capture_output=True, text=True,
                              timeout=timeout, errors="replace")
        pid_lines = open(stats).read().splitlines() if os.path.exists(stats) else []
    expected = sorted(line[len("expect: "):] for line in proc.stdout.splitlines() if line.startswith("expect: "))
    plain = [line for line in proc.stdout.splitlines() if not line.startswith("expect: ")]
    reported = sorted(REPORT.findall(proc.stderr))
    counts = [re.search(r" slab_objects=(\d+)", line) for line in pid_lines if " malloc=" in line]
    # The process's own exit line is the last one written (forked children exit first).
    objects = int(counts[-1].group(1)) if counts and counts[-1] else None
    return plain, expected, reported, proc.returncode, objects, proc.stderr


def check(binary, name, env, timeout):
    """The reason the case failed, or None."""
    results = {}
    for mode, extra in (("on", {}), ("off", {"KMALLOC_TCACHE": "0"})):
        plain, expected, reported, status, objects, stderr = run(binary, name, dict(env, **extra), timeout)
        if status != 0:
            tail = (stderr.strip().splitlines() or [""])[-1]
            return f"cache {mode}: exit {status}: {' / '.join(plain[-2:])} {tail[:200]}"
        if expected != reported:
            return f"cache {mode}: reports {reported[:4]} where {expected[:4]} were expected"
        results[mode] = (plain, len(expected), objects)
    if results["on"][0] != results["off"][0]:
        return f"output differs: with the cache {results['on'][0][:3]}, without {results['off'][0][:3]}"
    if results["on"][1] != results["off"][1]:
        return f"{results['on'][1]} reports with the cache, {results['off'][1]} without"
    if name in COUNTED:
        on, off = results["on"][2], results["off"][2]
        if on is None or off is None:
            return "no slab_objects in the KMALLOC_STATS exit line"
        if on != off:
            return f"slab_objects={on} at exit with the cache, {off} without (bins not given back)"
    return None


def main():
    parser = argparse.ArgumentParser(description="libkmalloc.so's per-thread cache against the heap without it")
    parser.add_argument("--lib", default=DEFAULT_LIB)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    prepared = preload_harness.prepare(args.lib, "tcache_test.c", "tcache_test", ["-O1", "-g", "-pthread", "-Wall"])
    if prepared is None:
        return 1
    lib, binary = prepared
    wanted = [name for name in args.only.split(",") if name]
    names = [name for name in CASES if not wanted or name in wanted]
    env = dict(os.environ)
    for name in ("KMALLOC_STATS", "KMALLOC_TRACE", "KMALLOC_TCACHE", "KMALLOC_SLABS", "MALLOC_CHECK_", "MALLOC_PERTURB_"):
        env.pop(name, None)
    env["LD_PRELOAD"] = lib
    passed = failed = 0
    started = time.perf_counter()
    for name in names:
        try:
            reason = check(binary, name, env, args.timeout)
        except subprocess.TimeoutExpired:
            reason = f"timed out after {args.timeout:.0f} s"
        if reason:
            failed += 1
            print(f"FAIL {name}: {reason}", flush=True)
        else:
            passed += 1
            print(f"PASS {name}", flush=True)
    print(f"{passed} passed, {failed} failed ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
