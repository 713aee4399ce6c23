#!/usr/bin/env bash
# The test command (README): installs what the build needs, builds, and runs
# every test suite that exists:
#   build/      g++, the default build: every suite: unit, integration (the
#               controller and agents as processes over gRPC), e2e (root,
#               network namespaces: pod plumbing, atoll-cni end to end) and
#               realclients (atoll-cni under libcni, podman and containerd)
#   build-san/  clang with ASan + UBSan: suites unit, integration, bpf (the
#               eBPF programs' fixtures) and dpdk (the DPDK pipeline's) again,
#               and suite fuzz (a bounded libFuzzer smoke run of parsing + NAT)
# Ends with one line "N passed, M failed" counted from meson's test logs.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit 1

status=0
run() {
  echo "+ $*"
  "$@" || status=1
}

setup() {  # setup DIR [meson options...]
  local dir=$1
  shift
  if [ -d "$dir/meson-private" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

rm -f build/meson-logs/testlog.json build-san/meson-logs/testlog.json

if setup build && run meson compile -C build; then
  run meson test -C build --print-errorlogs
else
  status=1
fi

if CXX=clang++ setup build-san -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fno-sanitize-recover=all -Dfuzzing=enabled &&
    run meson compile -C build-san; then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$PWD/scripts/lsan-suppressions.txt \
    run meson test -C build-san --suite unit --suite integration --suite bpf --suite dpdk \
    --suite fuzz --print-errorlogs
else
  status=1
fi

# One summary line from meson's results (build failures count as one failure).
python3 - "$status" build/meson-logs/testlog.json build-san/meson-logs/testlog.json <<'PY'
import json, os, sys
passed = failed = 0
for path in sys.argv[2:]:
    if not os.path.exists(path):
        failed += 1  # the build or the test run never got that far
        continue
    for line in open(path):
        result = json.loads(line).get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result != "SKIP":
            failed += 1
if sys.argv[1] != "0" and failed == 0:
    failed = 1  # a step failed without a test to show it
print(f"{passed} passed, {failed} failed")
PY
exit $status
