// How a resource is keyed and named, once for every component: the controller
// stores and syncs by this key, the agent caches by it, atollctl prints it.
// Namespaces, Segments and Nodes are cluster-scoped (empty namespace); a
// Segment is named after its namespace.
#pragma once

#include <string>

#include "atoll.pb.h"

namespace atl::api::v1 {

// KIND_UNSPECIFIED (and empty names) for a resource with no kind set.
ResourceKey KeyOf(const Resource& resource);
Kind KindOf(const Resource& resource);
// "Service" for KIND_SERVICE; "Resource" for KIND_UNSPECIFIED.
const char* KindName(Kind kind);
// "Service shop/web", "Node h1".
std::string Describe(const ResourceKey& key);

}  // namespace atl::api::v1
