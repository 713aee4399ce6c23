// The service table: frontends (VIP, port, protocol, scope) and the backends a
// new flow may be sent to, each with its Maglev table.
//
// The control side (Upsert/Remove) and the packet path (Lookup, MaglevPick)
// are not synchronised here: a backend that serves several worker threads
// publishes a table version to them (RCU or a versioned swap).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "lb/flow_hash.h"
#include "lb/maglev.h"
#include "lb/net.h"
#include "lb/prefetch.h"

namespace atl::lb {

// Where a connection to a frontend comes from. Kubernetes applies
// internalTrafficPolicy to traffic from pods of the cluster (a ClusterIP) and
// externalTrafficPolicy to traffic from outside (NodePort, externalIPs,
// LoadBalancer IPs); a frontend is installed per scope it serves.
enum class Scope : uint8_t { kInternal = 0, kExternal = 1 };

enum class TrafficPolicy : uint8_t { kCluster, kLocal };

struct FrontendKey {
  IpAddr addr;  // unspecified (:: or 0.0.0.0) for a NodePort, on every node address
  uint16_t port = 0;
  IpProto proto = IpProto::kTcp;
  Scope scope = Scope::kInternal;

  std::string ToString() const;
  friend bool operator==(const FrontendKey&, const FrontendKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FrontendKey& k) {
    return H::combine(std::move(h), k.addr.bytes, k.port, k.proto, k.scope);
  }
};

// An endpoint as EndpointSlice conditions describe it (KEP-1669).
struct Backend {
  Endpoint endpoint;
  uint32_t weight = 1;
  bool serving = true;
  bool terminating = false;
  bool node_local = false;  // runs on this host

  friend bool operator==(const Backend&, const Backend&) = default;
};

struct ServiceConfig {
  std::vector<Backend> backends;
  TrafficPolicy external_policy = TrafficPolicy::kCluster;
  TrafficPolicy internal_policy = TrafficPolicy::kCluster;
  uint32_t affinity_timeout_s = 0;  // sessionAffinity ClientIP when > 0
  uint32_t maglev_size = kDefaultMaglevSize;
};

using ServiceId = uint32_t;

// A frontend as the packet path sees it: only the backends a new flow may
// take, already filtered by traffic policy and endpoint conditions.
struct Service {
  ServiceId id = 0;
  FrontendKey frontend;
  uint32_t affinity_timeout_s = 0;
  std::vector<Backend> eligible;  // the Maglev table indexes this
  MaglevTable maglev;
  // Changes with the eligible set (unique in the process, also across ids
  // reused), so that cached choices (session affinity) can tell they may be stale.
  uint32_t generation = 0;

  bool has_backend() const { return !maglev.slots.empty(); }
  // Maglev's choice for a flow hash; requires has_backend().
  uint16_t MaglevPick(uint32_t flow_hash) const {
    return maglev.slots[ReduceHash(flow_hash, static_cast<uint32_t>(maglev.slots.size()))];
  }
  // Starts loading what MaglevPick and the chosen backend will read.
  void PrefetchPick(uint32_t flow_hash) const {
    if (!has_backend()) return;
    Prefetch(&maglev.slots[ReduceHash(flow_hash, static_cast<uint32_t>(maglev.slots.size()))]);
    Prefetch(eligible.data());
  }
};

// The smallest table with at least kMaglevSlotsPerBackend slots for the
// lightest backend (a backend of weight w counts as w/w_min backends), so that
// shares stay within ~1% without giving every one of 10,000 services the
// default size. The agent sizes every service's table with it.
uint32_t MaglevSizeFor(const std::vector<Backend>& backends);

// The backends a new flow of `scope` may use: the node-local ones when the
// scope's policy is Local; of those, the serving and not terminating ones; if
// there are none, the serving but terminating ones, so that a rolling update
// drains instead of failing (KEP-1669). Non-serving endpoints never qualify.
std::vector<Backend> EligibleBackends(const ServiceConfig& config, Scope scope);

class ServiceTable {
 public:
  explicit ServiceTable(uint32_t maglev_seed = 0) : maglev_seed_(maglev_seed) {}

  // Adds or replaces a frontend. Errors name the frontend and the bad value.
  absl::StatusOr<ServiceId> Upsert(const FrontendKey& frontend, const ServiceConfig& config);
  // Returns false when the frontend was not there.
  bool Remove(const FrontendKey& frontend);

  // The addresses of this node, on which NodePort frontends (the unspecified
  // address) answer. A node has a handful: they are kept in a short list.
  void SetNodeAddresses(std::vector<IpAddr> addrs) { node_addrs_ = std::move(addrs); }
  bool IsNodeAddress(const IpAddr& addr) const {
    return std::find(node_addrs_.begin(), node_addrs_.end(), addr) != node_addrs_.end();
  }

  // The frontend for a packet to addr:port, falling back to the NodePort
  // wildcard when addr is one of this node's; nullptr when none.
  const Service* Lookup(const IpAddr& addr, uint16_t port, IpProto proto, Scope scope) const;
  // Starts loading the table memory a Lookup of the exact frontend reads.
  void Prefetch(const IpAddr& addr, uint16_t port, IpProto proto, Scope scope) const {
    by_frontend_.prefetch(FrontendKey{addr, port, proto, scope});
  }
  // For a packet from a backend that conntrack does not know (its flow was
  // balanced statelessly while the shard was full): the frontend address and
  // port its replies must carry, when exactly one frontend with a concrete
  // address serves this backend; nullopt when none does, or several disagree.
  std::optional<Endpoint> ReverseLookup(const IpAddr& addr, uint16_t port, IpProto proto) const;
  const Service* Get(ServiceId id) const {
    return id < services_.size() ? services_[id].get() : nullptr;
  }
  size_t size() const { return by_frontend_.size(); }

 private:
  // (backend address, port, protocol) -> the frontends it serves; the scope
  // field of the key is unused. Most backends serve one or two frontends
  // (a ClusterIP, perhaps a NodePort): held inline, 100,000 backends cost no
  // 100,000 small allocations.
  using BackendKey = FrontendKey;
  void IndexBackends(const Service& svc, bool add);

  uint32_t maglev_seed_;
  // The packet path finds a Service here in one step; services_ owns them.
  absl::flat_hash_map<FrontendKey, Service*> by_frontend_;
  absl::flat_hash_map<BackendKey, absl::InlinedVector<ServiceId, 2>> by_backend_;
  std::vector<std::unique_ptr<Service>> services_;  // by id; null when free
  std::vector<ServiceId> free_ids_;
  std::vector<IpAddr> node_addrs_;
};

}  // namespace atl::lb
