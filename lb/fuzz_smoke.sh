#!/bin/sh
# A bounded libFuzzer run of lb_parse_nat_fuzz from a fresh seed corpus:
# usage: fuzz_smoke.sh FUZZER SEED_WRITER RUNS. Fails on any crash or
# property violation; leaves nothing behind.
set -eu
fuzzer=$1 seeds=$2 runs=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$seeds" "$dir/corpus"
"$fuzzer" -runs="$runs" -max_total_time=120 -seed=1 -print_final_stats=1 \
  -artifact_prefix="$dir/" "$dir/corpus"
