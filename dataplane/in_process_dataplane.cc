#include "dataplane/in_process_dataplane.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace atl::dataplane {
namespace {

// The VXLAN Network Identifier is 24 bits (RFC 7348 section 5); 0 is kept
// unused so that an unset id cannot pass for a segment.
constexpr uint32_t kMaxVni = (1u << 24) - 1;

// A frontend as an error message names it: the Service it comes from, then the key.
std::string Describe(const lb::FrontendKey& key, const std::string& name) {
  return name.empty() ? absl::StrCat("frontend ", key.ToString())
                      : absl::StrCat("frontend ", name, " (", key.ToString(), ")");
}

// Restoring what the table held a moment ago can only fail if the table
// changed its mind about input it accepted: a bug, not bad input.
void CheckRestored(const absl::Status& status, const lb::FrontendKey& key) {
  if (status.ok()) return;
  std::fprintf(stderr, "in-process dataplane: restoring %s failed: %s\n", key.ToString().c_str(),
               std::string(status.message()).c_str());
  std::abort();
}

// Adds to `removals` the keys of `held` that `listed` lacks.
template <typename Map, typename Set>
void AddUnlisted(const Map& held, const Set& listed,
                 std::vector<typename Map::key_type>* removals) {
  for (const auto& entry : held) {
    if (!listed.contains(entry.first)) removals->push_back(entry.first);
  }
}

}  // namespace

struct InProcessDataplane::UndoStep {
  struct FrontendWas {
    lb::FrontendKey key;
    std::optional<FrontendEntry> before;
  };
  struct SegmentWas {
    std::string name;
    std::optional<Segment> before;
  };
  struct RouteWas {
    lb::IpPrefix cidr;
    std::optional<Route> before;
  };
  struct PodPortWas {
    std::string host_ifname;
    std::optional<PodPort> before;
  };
  struct NodeAddressesWere {
    std::vector<lb::IpAddr> before;
  };
  std::variant<FrontendWas, SegmentWas, RouteWas, PodPortWas, NodeAddressesWere> was;
};

absl::StatusOr<std::unique_ptr<InProcessDataplane>> InProcessDataplane::Create(
    size_t max_frontends, uint32_t maglev_seed) {
  if (max_frontends == 0) {
    return absl::InvalidArgumentError("in-process dataplane: max_frontends must be positive");
  }
  return std::unique_ptr<InProcessDataplane>(new InProcessDataplane(max_frontends, maglev_seed));
}

absl::Status InProcessDataplane::Apply(const Update& update) {
  std::vector<UndoStep> undo;
  absl::Status status = ApplySteps(update, undo);
  if (!status.ok()) Rollback(undo);
  return status;
}

