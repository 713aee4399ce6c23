#!/usr/bin/env bash
# Atoll on one machine: a controller, three hosts (h1-h3, each a network
# namespace running atoll-agent with the eBPF dataplane) on an underlay
# bridge, pods made with atoll-cni, and a service applied with atollctl. It
# shows the service load-balanced across hosts (answers per backend), an
# isolated namespace refusing another, and a throughput figure.
#
# Everything runs in a network and mount namespace of this script's own: the
# hosts, pods, links, BPF pins and processes go when it ends, pass or fail.
# Addresses: underlay 198.18.0.0/20, pods 198.19.0.0/16, services 198.18.64.0/18.
# Usage: scripts/demo.sh [--keep]   (--keep: stay up until Enter)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${ATOLL_DEMO_INSIDE:-}" ]; then
  cd "$repo"
  scripts/install-deps.sh
  if [ -d build/meson-private ]; then meson setup --reconfigure build >/dev/null
  else meson setup build >/dev/null; fi
  meson compile -C build controller/atoll-controller agent/atoll-agent atollctl/atollctl \
    cni-plugin/atoll-cni >/dev/null
  exec env ATOLL_DEMO_INSIDE=1 unshare --net --mount --propagation private "$0" "$@"
fi

B=$repo/build
W=$(mktemp -d /tmp/atoll-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
mount -t tmpfs tmpfs /run --make-private 2>/dev/null || mount -t tmpfs tmpfs /run
mkdir -p /run/netns
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
ip link add atl-ul0 type bridge
ip link set atl-ul0 up
ip addr add 198.18.0.1/20 dev atl-ul0

say() { printf '\n== %s\n' "$*"; }
say "three hosts on an underlay bridge, a controller, an agent per host (eBPF dataplane)"
for i in 1 2 3; do
  ip netns add h$i
  ip link add ul-h$i type veth peer name eth0 netns h$i
  ip link set ul-h$i master atl-ul0 up
  ip -n h$i link set lo up
  ip -n h$i link set eth0 up
  ip -n h$i addr add 198.18.0.1$i/20 dev eth0
done
$B/controller/atoll-controller --listen=198.18.0.1:0 --port_file="$W/port" \
  --db="$W/controller.db" 2>"$W/controller.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.05; done
C=198.18.0.1:$(cat "$W/port")
ctl() { echo "\$ atollctl $*"; $B/atollctl/atollctl --controller="$C" "$@"; }

cat > "$W/cluster.yaml" <<Y
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: blog}
Y
for i in 1 2 3; do
  printf -- '---\napiVersion: v1\nkind: Node\nmetadata: {name: h%s}\nstatus: {addresses: [{type: InternalIP, address: 198.18.0.1%s}]}\n' $i $i >> "$W/cluster.yaml"
done
ctl apply -f "$W/cluster.yaml"
for i in 1 2 3; do
  ip netns exec h$i $B/agent/atoll-agent --node=h$i --controller="$C" --socket="$W/h$i.sock" \
    --lease_db="$W/h$i.db" --mtu=1400 --dataplane=ebpf --uplink=eth0 \
    --bpf_pin_dir=/sys/fs/bpf/atoll-h$i 2>"$W/h$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do
    $B/atollctl/atollctl agent --socket="$W/h$i.sock" -o json 2>/dev/null | grep -q '"blog"' && break
    sleep 0.1
  done
done

say "pods, made by atoll-cni: each namespace's pods get addresses of its own segment"
pod() {  # pod HOST NAMESPACE NAME: prints the pod's address
  ip netns add "$3"
  printf '{"cniVersion":"1.0.0","name":"atoll-%s","type":"atoll-cni","socket":"%s","defaultNamespace":"%s"}' \
    "$2" "$W/$1.sock" "$2" |
    ip netns exec "$1" env CNI_COMMAND=ADD CNI_CONTAINERID="$3" CNI_NETNS=/run/netns/"$3" \
      CNI_IFNAME=eth0 CNI_PATH=$B/cni-plugin $B/cni-plugin/atoll-cni |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])'
}
declare -A ip
for spec in h1:shop:client h2:shop:web-1 h3:shop:web-2 h3:shop:web-3 h1:blog:reader; do
  IFS=: read -r host ns name <<<"$spec"
  ip[$name]=$(pod "$host" "$ns" "$name")
  printf '  %-7s namespace %-5s on %s  %s\n' "$name" "$ns" "$host" "${ip[$name]}"
done
for w in web-1 web-2 web-3; do
  ip netns exec $w python3 "$repo/scripts/demo_traffic.py" serve 8080 $w &
  pids+=($!)
done

say "a ClusterIP service over the three web pods (on h2 and h3)"
cat > "$W/web.yaml" <<Y
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.18.64.10
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: ["${ip[web-1]}"], nodeName: h2}
- {addresses: ["${ip[web-2]}"], nodeName: h3}
- {addresses: ["${ip[web-3]}"], nodeName: h3}
ports: [{name: http, port: 8080, protocol: TCP}]
Y
ctl apply -f "$W/web.yaml"
sleep 1
echo "30 connections from client (h1) to 198.18.64.10:80, answers per backend:"
for _ in $(seq 30); do
  ip netns exec client python3 "$repo/scripts/demo_traffic.py" get 198.18.64.10 80
done | sort | uniq -c | sed 's/^/  /'

say "isolation: shop is isolated, so reader (namespace blog) is refused (dropped at h2, counted)"
printf '  reader -> web-1 %s:8080: ' "${ip[web-1]}"
ip netns exec reader python3 "$repo/scripts/demo_traffic.py" get "${ip[web-1]}" 8080
printf '  client -> web-1 %s:8080: ' "${ip[web-1]}"
ip netns exec client python3 "$repo/scripts/demo_traffic.py" get "${ip[web-1]}" 8080

say "throughput: one TCP connection, client (h1) through the ClusterIP to a pod on h2 or h3, 3 s"
printf '  '
ip netns exec client python3 "$repo/scripts/demo_traffic.py" bulk 198.18.64.10 80 3

if [ "${1:-}" = "--keep" ]; then
  echo
  echo "Up: controller $C; agents' sockets $W/h{1,2,3}.sock; pods are netns in this"
  echo "script's mount namespace (nsenter -t $$ -n -m). Enter tears it all down."
  read -r _
fi
