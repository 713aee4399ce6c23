// The in-process backend: the agent's Updates land in an lb::ServiceTable and
// plain maps in this process. It is what the DPDK backend's control side
// builds on, and what tests and the agent use when no packet-moving backend is
// chosen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/dataplane.h"
#include "lb/net.h"
#include "lb/service_table.h"

namespace atl::dataplane {

class InProcessDataplane final : public Dataplane {
 public:
  // Enough for the 10,000-service benchmark with dual-stack ClusterIPs,
  // NodePorts and a few ports each.
  static constexpr size_t kDefaultMaxFrontends = 262144;

  // `max_frontends` bounds the table the way a BPF map's max_entries or a DPDK
  // table's size would: an Update that needs more fails with RESOURCE_EXHAUSTED.
  static absl::StatusOr<std::unique_ptr<InProcessDataplane>> Create(
      size_t max_frontends = kDefaultMaxFrontends, uint32_t maglev_seed = 0);

  InProcessDataplane(const InProcessDataplane&) = delete;
  InProcessDataplane& operator=(const InProcessDataplane&) = delete;

  absl::Status Apply(const Update& update) override;
  Programmed Dump() const override;
  std::string_view name() const override { return "in-process"; }

  // What the service table does not keep: the config as asked for (the table
  // keeps only the eligible backends) and the name, for Dump and for undoing.
  struct FrontendEntry {
    std::string name;
    lb::ServiceConfig config;
  };

  const lb::ServiceTable& services() const { return services_; }
  const absl::flat_hash_map<lb::FrontendKey, FrontendEntry>& frontends() const {
    return frontends_;
  }
  const std::map<std::string, Segment>& segments() const { return segments_; }
  const std::map<lb::IpPrefix, Route>& routes() const { return routes_; }
  const std::map<std::string, PodPort>& pod_ports() const { return pod_ports_; }
  const std::vector<lb::IpAddr>& node_addresses() const { return node_addresses_; }
  size_t max_frontends() const { return max_frontends_; }

 private:
  // One step of an Apply, with what it replaced, so that a failed Apply can
  // walk back to where it started.
  struct UndoStep;

  InProcessDataplane(size_t max_frontends, uint32_t maglev_seed)
      : max_frontends_(max_frontends), services_(maglev_seed) {}

  absl::Status ApplySteps(const Update& update, std::vector<UndoStep>& undo);
  void Rollback(std::vector<UndoStep>& undo);

  size_t max_frontends_;
  lb::ServiceTable services_;
  absl::flat_hash_map<lb::FrontendKey, FrontendEntry> frontends_;
  // Ordered so that Dump reads back in a stable order.
  std::map<std::string, Segment> segments_;
  std::map<lb::IpPrefix, Route> routes_;
  std::map<std::string, PodPort> pod_ports_;
  std::vector<lb::IpAddr> node_addresses_;
};

}  // namespace atl::dataplane
