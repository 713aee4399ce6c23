#!/usr/bin/env bash
# atoll-perf: the DPDK pipeline per core beside testpmd io-forward and OVS
# with its DPDK datapath, on the same vdevs and cores (perf/atoll_perf.cc says
# what is measured and how), then the plot. Root; the traffic stays in DPDK
# vdevs, OVS runs in a namespace and directories of its own.
#
# Usage: perf/atoll-perf.sh [OUT_DIR] [atoll-perf flags...]
#   OUT_DIR (default perf/out) gets atoll-perf.json, atoll-perf.png and the log.
# Example: perf/atoll-perf.sh perf/out --services=1,1000,100000 --reps=3
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/.."
out=${1:-perf/out}
shift || true
if [ "$(id -u)" -ne 0 ]; then
  echo "atoll-perf.sh: needs root (DPDK, testpmd, OVS)" >&2
  exit 1
fi
scripts/install-deps.sh
# The peers and the plot, only here: the tests do not need them. No package
# may start a daemon while it installs (OVS's would take the system's config).
need=()
for p in dpdk-dev openvswitch-switch-dpdk python3-matplotlib; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" ||
    { [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
perf/build-release.sh perf/atoll-perf
mkdir -p "$out"
{
  echo "# $(date -u +%F) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "# kernel $(uname -r), DPDK $(pkg-config --modversion libdpdk), $(ovs-vswitchd --version | head -1)"
  echo "# build-release/perf/atoll-perf --out=$out/atoll-perf.json $*"
} | tee "$out/atoll-perf.log"
build-release/perf/atoll-perf --out="$out/atoll-perf.json" "$@" 2>&1 | tee -a "$out/atoll-perf.log"
/usr/bin/python3 perf/plot_atoll_perf.py "$out/atoll-perf.json" "$out/atoll-perf.png"
echo "plot: $out/atoll-perf.png"
