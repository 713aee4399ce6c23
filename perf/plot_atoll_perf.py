#!/usr/bin/python3
"""Plots atoll-perf's JSON: Mpps per core of each peer (medians, every run a
faint dot) against the number of services for the hit and new workloads, and
against the frame size; prints a Markdown table with Atoll's ratios.
Usage: plot_atoll_perf.py atoll-perf.json atoll-perf.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"atoll": "tab:green", "ovs": "tab:blue", "testpmd": "tab:gray",
          "io-forward": "tab:gray"}


def rows(data, workload, frame=None, services=None):
    out = {}
    for r in data["results"]:
        if r.get("workload") != workload:
            continue
        if frame is not None and r.get("frame") != frame:
            continue
        if services is not None and r.get("services") != services:
            continue
        out.setdefault(r["peer"], []).append(r)
    return out


def panel(ax, by_peer, x_key, title, log_x):
    for peer, rs in sorted(by_peer.items()):
        rs = sorted(rs, key=lambda r: r[x_key])
        xs = [r[x_key] for r in rs]
        ax.plot(xs, [r["mpps"] for r in rs], "o-", label=peer, color=COLORS.get(peer))
        for r in rs:
            ax.scatter([r[x_key]] * len(r["runs"]), r["runs"], s=8, alpha=0.3,
                       color=COLORS.get(peer))
    if log_x:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("services" if x_key == "services" else "frame size, bytes")
    ax.set_ylabel("Mpps, one core")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()


def main(src, dst):
    data = json.load(open(src))
    sizes = {}
    for r in data["results"]:
        if r.get("workload") == "hit" and (r["frame"] != 64 or r["services"] == 1000):
            sizes.setdefault(r["peer"], []).append(r)
    # Only the panels a run has data for (--workloads=new has no hit panels).
    panels = [(by_peer, x_key, title, log_x) for by_peer, x_key, title, log_x in [
        (rows(data, "hit", frame=64), "services", "conntrack hits, 64-byte frames", True),
        (rows(data, "new", frame=64), "services", "every packet a new flow", True),
        (sizes if any(r["frame"] != 64 for rs in sizes.values() for r in rs) else {}, "frame",
         "conntrack hits, 1000 services", False),
    ] if by_peer]
    if not panels:
        sys.exit("plot_atoll_perf.py: no results to plot in " + src)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.8), squeeze=False)
    for ax, args in zip(axes[0], panels):
        panel(ax, *args)
    # --feed=ring: new flows over a ring port in Atoll's process, beside
    # atoll-perf's own io-forward loop; no OVS, which cannot be fed so.
    ring = data.get("feed") == "ring"
    fig.suptitle("atoll-perf, one core (hugepages: %s%s):\nAtoll's DPDK pipeline, %s"
                 % (data.get("hugepages") or "none", ", new flows fed by a ring" if ring else "",
                    "io-forward" if ring else "OVS-DPDK (ct + select group), testpmd io-forward"),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)

    print("| workload | services | frame | Atoll Mpps | Atoll ns/pkt | ceiling Mpps | Atoll / ceiling "
          "| OVS Mpps | OVS ns/pkt | Atoll / OVS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    keyed = {}
    for r in data["results"]:
        if "services" in r:
            keyed[(r["workload"], r["services"], r["frame"], r["peer"])] = r
    for (wl, n, f) in sorted({k[:3] for k in keyed}, key=lambda k: (k[0], k[2], k[1])):
        a = keyed.get((wl, n, f, "atoll"), {})
        # The ceiling: testpmd, or io-forward where the feed was a ring.
        t = keyed.get((wl, n, f, "testpmd"), keyed.get((wl, n, f, "io-forward"), {}))
        o = keyed.get((wl, n, f, "ovs"), {})
        def fmt(r, k, p=2):
            return ("%%.%df" % p) % r[k] if k in r else "-"
        ratio = lambda x, y: "%.2f" % (x["mpps"] / y["mpps"]) if x and y and y["mpps"] else "-"
        print(f"| {wl} | {n} | {f} | {fmt(a, 'mpps')} | {fmt(a, 'ns_per_packet', 1)} | "
              f"{fmt(t, 'mpps')} | {ratio(a, t)} | {fmt(o, 'mpps')} | {fmt(o, 'ns_per_packet', 1)} "
              f"| {ratio(a, o)} |")
    for r in data["results"]:
        if r.get("workload") == "null":
            print(f"\ntestpmd io-forward net_null -> net_null: {r['mpps']:.2f} Mpps")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
