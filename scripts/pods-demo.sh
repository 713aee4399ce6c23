#!/usr/bin/env bash
# Pods in two namespaces, made by podman through atoll-cni: each pod gets an
# address from its own namespace's segment.
#
#   scripts/pods-demo.sh [--keep]
#
# Starts a controller (on loopback) and an agent for this host, applies the
# namespaces "shop" and "blog", writes one CNI network per namespace, and runs
# two pods in each with podman's CNI backend. It prints each pod's address as
# the pod itself sees it, the segments, and the pods the agent's dataplane
# holds; then removes the pods (CNI DEL) and everything it started. --keep
# leaves it all up until you press Enter.
#
# Needs root (podman's CNI backend does). Everything podman needs (its
# storage, configuration, a busybox image built from Debian's busybox-static)
# lives in a temporary directory; nothing under /etc is touched. Pod addresses
# come from 198.19.0.0/16 and exist only inside the pods' namespaces; the
# host sides of their veths carry no address or route (--host_routes=false:
# this runs in the machine's own namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
keep=0
[ "${1:-}" = "--keep" ] && keep=1

scripts/install-deps.sh
missing=()
for p in podman runc busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -d build/meson-private ] || meson setup build >/dev/null
meson compile -C build controller/atoll-controller agent/atoll-agent cni-plugin/atoll-cni \
  atollctl/atollctl >/dev/null

work=$(mktemp -d /tmp/atoll-pods.XXXXXX)
pids=()
pm() {
  CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf podman "$@"
}
cleanup() {
  set +e
  if [ -f "$work/containers.conf" ]; then
    ids=$(pm ps -aq --filter label=atoll-demo=1 2>/dev/null)
    [ -z "$ids" ] || pm rm -f -t 0 $ids >/dev/null 2>&1  # CNI DEL for each pod
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The controller and this host's agent.
build/controller/atoll-controller --listen=127.0.0.1:0 --port_file="$work/port" \
  --db="$work/controller.db" 2>"$work/controller.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
ctl() { build/atollctl/atollctl --controller="127.0.0.1:$(cat "$work/port")" "$@"; }
ctl apply -f examples/pods.yaml
build/agent/atoll-agent --node=pods-demo --controller="127.0.0.1:$(cat "$work/port")" \
  --socket="$work/agent.sock" --lease_db="$work/leases.db" --host_routes=false \
  2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 100); do
  build/atollctl/atollctl agent --socket="$work/agent.sock" -o json 2>/dev/null |
    grep -q '"blog"' && break
  sleep 0.1
done

# One CNI network per namespace: a pod on network atoll-shop is in "shop".
mkdir -p "$work/net.d" "$work/storage" "$work/runroot" "$work/tmp"
for ns in shop blog; do
  cat > "$work/net.d/atoll-$ns.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "atoll-$ns",
  "plugins": [
    {"type": "atoll-cni", "socket": "$work/agent.sock", "defaultNamespace": "$ns"}
  ]
}
EOF
done
# runc and explicit ulimits, as in ../shared/realclients: crun fails on hybrid
# cgroup hosts, and podman's default nofile needs CAP_SYS_RESOURCE.
cat > "$work/containers.conf" <<EOF
[containers]
apparmor_profile = "unconfined"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
runtime = "runc"
tmp_dir = "$work/tmp"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$repo/build/cni-plugin", "/usr/lib/cni"]
network_config_dir = "$work/net.d"
EOF
cat > "$work/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/storage"
runroot = "$work/runroot"
EOF

# A one-layer busybox image, so that no registry is needed.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/proc" "$work/rootfs/sys" \
  "$work/rootfs/dev" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
pm import --change 'CMD ["/bin/sleep","2147483647"]' "$work/rootfs.tar" localhost/atoll-busybox \
  >/dev/null

echo
echo "== pods (podman run --network atoll-NAMESPACE), as each pod sees its eth0"
for ns in shop blog; do
  for i in 1 2; do
    pm run -d --pull never --name "$ns-$i" --label atoll-demo=1 --network "atoll-$ns" \
      localhost/atoll-busybox >/dev/null
    addr=$(pm exec "$ns-$i" ip -4 -o addr show dev eth0 | awk '{print $4}')
    route=$(pm exec "$ns-$i" ip -4 route show default)
    printf '%-8s namespace %-5s eth0 %-16s %s\n' "$ns-$i" "$ns" "$addr" "$route"
  done
done
echo
echo "== segments (atollctl get segments)"
ctl get segments
echo
echo "== what the agent's dataplane holds (atollctl agent)"
build/atollctl/atollctl agent --socket="$work/agent.sock" | sed -n '/^POD\|^shop\/\|^blog\//p'

if [ "$keep" = 1 ]; then
  echo
  echo "Up: podman with CONTAINERS_CONF=$work/containers.conf" \
    "CONTAINERS_STORAGE_CONF=$work/storage.conf; press Enter to tear down."
  read -r _
fi
