#include "atollctl/format.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "atollctl/names.h"

namespace atl::ctl {
namespace {

using Json = nlohmann::ordered_json;

// --- Manifests -------------------------------------------------------------

std::string OrNone(absl::string_view text, absl::string_view none = "<none>") {
  return std::string(text.empty() ? none : text);
}

Json ObjectHeader(const KindInfo& info) {
  Json object;
  object["apiVersion"] = info.api_version;
  object["kind"] = info.manifest_kind;
  return object;
}

Json Strings(const google::protobuf::RepeatedPtrField<std::string>& values) {
  Json list = Json::array();
  for (const auto& value : values) list.push_back(value);
  return list;
}

// targetPort is an IntOrString; a port number goes back out as a number so
// that the manifest reads as it was written.
Json TargetPort(const std::string& text) {
  uint32_t number = 0;
  if (!text.empty() && std::all_of(text.begin(), text.end(), absl::ascii_isdigit) &&
      absl::SimpleAtoi(text, &number) && absl::StrCat(number) == text) {
    return number;
  }
  return text;
}

Json NamespaceManifest(const api::Namespace& ns) {
  Json object = ObjectHeader(*FindKind(api::KIND_NAMESPACE));
  Json& metadata = object["metadata"];
  metadata["name"] = ns.name();
  Json annotations = Json::object();
  if (absl::string_view isolation = NameOf(kIsolationNames, ns.isolation()); !isolation.empty()) {
    annotations[kIsolationAnnotation] = isolation;
  }
  if (!ns.admitted_namespaces().empty()) {
    annotations[kAdmittedNamespacesAnnotation] = absl::StrJoin(ns.admitted_namespaces(), ",");
  }
  if (!ns.egress_ip().empty()) annotations[kEgressIpAnnotation] = ns.egress_ip();
  if (!ns.cidr().empty()) annotations[kCidrAnnotation] = ns.cidr();
  if (!annotations.empty()) metadata["annotations"] = std::move(annotations);
  return object;
}

Json ServiceManifest(const api::Service& service) {
  Json object = ObjectHeader(*FindKind(api::KIND_SERVICE));
  object["metadata"]["name"] = service.name();
  object["metadata"]["namespace"] = service.namespace_();
  Json spec = Json::object();
  if (auto type = NameOf(kServiceTypeNames, service.type()); !type.empty()) spec["type"] = type;
  if (!service.cluster_ips().empty()) {
    spec["clusterIP"] = service.cluster_ips(0);
    spec["clusterIPs"] = Strings(service.cluster_ips());
  }
  if (!service.ports().empty()) {
    Json& ports = spec["ports"] = Json::array();
    for (const api::ServicePort& port : service.ports()) {
      Json item = Json::object();
      if (!port.name().empty()) item["name"] = port.name();
      if (auto protocol = NameOf(kProtocolNames, port.protocol()); !protocol.empty()) {
        item["protocol"] = protocol;
      }
      item["port"] = port.port();
      if (!port.target_port().empty()) item["targetPort"] = TargetPort(port.target_port());
      if (port.node_port() != 0) item["nodePort"] = port.node_port();
      ports.push_back(std::move(item));
    }
  }
  if (auto affinity = NameOf(kSessionAffinityNames, service.session_affinity());
      !affinity.empty()) {
    spec["sessionAffinity"] = affinity;
  }
  if (service.session_affinity_timeout_seconds() != 0) {
    spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] =
        service.session_affinity_timeout_seconds();
  }
  if (auto policy = NameOf(kTrafficPolicyNames, service.external_traffic_policy());
      !policy.empty()) {
    spec["externalTrafficPolicy"] = policy;
  }
  if (auto policy = NameOf(kTrafficPolicyNames, service.internal_traffic_policy());
      !policy.empty()) {
    spec["internalTrafficPolicy"] = policy;
  }
  if (!service.external_ips().empty()) spec["externalIPs"] = Strings(service.external_ips());
  object["spec"] = std::move(spec);
  // Where `kubectl get -o yaml` shows a load balancer's addresses.
  if (!service.load_balancer_ips().empty()) {
    Json& ingress = object["status"]["loadBalancer"]["ingress"] = Json::array();
    for (const auto& ip : service.load_balancer_ips()) ingress.push_back({{"ip", ip}});
  }
  return object;
}

Json EndpointSliceManifest(const api::EndpointSlice& slice) {
  Json object = ObjectHeader(*FindKind(api::KIND_ENDPOINT_SLICE));
  Json& metadata = object["metadata"];
  metadata["name"] = slice.name();
  metadata["namespace"] = slice.namespace_();
  if (!slice.service_name().empty()) {
    metadata["labels"][kServiceNameLabel] = slice.service_name();
  }
  std::vector<std::string> weights;
  for (const api::Endpoint& endpoint : slice.endpoints()) {
    if (endpoint.weight() != 0 && !endpoint.addresses().empty()) {
      weights.push_back(absl::StrCat(endpoint.addresses(0), "=", endpoint.weight()));
    }
  }
  if (!weights.empty()) {
    metadata["annotations"][kEndpointWeightsAnnotation] = absl::StrJoin(weights, ",");
  }
  if (auto type = NameOf(kAddressTypeNames, slice.address_type()); !type.empty()) {
    object["addressType"] = type;
  }
  Json& endpoints = object["endpoints"] = Json::array();
  for (const api::Endpoint& endpoint : slice.endpoints()) {
    Json item;
    item["addresses"] = Strings(endpoint.addresses());
    const api::EndpointConditions& conditions = endpoint.conditions();
    if (conditions.has_ready()) item["conditions"]["ready"] = conditions.ready();
    if (conditions.has_serving()) item["conditions"]["serving"] = conditions.serving();
    if (conditions.has_terminating()) item["conditions"]["terminating"] = conditions.terminating();
    if (!endpoint.node_name().empty()) item["nodeName"] = endpoint.node_name();
    if (!endpoint.zone().empty()) item["zone"] = endpoint.zone();
    endpoints.push_back(std::move(item));
  }
  if (!slice.ports().empty()) {
    Json& ports = object["ports"] = Json::array();
    for (const api::EndpointPort& port : slice.ports()) {
      Json item = Json::object();
      if (!port.name().empty()) item["name"] = port.name();
      if (auto protocol = NameOf(kProtocolNames, port.protocol()); !protocol.empty()) {
        item["protocol"] = protocol;
      }
      if (port.port() != 0) item["port"] = port.port();
      ports.push_back(std::move(item));
    }
  }
  return object;
}

std::string BlocksText(const api::Node& node) {
  std::vector<std::string> blocks;
  for (const api::NodeBlock& block : node.blocks()) {
    blocks.push_back(absl::StrCat(block.namespace_(), "=", block.cidr()));
  }
  return absl::StrJoin(blocks, ",");
}

Json NodeManifest(const api::Node& node) {
  Json object = ObjectHeader(*FindKind(api::KIND_NODE));
  object["metadata"]["name"] = node.name();
  if (!node.blocks().empty())
    object["metadata"]["annotations"][kBlocksAnnotation] = BlocksText(node);
  if (!node.underlay_address().empty()) {
    object["status"]["addresses"] =
        Json::array({{{"type", "InternalIP"}, {"address", node.underlay_address()}}});
  }
  return object;
}

Json SegmentManifest(const api::Segment& segment) {
  Json object = ObjectHeader(*FindKind(api::KIND_SEGMENT));
  object["metadata"]["name"] = segment.namespace_();
  Json& spec = object["spec"] = Json::object();
  spec["vni"] = segment.id();
  spec["cidrs"] = Strings(segment.cidrs());
  if (!segment.gateway().empty()) spec["gateway"] = segment.gateway();
  return object;
}

Json Manifest(const api::Resource& resource) {
  switch (resource.kind_case()) {
    case api::Resource::kNamespace:
      return NamespaceManifest(resource.namespace_());
    case api::Resource::kSegment:
      return SegmentManifest(resource.segment());
    case api::Resource::kService:
      return ServiceManifest(resource.service());
    case api::Resource::kEndpointSlice:
      return EndpointSliceManifest(resource.endpoint_slice());
    case api::Resource::kNode:
      return NodeManifest(resource.node());
    case api::Resource::KIND_NOT_SET:
      break;
  }
  return Json::object();
}

// Strings that a YAML reader would take for a number, a boolean or null
// (YAML 1.1 as kubectl reads it, and 1.2) are quoted; yaml-cpp's emitter
// leaves "80" and "true" plain, which would change their type on the way back.
bool NeedsQuotes(const std::string& text) {
  static const std::regex kNonString(
      R"(~|null|true|false|yes|no|on|off|y|n|[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|0x[0-9a-f_]+|0o?[0-7_]+|0b[01_]+|[-+]?\.inf|\.nan)",
      std::regex::icase | std::regex::optimize);
  return text.empty() || std::regex_match(text, kNonString);
}

void EmitString(YAML::Emitter& out, const std::string& text) {
  if (NeedsQuotes(text)) out << YAML::DoubleQuoted;
  out << text;
}

void EmitYaml(YAML::Emitter& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      if (value.empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key;
        EmitString(out, key);
        out << YAML::Value;
        EmitYaml(out, item);
      }
      out << YAML::EndMap;
      break;
    case Json::value_t::array:
      if (value.empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& item : value) EmitYaml(out, item);
      out << YAML::EndSeq;
      break;
    case Json::value_t::string:
      EmitString(out, value.get<std::string>());
      break;
    case Json::value_t::boolean:
      out << value.get<bool>();
      break;
    case Json::value_t::number_integer:
      out << value.get<int64_t>();
      break;
    case Json::value_t::number_unsigned:
      out << value.get<uint64_t>();
      break;
    case Json::value_t::number_float:
      out << value.get<double>();
      break;
    case Json::value_t::null:
    case Json::value_t::binary:
    case Json::value_t::discarded:
      out << YAML::Null;
      break;
  }
}

