// The agent's copy of what the controller sent: every resource by key, with
// the indexes the renderer needs to re-render one Service or one Node without
// a pass over everything (a Service's EndpointSlices, the cluster-scoped kinds
// by name).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "atoll.pb.h"
#include "resource_key.h"

namespace atl::agent {

namespace api = ::atl::api::v1;

// KeyOf (the key the controller names a resource by) and Describe
// ("Service shop/web") are in proto/resource_key.h.
using ::atl::api::v1::Describe;
using ::atl::api::v1::KeyOf;

// One resource that an Apply changed: absent before (added), absent after
// (removed), or both (replaced by something different). Shared with the
// state, not copied: a snapshot of 100,000 endpoints would otherwise be held
// twice while it is rendered.
using ResourcePtr = std::shared_ptr<const api::Resource>;

struct Change {
  api::ResourceKey key;
  ResourcePtr before;
  ResourcePtr after;
};

class DesiredState {
 public:
  // Replaces everything held with `resources`. Returns the removals of keys
  // not in it and the upserts that differ from what was held; an upsert equal
  // to what is held is no change. Fails, changing nothing, when a resource has
  // no kind or no name.
  // The resources are held as given: the sync client parses a version into
  // one protobuf arena, which its resources keep alive.
  absl::StatusOr<std::vector<Change>> ApplySnapshot(std::vector<ResourcePtr> resources);
  // Adds or replaces `upserts`, then removes `removals` (absent keys are no
  // change). Fails, changing nothing, when an upsert has no kind or no name or
  // a removal has no kind; the error gives its index so the agent's NACK says
  // which one.
  absl::StatusOr<std::vector<Change>> ApplyDelta(std::vector<ResourcePtr> upserts,
                                                 const std::vector<api::ResourceKey>& removals);
  // The same, from resources by value (tests, tools).
  absl::StatusOr<std::vector<Change>> ApplySnapshot(std::vector<api::Resource> resources) {
    return ApplySnapshot(Share(std::move(resources)));
  }
  absl::StatusOr<std::vector<Change>> ApplyDelta(std::vector<api::Resource> upserts,
                                                 const std::vector<api::ResourceKey>& removals) {
    return ApplyDelta(Share(std::move(upserts)), removals);
  }
  // Undoes changes an Apply returned, so that the agent keeps its last good
  // state when rendering or programming them fails. Takes them all, in the
  // order returned.
  void Undo(std::vector<Change> changes);

  // nullptr when not held. Pointers stay valid until the next Apply or Undo.
  const api::Resource* Get(const api::ResourceKey& key) const;
  const api::Service* FindService(std::string_view ns, std::string_view name) const;
  const api::Namespace* FindNamespace(std::string_view name) const;
  const api::Segment* FindSegment(std::string_view ns) const;
  const api::Node* FindNode(std::string_view name) const;

  // The EndpointSlices whose service_name is `service`, in name order, so
  // that duplicates across slices resolve the same way on every host.
  std::vector<const api::EndpointSlice*> SlicesOf(std::string_view ns,
                                                  std::string_view service) const;
  // Cluster-scoped kinds, in name order.
  std::vector<const api::Node*> Nodes() const;
  std::vector<const api::Segment*> Segments() const;
  std::vector<const api::Namespace*> Namespaces() const;

  size_t size() const { return resources_.size(); }

 private:
  struct Key {
    int kind = 0;
    std::string ns;
    std::string name;

    friend bool operator==(const Key&, const Key&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.kind, k.ns, k.name);
    }
  };
  static std::vector<ResourcePtr> Share(std::vector<api::Resource> resources) {
    std::vector<ResourcePtr> out;
    out.reserve(resources.size());
    for (api::Resource& r : resources) out.push_back(std::make_shared<api::Resource>(std::move(r)));
    return out;
  }
  static Key ToKey(const api::ResourceKey& key) {
    return Key{static_cast<int>(key.kind()), key.namespace_(), key.name()};
  }
  const api::Resource* Find(int kind, std::string_view ns, std::string_view name) const;

  // Puts `resource` under `key` (or removes what is there when null),
  // keeping the indexes, and returns what was there.
  std::shared_ptr<const api::Resource> Put(const api::ResourceKey& key,
                                           std::shared_ptr<const api::Resource> resource);
  void Index(const api::ResourceKey& key, const api::Resource& resource, bool add);

  // Held through a pointer so that what Get returns survives rehashing, and
  // shared with the Changes that name it.
  absl::flat_hash_map<Key, std::shared_ptr<const api::Resource>> resources_;
  // (namespace, service name) -> names of its EndpointSlices.
  absl::flat_hash_map<std::pair<std::string, std::string>, std::set<std::string>>
      slices_by_service_;
  std::set<std::string> nodes_;
  std::set<std::string> segments_;
  std::set<std::string> namespaces_;
};

}  // namespace atl::agent
