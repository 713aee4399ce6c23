#include "atollctl/manifest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "atollctl/names.h"
#include "lb/status_macros.h"

namespace atl::ctl {
namespace {

using Fields = std::span<const absl::string_view>;

// The fields Kubernetes defines for each object we read (API reference,
// v1.30), so that a field Atoll ignores is told from a typo. Only the parts we
// descend into are listed: other status subtrees are not looked at.
constexpr absl::string_view kObjectMetaFields[] = {
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
};
constexpr absl::string_view kObjectFields[] = {"apiVersion", "kind", "metadata", "spec", "status"};
constexpr absl::string_view kListFields[] = {"apiVersion", "kind", "metadata", "items"};
constexpr absl::string_view kNamespaceSpecFields[] = {"finalizers"};
constexpr absl::string_view kServiceSpecFields[] = {
    "allocateLoadBalancerNodePorts",
    "clusterIP",
    "clusterIPs",
    "externalIPs",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "internalTrafficPolicy",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerClass",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "ports",
    "publishNotReadyAddresses",
    "selector",
    "sessionAffinity",
    "sessionAffinityConfig",
    "trafficDistribution",
    "type",
};
constexpr absl::string_view kServicePortFields[] = {"appProtocol", "name",     "nodePort",
                                                    "port",        "protocol", "targetPort"};
constexpr absl::string_view kSessionAffinityConfigFields[] = {"clientIP"};
constexpr absl::string_view kClientIpConfigFields[] = {"timeoutSeconds"};
constexpr absl::string_view kServiceStatusFields[] = {"conditions", "loadBalancer"};
constexpr absl::string_view kLoadBalancerStatusFields[] = {"ingress"};
constexpr absl::string_view kLoadBalancerIngressFields[] = {"hostname", "ip", "ipMode", "ports"};
constexpr absl::string_view kEndpointSliceFields[] = {"addressType", "apiVersion", "endpoints",
                                                      "kind",        "metadata",   "ports"};
constexpr absl::string_view kEndpointFields[] = {
    "addresses", "conditions", "deprecatedTopology", "hints",
    "hostname",  "nodeName",   "targetRef",          "zone",
};
constexpr absl::string_view kEndpointConditionsFields[] = {"ready", "serving", "terminating"};
constexpr absl::string_view kEndpointPortFields[] = {"appProtocol", "name", "port", "protocol"};
constexpr absl::string_view kNodeSpecFields[] = {
    "configSource", "externalID", "podCIDR", "podCIDRs", "providerID", "taints", "unschedulable",
};
constexpr absl::string_view kNodeStatusFields[] = {
    "addresses",       "allocatable",     "capacity",     "conditions", "config",
    "daemonEndpoints", "features",        "images",       "nodeInfo",   "phase",
    "runtimeHandlers", "volumesAttached", "volumesInUse",
};
constexpr absl::string_view kNodeAddressFields[] = {"address", "type"};
constexpr absl::string_view kSegmentFields[] = {"apiVersion", "kind", "metadata", "spec"};
constexpr absl::string_view kSegmentSpecFields[] = {"cidrs", "gateway", "vni"};

constexpr absl::string_view kNamespaceAnnotations[] = {
    kIsolationAnnotation, kAdmittedNamespacesAnnotation, kEgressIpAnnotation, kCidrAnnotation};
constexpr absl::string_view kNodeAnnotations[] = {kUnderlayAddressAnnotation, kBlocksAnnotation};
constexpr absl::string_view kEndpointSliceAnnotations[] = {kEndpointWeightsAnnotation};

// Kubernetes' numbers here are int32.
constexpr int64_t kMaxNumber = 2147483647;

constexpr absl::string_view kYamlIntTag = "tag:yaml.org,2002:int";
constexpr absl::string_view kYamlBoolTag = "tag:yaml.org,2002:bool";

std::string Quote(absl::string_view text) {
  return absl::StrCat("\"", absl::Utf8SafeCEscape(text), "\"");
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string FieldPath(absl::string_view path, absl::string_view key) {
  if (path.empty()) return std::string(key);
  return absl::StrCat(path, ".", key);
}

std::string IndexPath(absl::string_view path, size_t index) {
  return absl::StrCat(path, "[", index, "]");
}

// Labels and annotations keys hold dots and slashes, so they are bracketed.
std::string KeyPath(absl::string_view path, absl::string_view key) {
  return absl::StrCat(path, "[", Quote(key), "]");
}

// Plain scalars resolve by their text; anything quoted or tagged !!str is a
// string whatever it looks like (YAML 1.2, section 10.3.2). JSON strings are
// quoted scalars to yaml-cpp too.
bool IsPlainOr(const YAML::Node& node, absl::string_view tag) {
  return node.Tag() == "?" || node.Tag() == tag;
}

// Finds key in a mapping. Null values count as present here; callers treat
// them as absent, as Kubernetes does with `field: null`.
std::optional<YAML::Node> Find(const YAML::Node& map, absl::string_view key) {
  for (const auto& entry : map) {
    if (entry.first.IsScalar() && entry.first.Scalar() == key) return entry.second;
  }
  return std::nullopt;
}

// Reads one object (a document or an item of a List) of one document.
class ObjectParser {
 public:
  ObjectParser(absl::string_view source, size_t document, absl::string_view default_namespace)
      : source_(source), document_(document), default_namespace_(default_namespace) {}

  absl::Status Parse(const YAML::Node& object, const std::string& path,
                     std::vector<api::Resource>& out) {
    label_.clear();
    ATL_RETURN_IF_ERROR(ExpectMap(object, path));
    std::string kind;
    std::string api_version;
    ATL_RETURN_IF_ERROR(RequiredString(object, path, "kind", &kind));
    ATL_RETURN_IF_ERROR(RequiredString(object, path, "apiVersion", &api_version));

    if (kind == "List") {
      if (!path.empty()) {
        return Error(*Find(object, "kind"), FieldPath(path, "kind"),
                     "a List inside a List is not allowed");
      }
      ATL_RETURN_IF_ERROR(ExpectApiVersion(object, path, kind, api_version, "v1"));
      ATL_RETURN_IF_ERROR(CheckFields(object, path, kListFields));
      return ForEachItem(object, path, "items",
                         [&](const YAML::Node& item, const std::string& item_path) {
                           return Parse(item, item_path, out);
                         });
    }

    const KindInfo* info = nullptr;
    for (const auto& candidate : kKinds) {
      if (candidate.manifest_kind == kind) info = &candidate;
    }
    if (info == nullptr) {
      std::vector<absl::string_view> known;
      for (const auto& candidate : kKinds) known.push_back(candidate.manifest_kind);
      known.push_back("List");
      return Error(*Find(object, "kind"), FieldPath(path, "kind"),
                   absl::StrCat(Quote(kind), " is not a kind Atoll knows (",
                                absl::StrJoin(known, ", "), ")"));
    }
    label_ = absl::StrCat(" (", kind, ")");
    ATL_RETURN_IF_ERROR(ExpectApiVersion(object, path, kind, api_version, info->api_version));

    api::Resource resource;
    switch (info->kind_case) {
      case api::Resource::kNamespace:
        ATL_RETURN_IF_ERROR(ParseNamespace(object, path, *info, *resource.mutable_namespace_()));
        break;
      case api::Resource::kService:
        ATL_RETURN_IF_ERROR(ParseService(object, path, *info, *resource.mutable_service()));
        break;
      case api::Resource::kEndpointSlice:
        ATL_RETURN_IF_ERROR(
            ParseEndpointSlice(object, path, *info, *resource.mutable_endpoint_slice()));
        break;
      case api::Resource::kNode:
        ATL_RETURN_IF_ERROR(ParseNode(object, path, *info, *resource.mutable_node()));
        break;
      case api::Resource::kSegment:
        ATL_RETURN_IF_ERROR(ParseSegment(object, path, *info, *resource.mutable_segment()));
        break;
      case api::Resource::KIND_NOT_SET:
        break;
    }
    out.push_back(std::move(resource));
    return absl::OkStatus();
  }

 private:
  struct Metadata {
    std::string path;
    std::string name;
    std::string namespace_;
    std::optional<YAML::Node> labels;
    std::optional<YAML::Node> annotations;
  };

  absl::Status Error(const YAML::Node& at, absl::string_view path,
                     absl::string_view problem) const {
    std::string line;
    if (const YAML::Mark mark = at.Mark(); !mark.is_null()) {
      line = absl::StrCat(" (line ", mark.line + 1, ")");
    }
    return absl::InvalidArgumentError(absl::StrCat(source_, ": document ", document_, label_, ": ",
                                                   path, path.empty() ? "" : ": ", problem, line));
  }

  absl::Status ExpectMap(const YAML::Node& node, absl::string_view path) const {
    if (node.IsMap()) return absl::OkStatus();
    return Error(node, path, absl::StrCat("expected a mapping, got ", Describe(node)));
  }

  absl::Status ExpectApiVersion(const YAML::Node& object, absl::string_view path,
                                absl::string_view kind, absl::string_view api_version,
                                absl::string_view expected) const {
    if (api_version == expected) return absl::OkStatus();
    return Error(
        *Find(object, "apiVersion"), FieldPath(path, "apiVersion"),
        absl::StrCat(Quote(api_version), " is not the API version of ", kind, " (", expected, ")"));
  }

  // Rejects keys that are not among known, and keys given twice (which YAML
  // forbids and yaml-cpp keeps).
  absl::Status CheckFields(const YAML::Node& map, absl::string_view path, Fields known) const {
    std::vector<std::string> seen;
    for (const auto& entry : map) {
      if (!entry.first.IsScalar()) {
        return Error(entry.first, path,
                     absl::StrCat("field names must be strings, got ", Describe(entry.first)));
      }
      const std::string& key = entry.first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        return Error(entry.first, FieldPath(path, key), "unknown field");
      }
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        return Error(entry.first, FieldPath(path, key), "duplicate field");
      }
      seen.push_back(key);
    }
    return absl::OkStatus();
  }

