#include "lb/service_table.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"

namespace atl::lb {
namespace {

const char* ProtoName(IpProto p) {
  switch (p) {
    case IpProto::kTcp:
      return "TCP";
    case IpProto::kUdp:
      return "UDP";
    case IpProto::kSctp:
      return "SCTP";
    default:
      return "?";
  }
}

// An IPv6 address is bracketed so that its port reads apart from it (RFC 3986 section 3.2.2).
std::string EndpointString(const Endpoint& e) {
  return e.addr.IsV4() ? absl::StrCat(e.addr.ToString(), ":", e.port)
                       : absl::StrCat("[", e.addr.ToString(), "]:", e.port);
}

// Generations are unique in the process, not only in one table, so that a
// cached choice can never mistake a rebuilt table's service for the old one.
uint32_t NextGeneration() {
  static std::atomic<uint32_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

std::string FrontendKey::ToString() const {
  const std::string a = addr.IsUnspecified() ? "*" : addr.ToString();
  return absl::StrCat(addr.IsV4() ? a : absl::StrCat("[", a, "]"), ":", port, "/", ProtoName(proto),
                      scope == Scope::kInternal ? " (internal)" : " (external)");
}

uint32_t MaglevSizeFor(const std::vector<Backend>& backends) {
  if (backends.empty()) return kMaglevSizes.front();
  uint64_t total = 0;
  uint32_t lightest = backends.front().weight;
  for (const Backend& b : backends) {
    total += b.weight;
    lightest = std::min(lightest, b.weight);
  }
  const uint64_t shares = (total + lightest - 1) / lightest;
  const uint64_t need = shares * kMaglevSlotsPerBackend;
  for (uint32_t m : kMaglevSizes) {
    if (m >= need) return m;
  }
  return kMaglevSizes.back();
}

std::vector<Backend> EligibleBackends(const ServiceConfig& config, Scope scope) {
  const TrafficPolicy policy =
      scope == Scope::kExternal ? config.external_policy : config.internal_policy;
  std::vector<Backend> ready;
  std::vector<Backend> draining;
  for (const Backend& b : config.backends) {
    if (policy == TrafficPolicy::kLocal && !b.node_local) continue;
    if (!b.serving) continue;
    (b.terminating ? draining : ready).push_back(b);
  }
  return ready.empty() ? draining : ready;
}

absl::StatusOr<ServiceId> ServiceTable::Upsert(const FrontendKey& frontend,
                                               const ServiceConfig& config) {
  const std::string name = frontend.ToString();
  if (frontend.proto != IpProto::kTcp && frontend.proto != IpProto::kUdp &&
      frontend.proto != IpProto::kSctp) {
    return absl::InvalidArgumentError(absl::StrCat("service ", name, ": protocol ",
                                                   static_cast<int>(frontend.proto),
                                                   " is not TCP, UDP or SCTP"));
  }
  if (frontend.port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("service ", name, ": port 0 is not a valid port"));
  }
  if (frontend.proto == IpProto::kSctp) {
    // An SCTP port change would need the packet's CRC32c recomputed (RFC 9260
    // appendix A), which the packet path does not do.
    for (const Backend& b : config.backends) {
      if (b.endpoint.port != frontend.port) {
        return absl::InvalidArgumentError(
            absl::StrCat("service ", name, ": backend ", EndpointString(b.endpoint),
                         " has another port, which SCTP cannot translate"));
      }
    }
  }
  for (const Backend& b : config.backends) {
    const std::string ep = EndpointString(b.endpoint);
    if (b.endpoint.port == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("service ", name, ": backend ", ep, " has port 0"));
    }
    if (b.endpoint.addr.IsV4() != frontend.addr.IsV4()) {
      return absl::InvalidArgumentError(absl::StrCat("service ", name, ": backend ", ep,
                                                     " is not of the frontend's address family"));
    }
  }
  auto service = std::make_unique<Service>();
  service->frontend = frontend;
  service->affinity_timeout_s = config.affinity_timeout_s;
  service->eligible = EligibleBackends(config, frontend.scope);
  std::vector<MaglevBackend> mb;
  mb.reserve(service->eligible.size());
  for (const Backend& b : service->eligible) mb.push_back({b.endpoint, b.weight});
  auto table = BuildMaglev(mb, config.maglev_size, maglev_seed_);
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("service ", name, ": ", table.status().message()));
  }
  service->maglev = *std::move(table);

  auto it = by_frontend_.find(frontend);
  if (it != by_frontend_.end()) {
    const Service& old = *it->second;
    const ServiceId id = old.id;
    service->id = id;
    service->generation = old.eligible == service->eligible ? old.generation : NextGeneration();
    IndexBackends(old, false);
    IndexBackends(*service, true);
    it->second = service.get();
    services_[id] = std::move(service);
    return id;
  }
  ServiceId id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<ServiceId>(services_.size());
    services_.emplace_back();
  }
  service->id = id;
  service->generation = NextGeneration();
  IndexBackends(*service, true);
  by_frontend_.emplace(frontend, service.get());
  services_[id] = std::move(service);
  return id;
}

bool ServiceTable::Remove(const FrontendKey& frontend) {
  auto it = by_frontend_.find(frontend);
  if (it == by_frontend_.end()) return false;
  const ServiceId id = it->second->id;
  IndexBackends(*it->second, false);
  by_frontend_.erase(it);
  services_[id].reset();
  free_ids_.push_back(id);
  return true;
}

void ServiceTable::IndexBackends(const Service& svc, bool add) {
  // A NodePort answers on whichever node address the client used, which a
  // stateless reverse translation cannot know: only concrete frontends count.
  if (svc.frontend.addr.IsUnspecified()) return;
  for (const Backend& b : svc.eligible) {
    const BackendKey key{b.endpoint.addr, b.endpoint.port, svc.frontend.proto, Scope::kInternal};
    if (add) {
      by_backend_[key].push_back(svc.id);
      continue;
    }
    auto it = by_backend_.find(key);
    if (it == by_backend_.end()) continue;
    it->second.erase(std::remove(it->second.begin(), it->second.end(), svc.id), it->second.end());
    if (it->second.empty()) by_backend_.erase(it);
  }
}

std::optional<Endpoint> ServiceTable::ReverseLookup(const IpAddr& addr, uint16_t port,
                                                    IpProto proto) const {
  auto it = by_backend_.find(BackendKey{addr, port, proto, Scope::kInternal});
  if (it == by_backend_.end()) return std::nullopt;
  std::optional<Endpoint> frontend;
  for (ServiceId id : it->second) {
    const Endpoint e{services_[id]->frontend.addr, services_[id]->frontend.port};
    if (frontend && *frontend != e) return std::nullopt;  // ambiguous
    frontend = e;
  }
  return frontend;
}

const Service* ServiceTable::Lookup(const IpAddr& addr, uint16_t port, IpProto proto,
                                    Scope scope) const {
  auto it = by_frontend_.find(FrontendKey{addr, port, proto, scope});
  if (it == by_frontend_.end()) {
    // kube-proxy semantics: a NodePort is reached on the node's own addresses
    // only, not on whatever destination carries its port number.
    if (!IsNodeAddress(addr)) return nullptr;
    const IpAddr any = addr.IsV4() ? IpAddr::V4(0) : IpAddr{};
    it = by_frontend_.find(FrontendKey{any, port, proto, scope});
    if (it == by_frontend_.end()) return nullptr;
  }
  return it->second;
}

}  // namespace atl::lb
