// The interface between the agent and a packet-moving backend. The agent's
// renderer turns the desired state it received from the controller into an
// Update, in the dataplane's own terms (frontends, segments, routes), and each
// backend (in-process lb tables, eBPF, DPDK) programs it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "lb/net.h"
#include "lb/service_table.h"

namespace atl::dataplane {

// The MAC every backend answers pods' ARP with and routes frames from: 0a:58
// and 0.0.0.1, an address no pod has (a pod's MAC is 0a:58 and its address).
inline constexpr lb::MacAddr kRouterMac = {0x0a, 0x58, 0, 0, 0, 1};

// A pod's MAC: 0a:58 followed by the four bytes of its IPv4 address, the
// convention of the Kubernetes bridge plugin. 0x0a has the locally
// administered bit set and the multicast bit clear, and the MAC follows from
// the address alone: the CNI server gives it to the pod, and a dataplane
// addresses a pod on another host by it without asking anyone.
inline lb::MacAddr PodMac(const lb::IpAddr& ipv4) {
  const uint8_t* v4 = ipv4.v4_bytes();
  return {0x0a, 0x58, v4[0], v4[1], v4[2], v4[3]};
}

// A service frontend with the backends it balances over. `name` says which
// Service and port it comes from ("namespace/name:port"), for people reading
// counters and debug output.
struct Frontend {
  lb::FrontendKey key;
  lb::ServiceConfig config;
  std::string name;
};

// A namespace's segment as a host programs it.
struct Segment {
  std::string name;  // the namespace
  uint32_t vni = 0;
  std::vector<lb::IpPrefix> cidrs;
  lb::IpAddr gateway;
  bool isolated = true;
  std::vector<std::string> admitted;  // namespaces that may reach an isolated one
  lb::IpAddr egress_ip;               // unspecified: SNAT to the node address

  friend bool operator==(const Segment&, const Segment&) = default;
};

// Addresses of a segment that live on another host, reached through the overlay.
struct Route {
  lb::IpPrefix cidr;
  uint32_t vni = 0;
  std::string node;
  lb::IpAddr underlay;  // the remote tunnel endpoint

  friend bool operator==(const Route&, const Route&) = default;
};

// A pod's interface on this host: the host side of the veth the CNI server
// made. Its packets belong to `segment`, and only with its own address and MAC
// (anti-spoofing, DESIGN.md "Isolation").
struct PodPort {
  std::string host_ifname;  // the key
  uint32_t host_ifindex = 0;
  lb::MacAddr mac{};  // the pod side's
  lb::IpAddr address;
  std::string segment;  // the pod's namespace
  std::string pod;      // "namespace/name", for people reading

  friend bool operator==(const PodPort&, const PodPort&) = default;
};

// A change to what a dataplane holds. Removals name what an earlier Update
// installed; upserts add or replace by key (frontend key, segment name, route
// CIDR, pod port host ifname).
struct Update {
  std::vector<Frontend> upsert_frontends;
  std::vector<lb::FrontendKey> remove_frontends;
  std::vector<Segment> upsert_segments;
  std::vector<std::string> remove_segments;
  std::vector<Route> upsert_routes;
  std::vector<lb::IpPrefix> remove_routes;
  std::vector<PodPort> upsert_pod_ports;
  std::vector<std::string> remove_pod_ports;
  // This node's own addresses (NodePort frontends answer on them), when they changed.
  bool set_node_addresses = false;
  std::vector<lb::IpAddr> node_addresses;
  // The frontends, segments, routes and node addresses upserted here are all
  // there should be (the agent's first snapshot since it started): a
  // dataplane that kept state across an agent restart (pinned BPF maps)
  // removes what it holds from before and this Update does not list.
  bool full_sync = false;
  // The same for pod ports (the CNI server restoring its pods at start).
  bool full_sync_pod_ports = false;

  bool empty() const {
    return upsert_frontends.empty() && remove_frontends.empty() && upsert_segments.empty() &&
           remove_segments.empty() && upsert_routes.empty() && remove_routes.empty() &&
           upsert_pod_ports.empty() && remove_pod_ports.empty() && !set_node_addresses &&
           !full_sync && !full_sync_pod_ports;
  }
};

// What a dataplane has programmed, read back from the dataplane itself (its
// tables or maps), not from what the agent asked for.
struct Programmed {
  std::vector<Frontend> frontends;  // config.backends holds the eligible backends
  std::vector<Segment> segments;
  std::vector<Route> routes;
  std::vector<PodPort> pod_ports;
  std::vector<lb::IpAddr> node_addresses;
};

class Dataplane {
 public:
  virtual ~Dataplane() = default;

  // Programs all of `update`, or none of it: on error the dataplane holds
  // what it held before, and the error names the object and value refused.
  virtual absl::Status Apply(const Update& update) = 0;
  virtual Programmed Dump() const = 0;
  // "in-process", "ebpf", "dpdk".
  virtual std::string_view name() const = 0;

  // Counts since the dataplane started, summed over its CPUs or workers, for
  // whoever asks why a packet did not arrive. Drops are by reason, with
  // DESIGN.md's names, zeros included; a dataplane that moves no packets has
  // none.
  using Counters = std::vector<std::pair<std::string, uint64_t>>;
  virtual Counters Drops() const { return {}; }
  // The backend's other counts: packets, new flows, frames between workers.
  virtual Counters Packets() const { return {}; }
};

}  // namespace atl::dataplane
