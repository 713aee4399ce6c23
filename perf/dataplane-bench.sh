#!/usr/bin/env bash
# Atoll's eBPF dataplane against kube-proxy's iptables and nftables modes on
# the e2e test bed (perf/dataplane_bench.cc says what is measured and how),
# then the plot. Root; everything runs in namespaces the benchmark makes and
# removes itself (tests/testbed.h).
#
# Usage: perf/dataplane-bench.sh [OUT_DIR] [dataplane-bench flags...]
#   OUT_DIR (default perf/out) gets dataplane.json, dataplane.png and the log.
# Example: perf/dataplane-bench.sh perf/out --services=1,1000,10000 --reps=5
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/.."
out=${1:-perf/out}
shift || true
if [ "$(id -u)" -ne 0 ]; then
  echo "dataplane-bench.sh: needs root (network namespaces, BPF, iptables)" >&2
  exit 1
fi
scripts/install-deps.sh
# The plot's one dependency, only here: the tests do not need it.
if ! dpkg-query -W -f='${Status}' python3-matplotlib 2>/dev/null | grep -q 'install ok installed'; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-matplotlib
fi
perf/build-release.sh perf/dataplane-bench perf/netbench controller/atoll-controller \
  agent/atoll-agent cni-plugin/atoll-cni atollctl/atollctl
b=build-release
export ATOLL_CONTROLLER=$b/controller/atoll-controller ATOLL_AGENT=$b/agent/atoll-agent \
  ATOLL_CNI=$b/cni-plugin/atoll-cni ATOLLCTL=$b/atollctl/atollctl ATOLL_NETBENCH=$b/perf/netbench \
  ATOLL_CNIDRIVE_GO=$PWD/../shared/realclients/cnidrive.go
mkdir -p "$out"
{
  echo "# $(date -u +%F) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "# kernel $(uname -r), $(iptables --version), $(nft --version)"
  echo "# $b/perf/dataplane-bench --json=$out/dataplane.json $*"
} | tee "$out/dataplane.log"
"$b/perf/dataplane-bench" --json="$out/dataplane.json" "$@" 2>&1 | tee -a "$out/dataplane.log"
/usr/bin/python3 perf/plot_dataplane.py "$out/dataplane.json" "$out/dataplane.png"
echo "plot: $out/dataplane.png"
