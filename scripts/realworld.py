#!/usr/bin/env python3
"""Real programs with the kernel heap as their malloc (`make realworld`).

Runs each program with LD_PRELOAD=.build-preload/libkmalloc.so and without it (glibc),
checks that the two give the same output and exit status, and prints each program's
best wall time and peak RSS as ratios to glibc, plus the median ratios.

    scripts/realworld.py [--quick] [--runs N] [--only NAME[,NAME]] [--lib PATH]
                         [--sample N] [--sample-slots N]

--quick: smaller inputs, one run each, well under a minute; prints one line a program,
`PASS <name>` or `FAIL <name>: <reason>` (or `SKIP <name>: <reason>` when the program
is not on this machine), then `N passed, N failed`. The exit status is 1 when any
program failed: output or exit status not glibc's, a crash, a report from the heap on
stderr ("free: double free 0x..."), or a run that did not use the library (each run
sets KMALLOC_STATS to a file, and the program's own process must have written its exit
line there).

The library's sampling detector is on in every run, at its default interval unless
--sample N (KMALLOC_SAMPLE=N; 1 sends every allocation up to a page to the guarded pool
while it has a free slot) or --sample-slots N (KMALLOC_SAMPLE_SLOTS) say otherwise. A
detector report on stderr (`kfence-...: ...`) fails the program; with --sample, so does
an exit line without the detector's counts, and each PASS line gives how many
allocations the pool served.

Each run goes through .build-preload/kmrun (Preload/kmrun.c), which forks the program,
sets its LD_PRELOAD, and measures its wall time and peak RSS: ru_maxrss from wait4, the
most any process of its tree that it waited for had resident. Standard library only.
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LIB = os.path.join(ROOT, ".build-preload", "libkmalloc.so")
# A line the heap's report hook writes (Preload/shim.c, kmalloc_report).
REPORT = re.compile(rb"^(free|realloc|malloc_usable_size|malloc|calloc|posix_memalign|aligned_alloc|kmalloc): .* 0x[0-9a-f]+$", re.M)
# The first line of a report of the sampling detector (GuardedPoolReport).
DETECTOR_REPORT = re.compile(rb"^kfence-[a-z-]+: .*$", re.M)


class Program:
    """One program: its command, what of its output is compared, and its inputs."""

    def __init__(self, name, argv, cwd=None, env=None, stdin=None, extra_output=None, normalize_stderr=None):
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env or {}
        self.stdin = stdin
        # A function (run directory) -> bytes folded into the compared output.
        self.extra_output = extra_output
        # A function (stderr bytes) -> bytes compared too; None: stderr not compared.
        self.normalize_stderr = normalize_stderr


class Run:
    def __init__(self, status, wall, maxrss_kib, digest, stderr, loaded, reports, timed_out, exit_line=""):
        self.status = status
        self.wall = wall
        self.maxrss_kib = maxrss_kib
        self.digest = digest
        self.stderr = stderr
        self.loaded = loaded
        self.reports = reports
        self.timed_out = timed_out
        # The library's KMALLOC_STATS exit line for the program's own process.
        self.exit_line = exit_line


def find_python():
    """The first python3 that has the test suite (test.test_json ...); the real binary,
    not a pyenv shim. Returns (python, has_tests)."""
    candidates = [sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    found = []
    for candidate in candidates:
        if not candidate or not os.path.exists(candidate):
            continue
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys, importlib.util as u; print(sys.executable); "
                 "print(all(u.find_spec(m) for m in ('test.test_json', 'test.test_dict', 'test.test_list')))"],
                capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = probe.stdout.split()
        if probe.returncode != 0 or len(lines) != 2:
            continue
        found.append((lines[0], lines[1] == "True"))
        if lines[1] == "True":
            return found[-1]
    return found[0] if found else (None, False)


# MARK: Inputs

def generate_c_source(path, functions):
    """A deterministic C translation unit: structs, tables, switch interpreters, loops
    and inline helpers, `functions` groups of them (about 60 lines each)."""
    rng = random.Random(7)
    out = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>", "#include <math.h>",
           "#include <stdint.h>", "", "static inline uint32_t mix(uint32_t x) { x ^= x >> 16; x *= 0x7feb352dU;"
           " x ^= x >> 15; x *= 0x846ca68bU; return x ^ (x >> 16); }", ""]
    for f in range(functions):
        fields = rng.randint(3, 9)
        out.append(f"struct rec{f} {{")
        for k in range(fields):
            out.append(f"  {rng.choice(['int', 'double', 'uint32_t', 'long', 'float'])} f{k};")
        out.append(f"  struct rec{f} *next;\n  char name[{rng.randint(8, 64)}];\n}};")
        table = ", ".join(str(rng.randint(-1000, 1000)) for _ in range(rng.randint(8, 40)))
        out.append(f"static const int table{f}[] = {{{table}}};")
        out.append(f"static double interp{f}(const unsigned char *code, size_t n, double *stack) {{")
        out.append("  size_t sp = 0; double acc = 0;")
        out.append("  for (size_t pc = 0; pc < n; pc++) {\n    switch (code[pc] % 12) {")
        for case in range(12):
            expr = rng.choice(["acc += stack[sp ? sp - 1 : 0];", "stack[sp++ & 63] = acc;", "acc *= 1.0001;",
                               "acc = sqrt(fabs(acc));", f"acc -= table{f}[pc % (sizeof table{f} / sizeof *table{f})];",
                               "if (sp) sp--;", "acc = acc > 1e9 ? 0 : acc + pc;", "acc = sin(acc) * 3;"])
            out.append(f"    case {case}: {expr} break;")
        out.append("    }\n  }\n  return acc;\n}")
        out.append(f"struct rec{f} *build{f}(int n) {{")
        out.append(f"  struct rec{f} *head = NULL;")
        out.append("  for (int i = 0; i < n; i++) {")
        out.append(f"    struct rec{f} *r = calloc(1, sizeof *r);\n    if (!r) abort();")
        for k in range(fields):
            out.append(f"    r->f{k} = (mix(i * {rng.randint(3, 99)} + {k}) % {rng.randint(10, 5000)});")
        out.append(f"    snprintf(r->name, sizeof r->name, \"r{f}-%d\", i);\n    r->next = head;\n    head = r;\n  }}")
        out.append("  return head;\n}")
        out.append(f"double score{f}(struct rec{f} *r) {{")
        out.append("  double total = 0; unsigned char code[64]; double stack[64] = {0};")
        out.append(f"  for (int i = 0; i < 64; i++) code[i] = (unsigned char)mix(i + {f});")
        out.append("  for (; r; r = r->next) {")
        terms = " + ".join(f"r->f{k}" for k in range(fields))
        out.append(f"    total += ({terms}) * (strlen(r->name) + 1);")
        out.append(f"    if (r->f0 > {rng.randint(1, 100)}) total += interp{f}(code, 64, stack);")
        out.append("  }\n  return total;\n}")
        out.append("")
    out.append("int main(void) {\n  double sum = 0;")
    for f in range(functions):
        out.append(f"  sum += score{f}(build{f}({rng.randint(5, 50)}));")
    out.append('  printf("%f\\n", sum);\n  return 0;\n}')
    with open(path, "w") as handle:
        handle.write("\n".join(out) + "\n")


SQL = """
CREATE TABLE t AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
  SELECT i, (i * 7919) % 1000 AS k, printf('name-%d', (i * 31) % 5000) AS s,
         (i * 2654435761) % 1000003 AS v, hex(randomblob(0) || i) AS h FROM n;