std::string Render(const Json& value, OutputFormat format) {
  if (format == OutputFormat::kJson) return value.dump(4) + "\n";
  YAML::Emitter out;
  out.SetIndent(2);
  EmitYaml(out, value);
  return std::string(out.c_str()) + "\n";
}

// The proto3 JSON mapping, which is what gRPC tooling prints too.
Json ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(message, &text, options).ok()) {
    return Json::object();
  }
  return Json::parse(text);
}

// --- Tables ----------------------------------------------------------------

// Columns as kubectl lays them out (text/tabwriter with minimum width 10 and
// padding 3), so that scripts that split kubectl's output split ours.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.size() == 1; }

  std::string Render() const {
    constexpr size_t kMinWidth = 10;
    constexpr size_t kPadding = 3;
    std::vector<size_t> widths;
    for (const auto& row : rows_) {
      if (widths.size() < row.size()) widths.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) {
        widths[i] = std::max({widths[i], row[i].size() + kPadding, kMinWidth});
      }
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line.append(widths[i] - row[i].size(), ' ');
      }
      out += line;
      out += '\n';
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string ProtocolText(api::Protocol protocol) {
  absl::string_view name = NameOf(kProtocolNames, protocol);
  return std::string(name.empty() ? "TCP" : name);
}

std::string ServicePorts(const api::Service& service) {
  std::vector<std::string> ports;
  for (const api::ServicePort& port : service.ports()) {
    std::string text = absl::StrCat(port.port());
    if (port.node_port() != 0) absl::StrAppend(&text, ":", port.node_port());
    absl::StrAppend(&text, "/", ProtocolText(port.protocol()));
    ports.push_back(std::move(text));
  }
  return OrNone(absl::StrJoin(ports, ","));
}

