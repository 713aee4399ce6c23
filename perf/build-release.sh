#!/usr/bin/env bash
# Builds the given meson targets optimised, in build-release/ (set up on first
# use, reconfigured after), for the benchmark scripts beside this one.
# Usage: perf/build-release.sh TARGET...
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/.."
if [ -d build-release/meson-private ]; then
  meson setup --reconfigure build-release --buildtype=release >/dev/null
else
  meson setup build-release --buildtype=release >/dev/null
fi
meson compile -C build-release "$@" >/dev/null