CREATE INDEX t_k ON t(k, v);
CREATE INDEX t_s ON t(s);
SELECT k, count(*), sum(v), min(s), max(s) FROM t GROUP BY k ORDER BY k LIMIT 25;
SELECT count(DISTINCT s), count(DISTINCT v), total(v) FROM t;
SELECT s, length(group_concat(i)) FROM t WHERE k < 20 GROUP BY s ORDER BY s LIMIT 25;
SELECT a.k, count(*) FROM t AS a JOIN t AS b ON a.k = b.k AND a.v < b.v WHERE a.i < {join} GROUP BY a.k ORDER BY 2 DESC, 1 LIMIT 10;
SELECT i, sum(v) OVER (PARTITION BY k ORDER BY i ROWS 5 PRECEDING), rank() OVER (ORDER BY v DESC) FROM t ORDER BY v DESC, i LIMIT 25;
UPDATE t SET s = s || '-' || k WHERE i % 3 = 0;
DELETE FROM t WHERE i % 5 = 0;
SELECT count(*), sum(length(s)) FROM t;
SELECT s, count(*) FROM t GROUP BY s ORDER BY count(*) DESC, s LIMIT 10;
"""

JQ_FILTER = ("group_by(.group) | map({group: .[0].group, n: length, total: (map(.value) | add), "
             "tags: ([.[].tags[]] | unique | length), longest: (map(.name | length) | max)}) "
             "| sort_by(-.total) | .[:20]")


def prepare(work, quick, python, has_tests, lib):
    """Writes the inputs into `work` and returns the programs."""
    scale = 1 if quick else 4
    rng = random.Random(1234)
    words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))) for _ in range(3000)]

    records = [{"id": i, "group": rng.choice(words[:200]), "name": " ".join(rng.sample(words, 3)),
                "value": rng.randint(0, 100000), "tags": rng.sample(words[:500], rng.randint(0, 6)),
                "nested": {"a": [rng.random() for _ in range(rng.randint(0, 5))], "b": rng.choice(words)}}
               for i in range(40000 * scale)]
    with open(os.path.join(work, "data.json"), "w") as handle:
        json.dump(records, handle)

    with open(os.path.join(work, "lines.txt"), "w") as handle:
        for i in range(150000 * scale):
            handle.write(f"{rng.randint(0, 10**9)} {rng.choice(words)} {rng.choice(words)}-{i % 977}\n")
    with open(os.path.join(work, "lines.txt")) as source, open(os.path.join(work, "xz-input.txt"), "w") as sink:
        for _ in range(100000 if quick else 200000):
            sink.write(source.readline())

    generate_c_source(os.path.join(work, "gen.c"), 60 if quick else 120)

    with open(os.path.join(work, "script.sql"), "w") as handle:
        handle.write(SQL.format(rows=50000 * scale, join=500 * scale))

    programs = []
    if python:
        workload = os.path.join(ROOT, "bench", "json_workload.py")
        sizes = ["--records", "5000", "--rounds", "2"] if quick else ["--records", "25000", "--rounds", "3"]
        programs.append(Program("python-json", [python, workload] + sizes, env={"PYTHONHASHSEED": "0"}))
        programs.append(Program("python-json-malloc", [python, workload] + sizes,
                                env={"PYTHONHASHSEED": "0", "PYTHONMALLOC": "malloc"}))
        if has_tests:
            tests = ["test.test_json", "test.test_dict", "test.test_list"]
            if not quick:
                tests.append("test.test_re")
            programs.append(Program(
                "python-tests", [python, "-m", "unittest", "-q"] + tests, cwd=work, env={"PYTHONHASHSEED": "0"},
                normalize_stderr=lambda err: re.sub(rb"Ran (\d+) tests? in [0-9.]+s", rb"Ran \1 tests", err)))
    git = shutil.which("git")
    if git and os.path.exists(os.path.join(ROOT, ".git")):
        revision = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        blame = r"\.(swift|c)$" if quick else r"\.(swift|c|py|md|json)$|Makefile"
        script = (f"git log -p --stat -M {revision} && "
                  f"for f in $(git ls-tree -r --name-only {revision} | grep -E '{blame}'); do "
                  f"git blame -w -M -C {revision} -- \"$f\" || exit 1; done && "
                  f"git grep -n -I -e func -e page {revision} -- && git diff -M --stat -p {revision}~20 {revision}")
        if quick:
            script = script.replace(" -M -C ", " ")
        programs.append(Program("git", ["/bin/sh", "-c", script], cwd=ROOT,
                                env={"GIT_PAGER": "cat", "PAGER": "cat", "GIT_CONFIG_NOSYSTEM": "1"}))
    if shutil.which("gcc"):
        programs.append(Program("gcc", ["gcc", "-O2", "-c", "gen.c", "-o", "gen.o"], cwd=work,
                                extra_output=lambda run_dir: file_digest(os.path.join(work, "gen.o")).encode(),
                                normalize_stderr=lambda err: err))
    if shutil.which("sqlite3"):
        programs.append(Program("sqlite3", ["sqlite3", ":memory:"], cwd=work, stdin=os.path.join(work, "script.sql")))
    if shutil.which("jq"):
        programs.append(Program("jq", ["jq", "-c", JQ_FILTER, "data.json"], cwd=work))
    if shutil.which("sort"):
        programs.append(Program("sort", ["sort", "-k2,2", "-k1,1n", "lines.txt"], cwd=work, env={"LC_ALL": "C"}))
    if shutil.which("xz"):
        programs.append(Program("xz", ["xz", "-6", "-T1", "-c", "xz-input.txt"], cwd=work))
    if shutil.which("perl"):
        perl = ("my %h; my %c; for my $i (1..COUNT) { my $k = join('-', ($i * 7919) % 5003, ($i * 31) % 97); "
                "push @{$h{$k}}, $i; $c{substr($k, 0, 2)} .= chr(65 + $i % 26); } "
                "my $n = 0; for my $k (sort keys %h) { $n += scalar @{$h{$k}}; } "
                "print scalar(keys %h), ' ', $n, \"\\n\"; "
                "for my $k (sort keys %c) { print $k, ' ', length($c{$k}), ' ', substr($c{$k}, 0, 20), \"\\n\"; }")
        programs.append(Program("perl", ["perl", "-e", perl.replace("COUNT", str(150000 * scale))], cwd=work))
    stress = os.path.join(os.path.dirname(lib), "stress")
    if os.access(stress, os.X_OK):
        # Preload/stress.c: threads x operations with cross-thread frees, forks from the
        # threaded process, short-lived threads; its output is one line of totals.
        sizes = ["8", "200000", "20", "500"] if quick else ["8", "1000000", "50", "2000"]
        programs.append(Program("threads", [stress] + sizes, cwd=work))
    return programs


# MARK: Running

def file_digest(path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "missing"
    return digest.hexdigest()


def run_once(program, preload, lib, run_dir, timeout, sampling=None):
    """One run through kmrun (a small process, so that ru_maxrss is the program's: Linux
    keeps it across execve); without kmrun, straight from here, where every RSS is at
    least this script's own. `sampling`: environment for the library's runs
    (KMALLOC_SAMPLE...)."""
    os.makedirs(run_dir, exist_ok=True)
    stdout_path = os.path.join(run_dir, "stdout")
    stderr_path = os.path.join(run_dir, "stderr")
    stats_path = os.path.join(run_dir, "kmalloc-stats")
    result_path = os.path.join(run_dir, "kmrun")
    for path in (stats_path, result_path):
        if os.path.exists(path):
            os.unlink(path)
    env = dict(os.environ)
    for name in ("LD_PRELOAD", "KMALLOC_STATS", "KMALLOC_TRACE", "KMALLOC_SAMPLE", "KMALLOC_SAMPLE_SLOTS",
                 "MALLOC_CHECK_", "MALLOC_PERTURB_"):
        env.pop(name, None)
    env.update(program.env)
    if preload:
        env["KMALLOC_STATS"] = stats_path
        env.update(sampling or {})
    kmrun = os.path.join(os.path.dirname(lib), "kmrun")
    if os.access(kmrun, os.X_OK):
        argv = [kmrun, result_path, lib if preload else ""] + program.argv
    else:
        argv = program.argv
        if preload:
            env["LD_PRELOAD"] = lib
    stdin = open(program.stdin, "rb") if program.stdin else subprocess.DEVNULL
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=program.cwd, env=env, stdin=stdin, stdout=out, stderr=err,
                                   start_new_session=True)
        timed_out = []

        def kill():
            timed_out.append(True)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    if program.stdin:
        stdin.close()
    pid, maxrss = process.pid, usage.ru_maxrss
    if argv[0] == kmrun:
        try:
            with open(result_path) as handle:
                fields = handle.read().split()
            pid, status, maxrss, wall = int(fields[0]), int(fields[1]), int(fields[2]), int(fields[3]) / 1e9
            process.returncode = os.waitstatus_to_exitcode(status)
        except (OSError, ValueError, IndexError):
            process.returncode = process.returncode or 127
    with open(stderr_path, "rb") as handle:
        stderr = handle.read()
    digest = hashlib.sha256()
    digest.update(file_digest(stdout_path).encode())
    if program.normalize_stderr:
        digest.update(program.normalize_stderr(stderr))
    if program.extra_output:
        digest.update(program.extra_output(run_dir))
    loaded = False
    exit_line = ""
    if preload and os.path.exists(stats_path):
        with open(stats_path) as handle:
            mine = [line for line in handle if line.startswith(f"kmalloc: pid={pid} ")]
        loaded = bool(mine)
        exit_line = next((line for line in mine if " malloc=" in line), "")
    reports = []
    if preload:
        reports = [match.group(0).decode(errors="replace") for match in REPORT.finditer(stderr)]
        reports += [match.group(0).decode(errors="replace") for match in DETECTOR_REPORT.finditer(stderr)]
    return Run(process.returncode, wall, maxrss, digest.hexdigest(), stderr, loaded, reports, bool(timed_out),
               exit_line)


def describe_status(status):
    return f"signal {-status}" if status < 0 else f"exit {status}"


def compare(program, glibc, kmalloc, sampling=None):
    """None when the kmalloc run is as good as glibc's, else the reason."""
    if kmalloc.timed_out:
        return "timed out"
    if not kmalloc.loaded:
        return "library not loaded (no KMALLOC_STATS line from the program's process)"
    detector = DETECTOR_REPORT.search(kmalloc.stderr)
    if detector:
        return f"detector reported: {detector.group(0).decode(errors='replace')[:200]}"
    interval = sampling.get("KMALLOC_SAMPLE") if sampling else None
    needle = f" sample_interval={interval} " if interval else " sample_interval="
    if sampling and interval != "0" and kmalloc.exit_line and needle not in kmalloc.exit_line:
        return f"detector not on at KMALLOC_SAMPLE={interval or 'default'}: {kmalloc.exit_line.strip()[-160:]}"
    if kmalloc.status != glibc.status:
        tail = kmalloc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"{describe_status(kmalloc.status)}, glibc {describe_status(glibc.status)}: {tail[0][:200]}"
    if kmalloc.reports:
        return f"heap reported: {kmalloc.reports[0][:200]}"
    if kmalloc.digest != glibc.digest:
        return "output differs from glibc's"
    return None