// Unspecified enums are shown as the default the controller applies.
template <typename E, size_t N>
std::string EnumText(const EnumName<E> (&names)[N], E value, absl::string_view fallback) {
  absl::string_view name = NameOf(names, value);
  return std::string(name.empty() ? fallback : name);
}

void ServiceTable(std::span<const api::Resource* const> resources, bool wide, bool with_namespace,
                  std::string& out) {
  std::vector<std::string> header = {"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"};
  if (with_namespace) header.insert(header.begin(), "NAMESPACE");
  if (wide) header.insert(header.end(), {"AFFINITY", "EXTERNAL-POLICY", "INTERNAL-POLICY"});
  Table table(std::move(header));
  for (const api::Resource* resource : resources) {
    const api::Service& service = resource->service();
    std::vector<std::string> external(service.external_ips().begin(), service.external_ips().end());
    external.insert(external.end(), service.load_balancer_ips().begin(),
                    service.load_balancer_ips().end());
    std::string external_text = absl::StrJoin(external, ",");
    if (external_text.empty()) {
      external_text = service.type() == api::SERVICE_TYPE_LOAD_BALANCER ? "<pending>" : "<none>";
    }
    std::vector<std::string> row = {
        service.name(),
        EnumText(kServiceTypeNames, service.type(), "ClusterIP"),
        OrNone(absl::StrJoin(service.cluster_ips(), ",")),
        external_text,
        ServicePorts(service),
    };
    if (with_namespace) row.insert(row.begin(), service.namespace_());
    if (wide) {
      std::string affinity = EnumText(kSessionAffinityNames, service.session_affinity(), "None");
      if (service.session_affinity() == api::SESSION_AFFINITY_CLIENT_IP &&
          service.session_affinity_timeout_seconds() != 0) {
        absl::StrAppend(&affinity, "(", service.session_affinity_timeout_seconds(), "s)");
      }
      row.insert(
          row.end(),
          {affinity, EnumText(kTrafficPolicyNames, service.external_traffic_policy(), "Cluster"),
           EnumText(kTrafficPolicyNames, service.internal_traffic_policy(), "Cluster")});
    }
    table.Add(std::move(row));
  }
  out += table.Render();
}

