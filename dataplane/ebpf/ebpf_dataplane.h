// The eBPF backend: the Dataplane interface programmed into the maps of
// atoll.bpf.c's tc programs, which it attaches to the pod ports, the VXLAN
// device and the host uplink.
//
// The maps are pinned: a restarted agent finds what the one before it
// programmed (and packets flowed the whole time), and reconciles on the first
// full_sync Update instead of starting from empty maps.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/dataplane.h"
#include "dataplane/ebpf/atoll_bpf.h"
#include "dataplane/ebpf/region_allocator.h"

namespace atl::dataplane {

class EbpfDataplane : public Dataplane {
 public:
  struct Options {
    std::filesystem::path pin_dir = "/sys/fs/bpf/atoll";
    // The host's uplink (NodePort, externalIPs, replies to SNATed flows,
    // and the overlay, which the programs encapsulate and decapsulate
    // themselves); empty: none.
    std::string uplink;
    // The VXLAN device to create or reuse when there is no uplink, so that
    // it encapsulates instead; empty: no overlay (a test that runs the
    // programs without attaching them).
    std::string overlay_device = "atl-vxlan";
    // Attach the pod program to each pod port as it arrives; off for tests
    // that run the programs on made-up ports.
    bool attach_pod_ports = true;
    // Added to the kernel's monotonic clock for every time the programs
    // keep (conntrack, affinity). Tests set it to age entries by more than
    // the machine's uptime; 0 otherwise.
    uint64_t clock_offset_ns = 0;
  };
  static absl::StatusOr<std::unique_ptr<EbpfDataplane>> Create(const Options& options);

  absl::Status Apply(const Update& update) override;
  Programmed Dump() const override;
  std::string_view name() const override { return "ebpf"; }

  Counters Drops() const override;
  const ebpf::AtollBpf& bpf() const { return *bpf_; }

 private:
  struct InstalledFrontend {
    Frontend frontend;  // config.backends: the eligible ones, as installed
    atl_svc svc{};
  };
  struct InstalledPrefix {
    std::string owner;  // segment name or route node; empty: restored, not yet reconciled
  };

  EbpfDataplane(const Options& options, std::unique_ptr<ebpf::AtollBpf> bpf);
  absl::Status Restore();
  absl::Status WriteConfig();

  Options options_;
  std::unique_ptr<ebpf::AtollBpf> bpf_;
  uint32_t overlay_ifindex_ = 0;
  uint32_t uplink_ifindex_ = 0;  // the overlay's packets leave and arrive here
  ebpf::RegionAllocator backend_regions_;
  ebpf::RegionAllocator maglev_regions_;
  std::vector<bool> id_used_;

  absl::flat_hash_map<lb::FrontendKey, InstalledFrontend> frontends_;
  absl::flat_hash_map<std::string, Segment> segments_;
  std::map<lb::IpPrefix, InstalledPrefix> segment_prefixes_;
  std::map<lb::IpPrefix, Route> routes_;
  std::set<std::pair<uint32_t, uint32_t>> admitted_;  // (source, destination) segment ids
  absl::flat_hash_map<std::string, PodPort> pod_ports_;
  std::vector<lb::IpAddr> node_addresses_;
  // Found in the pinned maps at start, not yet named by an Update.
  std::set<lb::IpPrefix> restored_routes_;
  std::set<uint32_t> restored_pod_ifindexes_;
  bool restored_admits_ = false;
  // Addresses (network order) whose flows went with their pod, and which no
  // pod has taken since: a new pod taking one needs no walk of conntrack.
  absl::flat_hash_set<uint32_t> cleared_addrs_;
};

}  // namespace atl::dataplane
