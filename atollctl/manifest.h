// Kubernetes-style manifests (YAML or JSON, as kubectl users write them) read
// into Atoll's API resources.
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoll.pb.h"

namespace atl::ctl {

namespace api = ::atl::api::v1;

// Reads every document of text (separated by "---"; `kind: List` documents
// contribute their items) in order. Kinds: v1 Namespace, Service and Node,
// discovery.k8s.io/v1 EndpointSlice, and atoll.io/v1 Segment as `get -o yaml`
// prints it. Namespaced objects without metadata.namespace go to
// default_namespace.
//
// Kubernetes fields Atoll has no use for are accepted and ignored; a field that
// Kubernetes does not have either is an error, as are wrong types and enum
// spellings. Ranges, addresses and references are the controller's to check.
// An error reads `<source_name>: document <n> (<Kind> "<ns>/<name>"): <field
// path>: <problem with the value> (line <l>)`.
absl::StatusOr<std::vector<api::Resource>> ParseManifests(std::string_view text,
                                                          std::string_view source_name,
                                                          std::string_view default_namespace);

}  // namespace atl::ctl
