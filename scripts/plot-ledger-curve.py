#!/usr/bin/env python3
"""Draws the ledger's cost curve from the output of ledger/benches/cost_curve.rs.

Usage: scripts/plot-ledger-curve.py [DIR] [PNG]
  DIR  where the bench wrote <label>.jsonl and <label>-appends.csv (default target/ledger-curve)
  PNG  the picture to write (default DIR/ledger-cost-curve.png)

One line style per label (backend); sizes on a log axis, so a flat cost is a horizontal line
and an O(log n) cost a straight rising one. Needs matplotlib (scripts/bench-ledger-curve.sh
installs the pinned version).
"""

import csv
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

COLORS = {"sqlite": "tab:blue", "postgres": "tab:orange"}


def load(directory):
    runs = {}
    for path in sorted(directory.glob("*.jsonl")):
        label = path.stem
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        samples = []
        csv_path = directory / f"{label}-appends.csv"
        if csv_path.exists():
            with csv_path.open() as f:
                samples = [(int(r["size"]), float(r["append_per_s"])) for r in csv.DictReader(f)]
        runs[label] = (rows, samples)
    return runs


def thousands(x, _pos):
    return f"{x / 1000:g}k" if x >= 1000 else f"{x:g}"


def size_axis(ax):
    ax.set_xscale("log")
    ax.set_xlabel("entries in the org log")
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.1)


def main():
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("target/ledger-curve")
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else directory / "ledger-cost-curve.png"
    runs = load(directory)
    if not runs:
        sys.exit(f"plot-ledger-curve: no *.jsonl in {directory}")

    fig, axes = plt.subplots(2, 3, figsize=(17, 9))
    (ap, lat, hashes), (p50, p99, ex) = axes
    for label, (rows, samples) in runs.items():
        color = COLORS.get(rows[0]["backend"], None)
        sizes = [r["size"] for r in rows]
        col = lambda key: [r[key] for r in rows]  # noqa: E731
        if samples:
            ap.plot(*zip(*samples), color=color, alpha=0.25, lw=0.8,
                    label=f"{label}: sampled every 0.5 s")
        ap.plot(sizes, col("append_per_s"), "o-", color=color,
                label=f"{label}: mean over each window ({rows[0]['appenders']} appenders)")

        lat.plot(sizes, col("append_p50_ms"), "o-", color=color, label=f"{label} p50")
        lat.plot(sizes, col("append_p99_ms"), "s--", color=color, label=f"{label} p99")

        hashes.plot(sizes, col("inclusion_hashes"), "o-", color=color,
                    label=f"{label} inclusion")
        hashes.plot(sizes, col("consistency_hashes"), "^--", color=color,
                    label=f"{label} consistency")

        for ax, q in ((p50, "p50"), (p99, "p99")):
            ax.plot(sizes, [t / 1000 for t in col(f"inclusion_{q}_us")], "o-", color=color,
                    label=f"{label} inclusion {q}")
            ax.plot(sizes, [t / 1000 for t in col(f"consistency_{q}_us")], "^--", color=color,
                    label=f"{label} consistency {q}")

        exported = [r for r in rows if r["export_per_s"] is not None]
        ex.plot([r["size"] for r in exported], [r["export_per_s"] for r in exported], "o-",
                color=color, label=f"{label} export")
        ex.plot([r["size"] for r in exported], [r["verify_per_s"] for r in exported], "D--",
                color=color, label=f"{label} offline verify of the export")

    all_sizes = sorted({r["size"] for rows, _ in runs.values() for r in rows})
    hashes.plot(all_sizes, [math.log2(n) for n in all_sizes], ":", color="gray",
                label="log2(size)")

    ap.set_title("Durable appends (group commit): flat = good")
    ap.set_ylabel("entries / s")
    ap.yaxis.set_major_formatter(FuncFormatter(thousands))
    lat.set_title("Append latency (append → durable receipt)")
    lat.set_ylabel("ms")
    hashes.set_title("Proof length: O(log n) = straight line")
    hashes.set_ylabel("hashes per proof (mean)")
    p50.set_title("Proof time p50 through the reader (fetch + build)")
    p50.set_ylabel("ms per proof")
    p99.set_title("Proof time p99 (scheduling noise on 2 shared cores)")
    p99.set_ylabel("ms per proof")
    ex.set_title("Export and `sck ledger verify` of the whole log")
    ex.set_ylabel("entries / s")
    ex.yaxis.set_major_formatter(FuncFormatter(thousands))
    skipped = sorted({r["size"] for rows, _ in runs.values() for r in rows
                      if r["export_per_s"] is None})
    if skipped:
        ex.text(0.98, 0.03, f"not exported at {', '.join(f'{n:.0e}' for n in skipped)}"
                " (SCK_CURVE_EXPORT_MAX)", transform=ex.transAxes, ha="right", fontsize=8)
    for ax in axes.flat:
        size_axis(ax)
        ax.set_xlim(all_sizes[0] / 1.4, all_sizes[-1] * 1.4)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("sck ledger cost curve: one org log, SQLite WAL synchronous=FULL unless labelled",
                 fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"plot-ledger-curve: wrote {out}")


if __name__ == "__main__":
    main()