absl::Status InProcessDataplane::ApplySteps(const Update& update, std::vector<UndoStep>& undo) {
  // A full sync removes what it does not list, as the removals do: this
  // process may have outlived the agent that programmed it (atoll-dpdkd).
  std::vector<lb::FrontendKey> frontend_removals = update.remove_frontends;
  std::vector<std::string> segment_removals = update.remove_segments;
  std::vector<lb::IpPrefix> route_removals = update.remove_routes;
  std::vector<std::string> pod_port_removals = update.remove_pod_ports;
  if (update.full_sync) {
    absl::flat_hash_set<lb::FrontendKey> frontends;
    for (const Frontend& f : update.upsert_frontends) frontends.insert(f.key);
    AddUnlisted(frontends_, frontends, &frontend_removals);
    absl::flat_hash_set<std::string> segments;
    for (const Segment& s : update.upsert_segments) segments.insert(s.name);
    AddUnlisted(segments_, segments, &segment_removals);
    std::set<lb::IpPrefix> routes;
    for (const Route& r : update.upsert_routes) routes.insert(r.cidr);
    AddUnlisted(routes_, routes, &route_removals);
  }
  if (update.full_sync_pod_ports) {
    absl::flat_hash_set<std::string> ports;
    for (const PodPort& p : update.upsert_pod_ports) ports.insert(p.host_ifname);
    AddUnlisted(pod_ports_, ports, &pod_port_removals);
  }

  // Removals first, so that an Update which replaces frontends fits in the
  // capacity the final state needs rather than the sum of old and new.
  for (const lb::FrontendKey& key : frontend_removals) {
    auto it = frontends_.find(key);
    if (it == frontends_.end()) continue;  // already gone: removal is idempotent
    undo.push_back({UndoStep::FrontendWas{key, std::move(it->second)}});
    frontends_.erase(it);
    services_.Remove(key);
  }
  for (const Frontend& f : update.upsert_frontends) {
    auto it = frontends_.find(f.key);
    if (it == frontends_.end() && frontends_.size() >= max_frontends_) {
      return absl::ResourceExhaustedError(absl::StrCat(Describe(f.key, f.name),
                                                       ": the dataplane holds its maximum of ",
                                                       max_frontends_, " frontends"));
    }
    if (absl::StatusOr<lb::ServiceId> id = services_.Upsert(f.key, f.config); !id.ok()) {
      return absl::Status(id.status().code(),
                          absl::StrCat(Describe(f.key, f.name), ": ", id.status().message()));
    }
    FrontendEntry entry{f.name, f.config};
    if (it == frontends_.end()) {
      undo.push_back({UndoStep::FrontendWas{f.key, std::nullopt}});
      frontends_.emplace(f.key, std::move(entry));
    } else {
      undo.push_back({UndoStep::FrontendWas{f.key, std::exchange(it->second, std::move(entry))}});
    }
  }

  for (const std::string& name : segment_removals) {
    auto it = segments_.find(name);
    if (it == segments_.end()) continue;
    undo.push_back({UndoStep::SegmentWas{name, std::move(it->second)}});
    segments_.erase(it);
  }
  for (const Segment& s : update.upsert_segments) {
    if (s.name.empty()) return absl::InvalidArgumentError("segment with an empty name");
    if (s.vni == 0 || s.vni > kMaxVni) {
      return absl::InvalidArgumentError(
          absl::StrCat("segment \"", s.name, "\": VNI ", s.vni, " is not in 1..", kMaxVni));
    }
    auto [it, inserted] = segments_.try_emplace(s.name, s);
    if (inserted) {
      undo.push_back({UndoStep::SegmentWas{s.name, std::nullopt}});
    } else {
      undo.push_back({UndoStep::SegmentWas{s.name, std::exchange(it->second, s)}});
    }
  }

  for (const lb::IpPrefix& cidr : route_removals) {
    auto it = routes_.find(cidr);
    if (it == routes_.end()) continue;
    undo.push_back({UndoStep::RouteWas{cidr, std::move(it->second)}});
    routes_.erase(it);
  }
  for (const Route& r : update.upsert_routes) {
    if (r.vni == 0 || r.vni > kMaxVni) {
      return absl::InvalidArgumentError(absl::StrCat("route ", r.cidr.ToString(), " to node \"",
                                                     r.node, "\": VNI ", r.vni, " is not in 1..",
                                                     kMaxVni));
    }
    if (r.underlay.IsUnspecified()) {
      return absl::InvalidArgumentError(absl::StrCat("route ", r.cidr.ToString(), " to node \"",
                                                     r.node, "\" has no underlay address"));
    }
    auto [it, inserted] = routes_.try_emplace(r.cidr, r);
    if (inserted) {
      undo.push_back({UndoStep::RouteWas{r.cidr, std::nullopt}});
    } else {
      undo.push_back({UndoStep::RouteWas{r.cidr, std::exchange(it->second, r)}});
    }
  }

  for (const std::string& name : pod_port_removals) {
    auto it = pod_ports_.find(name);
    if (it == pod_ports_.end()) continue;
    undo.push_back({UndoStep::PodPortWas{name, std::move(it->second)}});
    pod_ports_.erase(it);
  }
  for (const PodPort& p : update.upsert_pod_ports) {
    if (p.host_ifname.empty() || p.host_ifindex == 0) {
      return absl::InvalidArgumentError(absl::StrCat("pod port of ", p.pod, ": interface \"",
                                                     p.host_ifname, "\" index ", p.host_ifindex,
                                                     " is not a real interface"));
    }
    if (p.address.IsUnspecified()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pod port ", p.host_ifname, " of ", p.pod, " has no address"));
    }
    auto [it, inserted] = pod_ports_.try_emplace(p.host_ifname, p);
    if (inserted) {
      undo.push_back({UndoStep::PodPortWas{p.host_ifname, std::nullopt}});
    } else {
      undo.push_back({UndoStep::PodPortWas{p.host_ifname, std::exchange(it->second, p)}});
    }
  }

  // A full sync's node addresses are all there are, listed or not.
  if (update.set_node_addresses || update.full_sync) {
    undo.push_back({UndoStep::NodeAddressesWere{node_addresses_}});
    node_addresses_ = update.node_addresses;
    services_.SetNodeAddresses(node_addresses_);
  }
  return absl::OkStatus();
}

