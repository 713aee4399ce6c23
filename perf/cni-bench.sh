#!/usr/bin/env bash
# CNI ADD/DEL latency of atoll-cni and of Debian's reference bridge +
# host-local plugins, measured side by side by the same driver
# (perf/cni_bench.cc): 200 pods one after another, then 200 pods 50 at a time,
# REPETITIONS times, the order of the two plugins alternating between
# repetitions. Prints every run, then the medians and the ratio bridge/atoll.
#
# Everything runs in a network and mount namespace of its own (this script
# runs itself again under unshare): links, bridges, addresses, netns mounts and
# the state directory (a tmpfs) exist only there and vanish when it ends. The
# controller and agent it starts are ended by their PID on every way out.
#
# Usage: perf/cni-bench.sh [REPETITIONS] [--only bridge|atoll] [--pods N] [--parallel P]
# Root. The build directory is build-release/ (ATOLL_BUILD_DIR overrides it).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

reps=3
only=""
pods=200
parallel=50
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=$2; shift 2 ;;
    --pods) pods=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    [0-9]*) reps=$1; shift ;;
    *) echo "usage: perf/cni-bench.sh [REPETITIONS] [--only bridge|atoll] [--pods N] [--parallel P]" >&2
       exit 2 ;;
  esac
done
case "$only" in ""|bridge|atoll) ;; *) echo "cni-bench.sh: --only bridge|atoll, not \"$only\"" >&2; exit 2 ;; esac
build=${ATOLL_BUILD_DIR:-build-release}

if [ -z "${ATOLL_CNI_BENCH_INNER:-}" ]; then
  # --- Outside: build, print the header, run the rest in fresh namespaces.
  if [ "$(id -u)" -ne 0 ]; then
    echo "cni-bench.sh: needs root (network namespaces, veth pairs, bridges)" >&2
    exit 1
  fi
  scripts/install-deps.sh
  if [ -d "$build/meson-private" ]; then
    meson setup --reconfigure "$build" --buildtype=release >/dev/null
  else
    meson setup "$build" --buildtype=release >/dev/null
  fi
  targets=(perf/cni-bench)
  if [ "$only" != bridge ]; then
    targets+=(controller/atoll-controller agent/atoll-agent atollctl/atollctl cni-plugin/atoll-cni)
  fi
  meson compile -C "$build" "${targets[@]}" >/dev/null
  echo "# perf/cni-bench.sh ${args[*]}"
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)'), bridge + host-local from containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins)"
  state=$(mktemp -d /tmp/cni-bench.XXXXXX)
  trap 'rm -rf "$state"' EXIT
  # Not exec: the EXIT trap above removes the (then empty) state directory.
  status=0
  ATOLL_CNI_BENCH_INNER=1 ATOLL_CNI_BENCH_STATE=$state ATOLL_BUILD_DIR=$build \
    unshare --net --mount --propagation private "$self" "${args[@]}" || status=$?
  exit "$status"
fi

# --- Inside the new network and mount namespaces.
state=$ATOLL_CNI_BENCH_STATE
mount -t tmpfs -o mode=0700 cni-bench "$state"
ip link set lo up

pids=()
stop_started() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

results=$state/results.jsonl
bench=$build/perf/cni-bench
atollctl=$build/atollctl/atollctl

fail() {
  echo "cni-bench.sh: $*" >&2
  exit 1
}

# Fails when a run left a pod interface (a veth) behind in this namespace.
# atoll-agent deletes the pairs after DEL has answered (the kernel's part of a
# link's removal waits for an RCU barrier): wait for it, up to a minute, so
# that its work does not overlap the next run either.
check_no_veths() {
  local left
  for _ in $(seq 600); do
    left=$(ip -o link show type veth | wc -l)
    [ "$left" -eq 0 ] && return 0
    sleep 0.1
  done
  fail "$1: $left veth interfaces left after DEL: $(ip -br link show type veth | head -5)"
}

