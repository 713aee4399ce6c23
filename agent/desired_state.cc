#include "agent/desired_state.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace atl::agent {
namespace {

bool Namespaced(api::Kind kind) {
  return kind == api::KIND_SERVICE || kind == api::KIND_ENDPOINT_SLICE;
}

// Why a key cannot be held, or empty when it can.
std::string KeyProblem(const api::ResourceKey& key) {
  if (key.kind() == api::KIND_UNSPECIFIED) return "has no kind";
  if (key.name().empty()) return absl::StrCat("is a ", KindName(key.kind()), " with no name");
  if (Namespaced(key.kind()) && key.namespace_().empty()) {
    return absl::StrCat("is ", KindName(key.kind()), " \"", key.name(), "\" with no namespace");
  }
  return "";
}

// Equal resources serialize to equal bytes: Atoll's messages have no map
// fields, whose order is the one thing serialization may vary. A 4x cheaper
// test than protobuf's MessageDifferencer, which matters when a reconnect
// brings a 100,000-endpoint snapshot that is mostly what the agent holds.
bool SameResource(const api::Resource& a, const api::Resource& b) {
  return a.ByteSizeLong() == b.ByteSizeLong() && a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

absl::StatusOr<std::vector<Change>> DesiredState::ApplySnapshot(
    std::vector<ResourcePtr> resources) {
  std::vector<api::ResourceKey> keys;
  keys.reserve(resources.size());
  for (size_t i = 0; i < resources.size(); ++i) {
    keys.push_back(KeyOf(*resources[i]));
    if (std::string problem = KeyProblem(keys.back()); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("snapshot resource ", i, " ", problem));
    }
  }

  std::vector<Change> changes;
  changes.reserve(resources.size());
  // What is held but not in the snapshot goes. An agent's first snapshot
  // finds nothing held: skip building the set then.
  std::vector<api::ResourceKey> gone;
  if (!resources_.empty()) {
    absl::flat_hash_set<Key> in_snapshot;
    in_snapshot.reserve(keys.size());
    for (const api::ResourceKey& key : keys) in_snapshot.insert(ToKey(key));
    for (const auto& [key, resource] : resources_) {
      if (!in_snapshot.contains(key)) gone.push_back(KeyOf(*resource));
    }
  }
  resources_.reserve(resources.size());
  for (api::ResourceKey& key : gone) {
    std::shared_ptr<const api::Resource> before = Put(key, nullptr);
    changes.push_back({std::move(key), std::move(before), nullptr});
  }
  for (size_t i = 0; i < resources.size(); ++i) {
    const api::Resource* held = Get(keys[i]);
    if (held != nullptr && SameResource(*held, *resources[i])) continue;
    ResourcePtr after = std::move(resources[i]);
    ResourcePtr before = Put(keys[i], after);
    changes.push_back({std::move(keys[i]), std::move(before), std::move(after)});
  }
  return changes;
}

absl::StatusOr<std::vector<Change>> DesiredState::ApplyDelta(
    std::vector<ResourcePtr> upserts, const std::vector<api::ResourceKey>& removals) {
  std::vector<api::ResourceKey> keys;
  keys.reserve(upserts.size());
  for (size_t i = 0; i < upserts.size(); ++i) {
    keys.push_back(KeyOf(*upserts[i]));
    if (std::string problem = KeyProblem(keys.back()); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("upsert ", i, " ", problem));
    }
  }
  for (size_t i = 0; i < removals.size(); ++i) {
    if (std::string problem = KeyProblem(removals[i]); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("removal ", i, " ", problem));
    }
  }

  std::vector<Change> changes;
  for (size_t i = 0; i < upserts.size(); ++i) {
    const api::Resource* held = Get(keys[i]);
    if (held != nullptr && SameResource(*held, *upserts[i])) continue;
    ResourcePtr after = std::move(upserts[i]);
    ResourcePtr before = Put(keys[i], after);
    changes.push_back({std::move(keys[i]), std::move(before), std::move(after)});
  }
  for (const api::ResourceKey& key : removals) {
    if (Get(key) == nullptr) continue;
    std::shared_ptr<const api::Resource> before = Put(key, nullptr);
    changes.push_back({key, std::move(before), nullptr});
  }
  return changes;
}

