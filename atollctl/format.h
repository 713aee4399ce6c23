// What atollctl prints: resources as Kubernetes-shaped manifests (which
// ParseManifests reads back) or as kubectl-like tables, the controller's
// status, and an agent's programmed state.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "atoll.pb.h"

namespace atl::ctl {

namespace api = ::atl::api::v1;

enum class OutputFormat { kTable, kWide, kJson, kYaml };

// "json", "yaml", "wide"; "" is the table.
absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view name);

// As manifests: one object when as_list is false and there is exactly one
// resource, else a `kind: List` as `kubectl get -o yaml|json` prints. format
// is kJson or kYaml.
std::string RenderManifests(std::span<const api::Resource> resources, OutputFormat format,
                            bool as_list);

// One table per kind, in the order the kinds first appear, separated by a
// blank line. with_namespace adds the NAMESPACE column to namespaced kinds
// (kubectl does so for --all-namespaces); wide adds detail columns.
std::string RenderTable(std::span<const api::Resource> resources, bool wide, bool with_namespace);

// The controller's version line and the NODE … table; or the proto3 JSON
// mapping (as JSON or YAML).
std::string RenderStatus(const api::StatusResponse& status, OutputFormat format);

// An agent's header lines, then its frontends with their backends, segments
// and routes; or the proto3 JSON mapping.
std::string RenderAgentState(const api::AgentStateResponse& state, OutputFormat format);

}  // namespace atl::ctl