# measure LABEL MODE REP PLUGIN CNI_PATH CONF
measure() {
  local label=$1 mode=$2 rep=$3 plugin=$4 cni_path=$5 conf=$6 p=1 line
  [ "$mode" = concurrent ] && p=$parallel
  line=$("$bench" --plugin "$plugin" --cni_path "$cni_path" --conf "$conf" --pods "$pods" \
    --parallel "$p" --label "$label" --json) || {
    local rc=$?
    [ "$rc" -eq 130 ] && exit 130  # Ctrl-C: the driver has cleaned up
    fail "$label $mode (rep $rep) failed"
  }
  python3 - "$line" "$mode" "$rep" "$results" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
r["mode"], r["rep"] = sys.argv[2], int(sys.argv[3])
with open(sys.argv[4], "a") as out:
    print(json.dumps(r), file=out)
print(f"{r['label']:6} {r['mode']:10} rep {r['rep']}  " + "  ".join(
    f"{op.upper()} p50 {r[op]['p50_ms']:6.2f}  p99 {r[op]['p99_ms']:6.2f}  max {r[op]['max_ms']:6.2f} ms"
    for op in ("add", "del")))
PY
  # Between runs the kernel finishes tearing down the namespaces just removed
  # (netns cleanup is deferred work that would otherwise run during the next run).
  sleep 2
}

run_bridge() {
  local rep=$1 mode dir
  for mode in sequential concurrent; do
    dir=$state/bridge-$rep-$mode
    mkdir -p "$dir"
    cat >"$dir/conf.json" <<EOF
{"cniVersion":"1.0.0","name":"bench-bridge","type":"bridge","bridge":"atlbench0","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","subnet":"198.18.32.0/20","dataDir":"$dir/ipam","routes":[{"dst":"0.0.0.0/0"}]}}
EOF
    measure bridge "$mode" "$rep" /usr/lib/cni/bridge /usr/lib/cni "$dir/conf.json"
    check_no_veths "bridge $mode"
    # host-local keeps one file per reserved address beside "lock" and "last_reserved_ip.N".
    local reserved
    reserved=$(find "$dir/ipam" -type f ! -name lock ! -name 'last_reserved_ip.*' | wc -l)
    [ "$reserved" -eq 0 ] || fail "bridge $mode: host-local still holds $reserved addresses after DEL"
    ip link del atlbench0  # in this namespace; the next run starts without it
  done
}

run_atoll() {
  local rep=$1 mode dir port
  dir=$state/atoll-$rep
  mkdir -p "$dir"
  cat >"$dir/cluster.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: bench
---
apiVersion: v1
kind: Node
metadata:
  name: bench-node
status:
  addresses:
  - type: InternalIP
    address: 198.18.0.1
EOF
  # setsid: a Ctrl-C at the terminal reaches the driver, which then deletes
  # what it added; the controller and agent must still be there for that, and
  # are ended by the EXIT trap. (Not a process group leader here, so setsid
  # does not fork and $! is their PID.)
  setsid "$build/controller/atoll-controller" --listen 127.0.0.1:0 --port_file "$dir/port" \
    --db "$dir/controller.db" --pod_cidr 198.19.0.0/16 --service_cidrs 198.18.64.0/18 \
    2>"$dir/controller.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  [ -s "$dir/port" ] || fail "atoll-controller did not start: $(cat "$dir/controller.log")"
  port=$(cat "$dir/port")
  "$atollctl" --controller "127.0.0.1:$port" apply -f "$dir/cluster.yaml" >/dev/null
  for mode in sequential concurrent; do
    # A fresh agent and lease database for every run.
    local sock=$dir/agent-$mode.sock agent_pid
    setsid "$build/agent/atoll-agent" --node bench-node --controller "127.0.0.1:$port" \
      --socket "$sock" --lease_db "$dir/leases-$mode.db" 2>"$dir/agent-$mode.log" &
    agent_pid=$!
    pids+=("$agent_pid")
    local ready=""
    for _ in $(seq 100); do
      if "$atollctl" agent --socket "$sock" -o json 2>/dev/null | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)
