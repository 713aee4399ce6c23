// Turns changes to the desired state into a dataplane Update, with
// Kubernetes (kube-proxy) semantics: a frontend per Service port and address,
// backends from the Service's EndpointSlices, a segment per namespace, a route
// per remote node block.
//
// The renderer remembers what the dataplane was last told (Commit), so that a
// change costs what it touches: an EndpointSlice change re-renders its one
// Service, never a pass over everything (10,000 services and 100,000
// endpoints are the benchmark).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "agent/desired_state.h"
#include "dataplane/dataplane.h"
#include "lb/net.h"
#include "lb/service_table.h"

namespace atl::agent {

// Objects rendered per owner (a Service owns its frontends, a Node its
// routes), each key owned by at most one owner, as last committed. The
// Renderer's bookkeeping; its members are defined in renderer.cc.
template <typename Key, typename Object, typename Hash = absl::Hash<Key>>
class OwnedObjects {
 public:
  // The owners a change touched and everything each of them renders to now
  // (empty: nothing, as for a deleted Service). Ordered, so that Updates and
  // errors come out the same every time.
  using Rendering = std::map<std::string, std::vector<Object>>;

  // What turns the committed objects of the owners in `rendering` into theirs:
  // keys to remove and objects to add or replace. Fails when two owners claim
  // one key, naming both; a key one owner lists twice counts once.
  absl::Status Diff(const Rendering& rendering, std::vector<Key>& removals,
                    std::vector<Object>& upserts) const;
  void Commit(Rendering rendering);
  size_t size() const { return objects_.size(); }

 private:
  struct Entry {
    std::string owner;
    Object object;
  };
  absl::flat_hash_map<Key, Entry, Hash> objects_;
  absl::flat_hash_map<std::string, std::vector<Key>> keys_of_;
};

struct PrefixHash {
  size_t operator()(const lb::IpPrefix& p) const {
    return absl::Hash<std::pair<std::array<uint8_t, 16>, uint8_t>>()({p.addr.bytes, p.len});
  }
};

class Renderer {
 public:
  // `node_name` is this host's Node: its endpoints are node-local, its
  // underlay address is where NodePorts answer, and its blocks get no route.
  explicit Renderer(std::string node_name) : node_name_(std::move(node_name)) {}

  // The Update that takes the dataplane from what was last committed to what
  // `state` says, for the resources `changes` (as DesiredState's Apply
  // returned them, already applied to `state`) affect. Fails on malformed
  // data, naming the resource and the value. A Render not followed by Commit
  // or Abort is replaced by the next one.
  absl::StatusOr<dataplane::Update> Render(const DesiredState& state,
                                           std::span<const Change> changes);
  // The dataplane took the last Render's Update.
  void Commit();
  // It did not (or the agent gave up on it): the next Render starts again
  // from what was last committed.
  void Abort();

  const std::string& node_name() const { return node_name_; }
  // Committed counts, for the agent's status output.
  size_t frontends() const { return frontends_.size(); }
  size_t routes() const { return routes_.size(); }
  size_t segments() const { return segments_.size(); }

 private:
  struct Pending {
    OwnedObjects<lb::FrontendKey, dataplane::Frontend>::Rendering frontends;
    OwnedObjects<lb::IpPrefix, dataplane::Route, PrefixHash>::Rendering routes;
    absl::flat_hash_map<std::string, std::optional<dataplane::Segment>> segments;
    std::optional<std::vector<lb::IpAddr>> node_addresses;
  };

  absl::StatusOr<std::vector<dataplane::Frontend>> RenderService(const DesiredState& state,
                                                                 const std::string& ns,
                                                                 const std::string& name) const;
  absl::StatusOr<std::vector<dataplane::Route>> RenderRoutes(const DesiredState& state,
                                                             const std::string& node) const;
  absl::StatusOr<std::optional<dataplane::Segment>> RenderSegment(const DesiredState& state,
                                                                  const std::string& ns) const;
  absl::StatusOr<std::vector<lb::IpAddr>> RenderNodeAddresses(const DesiredState& state) const;

  std::string node_name_;
  // Committed: what the dataplane holds.
  OwnedObjects<lb::FrontendKey, dataplane::Frontend> frontends_;
  OwnedObjects<lb::IpPrefix, dataplane::Route, PrefixHash> routes_;
  absl::flat_hash_map<std::string, dataplane::Segment> segments_;
  std::vector<lb::IpAddr> node_addresses_;
  // Rendered, waiting for Commit or Abort.
  std::optional<Pending> pending_;
};

}  // namespace atl::agent
