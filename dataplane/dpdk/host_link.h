// The DPDK dataplane and the host's own network stack, through netlink.
//
// AF_XDP takes every frame of the uplink away from the kernel, so the host's
// own traffic goes through an exception path: a TAP interface with the
// uplink's MAC, which the dataplane feeds with what is the host's (ARP, its
// own connections) and drains onto the uplink. The host's routes through the
// uplink are put in front of through the TAP. The uplink keeps its addresses
// and routes, so that the host's network is whole again as soon as the TAP
// is gone (atoll-dpdkd stopped or killed).
#pragma once

#include <linux/ethtool.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lb/net.h"

namespace atl::dataplane::dpdk {

struct Neighbour {
  lb::IpAddr addr;
  lb::MacAddr mac{};
};

absl::StatusOr<lb::MacAddr> InterfaceMac(const std::string& ifname);
// The interface's channels (ETHTOOL_GCHANNELS): kUnimplemented for one
// without any to tell of.
absl::StatusOr<ethtool_channels> InterfaceChannels(const std::string& ifname);
// Sets the interface administratively up.
absl::Status SetUp(const std::string& ifname);
// Adds, ahead of them, a copy of every IPv4 route of the main table through
// `from` (connected ones included) through `to`.
absl::Status RouteThrough(const std::string& from, const std::string& to);
// The IPv4 neighbours `ifname` has resolved.
absl::StatusOr<std::vector<Neighbour>> ResolvedNeighbours(const std::string& ifname);
// Asks the kernel to resolve `addr` on `ifname` (RTM_NEWNEIGH with NTF_USE).
absl::Status Resolve(const std::string& ifname, const lb::IpAddr& addr);
// An IPv4 route of the main table: where a destination's next hop is.
struct HostRoute {
  uint32_t addr = 0;  // network order
  int len = 0;
  uint32_t gateway = 0;  // network order; 0: the destination is on the link

  friend bool operator==(const HostRoute&, const HostRoute&) = default;
};
// The main table's IPv4 unicast routes through `ifname`.
absl::StatusOr<std::vector<HostRoute>> HostRoutes(const std::string& ifname);

}  // namespace atl::dataplane::dpdk