  // The mapping at map.key, or nullopt when absent or null.
  absl::Status Object(const YAML::Node& map, absl::string_view path, absl::string_view key,
                      Fields known, std::optional<YAML::Node>* out) const {
    std::optional<YAML::Node> node = Find(map, key);
    if (!node || node->IsNull()) return absl::OkStatus();
    const std::string field = FieldPath(path, key);
    ATL_RETURN_IF_ERROR(ExpectMap(*node, field));
    if (!known.empty()) ATL_RETURN_IF_ERROR(CheckFields(*node, field, known));
    *out = std::move(node);
    return absl::OkStatus();
  }

  absl::Status ScalarString(const YAML::Node& node, absl::string_view path,
                            std::string* out) const {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsScalar()) {
      return Error(node, path, absl::StrCat("expected a string, got ", Describe(node)));
    }
    *out = node.Scalar();
    return absl::OkStatus();
  }

  absl::Status String(const YAML::Node& map, absl::string_view path, absl::string_view key,
                      std::string* out) const {
    std::optional<YAML::Node> node = Find(map, key);
    if (!node) return absl::OkStatus();
    return ScalarString(*node, FieldPath(path, key), out);
  }

  absl::Status RequiredString(const YAML::Node& map, absl::string_view path, absl::string_view key,
                              std::string* out) const {
    ATL_RETURN_IF_ERROR(String(map, path, key, out));
    if (out->empty()) return Error(map, FieldPath(path, key), "missing");
    return absl::OkStatus();
  }