def main():
    parser = argparse.ArgumentParser(description="real programs with libkmalloc.so against glibc")
    parser.add_argument("--quick", action="store_true", help="small inputs, one run each, PASS/FAIL lines")
    parser.add_argument("--runs", type=int, default=None, help="runs per allocator (default 3, quick 1)")
    parser.add_argument("--only", default="", help="comma-separated program names")
    parser.add_argument("--lib", default=DEFAULT_LIB)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run (default 600, quick 60)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--sample", type=int, default=None,
                        help="KMALLOC_SAMPLE for the library's runs (default: the library's, 65536; 1: every allocation)")
    parser.add_argument("--sample-slots", type=int, default=None, help="KMALLOC_SAMPLE_SLOTS (default: the library's, 255)")
    args = parser.parse_args()
    sampling = {}
    if args.sample is not None:
        sampling["KMALLOC_SAMPLE"] = str(args.sample)
    if args.sample_slots is not None:
        sampling["KMALLOC_SAMPLE_SLOTS"] = str(args.sample_slots)
    runs = args.runs or (1 if args.quick else 3)
    timeout = args.timeout or (60 if args.quick else 600)
    lib = os.path.abspath(args.lib)
    if not os.path.exists(lib):
        print(f"FAIL preload: {lib} missing (make preload)")
        print("0 passed, 1 failed")
        return 1

    python, has_tests = find_python()
    base = os.path.join(ROOT, ".build-preload")
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="realworld-", dir=base)
    started = time.perf_counter()
    try:
        programs = prepare(work, args.quick, python, has_tests, lib)
        wanted = [name for name in args.only.split(",") if name]
        if wanted:
            programs = [program for program in programs if program.name in wanted]
        skipped = []
        if not python:
            skipped.append(("python", "no python3 found"))
        elif not has_tests:
            skipped.append(("python-tests", f"{python} has no test package"))
        for tool in ("git", "gcc", "sqlite3", "jq", "sort", "xz", "perl"):
            if not shutil.which(tool):
                skipped.append((tool, "not installed"))
        if not args.quick:
            setting = " ".join(f"{name}={value}" for name, value in sampling.items()) or "the library's defaults"
            print(f"python: {python}; {runs} run(s) per allocator; library {os.path.relpath(lib, ROOT)}; "
                  f"sampling detector: {setting}")
            print(f"{'program':20} {'glibc s':>8} {'kmalloc s':>9} {'wall':>6} {'glibc MiB':>9} {'kmalloc MiB':>11} {'RSS':>6}")
        results = []
        failures = 0
        for program in programs:
            glibc_runs, kmalloc_runs, reason = [], [], None
            for index in range(runs):
                glibc = run_once(program, False, lib, os.path.join(work, program.name, f"glibc-{index}"), timeout)
                kmalloc = run_once(program, True, lib, os.path.join(work, program.name, f"kmalloc-{index}"), timeout,
                                   sampling)
                glibc_runs.append(glibc)
                kmalloc_runs.append(kmalloc)
                if glibc.digest != glibc_runs[0].digest or glibc.status != glibc_runs[0].status:
                    reason = "glibc runs differ from each other: the program's output is not deterministic"
                reason = reason or compare(program, glibc_runs[0], kmalloc, sampling)
                if reason:
                    break
            if reason:
                failures += 1
                print(f"FAIL {program.name}: {reason}", flush=True)
                continue
            glibc_wall = min(run.wall for run in glibc_runs)
            kmalloc_wall = min(run.wall for run in kmalloc_runs)
            glibc_rss = statistics.median(run.maxrss_kib for run in glibc_runs) / 1024
            kmalloc_rss = statistics.median(run.maxrss_kib for run in kmalloc_runs) / 1024
            wall_ratio = kmalloc_wall / glibc_wall if glibc_wall > 0 else float("nan")
            rss_ratio = kmalloc_rss / glibc_rss if glibc_rss > 0 else float("nan")
            results.append((program.name, wall_ratio, rss_ratio))
            served = re.search(r" sampled=(\d+)", kmalloc_runs[-1].exit_line)
            pool = f", pool served {served.group(1)}" if sampling and served else ""
            if args.quick:
                print(f"PASS {program.name} (wall {wall_ratio:.2f}x, RSS {rss_ratio:.2f}x: "
                      f"{kmalloc_rss:.1f} MiB, glibc {glibc_rss:.1f}{pool})", flush=True)
            else:
                print(f"{program.name:20} {glibc_wall:8.3f} {kmalloc_wall:9.3f} {wall_ratio:5.2f}x "
                      f"{glibc_rss:9.1f} {kmalloc_rss:11.1f} {rss_ratio:5.2f}x", flush=True)
        for name, why in skipped:
            print(f"SKIP {name}: {why}")
        if results and not args.quick:
            print(f"median wall ratio {statistics.median(r[1] for r in results):.3f}x, "
                  f"median RSS ratio {statistics.median(r[2] for r in results):.3f}x, "
                  f"worst RSS ratio {max(r[2] for r in results):.3f}x ({max(results, key=lambda r: r[2])[0]})")
            for name, _, _ in results:
                print(f"PASS {name}")
        print(f"{len(results)} passed, {failures} failed" + (f" ({time.perf_counter() - started:.0f} s)"))
        return 1 if failures else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
