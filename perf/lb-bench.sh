#!/usr/bin/env bash
# Runs the lb benchmarks (suite bench) in a release build, pinned to one core,
# repeated, and prints the medians. Usage: perf/lb-bench.sh [REPETITIONS] [FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
filter=${2:-.}
scripts/install-deps.sh
if [ -d build-release/meson-private ]; then
  meson setup --reconfigure build-release --buildtype=release >/dev/null
else
  meson setup build-release --buildtype=release >/dev/null
fi
meson compile -C build-release lb/lb_bench >/dev/null
# The last core, so that the shell and anything else keep to the others.
cpu=$(( $(nproc) - 1 ))
bench=build-release/lb/lb_bench
# Balance and disruption are exact counts: one run says it all.
taskset -c "$cpu" "$bench" --benchmark_filter="MaglevQuality" 2>&1 | grep '^BM_'
taskset -c "$cpu" "$bench" --benchmark_filter="$filter" --benchmark_repetitions="$reps" \
  --benchmark_report_aggregates_only=true --benchmark_display_aggregates_only=true 2>&1 |
  grep -v 'MaglevQuality\|_mean\|_stddev\|_cv'