void EndpointSliceTable(std::span<const api::Resource* const> resources, bool wide,
                        bool with_namespace, std::string& out) {
  // kubectl shows three addresses and counts the rest, unless -o wide.
  constexpr int kShownEndpoints = 3;
  std::vector<std::string> header = {"NAME", "SERVICE", "ADDRESSTYPE", "PORTS", "ENDPOINTS"};
  if (with_namespace) header.insert(header.begin(), "NAMESPACE");
  if (wide) header.push_back("NOT-READY");
  Table table(std::move(header));
  for (const api::Resource* resource : resources) {
    const api::EndpointSlice& slice = resource->endpoint_slice();
    std::vector<std::string> ports;
    for (const api::EndpointPort& port : slice.ports()) ports.push_back(absl::StrCat(port.port()));
    std::vector<std::string> addresses;
    std::vector<std::string> not_ready;
    for (const api::Endpoint& endpoint : slice.endpoints()) {
      addresses.insert(addresses.end(), endpoint.addresses().begin(), endpoint.addresses().end());
      // An unset ready condition means ready (EndpointConditions).
      if (endpoint.conditions().has_ready() && !endpoint.conditions().ready()) {
        not_ready.insert(not_ready.end(), endpoint.addresses().begin(), endpoint.addresses().end());
      }
    }
    std::string endpoints;
    if (!wide && addresses.size() > kShownEndpoints) {
      endpoints =
          absl::StrCat(absl::StrJoin(addresses.begin(), addresses.begin() + kShownEndpoints, ","),
                       " + ", addresses.size() - kShownEndpoints, " more...");
    } else {
      endpoints = OrNone(absl::StrJoin(addresses, ","));
    }
    std::vector<std::string> row = {
        slice.name(),
        OrNone(slice.service_name()),
        EnumText(kAddressTypeNames, slice.address_type(), "IPv4"),
        OrNone(absl::StrJoin(ports, ","), "<unset>"),
        endpoints,
    };
    if (with_namespace) row.insert(row.begin(), slice.namespace_());
    if (wide) row.push_back(OrNone(absl::StrJoin(not_ready, ",")));
    table.Add(std::move(row));
  }
  out += table.Render();
}

void SegmentTable(std::span<const api::Resource* const> resources, std::string& out) {
  Table table({"NAME", "VNI", "CIDRS", "GATEWAY"});
  for (const api::Resource* resource : resources) {
    const api::Segment& segment = resource->segment();
    table.Add({segment.namespace_(), absl::StrCat(segment.id()),
               OrNone(absl::StrJoin(segment.cidrs(), ",")), OrNone(segment.gateway())});
  }
  out += table.Render();
}

void NodeTable(std::span<const api::Resource* const> resources, std::string& out) {
  Table table({"NAME", "UNDERLAY", "BLOCKS"});
  for (const api::Resource* resource : resources) {
    const api::Node& node = resource->node();
    table.Add({node.name(), OrNone(node.underlay_address()), OrNone(BlocksText(node))});
  }
  out += table.Render();
}

