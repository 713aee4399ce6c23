#!/usr/bin/env bash
# Installs the Debian 12 packages that Atoll builds and tests with. Idempotent:
# apt-get runs (update first) only when a package is missing.
set -euo pipefail

packages=(
  # toolchain
  g++ clang libclang-rt-14-dev meson ninja-build pkg-config python3
  # libraries
  libabsl-dev libxxhash-dev
  # the eBPF dataplane: BPF objects, their skeletons, libbpf
  libbpf-dev bpftool
  # the DPDK dataplane (EAL, mbufs, the ring, null, af_packet, af_xdp and tap PMDs)
  libdpdk-dev
  # control plane: gRPC, protobuf, the embedded store, manifests
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev libyaml-cpp-dev nlohmann-json3-dev
  # CNI: netlink, and the reference plugins the benchmark measures against
  libmnl-dev containernetworking-plugins iproute2
  # the e2e test bed drives atoll-cni through libcni (../shared/realclients/cnidrive.go)
  golang-go golang-github-appc-cni-dev
  # tests and benchmarks; kube-proxy's rulesets load through iptables-restore and nft
  googletest libgtest-dev libgmock-dev libbenchmark-dev iptables nftables
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