except ValueError:  # no agent on the socket yet
    sys.exit(1)
sys.exit(0 if any(g.get("namespace") == "bench" for g in s.get("segments", [])) else 1)'; then
        ready=1
        break
      fi
      sleep 0.1
    done
    [ -n "$ready" ] || fail "atoll-agent never received namespace bench: $(cat "$dir/agent-$mode.log")"
    cat >"$dir/conf-$mode.json" <<EOF
{"cniVersion":"1.0.0","name":"atoll","type":"atoll-cni","socket":"$sock","defaultNamespace":"bench"}
EOF
    measure atoll "$mode" "$rep" "$build/cni-plugin/atoll-cni" "$(dirname "$build/cni-plugin/atoll-cni")" \
      "$dir/conf-$mode.json"
    check_no_veths "atoll $mode"
    local ports
    ports=$("$atollctl" agent --socket "$sock" -o json |
      python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("podPorts", [])))')
    [ "$ports" -eq 0 ] || fail "atoll $mode: the agent still holds $ports pod ports after DEL"
    kill -TERM "$agent_pid"
    wait "$agent_pid" || true
    local kept=() pid
    for pid in "${pids[@]}"; do [ "$pid" = "$agent_pid" ] || kept+=("$pid"); done
    pids=("${kept[@]}")
  done
}

for rep in $(seq "$reps"); do
  if [ $((rep % 2)) -eq 1 ]; then order="bridge atoll"; else order="atoll bridge"; fi
  for which in $order; do
    [ -n "$only" ] && [ "$only" != "$which" ] && continue
    "run_$which" "$rep"
  done
  stop_started  # this repetition's controller
done

python3 - "$results" "$pods" "$parallel" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
pods, parallel = int(sys.argv[2]), int(sys.argv[3])
def med(label, mode, op, q):
    v = [r[op][q] for r in runs if r["label"] == label and r["mode"] == mode]
    return statistics.median(v) if v else None
def ms(v):
    return f"{v:.2f}" if v is not None else "-"
def ratio(b, a):
    return f"{b / a:.1f}x" if a and b else "-"
reps = len({r["rep"] for r in runs})
print(f"\n--- medians of {reps} repetitions, {pods} pods; sequential: 1 in flight, "
      f"concurrent: {parallel} in flight; ms")
print("| mode | op | atoll p50 | atoll p99 | bridge p50 | bridge p99 | bridge/atoll p50 | bridge/atoll p99 |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for mode in ("sequential", "concurrent"):
    for op in ("add", "del"):
        a50, a99 = med("atoll", mode, op, "p50_ms"), med("atoll", mode, op, "p99_ms")
        b50, b99 = med("bridge", mode, op, "p50_ms"), med("bridge", mode, op, "p99_ms")
        print(f"| {mode} | {op.upper()} | {ms(a50)} | {ms(a99)} | {ms(b50)} | {ms(b99)} | "
              f"{ratio(b50, a50)} | {ratio(b99, a99)} |")
print(f"\n--- throughput: pods per second over the whole phase ({pods} pods), medians")
print("| mode | op | atoll | bridge | atoll/bridge |")
print("| --- | --- | ---: | ---: | ---: |")
def rate(label, mode, op):
    wall = med(label, mode, op, "wall_ms")
    return None if wall is None or wall <= 0 else 1000.0 * pods / wall
for mode in ("sequential", "concurrent"):
    for op in ("add", "del"):
        a, b = rate("atoll", mode, op), rate("bridge", mode, op)
        print(f"| {mode} | {op.upper()} | {'-' if a is None else f'{a:.0f}'} | "
              f"{'-' if b is None else f'{b:.0f}'} | {ratio(a, b)} |")
print("targets (issue 4): ADD p99 <= 20 ms, DEL p99 <= 10 ms, at least 2x bridge + host-local")
PY