void NamespaceTable(std::span<const api::Resource* const> resources, bool wide, std::string& out) {
  std::vector<std::string> header = {"NAME", "ISOLATION", "ADMITTED", "EGRESS"};
  if (wide) header.push_back("CIDR");
  Table table(std::move(header));
  for (const api::Resource* resource : resources) {
    const api::Namespace& ns = resource->namespace_();
    std::vector<std::string> row = {
        ns.name(),
        EnumText(kIsolationNames, ns.isolation(), "isolated"),
        OrNone(absl::StrJoin(ns.admitted_namespaces(), ",")),
        // Without an egress IP, traffic leaves with the node's address.
        OrNone(ns.egress_ip(), "<node>"),
    };
    if (wide) row.push_back(OrNone(ns.cidr()));
    table.Add(std::move(row));
  }
  out += table.Render();
}

std::string HostPort(absl::string_view address, uint32_t port) {
  if (address.empty()) return absl::StrCat("*:", port);
  if (absl::StrContains(address, ':')) return absl::StrCat("[", address, "]:", port);
  return absl::StrCat(address, ":", port);
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view name_in) {
  const absl::string_view name(name_in.data(), name_in.size());
  if (name.empty()) return OutputFormat::kTable;
  if (name == "wide") return OutputFormat::kWide;
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format \"", name, "\": one of json, yaml, wide"));
}

std::string RenderManifests(std::span<const api::Resource> resources, OutputFormat format,
                            bool as_list) {
  if (!as_list && resources.size() == 1) return Render(Manifest(resources.front()), format);
  Json list;
  list["apiVersion"] = "v1";
  list["kind"] = "List";
  Json& items = list["items"] = Json::array();
  for (const api::Resource& resource : resources) items.push_back(Manifest(resource));
  return Render(list, format);
}

std::string RenderTable(std::span<const api::Resource> resources, bool wide, bool with_namespace) {
  std::vector<api::Resource::KindCase> order;
  for (const api::Resource& resource : resources) {
    if (std::find(order.begin(), order.end(), resource.kind_case()) == order.end()) {
      order.push_back(resource.kind_case());
    }
  }
  std::string out;
  for (api::Resource::KindCase kind : order) {
    std::vector<const api::Resource*> group;
    for (const api::Resource& resource : resources) {
      if (resource.kind_case() == kind) group.push_back(&resource);
    }
    if (!out.empty()) out += '\n';
    switch (kind) {
      case api::Resource::kNamespace:
        NamespaceTable(group, wide, out);
        break;
      case api::Resource::kSegment:
        SegmentTable(group, out);
        break;
      case api::Resource::kService:
        ServiceTable(group, wide, with_namespace, out);
        break;
      case api::Resource::kEndpointSlice:
        EndpointSliceTable(group, wide, with_namespace, out);
        break;
      case api::Resource::kNode:
        NodeTable(group, out);
        break;
      case api::Resource::KIND_NOT_SET:
        break;
    }
  }
  return out;
}

std::string RenderStatus(const api::StatusResponse& status, OutputFormat format) {
  if (format == OutputFormat::kJson || format == OutputFormat::kYaml) {
    return Render(ProtoJson(status), format);
  }
  std::string out = absl::StrCat("Controller version ", status.version(), ", store ",
                                 OrNone(status.store_id()), "\n");
  if (status.agents().empty()) return out + "No agents have connected.\n";
  std::vector<std::string> header = {"NODE", "CONNECTED", "ACKED", "SENT", "LAST-ERROR"};
  if (format == OutputFormat::kWide) {
    header.insert(header.end(), {"PEER", "BYTES-SENT", "SNAPSHOTS", "LAST-SEEN-MS"});
  }
  Table table(std::move(header));
  for (const api::AgentStatus& agent : status.agents()) {
    std::vector<std::string> row = {agent.node(), agent.connected() ? "yes" : "no",
                                    absl::StrCat(agent.acked_version()),
                                    absl::StrCat(agent.sent_version()), OrNone(agent.last_error())};
    if (format == OutputFormat::kWide) {
      row.insert(row.end(),
                 {OrNone(agent.peer()), absl::StrCat(agent.bytes_sent()),
                  absl::StrCat(agent.snapshots_sent()), absl::StrCat(agent.last_seen_unix_ms())});
    }
    table.Add(std::move(row));
  }
  return out + table.Render();
}

