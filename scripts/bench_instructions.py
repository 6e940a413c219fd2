#!/usr/bin/env python3
"""`make bench` (after membench; alone with ONLY=instructions): host x86-64 instructions
per malloc+free pair, counted by valgrind's callgrind (`perf stat -e instructions` does
not work on this VM: no hardware counters).

bench/pairs.c, built with gcc -O2 into a temporary folder, runs a warm-up of 10,000
pairs and then N pairs of SIZE bytes inside its function run_pairs; callgrind collects
only inside that function (--collect-atstart=no --toggle-collect=run_pairs), so the
count is the loop alone, divided by N. Per pair that includes the loop's own
instructions, the two PLT jumps and a one-byte write into the block: about 12, the
same for every allocator. Sizes 16, 64, 256, 1024 and 4096 (all multiples of 16, so
plain malloc is 16-byte aligned in all four).

Allocators, each through the process's malloc and free:
  glibc      no preload
  jemalloc   LD_PRELOAD=libjemalloc.so.2 (package libjemalloc2)
  mimalloc   LD_PRELOAD=libmimalloc.so.2 (package libmimalloc2.0)
  project    LD_PRELOAD=.build-preload/libkmalloc.so (`make preload`, built here when
             missing: scripts/build_preload.sh takes /tmp/swift-build.lock around each
             compile itself)
Each run's callgrind profile must show the malloc called from run_pairs in that
allocator's library (a preload that failed to load would otherwise count glibc).
A missing valgrind, gcc or library is said on stderr and skipped.

usage: bench_instructions.py [--json] [--quick] [--pairs N]
Output as membench's: a text table, or with --json one object per line
{"workload": "instructions", "parameter": "<size>", "allocator", "metric":
"instructions/pair", "value"}, plus the project/<allocator> ratios.
"""
import argparse
import concurrent.futures
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [16, 64, 256, 1024, 4096]
LOCK = "/tmp/swift-build.lock"
PRELOAD = os.path.join(ROOT, ".build-preload", "libkmalloc.so")


def say(text):
    print(f"bench_instructions: {text}", file=sys.stderr, flush=True)


def have_library(name):
    """Whether the dynamic loader finds `name` (as LD_PRELOAD with a bare name does)."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        listing = ""
    return name in listing or any(
        os.path.exists(os.path.join(d, name)) for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib"))


def lock_is_free():
    """Whether /tmp/swift-build.lock can be taken now (then it is let go at once)."""
    with open(LOCK, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def project_library():
    """.build-preload/libkmalloc.so, built when missing; None when it cannot be had."""
    if os.path.exists(PRELOAD):
        return PRELOAD
    # build_preload.sh takes the lock around each compile. If someone holds it now, this
    # may be our own caller (`flock /tmp/swift-build.lock make bench`): waiting would
    # never end, so the column is skipped instead.
    if not lock_is_free():
        say(f"project skipped: {PRELOAD} is missing and {LOCK} is held (run `make preload` first)")
        return None
    say("building .build-preload/libkmalloc.so (make preload)")
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "build_preload.sh")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0 or not os.path.exists(PRELOAD):
        say(f"project skipped: scripts/build_preload.sh failed:\n{result.stderr[-2000:]}")
        return None
    return PRELOAD


def allocators():
    """(name, LD_PRELOAD or None, the library the profile must show) for each one here."""
    found = [("glibc", None, "libc.so.6")]
    for name, library, package in (("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
                                   ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0")):
        if have_library(library):
            found.append((name, library, library))
        else:
            say(f"{name} skipped: {library} not found "
                f"(apt-get install -y --no-install-recommends {package}; make bench does when it can)")
    project = project_library()
    if project:
        found.append(("project", project, "libkmalloc.so"))
    return found


def count(program, workdir, allocator, preload, expected, size, pairs):
    """Instructions per pair of `size` bytes under callgrind."""
    out = os.path.join(workdir, f"callgrind.{allocator}.{size}")
    env = dict(os.environ)
    for name in ("LD_PRELOAD", "KMALLOC_STATS", "KMALLOC_TRACE", "MALLOC_CHECK_", "MALLOC_PERTURB_"):
        env.pop(name, None)
    if preload:
        env["LD_PRELOAD"] = preload
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
         "--toggle-collect=run_pairs", program, str(size), str(pairs)],
        env=env, capture_output=True, text=True)
    collected = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or not collected:
        raise RuntimeError(f"{allocator} {size}: callgrind failed ({result.returncode}):\n{result.stderr[-2000:]}")
    with open(out) as f:
        objects = re.findall(r"^c?ob=(?:\(\d+\))? ?(.*)$", f.read(), re.M)
    os.remove(out)
    if not any(os.path.basename(o).startswith(expected) for o in objects if o):
        raise RuntimeError(f"{allocator} {size}: malloc did not run in {expected} (objects: {sorted(set(objects))})")
    return int(collected.group(1)) / pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--quick", action="store_true", help="20,000 pairs instead of 100,000")
    parser.add_argument("--pairs", type=int, help="pairs per run")
    args = parser.parse_args()
    pairs = args.pairs or (20_000 if args.quick else 100_000)

    for tool, package in (("valgrind", "valgrind"), ("gcc", "gcc")):
        if not shutil.which(tool):
            say(f"skipped: {tool} not found (apt-get install -y --no-install-recommends {package})")
            return 0
    found = allocators()
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as workdir:
        program = os.path.join(workdir, "pairs")
        subprocess.run(["gcc", "-O2", "-fno-builtin-malloc", "-fno-builtin-free", "-o", program,
                        os.path.join(ROOT, "bench", "pairs.c")], check=True)
        jobs = [(name, preload, expected, size) for size in SIZES for name, preload, expected in found]
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            values = list(pool.map(lambda job: count(program, workdir, job[0], job[1], job[2], job[3], pairs), jobs))

    results = [("instructions", str(size), name, "instructions/pair", value)
               for (name, _, _, size), value in zip(jobs, values)]
    by_key = {(r[1], r[2]): r[4] for r in results}
    for size in SIZES:
        if (str(size), "project") not in by_key:
            continue
        for baseline in ("glibc", "jemalloc", "mimalloc"):
            if (str(size), baseline) in by_key:
                results.append(("instructions", str(size), f"project/{baseline}", "ratio",
                                by_key[(str(size), "project")] / by_key[(str(size), baseline)]))

    if args.json:
        for workload, parameter, allocator, metric, value in results:
            print(json.dumps({"workload": workload, "parameter": parameter, "allocator": allocator,
                              "metric": metric, "value": value}, separators=(",", ":")))
    else:
        # membench's table: the same columns (widened for a longer entry) and rounding.
        widths = [max(least, max(len(r[i]) for r in results) + 2) for i, least in enumerate((18, 22, 20, 10))]
        header = ("workload", "parameter", "allocator", "metric")
        print("".join(h.ljust(w) for h, w in zip(header, widths)) + "value")
        for row in results:
            value = row[4]
            shown = str(int(round(value))) if value >= 100 else str(int(value * 1000) / 1000)
            print("".join(c.ljust(w) for c, w in zip(row[:4], widths)) + shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
