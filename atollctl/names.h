// The names atollctl shows and reads for Atoll's kinds and enums: kubectl's
// spellings, kept in one table each so that the manifest parser, the printers
// and the command line cannot disagree.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoll.pb.h"
#include "resource_key.h"

namespace atl::ctl {

namespace api = ::atl::api::v1;

// Annotations that carry Atoll's fields where Kubernetes objects have no field
// for them.
inline constexpr absl::string_view kIsolationAnnotation = "atoll.io/isolation";
inline constexpr absl::string_view kAdmittedNamespacesAnnotation = "atoll.io/admitted-namespaces";
inline constexpr absl::string_view kEgressIpAnnotation = "atoll.io/egress-ip";
inline constexpr absl::string_view kCidrAnnotation = "atoll.io/cidr";
inline constexpr absl::string_view kUnderlayAddressAnnotation = "atoll.io/underlay-address";
// "namespace=cidr,…": the blocks the controller gave a node, shown by `get -o yaml`.
inline constexpr absl::string_view kBlocksAnnotation = "atoll.io/blocks";
// "address=weight,…": Endpoint.weight, keyed by each endpoint's first address.
inline constexpr absl::string_view kEndpointWeightsAnnotation = "atoll.io/endpoint-weights";
inline constexpr absl::string_view kAnnotationPrefix = "atoll.io/";
inline constexpr absl::string_view kServiceNameLabel = "kubernetes.io/service-name";

template <typename E>
struct EnumName {
  E value;
  absl::string_view name;
};

inline constexpr EnumName<api::ServiceType> kServiceTypeNames[] = {
    {api::SERVICE_TYPE_CLUSTER_IP, "ClusterIP"},
    {api::SERVICE_TYPE_NODE_PORT, "NodePort"},
    {api::SERVICE_TYPE_LOAD_BALANCER, "LoadBalancer"},
};
inline constexpr EnumName<api::Protocol> kProtocolNames[] = {
    {api::PROTOCOL_TCP, "TCP"},
    {api::PROTOCOL_UDP, "UDP"},
    {api::PROTOCOL_SCTP, "SCTP"},
};
inline constexpr EnumName<api::SessionAffinity> kSessionAffinityNames[] = {
    {api::SESSION_AFFINITY_NONE, "None"},
    {api::SESSION_AFFINITY_CLIENT_IP, "ClientIP"},
};
inline constexpr EnumName<api::TrafficPolicy> kTrafficPolicyNames[] = {
    {api::TRAFFIC_POLICY_CLUSTER, "Cluster"},
    {api::TRAFFIC_POLICY_LOCAL, "Local"},
};
inline constexpr EnumName<api::AddressType> kAddressTypeNames[] = {
    {api::ADDRESS_TYPE_IPV4, "IPv4"},
    {api::ADDRESS_TYPE_IPV6, "IPv6"},
};
// Lower case, as the atoll.io/isolation annotation is written.
inline constexpr EnumName<api::Isolation> kIsolationNames[] = {
    {api::ISOLATION_ISOLATED, "isolated"},
    {api::ISOLATION_OPEN, "open"},
};

// The name of value, or "" for UNSPECIFIED (and anything not in the table).
template <typename E, size_t N>
absl::string_view NameOf(const EnumName<E> (&table)[N], E value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return {};
}

template <typename E, size_t N>
std::optional<E> ValueOf(const EnumName<E> (&table)[N], absl::string_view name) {
  for (const auto& entry : table) {
    if (entry.name == name) return entry.value;
  }
  return std::nullopt;
}

// "a, b, c", for error messages that list the allowed names.
template <typename E, size_t N>
std::string AllowedNames(const EnumName<E> (&table)[N]) {
  std::string out;
  for (const auto& entry : table) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", entry.name);
  }
  return out;
}

// One of Atoll's kinds as the command line and the manifests name it.
struct KindInfo {
  api::Kind kind;
  api::Resource::KindCase kind_case;
  absl::string_view manifest_kind;  // "Service"
  absl::string_view api_version;    // "v1"
  absl::string_view singular;       // "service"
  absl::string_view plural;         // "services"
  absl::string_view short_name;     // "svc"; empty when kubectl has none
  // What kubectl prints before the name in "service/web configured".
  absl::string_view display;
  bool namespaced;
};

inline constexpr KindInfo kKinds[] = {
    {api::KIND_NAMESPACE, api::Resource::kNamespace, "Namespace", "v1", "namespace", "namespaces",
     "ns", "namespace", false},
    {api::KIND_SERVICE, api::Resource::kService, "Service", "v1", "service", "services", "svc",
     "service", true},
    {api::KIND_ENDPOINT_SLICE, api::Resource::kEndpointSlice, "EndpointSlice",
     "discovery.k8s.io/v1", "endpointslice", "endpointslices", "", "endpointslice.discovery.k8s.io",
     true},
    {api::KIND_NODE, api::Resource::kNode, "Node", "v1", "node", "nodes", "no", "node", false},
    // Segments are Atoll's own, made by the controller; they are read-only.
    {api::KIND_SEGMENT, api::Resource::kSegment, "Segment", "atoll.io/v1", "segment", "segments",
     "seg", "segment.atoll.io", false},
};

// By singular, plural or short name, case-insensitively as kubectl does.
const KindInfo* FindKind(absl::string_view cli_name);
const KindInfo* FindKind(api::Kind kind);
const KindInfo* FindKind(api::Resource::KindCase kind_case);

// The key the admin API files a resource under: proto/resource_key.h.
using ::atl::api::v1::KeyOf;

// "shop/web" for namespaced resources, "shop" for cluster-scoped ones.
std::string QualifiedName(const api::ResourceKey& key);

}  // namespace atl::ctl
