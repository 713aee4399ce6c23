// Packet fixtures that every backend must pass alike (DESIGN.md "Dataplane
// pipeline"): a host's state as a dataplane Update, then packets in order
// (conntrack carries from one to the next), each with the port it arrives on,
// the verdict and, where the packet goes on, its exact bytes. The eBPF suite
// runs them with BPF_PROG_TEST_RUN; the DPDK backend runs the same tables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"
#include "lb/net.h"

namespace atl::dataplane::fixtures {

enum class Port { kPod, kOverlay, kUplink };
enum class Verdict {
  kDrop,     // with `drop_reason`
  kPass,     // to the host stack, untouched
  kDeliver,  // to the local pod `pod`
  kEncap,    // into the overlay with `vni`, to `underlay`
  kOut,      // routed out of the host
  kReply,    // answered back out of the port it came in on (ARP)
};

struct Step {
  std::string name;
  // Applied in order before the packet is sent (a pod leaving, a new one
  // coming); pod ports' host_ifindex is filled in as for Table::state.
  std::vector<Update> before;
  Port port = Port::kPod;
  std::string pod;        // kPod: the sending pod's host interface
  uint32_t vni = 0;       // kOverlay: the packet's VNI
  lb::IpAddr underlay;    // kOverlay: the sending host
  std::vector<uint8_t> packet;

  Verdict verdict = Verdict::kDrop;
  std::string drop_reason;  // "isolated", "spoofed", ... (EbpfDataplane::Drops names)
  std::string to_pod;       // kDeliver: the pod's host interface
  uint32_t to_vni = 0;      // kEncap
  lb::IpAddr to_underlay;   // kEncap
  std::vector<uint8_t> out;  // the packet as it leaves; empty: not checked
};

struct Table {
  std::string name;
  // Pod ports name their host interface; host_ifindex is filled in by the
  // runner with a real interface's (the kernel wants one to run a program on).
  Update state;
  std::vector<Step> steps;
};

// The host these tables program: its node address, and the MAC of its
// uplink (the runners give their uplinks this one).
inline const lb::IpAddr kNodeAddr = lb::IpAddr::V4(0xc6120000 | 11);  // 198.18.0.11
inline constexpr lb::MacAddr kUplinkMac = {0x02, 0, 0, 0, 0, 0x11};

std::vector<Table> AllTables();

}  // namespace atl::dataplane::fixtures