  absl::Status ScalarNumber(const YAML::Node& node, absl::string_view path, uint32_t* out) const {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsScalar()) {
      return Error(node, path, absl::StrCat("expected a number, got ", Describe(node)));
    }
    const std::string& text = node.Scalar();
    if (!IsPlainOr(node, kYamlIntTag)) {
      return Error(node, path, absl::StrCat(Quote(text), " is a string, not a number"));
    }
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value)) {
      return Error(node, path, absl::StrCat(Quote(text), " is not a number"));
    }
    if (value < 0 || value > kMaxNumber) {
      return Error(node, path,
                   absl::StrCat(Quote(text), " is out of range (0 to ", kMaxNumber, ")"));
    }
    *out = static_cast<uint32_t>(value);
    return absl::OkStatus();
  }

  absl::Status Number(const YAML::Node& map, absl::string_view path, absl::string_view key,
                      uint32_t* out) const {
    std::optional<YAML::Node> node = Find(map, key);
    if (!node) return absl::OkStatus();
    return ScalarNumber(*node, FieldPath(path, key), out);
  }

  // YAML 1.1's spellings too, since kubectl's YAML reader takes them.
  absl::Status Bool(const YAML::Node& map, absl::string_view path, absl::string_view key,
                    std::optional<bool>* out) const {
    std::optional<YAML::Node> node = Find(map, key);
    if (!node || node->IsNull()) return absl::OkStatus();
    const std::string field = FieldPath(path, key);
    if (!node->IsScalar()) {
      return Error(*node, field, absl::StrCat("expected true or false, got ", Describe(*node)));
    }
    const std::string text = absl::AsciiStrToLower(node->Scalar());
    if (!IsPlainOr(*node, kYamlBoolTag)) {
      return Error(*node, field,
                   absl::StrCat(Quote(node->Scalar()), " is a string, not true or false"));
    }
    if (text == "true" || text == "yes" || text == "on") {
      *out = true;
    } else if (text == "false" || text == "no" || text == "off") {
      *out = false;
    } else {
      return Error(*node, field, absl::StrCat(Quote(node->Scalar()), " is not true or false"));
    }
    return absl::OkStatus();
  }

  template <typename E, size_t N>
  absl::Status ScalarEnum(const YAML::Node& node, absl::string_view path,
                          const EnumName<E> (&names)[N], E* out) const {
    std::string text;
    ATL_RETURN_IF_ERROR(ScalarString(node, path, &text));
    if (text.empty() && node.IsNull()) return absl::OkStatus();
    std::optional<E> value = ValueOf(names, text);
    if (!value) {
      return Error(node, path, absl::StrCat(Quote(text), " is not one of ", AllowedNames(names)));
    }
    *out = *value;
    return absl::OkStatus();
  }

  template <typename E, size_t N>
  absl::Status Enum(const YAML::Node& map, absl::string_view path, absl::string_view key,
                    const EnumName<E> (&names)[N], E* out) const {
    std::optional<YAML::Node> node = Find(map, key);
    if (!node) return absl::OkStatus();
    return ScalarEnum(*node, FieldPath(path, key), names, out);
  }

  absl::Status ForEachItem(
      const YAML::Node& map, absl::string_view path, absl::string_view key,
      const std::function<absl::Status(const YAML::Node&, const std::string&)>& visit) const {
    std::optional<YAML::Node> node = Find(map, key);
    if (!node || node->IsNull()) return absl::OkStatus();
    const std::string field = FieldPath(path, key);
    if (!node->IsSequence()) {
      return Error(*node, field, absl::StrCat("expected a list, got ", Describe(*node)));
    }
    for (size_t i = 0; i < node->size(); ++i) {
      ATL_RETURN_IF_ERROR(visit((*node)[i], IndexPath(field, i)));
    }
    return absl::OkStatus();
  }

  absl::Status StringList(const YAML::Node& map, absl::string_view path, absl::string_view key,
                          google::protobuf::RepeatedPtrField<std::string>* out) const {
    return ForEachItem(map, path, key, [&](const YAML::Node& item, const std::string& item_path) {
      std::string value;
      ATL_RETURN_IF_ERROR(ScalarString(item, item_path, &value));
      out->Add(std::move(value));
      return absl::OkStatus();
    });
  }

  // A list of mappings, each checked against known.
  absl::Status ObjectList(
      const YAML::Node& map, absl::string_view path, absl::string_view key, Fields known,
      const std::function<absl::Status(const YAML::Node&, const std::string&)>& visit) const {
    return ForEachItem(map, path, key, [&](const YAML::Node& item, const std::string& item_path) {
      ATL_RETURN_IF_ERROR(ExpectMap(item, item_path));
      ATL_RETURN_IF_ERROR(CheckFields(item, item_path, known));
      return visit(item, item_path);
    });
  }

  // A mapping of strings to strings, as labels and annotations are.
  absl::Status StringMap(const YAML::Node& map, absl::string_view path, absl::string_view key,
                         std::optional<YAML::Node>* out) const {
    ATL_RETURN_IF_ERROR(Object(map, path, key, {}, out));
    if (!*out) return absl::OkStatus();
    const std::string field = FieldPath(path, key);
    for (const auto& entry : **out) {
      if (!entry.first.IsScalar()) {
        return Error(entry.first, field,
                     absl::StrCat("keys must be strings, got ", Describe(entry.first)));
      }
      std::string ignored;
      ATL_RETURN_IF_ERROR(
          ScalarString(entry.second, KeyPath(field, entry.first.Scalar()), &ignored));
    }
    return absl::OkStatus();
  }

  absl::Status ParseMetadata(const YAML::Node& object, absl::string_view path, const KindInfo& info,
                             Fields atoll_annotations, Metadata* meta) {
    meta->path = FieldPath(path, "metadata");
    std::optional<YAML::Node> node;
    ATL_RETURN_IF_ERROR(Object(object, path, "metadata", kObjectMetaFields, &node));
    if (!node) return Error(object, meta->path, "missing");
    ATL_RETURN_IF_ERROR(String(*node, meta->path, "name", &meta->name));
    if (meta->name.empty()) {
      absl::string_view why = Find(*node, "generateName")
                                  ? "missing (generateName is not supported: Atoll needs the name)"
                                  : "missing";
      return Error(*node, FieldPath(meta->path, "name"), why);
    }
    if (info.namespaced) {
      ATL_RETURN_IF_ERROR(String(*node, meta->path, "namespace", &meta->namespace_));
      if (meta->namespace_.empty()) meta->namespace_ = std::string(default_namespace_);
      label_ = absl::StrCat(" (", info.manifest_kind, " ",
                            Quote(absl::StrCat(meta->namespace_, "/", meta->name)), ")");
    } else {
      // Kubernetes ignores a namespace on cluster-scoped objects, and so do we.
      label_ = absl::StrCat(" (", info.manifest_kind, " ", Quote(meta->name), ")");
    }
    ATL_RETURN_IF_ERROR(StringMap(*node, meta->path, "labels", &meta->labels));
    ATL_RETURN_IF_ERROR(StringMap(*node, meta->path, "annotations", &meta->annotations));
    // A mistyped atoll.io annotation would otherwise be silently dropped.
    if (meta->annotations) {
      for (const auto& entry : *meta->annotations) {
        const std::string& key = entry.first.Scalar();
        if (!absl::StartsWith(key, kAnnotationPrefix) ||
            std::find(atoll_annotations.begin(), atoll_annotations.end(), key) !=
                atoll_annotations.end()) {
          continue;
        }
        std::string takes = atoll_annotations.empty()
                                ? absl::StrCat(info.manifest_kind, " takes no atoll.io annotations")
                                : absl::StrCat(info.manifest_kind, " takes ",
                                               absl::StrJoin(atoll_annotations, ", "));
        return Error(entry.first, KeyPath(FieldPath(meta->path, "annotations"), key),
                     absl::StrCat("unknown annotation; ", takes));
      }
    }
    return absl::OkStatus();
  }

  // The annotation's text, with its node and path for errors; nullopt when absent.
  struct Annotation {
    YAML::Node node;
    std::string path;
    std::string value;
  };
  absl::Status FindAnnotation(const Metadata& meta, absl::string_view key,
                              std::optional<Annotation>* out) const {
    if (!meta.annotations) return absl::OkStatus();
    std::optional<YAML::Node> node = Find(*meta.annotations, key);
    if (!node) return absl::OkStatus();
    Annotation annotation{*node, KeyPath(FieldPath(meta.path, "annotations"), key), ""};
    ATL_RETURN_IF_ERROR(ScalarString(*node, annotation.path, &annotation.value));
    *out = std::move(annotation);
    return absl::OkStatus();
  }

  // "k=v, k=v" annotation values, in order; empty items are skipped.
  absl::Status Pairs(const Annotation& annotation, absl::string_view form,
                     std::vector<std::pair<std::string, std::string>>* out) const {
    for (absl::string_view item : absl::StrSplit(annotation.value, ',', absl::SkipWhitespace())) {
      std::vector<absl::string_view> parts = absl::StrSplit(item, absl::MaxSplits('=', 1));
      if (parts.size() != 2) {
        return Error(annotation.node, annotation.path,
                     absl::StrCat(Quote(absl::StripAsciiWhitespace(item)), " is not ", form));
      }
      out->emplace_back(absl::StripAsciiWhitespace(parts[0]), absl::StripAsciiWhitespace(parts[1]));
    }
    return absl::OkStatus();
  }

  absl::Status ParseNamespace(const YAML::Node& object, absl::string_view path,
                              const KindInfo& info, api::Namespace& ns) {
    ATL_RETURN_IF_ERROR(CheckFields(object, path, kObjectFields));
    Metadata meta;
    ATL_RETURN_IF_ERROR(ParseMetadata(object, path, info, kNamespaceAnnotations, &meta));
    ns.set_name(meta.name);
    std::optional<YAML::Node> spec;
    ATL_RETURN_IF_ERROR(Object(object, path, "spec", kNamespaceSpecFields, &spec));

    std::optional<Annotation> annotation;
    ATL_RETURN_IF_ERROR(FindAnnotation(meta, kIsolationAnnotation, &annotation));
    if (annotation) {
      api::Isolation isolation = api::ISOLATION_UNSPECIFIED;
      ATL_RETURN_IF_ERROR(
          ScalarEnum(annotation->node, annotation->path, kIsolationNames, &isolation));
      ns.set_isolation(isolation);
    }
    annotation.reset();
    ATL_RETURN_IF_ERROR(FindAnnotation(meta, kAdmittedNamespacesAnnotation, &annotation));
    if (annotation) {
      for (absl::string_view name :
           absl::StrSplit(annotation->value, ',', absl::SkipWhitespace())) {
        ns.add_admitted_namespaces(std::string(absl::StripAsciiWhitespace(name)));
      }
    }
    annotation.reset();
    ATL_RETURN_IF_ERROR(FindAnnotation(meta, kEgressIpAnnotation, &annotation));
    if (annotation) ns.set_egress_ip(annotation->value);
    annotation.reset();
    ATL_RETURN_IF_ERROR(FindAnnotation(meta, kCidrAnnotation, &annotation));
    if (annotation) ns.set_cidr(annotation->value);
    return absl::OkStatus();
  }

  absl::Status ParseService(const YAML::Node& object, absl::string_view path, const KindInfo& info,
                            api::Service& service) {
    ATL_RETURN_IF_ERROR(CheckFields(object, path, kObjectFields));
    Metadata meta;
    ATL_RETURN_IF_ERROR(ParseMetadata(object, path, info, {}, &meta));
    service.set_namespace_(meta.namespace_);
    service.set_name(meta.name);

    std::optional<YAML::Node> spec;
    const std::string spec_path = FieldPath(path, "spec");
    ATL_RETURN_IF_ERROR(Object(object, path, "spec", kServiceSpecFields, &spec));
    std::string load_balancer_ip;
    if (spec) {
      api::ServiceType type = api::SERVICE_TYPE_UNSPECIFIED;
      ATL_RETURN_IF_ERROR(Enum(*spec, spec_path, "type", kServiceTypeNames, &type));
      service.set_type(type);

      // clusterIP is clusterIPs[0] where both are given (Kubernetes keeps them
      // in step); the API has only the list.
      std::string cluster_ip;
      ATL_RETURN_IF_ERROR(String(*spec, spec_path, "clusterIP", &cluster_ip));
      ATL_RETURN_IF_ERROR(
          StringList(*spec, spec_path, "clusterIPs", service.mutable_cluster_ips()));
      if (service.cluster_ips().empty()) {
        if (!cluster_ip.empty()) service.add_cluster_ips(cluster_ip);
      } else if (!cluster_ip.empty() && cluster_ip != service.cluster_ips(0)) {
        return Error(*Find(*spec, "clusterIP"), FieldPath(spec_path, "clusterIP"),
                     absl::StrCat(Quote(cluster_ip), " differs from spec.clusterIPs[0] ",
                                  Quote(service.cluster_ips(0))));
      }

      ATL_RETURN_IF_ERROR(ObjectList(
          *spec, spec_path, "ports", kServicePortFields,
          [&](const YAML::Node& item, const std::string& item_path) {
            api::ServicePort& port = *service.add_ports();
            std::string name;
            ATL_RETURN_IF_ERROR(String(item, item_path, "name", &name));
            port.set_name(name);
            api::Protocol protocol = api::PROTOCOL_UNSPECIFIED;
            ATL_RETURN_IF_ERROR(Enum(item, item_path, "protocol", kProtocolNames, &protocol));
            port.set_protocol(protocol);
            uint32_t number = 0;
            ATL_RETURN_IF_ERROR(Number(item, item_path, "port", &number));
            port.set_port(number);
            number = 0;
            ATL_RETURN_IF_ERROR(Number(item, item_path, "nodePort", &number));
            port.set_node_port(number);
            // IntOrString: a number or a port name; either way the API holds text.
            std::string target;
            ATL_RETURN_IF_ERROR(String(item, item_path, "targetPort", &target));
            port.set_target_port(target);
            return absl::OkStatus();
          }));

      api::SessionAffinity affinity = api::SESSION_AFFINITY_UNSPECIFIED;
      ATL_RETURN_IF_ERROR(
          Enum(*spec, spec_path, "sessionAffinity", kSessionAffinityNames, &affinity));
      service.set_session_affinity(affinity);
      std::optional<YAML::Node> affinity_config;
      const std::string affinity_path = FieldPath(spec_path, "sessionAffinityConfig");
      ATL_RETURN_IF_ERROR(Object(*spec, spec_path, "sessionAffinityConfig",
                                 kSessionAffinityConfigFields, &affinity_config));
      if (affinity_config) {
        std::optional<YAML::Node> client_ip;
        ATL_RETURN_IF_ERROR(
            Object(*affinity_config, affinity_path, "clientIP", kClientIpConfigFields, &client_ip));
        if (client_ip) {
          uint32_t timeout = 0;
          ATL_RETURN_IF_ERROR(
              Number(*client_ip, FieldPath(affinity_path, "clientIP"), "timeoutSeconds", &timeout));
          service.set_session_affinity_timeout_seconds(timeout);
        }
      }

      api::TrafficPolicy policy = api::TRAFFIC_POLICY_UNSPECIFIED;
      ATL_RETURN_IF_ERROR(
          Enum(*spec, spec_path, "externalTrafficPolicy", kTrafficPolicyNames, &policy));
      service.set_external_traffic_policy(policy);
      policy = api::TRAFFIC_POLICY_UNSPECIFIED;
      ATL_RETURN_IF_ERROR(
          Enum(*spec, spec_path, "internalTrafficPolicy", kTrafficPolicyNames, &policy));
      service.set_internal_traffic_policy(policy);
      ATL_RETURN_IF_ERROR(
          StringList(*spec, spec_path, "externalIPs", service.mutable_external_ips()));
      ATL_RETURN_IF_ERROR(String(*spec, spec_path, "loadBalancerIP", &load_balancer_ip));
    }

    // The requested address first, then those the status reports.
    auto add_load_balancer_ip = [&](const std::string& ip) {
      if (ip.empty()) return;
      const auto& ips = service.load_balancer_ips();
      if (std::find(ips.begin(), ips.end(), ip) == ips.end()) service.add_load_balancer_ips(ip);
    };
    add_load_balancer_ip(load_balancer_ip);
    std::optional<YAML::Node> status;
    const std::string status_path = FieldPath(path, "status");
    ATL_RETURN_IF_ERROR(Object(object, path, "status", kServiceStatusFields, &status));
    if (status) {
      std::optional<YAML::Node> load_balancer;
      ATL_RETURN_IF_ERROR(
          Object(*status, status_path, "loadBalancer", kLoadBalancerStatusFields, &load_balancer));
      if (load_balancer) {
        ATL_RETURN_IF_ERROR(ObjectList(*load_balancer, FieldPath(status_path, "loadBalancer"),
                                       "ingress", kLoadBalancerIngressFields,
                                       [&](const YAML::Node& item, const std::string& item_path) {
                                         std::string ip;
                                         ATL_RETURN_IF_ERROR(String(item, item_path, "ip", &ip));
                                         add_load_balancer_ip(ip);
                                         return absl::OkStatus();
                                       }));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseEndpointSlice(const YAML::Node& object, absl::string_view path,
                                  const KindInfo& info, api::EndpointSlice& slice) {
    ATL_RETURN_IF_ERROR(CheckFields(object, path, kEndpointSliceFields));
    Metadata meta;
    ATL_RETURN_IF_ERROR(ParseMetadata(object, path, info, kEndpointSliceAnnotations, &meta));
    slice.set_namespace_(meta.namespace_);
    slice.set_name(meta.name);
    if (meta.labels) {
      std::string service_name;
      ATL_RETURN_IF_ERROR(
          String(*meta.labels, FieldPath(meta.path, "labels"), kServiceNameLabel, &service_name));
      slice.set_service_name(service_name);
    }

    api::AddressType address_type = api::ADDRESS_TYPE_UNSPECIFIED;
    ATL_RETURN_IF_ERROR(Enum(object, path, "addressType", kAddressTypeNames, &address_type));
    slice.set_address_type(address_type);

    ATL_RETURN_IF_ERROR(ObjectList(
        object, path, "endpoints", kEndpointFields,
        [&](const YAML::Node& item, const std::string& item_path) {
          api::Endpoint& endpoint = *slice.add_endpoints();
          ATL_RETURN_IF_ERROR(
              StringList(item, item_path, "addresses", endpoint.mutable_addresses()));
          std::optional<YAML::Node> conditions;
          const std::string conditions_path = FieldPath(item_path, "conditions");
          ATL_RETURN_IF_ERROR(
              Object(item, item_path, "conditions", kEndpointConditionsFields, &conditions));
          if (conditions) {
            std::optional<bool> value;
            ATL_RETURN_IF_ERROR(Bool(*conditions, conditions_path, "ready", &value));
            if (value) endpoint.mutable_conditions()->set_ready(*value);
            value.reset();
            ATL_RETURN_IF_ERROR(Bool(*conditions, conditions_path, "serving", &value));
            if (value) endpoint.mutable_conditions()->set_serving(*value);
            value.reset();
            ATL_RETURN_IF_ERROR(Bool(*conditions, conditions_path, "terminating", &value));
            if (value) endpoint.mutable_conditions()->set_terminating(*value);
          }
          std::string text;
          ATL_RETURN_IF_ERROR(String(item, item_path, "nodeName", &text));
          endpoint.set_node_name(text);
          text.clear();
          ATL_RETURN_IF_ERROR(String(item, item_path, "zone", &text));
          endpoint.set_zone(text);
          return absl::OkStatus();
        }));

    ATL_RETURN_IF_ERROR(ObjectList(object, path, "ports", kEndpointPortFields,
                                   [&](const YAML::Node& item, const std::string& item_path) {
                                     api::EndpointPort& port = *slice.add_ports();
                                     std::string name;
                                     ATL_RETURN_IF_ERROR(String(item, item_path, "name", &name));
                                     port.set_name(name);
                                     api::Protocol protocol = api::PROTOCOL_UNSPECIFIED;
                                     ATL_RETURN_IF_ERROR(Enum(item, item_path, "protocol",
                                                              kProtocolNames, &protocol));
                                     port.set_protocol(protocol);
                                     uint32_t number = 0;
                                     ATL_RETURN_IF_ERROR(Number(item, item_path, "port", &number));
                                     port.set_port(number);
                                     return absl::OkStatus();
                                   }));

    // Kubernetes' Endpoint has no weight, so Atoll's extension rides in an
    // annotation keyed by each endpoint's first address.
    std::optional<Annotation> weights;
    ATL_RETURN_IF_ERROR(FindAnnotation(meta, kEndpointWeightsAnnotation, &weights));
    if (weights) {
      std::vector<std::pair<std::string, std::string>> pairs;
      ATL_RETURN_IF_ERROR(Pairs(*weights, "address=weight", &pairs));
      for (const auto& [address, text] : pairs) {
        uint32_t weight = 0;
        if (!absl::SimpleAtoi(text, &weight)) {
          return Error(
              weights->node, weights->path,
              absl::StrCat("weight ", Quote(text), " of ", Quote(address), " is not a number"));
        }
        api::Endpoint* match = nullptr;
        for (api::Endpoint& endpoint : *slice.mutable_endpoints()) {
          if (!endpoint.addresses().empty() && endpoint.addresses(0) == address) match = &endpoint;
        }
        if (match == nullptr) {
          return Error(weights->node, weights->path,
                       absl::StrCat("no endpoint has the address ", Quote(address)));
        }
        match->set_weight(weight);
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseNode(const YAML::Node& object, absl::string_view path, const KindInfo& info,
                         api::Node& node) {
    ATL_RETURN_IF_ERROR(CheckFields(object, path, kObjectFields));
    Metadata meta;
    ATL_RETURN_IF_ERROR(ParseMetadata(object, path, info, kNodeAnnotations, &meta));
    node.set_name(meta.name);
    std::optional<YAML::Node> spec;
    ATL_RETURN_IF_ERROR(Object(object, path, "spec", kNodeSpecFields, &spec));

    std::optional<YAML::Node> status;
    ATL_RETURN_IF_ERROR(Object(object, path, "status", kNodeStatusFields, &status));
    if (status) {
      ATL_RETURN_IF_ERROR(
          ObjectList(*status, FieldPath(path, "status"), "addresses", kNodeAddressFields,
                     [&](const YAML::Node& item, const std::string& item_path) {
                       std::string type;
                       std::string address;
                       ATL_RETURN_IF_ERROR(String(item, item_path, "type", &type));
                       ATL_RETURN_IF_ERROR(String(item, item_path, "address", &address));
                       if (type == "InternalIP" && node.underlay_address().empty()) {
                         node.set_underlay_address(address);
                       }
                       return absl::OkStatus();
                     }));
    }

    std::optional<Annotation> annotation;
    ATL_RETURN_IF_ERROR(FindAnnotation(meta, kUnderlayAddressAnnotation, &annotation));
    if (annotation) node.set_underlay_address(annotation->value);
    annotation.reset();
    ATL_RETURN_IF_ERROR(FindAnnotation(meta, kBlocksAnnotation, &annotation));
    if (annotation) {
      std::vector<std::pair<std::string, std::string>> pairs;
      ATL_RETURN_IF_ERROR(Pairs(*annotation, "namespace=cidr", &pairs));
      for (auto& [ns, cidr] : pairs) {
        api::NodeBlock& block = *node.add_blocks();
        block.set_namespace_(std::move(ns));
        block.set_cidr(std::move(cidr));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseSegment(const YAML::Node& object, absl::string_view path, const KindInfo& info,
                            api::Segment& segment) {
    ATL_RETURN_IF_ERROR(CheckFields(object, path, kSegmentFields));
    Metadata meta;
    ATL_RETURN_IF_ERROR(ParseMetadata(object, path, info, {}, &meta));
    segment.set_namespace_(meta.name);
    std::optional<YAML::Node> spec;
    const std::string spec_path = FieldPath(path, "spec");
    ATL_RETURN_IF_ERROR(Object(object, path, "spec", kSegmentSpecFields, &spec));
    if (spec) {
      uint32_t vni = 0;
      ATL_RETURN_IF_ERROR(Number(*spec, spec_path, "vni", &vni));
      segment.set_id(vni);
      ATL_RETURN_IF_ERROR(StringList(*spec, spec_path, "cidrs", segment.mutable_cidrs()));
      std::string gateway;
      ATL_RETURN_IF_ERROR(String(*spec, spec_path, "gateway", &gateway));
      segment.set_gateway(gateway);
    }
    return absl::OkStatus();
  }

  absl::string_view source_;
  size_t document_;
  absl::string_view default_namespace_;
  // " (Service \"shop/web\")": as much of the object's identity as is known.
  std::string label_;
};

// yaml-cpp reads all documents before it returns any, so a syntax error does
// not say in which one it is: count the document markers before it the way
// the YAML grammar does (YAML 1.2, section 9.2).
size_t DocumentOfLine(absl::string_view text, int line) {
  size_t document = 0;
  bool ended = false;
  int number = 0;
  for (absl::string_view row : absl::StrSplit(text, '\n')) {
    if (number++ >= line) break;
    if (absl::StartsWith(row, "---")) {
      ++document;
      ended = false;
    } else if (absl::StartsWith(row, "...")) {
      ended = true;
    } else {
      absl::string_view content = absl::StripLeadingAsciiWhitespace(row);
      if (content.empty() || content.front() == '#' || content.front() == '%') continue;
      if (document == 0 || ended) ++document;
      ended = false;
    }
  }
  return std::max<size_t>(document, 1);
}

}  // namespace

absl::StatusOr<std::vector<api::Resource>> ParseManifests(std::string_view text_in,
                                                          std::string_view source_in,
                                                          std::string_view default_namespace_in) {
  // Debian's Abseil has its own string_view, which absl::StrCat and friends take.
  const absl::string_view text(text_in.data(), text_in.size());
  const absl::string_view source_name(source_in.data(), source_in.size());
  const absl::string_view default_namespace(default_namespace_in.data(),
                                            default_namespace_in.size());
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        source_name, ": document ", DocumentOfLine(text, e.mark.line), ": invalid YAML: ", e.msg,
        " (line ", e.mark.line + 1, ", column ", e.mark.column + 1, ")"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": invalid YAML: ", e.what()));
  }

  std::vector<api::Resource> resources;
  for (size_t i = 0; i < documents.size(); ++i) {
    // kubectl skips empty documents, such as one before a leading "---".
    if (documents[i].IsNull()) continue;
    ObjectParser parser(source_name, i + 1, default_namespace);
    try {
      ATL_RETURN_IF_ERROR(parser.Parse(documents[i], "", resources));
    } catch (const YAML::Exception& e) {
      // Not expected: the parser only reads nodes it has checked the type of.
      return absl::InternalError(absl::StrCat(source_name, ": document ", i + 1, ": ", e.what()));
    }
  }
  return resources;
}

}  // namespace atl::ctl