std::string RenderAgentState(const api::AgentStateResponse& state, OutputFormat format) {
  if (format == OutputFormat::kJson || format == OutputFormat::kYaml) {
    return Render(ProtoJson(state), format);
  }
  std::string out;
  absl::StrAppend(&out, "Node:        ", OrNone(state.node()), "\n");
  absl::StrAppend(&out, "Dataplane:   ", OrNone(state.dataplane()), "\n");
  absl::StrAppend(&out, "Controller:  ", OrNone(state.controller()), " (",
                  state.connected() ? "connected" : "disconnected", ")\n");
  absl::StrAppend(&out, "Version:     ", state.version(), " (store ", OrNone(state.store_id()),
                  ")\n");
  absl::StrAppend(&out, "Resources:   ", state.resources(), "\n");
  absl::StrAppend(&out, "Last error:  ", OrNone(state.last_error()), "\n");

  // One row per backend; the frontend's columns are filled on its first row
  // only, so that each frontend reads as a block.
  out += '\n';
  if (state.frontends().empty()) {
    out += "No frontends programmed.\n";
  } else {
    Table table(
        {"FRONTEND", "SERVICE", "SCOPE", "AFFINITY", "MAGLEV", "BACKENDS", "WEIGHT", "STATE"});
    for (const api::ProgrammedFrontend& frontend : state.frontends()) {
      std::vector<std::string> first = {
          absl::StrCat(HostPort(frontend.address(), frontend.port()), "/",
                       ProtocolText(frontend.protocol())),
          frontend.service(),
          frontend.external() ? "external" : "internal",
          frontend.affinity_timeout_seconds() == 0
              ? "-"
              : absl::StrCat("ClientIP(", frontend.affinity_timeout_seconds(), "s)"),
          absl::StrCat(frontend.maglev_size()),
      };
      if (frontend.backends().empty()) {
        first.insert(first.end(), {"<none>", "-", "-"});
        table.Add(std::move(first));
        continue;
      }
      for (int i = 0; i < frontend.backends_size(); ++i) {
        const api::ProgrammedBackend& backend = frontend.backends(i);
        std::vector<std::string> row = i == 0 ? first : std::vector<std::string>(first.size(), "");
        std::vector<absl::string_view> flags = {backend.serving() ? "serving" : "not-serving"};
        if (backend.terminating()) flags.push_back("terminating");
        if (backend.node_local()) flags.push_back("local");
        row.insert(row.end(), {HostPort(backend.address(), backend.port()),
                               absl::StrCat(backend.weight()), absl::StrJoin(flags, ",")});
        table.Add(std::move(row));
      }
    }
    out += table.Render();
  }

  out += '\n';
  if (state.segments().empty()) {
    out += "No segments.\n";
  } else {
    Table table({"SEGMENT", "VNI", "CIDRS", "GATEWAY"});
    for (const api::Segment& segment : state.segments()) {
      table.Add({segment.namespace_(), absl::StrCat(segment.id()),
                 OrNone(absl::StrJoin(segment.cidrs(), ",")), OrNone(segment.gateway())});
    }
    out += table.Render();
  }

  out += '\n';
  if (state.routes().empty()) {
    out += "No routes.\n";
  } else {
    Table table({"ROUTE", "NODE", "UNDERLAY", "VNI"});
    for (const api::ProgrammedRoute& route : state.routes()) {
      table.Add({route.cidr(), OrNone(route.node()), OrNone(route.underlay_address()),
                 absl::StrCat(route.vni())});
    }
    out += table.Render();
  }

  out += '\n';
  if (state.pod_ports().empty()) {
    out += "No pods.\n";
  } else {
    Table table({"POD", "ADDRESS", "MAC", "HOST INTERFACE"});
    for (const api::PodPort& port : state.pod_ports()) {
      table.Add({port.pod(), port.address(), port.mac(),
                 absl::StrCat(port.host_ifname(), " (", port.host_ifindex(), ")")});
    }
    out += table.Render();
  }

  // Counts, "name value" pairs; drops only where there were some, so that a
  // reason stands out.
  const auto counts = [](const auto& counters, bool nonzero_only) {
    std::vector<std::string> parts;
    for (const api::Counter& c : counters) {
      if (!nonzero_only || c.value() != 0) parts.push_back(absl::StrCat(c.name(), " ", c.value()));
    }
    return parts.empty() ? std::string("none") : absl::StrJoin(parts, ", ");
  };
  if (!state.packets().empty() || !state.drops().empty()) {
    absl::StrAppend(&out, "\nPackets:     ", counts(state.packets(), false), "\n");
    absl::StrAppend(&out, "Drops:       ", counts(state.drops(), true), "\n");
  }
  return out;
}

}  // namespace atl::ctl
