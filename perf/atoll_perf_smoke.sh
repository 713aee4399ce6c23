#!/bin/sh
# atoll-perf end to end as a user runs it, on a small new-flow workload with
# Atoll alone, over both feeds: memif from the generator process, and the
# ring port of --feed=ring. Each run must end, and its JSON must say that
# every SYN made a flow and that nothing was dropped. Usage:
# atoll_perf_smoke.sh ATOLL_PERF. Root (the EAL), no hugepages; leaves
# nothing behind.
set -eu
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
packets=20000
for feed in memif ring; do
  "$bin" --peers=atoll --workloads=new --new_services=1000 --new_packets=$packets --reps=1 \
    --progress=false --feed=$feed --pcap_dir="$dir" --out="$dir/$feed.json"
  python3 - "$dir/$feed.json" $feed $packets <<'PY'
import json
import sys

path, feed, packets = sys.argv[1], sys.argv[2], int(sys.argv[3])
results = json.load(open(path))
assert results["feed"] == feed, f"{path}: feed {results['feed']!r}, not {feed!r}"
atoll = [r for r in results["results"] if r["peer"] == "atoll"]
assert len(atoll) == 1, f"{path}: {len(atoll)} Atoll results, not one"
run = atoll[0]["last_run"]
assert run["new_flows"] == packets, f"{feed}: {run['new_flows']} flows made of {packets} SYNs"
assert not run["drops"], f"{feed}: dropped {run['drops']}"
assert atoll[0]["ns_per_packet"] > 0, f"{feed}: {atoll[0]['ns_per_packet']} ns per packet"
print(f"{feed}: {packets} new flows, {atoll[0]['ns_per_packet']:.1f} ns per packet")
PY
done
