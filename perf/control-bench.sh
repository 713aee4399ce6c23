#!/usr/bin/env bash
# Runs the control-plane benchmark (perf/control_bench.cc) in a release build,
# REPETITIONS times, and prints each run and the medians. Everything runs on
# loopback in a temporary directory; the benchmark ends the processes it
# started. Usage: perf/control-bench.sh [REPETITIONS] [control_bench flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
shift || true
scripts/install-deps.sh
perf/build-release.sh perf/control_bench controller/atoll-controller agent/atoll-agent
export ATOLL_CONTROLLER=build-release/controller/atoll-controller
export ATOLL_AGENT=build-release/agent/atoll-agent
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$reps"); do
  echo "--- run $i"
  build-release/perf/control_bench "$@" | tee -a "$out"
done
python3 - "$out" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
def med(pattern):
    vals = [float(v) for v in re.findall(pattern, text)]
    return statistics.median(vals) if vals else float("nan")
runs = len(re.findall(r"^full sync: \d+ agents", text, re.M))
sync = med(r"agents acked .* in (\d+) ms")
p50, p99 = med(r"p50 ([\d.]+) ms"), med(r"p99 ([\d.]+) ms")
per_change = med(r"bytes per agent per change: (\d+)")
ctl, agent = med(r"peak RSS: controller ([\d.]+) MiB"), med(r"peak RSS: .*atoll-agent ([\d.]+) MiB")
print(f"--- medians of {runs} runs")
print(f"full sync: {sync:.0f} ms")
print(f"change latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
print(f"bytes per agent per change: {per_change:.0f}")
print(f"peak RSS: controller {ctl:.1f} MiB, atoll-agent {agent:.1f} MiB")
PY
