// The host plumbing behind the agent's CNI server: the veth pair that gives a
// pod its network interface, made and checked through rtnetlink (libmnl), never
// by running a program.
//
// Every function is safe to call from many threads at once: each call opens its
// own netlink sockets, and the calling thread never changes network namespace
// (a short-lived thread of our own opens the socket inside the pod's). The
// "host" side is always the network namespace of the calling thread. The
// kernel makes link changes one at a time (under the RTNL), so concurrent
// set-ups queue there: about 0.6 ms each.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/dataplane.h"
#include "lb/net.h"

namespace atl::agent {

using MacAddr = lb::MacAddr;
using lb::FormatMac;

// The pod side's MAC (dataplane.h): it follows from the address alone, so a
// repeated ADD gives the same one and neighbours' ARP caches stay right when a
// pod is re-created with its address.
using dataplane::PodMac;

// The host side's name: "atl" and 11 lowercase hex digits of the FNV-1a hash
// of (container_id, ifname), 14 characters (IFNAMSIZ - 1 is 15). It depends on
// nothing but its arguments, so a restarted or upgraded agent finds the
// interfaces it made.
std::string HostIfname(std::string_view container_id, std::string_view ifname);

struct PodInterfaceSpec {
  std::string netns;        // path of the pod's netns file (/run/netns/x, /proc/PID/ns/net, ...)
  std::string ifname;       // the name inside the pod, e.g. "eth0"
  std::string host_ifname;  // HostIfname(container_id, ifname)
  // The pod's IPv4 address and its subnet's prefix length (198.19.0.5 and 24).
  // Not an lb::IpPrefix: that names a network, with the host bits zero.
  lb::IpAddr address;
  int prefix_len = 0;
  // The default route goes via this, onlink: the gateway may lie outside the
  // address's subnet when a segment has several CIDRs.
  lb::IpAddr gateway;
  uint32_t mtu = 1450;
  // The pod's stack fills in its own checksums (no checksum offload, so no
  // TSO either). A veth hands the host side a half-done checksum to finish,
  // which a dataplane reading frames as bytes (AF_XDP, the DPDK backend)
  // would put on the wire as it is.
  bool checksums_in_software = false;
  // The host reaches the pod (DESIGN.md "Isolation": pods accept their own
  // host, as the kubelet's probes need): a route to its address alone
  // through the host side, in a table that only the host's own packets look
  // up (a forwarding host must not hand the pod what others send it), and a
  // permanent neighbour entry for it there with the pod's MAC, since no
  // dataplane passes the pod's ARP answers to the host stack.
  bool host_route = true;
};

struct PodInterface {
  std::string host_ifname;
  int host_ifindex = 0;
  MacAddr host_mac{};
  int pod_ifindex = 0;  // in the pod's network namespace
  MacAddr pod_mac{};

  friend bool operator==(const PodInterface&, const PodInterface&) = default;
};

// Creates the veth pair of a pod, or completes it when it already exists (a
// repeated CNI ADD succeeds and leaves the same interface): host_ifname in the
// calling thread's network namespace, its peer made directly in the pod's as
// ifname, with PodMac(address), and `mtu` on both ends. In the pod: the
// interface and lo up, the address, and the default route via the gateway.
// On the host side IPv6 is disabled before it goes up (it carries pod traffic
// only and must send nothing of its own: no DAD, router or MLD messages).
//
// ALREADY_EXISTS, naming the interface, when host_ifname exists but is not the
// veth peer of ifname in that namespace, or ifname exists there but is not the
// peer of host_ifname. Any failure after the pair was created deletes it again.
absl::StatusOr<PodInterface> SetUpPodInterface(const PodInterfaceSpec& spec);

// ethtool's "tx off" on `ifname` in the calling thread's network namespace:
// the interface's stack fills in its own checksums (checksums_in_software).
absl::Status TurnOffChecksumOffload(const std::string& ifname);

// Deletes the pair through its host side, which takes the peer with it. A
// missing host_ifname is not an error (CNI DEL is repeated, and the pair goes
// away by itself with the pod's namespace); FAILED_PRECONDITION when the name
// belongs to something other than a veth.
absl::Status TearDownPodInterface(std::string_view host_ifname);

// Deletes many pairs at once through their host sides: one kernel request
// for all of them, and so one RCU barrier instead of one each. Missing names
// are skipped; FAILED_PRECONDITION when a name belongs to something other than
// a veth (nothing is deleted then).
absl::Status TearDownPodInterfaces(const std::vector<std::string>& host_ifnames);

// The fast half of CNI DEL: takes ifname out of the pod's sight at once, when
// it is the veth peer of host_ifname: it goes down and is renamed host_ifname
// inside the pod's namespace. Deleting a link waits in the kernel for an RCU
// barrier (netdev_run_todo(): 15 to 20 ms on the test VM), which DEL then need
// not wait for: the caller deletes the pair afterwards with
// TearDownPodInterface. OK when the namespace, the pair or ifname is gone.
absl::Status DetachPodInterface(const std::string& netns, std::string_view ifname,
                                std::string_view host_ifname);

// CNI CHECK: in the pod's namespace ifname exists, is up, has the address with
// its prefix length, the MAC and the MTU, and the default route goes via the
// gateway on it; the host side exists, is up, has the MTU and is its veth peer.
// The error names what differs and the value found, e.g.
// "eth0 in /run/netns/p1 has no address 198.19.0.5/24 (it has 198.19.0.6/24)".
absl::Status CheckPodInterface(const PodInterfaceSpec& spec);

// The host side of an existing pair (name, ifindex, MAC and the peer's ifindex;
// pod_mac is left zero): the agent hands existing pods to its dataplane with it
// after a restart. NOT_FOUND when absent, FAILED_PRECONDITION when not a veth.
absl::StatusOr<PodInterface> FindHostInterface(std::string_view host_ifname);

// The MTU of the link that carries the default IPv4 route of the calling
// thread's namespace, lowered to the route's own MTU metric when it has one
// (the kernel uses the smaller); for a multipath route the smallest of its
// links. 1500 when there is no default route.
absl::StatusOr<uint32_t> DefaultRouteMtu();

// The name of the link that carries the default IPv4 route (the first, for a
// multipath route): the host's uplink. NOT_FOUND when there is no default route.
absl::StatusOr<std::string> DefaultRouteInterface();

// The host's uplink for a dataplane: `given` (an --uplink flag) when not
// empty, else DefaultRouteInterface(); FAILED_PRECONDITION saying so when
// neither names one.
absl::StatusOr<std::string> UplinkInterface(const std::string& given);

}  // namespace atl::agent
