#!/usr/bin/env bash
# atoll-cni under real runtimes: libcni (cnidrive), podman and containerd's
# CRI plugin, driven by ../shared/realclients/run.sh, with a controller and
# an agent of this build behind the plugin.
#
#   tests/realclients.sh BUILD_DIR CNI_VERSION [PODS]
#
# The runtimes make their pods' network namespaces themselves, so the agent
# runs in the root namespace, as on a real host: the host sides of the pods'
# veths live there, without addresses, routes (--host_routes=false: no route
# to a test range in the root namespace) or IPv6, and every one of them
# goes with its pod's DEL (checked at the end). Pod addresses come from the
# pod CIDR 198.19.0.0/16 and exist only inside the pods. The controller
# listens on loopback. Everything started here is ended by PID.
set -uo pipefail

build=$(readlink -f "${1:?usage: realclients.sh BUILD_DIR CNI_VERSION [PODS]}")
version=${2:?usage: realclients.sh BUILD_DIR CNI_VERSION [PODS]}
pods=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
harness=${REALCLIENTS:-$here/../../shared/realclients/run.sh}
[ -x "$harness" ] || harness=$(readlink -f "$here/../../shared/realclients/run.sh")
if [ ! -f "$harness" ]; then
  echo "realclients.sh: no harness at $harness (../shared/realclients beside the repository)" >&2
  exit 1
fi

work=$(mktemp -d /tmp/atoll-realclients.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$build/controller/atoll-controller" --listen=127.0.0.1:0 --port_file="$work/port" \
  --db="$work/controller.db" 2>"$work/controller.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
controller=127.0.0.1:$(cat "$work/port")

# cri sends K8S_POD_NAMESPACE=realclients; cnidrive and podman send none, so
# their pods land in the configuration's defaultNamespace.
cat > "$work/cluster.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: realclients}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Node
metadata: {name: realclients-node}
status:
  addresses: [{type: InternalIP, address: 198.18.0.1}]
EOF
"$build/atollctl/atollctl" --controller="$controller" apply -f "$work/cluster.yaml" || exit 1

"$build/agent/atoll-agent" --node=realclients-node --controller="$controller" \
  --socket="$work/agent.sock" --lease_db="$work/leases.db" --host_routes=false \
  2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 100); do
  "$build/atollctl/atollctl" agent --socket="$work/agent.sock" -o json 2>/dev/null |
    grep -q '"realclients"' && break
  sleep 0.1
done

cat > "$work/conflist.tmpl" <<EOF
{
  "cniVersion": "__CNIVERSION__",
  "name": "__NAME__",
  "plugins": [
    {
      "type": "__TYPE__",
      "socket": "$work/agent.sock",
      "defaultNamespace": "default"
    }
  ]
}
EOF

CNI_VERSION=$version PODS=$pods REALCLIENTS_STATE=$work/state \
  "$harness" "$build/cni-plugin" atoll-cni "$work/conflist.tmpl"
rc=$?

# Every DEL took its veth with it, and the agent lost no lease on the way.
left=$(ls /sys/class/net | grep -c '^atl' || true)
leases=$("$build/atollctl/atollctl" agent --socket="$work/agent.sock" -o json 2>/dev/null |
  grep -c '"hostIfname"' || true)
if [ "$left" != 0 ] || [ "$leases" != 0 ]; then
  echo "FAIL after the run: $left host-side veth(s) and $leases pod port(s) left"
  rc=1
fi
if [ $rc != 0 ]; then
  echo "--- agent log"; tail -n 30 "$work/agent.log"
fi
exit $rc