void InProcessDataplane::Rollback(std::vector<UndoStep>& undo) {
  // In reverse, so that a key touched twice ends with what it held first.
  for (auto step = undo.rbegin(); step != undo.rend(); ++step) {
    if (auto* f = std::get_if<UndoStep::FrontendWas>(&step->was)) {
      if (f->before.has_value()) {
        CheckRestored(services_.Upsert(f->key, f->before->config).status(), f->key);
        frontends_.insert_or_assign(f->key, std::move(*f->before));
      } else {
        services_.Remove(f->key);
        frontends_.erase(f->key);
      }
    } else if (auto* s = std::get_if<UndoStep::SegmentWas>(&step->was)) {
      if (s->before.has_value()) {
        segments_.insert_or_assign(s->name, std::move(*s->before));
      } else {
        segments_.erase(s->name);
      }
    } else if (auto* r = std::get_if<UndoStep::RouteWas>(&step->was)) {
      if (r->before.has_value()) {
        routes_.insert_or_assign(r->cidr, std::move(*r->before));
      } else {
        routes_.erase(r->cidr);
      }
    } else if (auto* p = std::get_if<UndoStep::PodPortWas>(&step->was)) {
      if (p->before.has_value()) {
        pod_ports_.insert_or_assign(p->host_ifname, std::move(*p->before));
      } else {
        pod_ports_.erase(p->host_ifname);
      }
    } else if (auto* n = std::get_if<UndoStep::NodeAddressesWere>(&step->was)) {
      node_addresses_ = std::move(n->before);
      services_.SetNodeAddresses(node_addresses_);
    }
  }
  undo.clear();
}

Programmed InProcessDataplane::Dump() const {
  Programmed out;
  out.frontends.reserve(frontends_.size());
  for (const auto& [key, entry] : frontends_) {
    Frontend f{key, {}, entry.name};
    // Policies are not kept by the table; they shaped its eligible set.
    f.config.external_policy = entry.config.external_policy;
    f.config.internal_policy = entry.config.internal_policy;
    f.config.maglev_size = entry.config.maglev_size;
    if (const lb::Service* svc = services_.Lookup(key.addr, key.port, key.proto, key.scope)) {
      f.config.backends = svc->eligible;
      f.config.affinity_timeout_s = svc->affinity_timeout_s;
      if (svc->has_backend())
        f.config.maglev_size = static_cast<uint32_t>(svc->maglev.slots.size());
    }
    out.frontends.push_back(std::move(f));
  }
  std::sort(out.frontends.begin(), out.frontends.end(), [](const Frontend& a, const Frontend& b) {
    return std::tie(a.name, a.key.addr, a.key.port, a.key.proto, a.key.scope) <
           std::tie(b.name, b.key.addr, b.key.port, b.key.proto, b.key.scope);
  });
  out.segments.reserve(segments_.size());
  for (const auto& [name, segment] : segments_) out.segments.push_back(segment);
  out.routes.reserve(routes_.size());
  for (const auto& [cidr, route] : routes_) out.routes.push_back(route);
  out.pod_ports.reserve(pod_ports_.size());
  for (const auto& [name, port] : pod_ports_) out.pod_ports.push_back(port);
  out.node_addresses = node_addresses_;
  return out;
}

}  // namespace atl::dataplane
