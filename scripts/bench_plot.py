#!/usr/bin/env python3
"""`make bench-plot`: PNG plots from `membench --json` output.

usage: bench_plot.py BENCH.jsonl OUTDIR
Writes OUTDIR/scaling.png (ns per alloc+free against free holes, log-log, three
allocators), OUTDIR/efficiency.png (live requested bytes / arena at the first failure,
mean and minimum) and OUTDIR/random.png (ns per operation on the talc-style traces).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"project": "tab:blue", "seed-list": "tab:red", "glibc": "tab:gray", "jemalloc": "tab:orange", "mimalloc": "tab:green"}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def value(rows, workload, parameter, allocator, metric):
    for r in rows:
        if (r["workload"], r["parameter"], r["allocator"], r["metric"]) == (workload, parameter, allocator, metric):
            return r["value"]
    return None


def scaling(rows, out):
    holes = [10, 100, 1000, 5000]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for allocator in ("project", "seed-list", "glibc", "jemalloc", "mimalloc"):
        ys = [value(rows, "scaling", f"holes={h}", allocator, "ns/pair") for h in holes]
        if None in ys:
            continue  # an allocator the run skipped
        ax.plot(holes, ys, marker="o", label=allocator, color=COLORS[allocator])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("free holes present")
    ax.set_ylabel("ns per alloc+free (fits no hole)")
    ax.set_title("Scaling: cost against the number of free holes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/scaling.png", dpi=100)


def efficiency(rows, out):
    params = ["max=1000", "max=4096"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    width = 0.2
    for i, (allocator, metric) in enumerate([("project", "mean"), ("project", "min"),
                                              ("seed-list", "mean"), ("seed-list", "min")]):
        ys = [100 * value(rows, "efficiency", p, allocator, metric) for p in params]
        xs = [j + (i - 1.5) * width for j in range(len(params))]
        bars = ax.bar(xs, ys, width, label=f"{allocator} {metric}", color=COLORS[allocator],
                      alpha=1.0 if metric == "mean" else 0.55)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    for j, target in enumerate([88, 96]):
        ax.hlines(target, j - 0.45, j + 0.45, colors="black", linestyles="dashed")
    ax.set_xticks(range(len(params)), params)
    ax.set_ylim(70, 100)
    ax.set_ylabel("% of the 1 MiB arena live at the first failure")
    ax.set_title("Heap efficiency (50 trials; dashed: target)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(f"{out}/efficiency.png", dpi=100)


def random_actions(rows, out):
    params = ["max=200", "max=1000", "max=3000"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    shown = [a for a in ("project", "glibc", "jemalloc", "mimalloc")
             if None not in [value(rows, "random", p, a, "ns/op") for p in params]]
    width = 0.8 / len(shown)
    for i, allocator in enumerate(shown):
        ys = [value(rows, "random", p, allocator, "ns/op") for p in params]
        bars = ax.bar([j + (i - (len(shown) - 1) / 2) * width for j in range(len(params))], ys, width, label=allocator,
                      color=COLORS[allocator])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(params)), params)
    ax.set_ylabel("ns per operation (median of 5)")
    ax.set_title("Random actions, talc-style (seed list: ~1000 ns, off the chart)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/random.png", dpi=100)


def main():
    rows = load(sys.argv[1])
    out = sys.argv[2]
    scaling(rows, out)
    efficiency(rows, out)
    random_actions(rows, out)
    print(f"wrote {out}/scaling.png, {out}/efficiency.png, {out}/random.png")


if __name__ == "__main__":
    main()
