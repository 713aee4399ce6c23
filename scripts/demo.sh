#!/usr/bin/env bash
# The control plane on this machine: a controller and two agents (h1, h2) on
# loopback, examples/shop.yaml applied with atollctl, then what the controller
# and each agent hold. Everything lives in a temporary directory and every
# process started here is ended by its PID on exit, also on failure.
# Usage: scripts/demo.sh [--keep]   (--keep: leave it running until Enter)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -d build/meson-private ]; then
  meson setup --reconfigure build >/dev/null
else
  meson setup build >/dev/null
fi
meson compile -C build controller/atoll-controller agent/atoll-agent atollctl/atollctl >/dev/null

dir=$(mktemp -d /tmp/atoll-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

build/controller/atoll-controller --listen=127.0.0.1:0 --port_file="$dir/port" \
  --db="$dir/controller.db" 2>"$dir/controller.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
controller="127.0.0.1:$(cat "$dir/port")"
ctl() { echo "\$ atollctl $*"; build/atollctl/atollctl --controller="$controller" "$@"; echo; }

ctl apply -f examples/shop.yaml
for node in h1 h2; do
  build/agent/atoll-agent --node=$node --controller="$controller" \
    --socket="$dir/$node.sock" 2>"$dir/$node.log" &
  pids+=($!)
done
# Until both agents have acknowledged the controller's version.
for _ in $(seq 200); do
  [ "$(build/atollctl/atollctl --controller="$controller" status -o json |
       python3 -c 'import json,sys; s=json.load(sys.stdin); v=s.get("version","0")
print(sum(1 for a in s.get("agents",[]) if a.get("connected") and a.get("ackedVersion")==v))')" = 2 ] && break
  sleep 0.05
done

ctl get namespaces
ctl get segments
ctl get services -A
ctl get endpointslices -n shop
ctl status
ctl agent --socket "$dir/h1.sock"
ctl agent --socket "$dir/h2.sock"

if [ "${1:-}" = "--keep" ]; then
  echo "controller at $controller, agent sockets $dir/h1.sock $dir/h2.sock; Enter stops them"
  read -r _
fi