void DesiredState::Undo(std::vector<Change> changes) {
  for (auto change = changes.rbegin(); change != changes.rend(); ++change) {
    Put(change->key, std::move(change->before));
  }
}

const api::Resource* DesiredState::Get(const api::ResourceKey& key) const {
  auto it = resources_.find(ToKey(key));
  return it == resources_.end() ? nullptr : it->second.get();
}

const api::Resource* DesiredState::Find(int kind, std::string_view ns,
                                        std::string_view name) const {
  auto it = resources_.find(Key{kind, std::string(ns), std::string(name)});
  return it == resources_.end() ? nullptr : it->second.get();
}

const api::Service* DesiredState::FindService(std::string_view ns, std::string_view name) const {
  const api::Resource* r = Find(api::KIND_SERVICE, ns, name);
  return r == nullptr ? nullptr : &r->service();
}

const api::Namespace* DesiredState::FindNamespace(std::string_view name) const {
  const api::Resource* r = Find(api::KIND_NAMESPACE, "", name);
  return r == nullptr ? nullptr : &r->namespace_();
}

const api::Segment* DesiredState::FindSegment(std::string_view ns) const {
  const api::Resource* r = Find(api::KIND_SEGMENT, "", ns);
  return r == nullptr ? nullptr : &r->segment();
}

const api::Node* DesiredState::FindNode(std::string_view name) const {
  const api::Resource* r = Find(api::KIND_NODE, "", name);
  return r == nullptr ? nullptr : &r->node();
}

std::vector<const api::EndpointSlice*> DesiredState::SlicesOf(std::string_view ns,
                                                              std::string_view service) const {
  std::vector<const api::EndpointSlice*> slices;
  auto it = slices_by_service_.find(std::make_pair(std::string(ns), std::string(service)));
  if (it == slices_by_service_.end()) return slices;
  slices.reserve(it->second.size());
  for (const std::string& name : it->second) {
    slices.push_back(&Find(api::KIND_ENDPOINT_SLICE, ns, name)->endpoint_slice());
  }
  return slices;
}

std::vector<const api::Node*> DesiredState::Nodes() const {
  std::vector<const api::Node*> out;
  out.reserve(nodes_.size());
  for (const std::string& name : nodes_) out.push_back(FindNode(name));
  return out;
}

std::vector<const api::Segment*> DesiredState::Segments() const {
  std::vector<const api::Segment*> out;
  out.reserve(segments_.size());
  for (const std::string& name : segments_) out.push_back(FindSegment(name));
  return out;
}

std::vector<const api::Namespace*> DesiredState::Namespaces() const {
  std::vector<const api::Namespace*> out;
  out.reserve(namespaces_.size());
  for (const std::string& name : namespaces_) out.push_back(FindNamespace(name));
  return out;
}

std::shared_ptr<const api::Resource> DesiredState::Put(
    const api::ResourceKey& key, std::shared_ptr<const api::Resource> resource) {
  auto it = resources_.find(ToKey(key));
  if (it != resources_.end()) {
    Index(key, *it->second, false);
    std::shared_ptr<const api::Resource> before = std::move(it->second);
    if (!resource) {
      resources_.erase(it);
      return before;
    }
    it->second = std::move(resource);
    Index(key, *it->second, true);
    return before;
  }
  if (!resource) return nullptr;
  Index(key, *resource, true);
  resources_.emplace(ToKey(key), std::move(resource));
  return nullptr;
}

void DesiredState::Index(const api::ResourceKey& key, const api::Resource& resource, bool add) {
  std::set<std::string>* names = nullptr;
  switch (key.kind()) {
    case api::KIND_ENDPOINT_SLICE: {
      auto service = std::make_pair(key.namespace_(), resource.endpoint_slice().service_name());
      if (add) {
        slices_by_service_[service].insert(key.name());
        return;
      }
      auto it = slices_by_service_.find(service);
      if (it == slices_by_service_.end()) return;
      it->second.erase(key.name());
      if (it->second.empty()) slices_by_service_.erase(it);
      return;
    }
    case api::KIND_NODE:
      names = &nodes_;
      break;
    case api::KIND_SEGMENT:
      names = &segments_;
      break;
    case api::KIND_NAMESPACE:
      names = &namespaces_;
      break;
    default:
      return;
  }
  if (add) {
    names->insert(key.name());
  } else {
    names->erase(key.name());
  }
}

}  // namespace atl::agent
