#!/usr/bin/env python3
"""Turns a raw KMALLOC_TRACE file (written by .build-preload/libkmalloc.so, format in
Preload/shim.c) into the replay format, with addresses replaced by small ids.

    scripts/kmalloc_trace.py RAW [-o OUT] [--comment TEXT]    (OUT "-": stdout)
    scripts/kmalloc_trace.py --record OUT.trace.xz [--comment TEXT] -- PROGRAM ARGS...

--record runs the program with LD_PRELOAD=.build-preload/libkmalloc.so and
KMALLOC_TRACE set, converts its trace and compresses it with xz (-9e).

Replay format (text, one event a line, ASCII):

    # kmalloc-trace 1                    first line
    # <comment lines>                    any number, ignored by a replayer
    # events=N ids=K peak_live_bytes=B   the last comment line: counts for the replayer
    a <id> <size>            malloc(size)                      -> slot id
    z <id> <size>            calloc: size (= count * size) zeroed bytes -> slot id
    m <id> <size> <align>    aligned allocation (posix_memalign, aligned_alloc, memalign,
                             valloc, pvalloc); align a power of two -> slot id
    r <id> <size>            realloc(slot id, size), size > 0; the result stays slot id
    f <id>                   free(slot id)

Ids are 0 ..< K, and a freed id is reused: every allocation takes the smallest id not
live, so a replayer keeps an array of K pointers. Sizes and alignments are decimal
bytes. Calls that did nothing or failed are left out (free(NULL), an allocation that
returned NULL, a failed realloc), realloc(NULL, n) is written as `a`, realloc(p, 0) as
`f`, and a free or realloc of an address the trace never returned (memory from before
tracing began) is left out (a realloc of one becomes an `a`). Blocks still live at exit
are not freed.
"""
import argparse
import heapq
import lzma
import os
import struct
import subprocess
import sys
import tempfile

HEADER = struct.Struct("<8sII")
RECORD = struct.Struct("<BB6xQQQ")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(raw_path, out, comments=()):
    with open(raw_path, "rb") as handle:
        data = handle.read()
    magic, record_size, pid = HEADER.unpack_from(data, 0)
    if magic != b"KMTRACE1" or record_size != RECORD.size:
        raise SystemExit(f"{raw_path}: not a KMTRACE1 file")
    live = {}          # address -> (id, size)
    free_ids = []      # heap of released ids
    next_id = 0
    live_bytes = peak = 0
    lines = []
    skipped = 0

    def take(address, size):
        nonlocal next_id, live_bytes, peak
        if free_ids:
            ident = heapq.heappop(free_ids)
        else:
            ident = next_id
            next_id += 1
        live[address] = (ident, size)
        live_bytes += size
        peak = max(peak, live_bytes)
        return ident

    def drop(address):
        nonlocal live_bytes
        ident, size = live.pop(address)
        heapq.heappush(free_ids, ident)
        live_bytes -= size
        return ident

    for offset in range(HEADER.size, len(data) - RECORD.size + 1, RECORD.size):
        op, align_log2, size, result, old = RECORD.unpack_from(data, offset)
        op = chr(op)
        if op in "mca":
            if not result:
                continue
            if result in live:  # an address the trace lost track of: start afresh
                drop(result)
                skipped += 1
            ident = take(result, size)
            if op == "m":
                lines.append(f"a {ident} {size}")
            elif op == "c":
                lines.append(f"z {ident} {size}")
            else:
                lines.append(f"m {ident} {size} {1 << align_log2}")
        elif op == "f":
            if old in live:
                lines.append(f"f {drop(old)}")
            elif old:
                skipped += 1
        elif op == "r":
            if not old:
                if result:
                    lines.append(f"a {take(result, size)} {size}")
            elif size == 0:
                if old in live:
                    lines.append(f"f {drop(old)}")
            elif not result:
                continue
            elif old in live:
                ident, old_size = live.pop(old)
                live[result] = (ident, size)
                live_bytes += size - old_size
                peak = max(peak, live_bytes)
                lines.append(f"r {ident} {size}")
            else:
                skipped += 1
                lines.append(f"a {take(result, size)} {size}")
        else:
            raise SystemExit(f"{raw_path}: unknown op {op!r} at byte {offset}")
    out.write("# kmalloc-trace 1\n")
    for comment in comments:
        out.write(f"# {comment}\n")
    out.write(f"# events={len(lines)} ids={next_id} peak_live_bytes={peak}\n")
    out.write("\n".join(lines))
    out.write("\n")
    return len(lines), next_id, peak, skipped


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", nargs="?", help="raw KMALLOC_TRACE file")
    parser.add_argument("-o", "--output", default="-")
    parser.add_argument("--comment", action="append", default=[])
    parser.add_argument("--record", metavar="OUT", help="run the program after -- and write OUT (.xz)")
    parser.add_argument("--lib", default=os.path.join(ROOT, ".build-preload", "libkmalloc.so"))
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.record:
        if not command:
            parser.error("--record needs a program after --")
        with tempfile.TemporaryDirectory() as work:
            raw = os.path.join(work, "raw.trace")
            env = dict(os.environ, LD_PRELOAD=os.path.abspath(args.lib), KMALLOC_TRACE=raw)
            status = subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode
            if status != 0:
                raise SystemExit(f"{command[0]} exited with {status}")
            text = os.path.join(work, "trace.txt")
            with open(text, "w") as out:
                counts = convert(raw, out, args.comment or [" ".join(command)])
            with open(text, "rb") as source, lzma.open(args.record, "wb", preset=9 | lzma.PRESET_EXTREME) as sink:
                sink.write(source.read())
        print(f"{args.record}: events={counts[0]} ids={counts[1]} peak_live_bytes={counts[2]} "
              f"skipped={counts[3]} ({os.path.getsize(args.record)} bytes)")
        return 0
    if not args.raw:
        parser.error("a raw trace file, or --record")
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    counts = convert(args.raw, out, args.comment)
    if out is not sys.stdout:
        out.close()
    print(f"events={counts[0]} ids={counts[1]} peak_live_bytes={counts[2]} skipped={counts[3]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
