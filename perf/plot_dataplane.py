#!/usr/bin/python3
"""Plots perf/dataplane_bench's JSON: one panel per figure, the median of each
mode against the number of services, with every repetition as a faint dot;
prints the medians and Atoll's ratios to each peer as a Markdown table.
Usage: plot_dataplane.py dataplane.json dataplane.png"""
import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = [
    ("crr_per_s", "new connections / s (one request each)"),
    ("rr_per_s", "requests / s on established connections"),
    ("udp_pps", "64-byte UDP packets / s at the backends"),
    ("bulk_gbit_s", "bulk TCP, Gbit/s"),
    ("program_ms", "program N services, ms (log)"),
    ("endpoint_change_ms", "change one endpoint among N, ms (log)"),
]
COLORS = {"atoll": "tab:green", "nftables": "tab:blue", "iptables": "tab:red"}


def main(src, dst):
    data = json.load(open(src))
    samples = defaultdict(list)  # (metric, mode, n) -> values
    for s in data["samples"]:
        samples[(s["metric"], s["mode"], s["services"])].append(s["value"])
    medians = data["medians"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, (metric, title) in zip(axes.flat, PANELS):
        for mode, by_n in sorted(medians.items()):
            ns = sorted(int(n) for n in by_n if metric in by_n[n])
            if not ns:
                continue
            ax.plot(ns, [by_n[str(n)][metric] for n in ns], "o-", label=mode,
                    color=COLORS.get(mode))
            for n in ns:
                vals = samples[(metric, mode, n)]
                ax.plot([n] * len(vals), vals, ".", alpha=0.3, color=COLORS.get(mode))
        ax.set_xscale("symlog", linthresh=1)
        if metric.endswith("_ms"):
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("services (N)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Atoll eBPF vs kube-proxy rulesets, {data['date']}, "
                 f"medians of {data['reps']} runs of {data['seconds']} s", fontsize=11)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


def table(src):
    """The medians, one row per figure and mode, and atoll / peer beside each."""
    medians = json.load(open(src))["medians"]
    ns = sorted({int(n) for by_n in medians.values() for n in by_n})
    head = " | ".join(f"N={n}" for n in ns)
    print(f"| figure | mode | {head} |")
    print("| --- | --- | " + " | ".join("---" for _ in ns) + " |")
    for metric, _ in PANELS + [("crr_p99_us", ""), ("e2e_program_ms", "")]:
        for mode in ["atoll", "nftables", "iptables"]:
            by_n = medians.get(mode, {})
            if not any(metric in by_n.get(str(n), {}) for n in ns):
                continue
            cells = []
            for n in ns:
                v = by_n.get(str(n), {}).get(metric)
                if v is None:
                    cells.append("-")
                    continue
                cell = f"{v:,.3g}" if v < 100 else f"{v:,.0f}"
                atoll = medians.get("atoll", {}).get(str(n), {}).get(metric)
                if mode != "atoll" and atoll and v:
                    cell += f" (atoll ×{atoll / v:.3g})"
                cells.append(cell)
            print(f"| {metric} | {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    table(sys.argv[1])
