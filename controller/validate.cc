#include "controller/validate.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "controller/ipam.h"

namespace atl::controller {
namespace {

constexpr uint32_t kDefaultAffinityTimeout = 10800;  // Kubernetes' default, 3 hours
constexpr uint32_t kMaxAffinityTimeout = 86400;      // Kubernetes' limit, 1 day
constexpr int kMaxEndpointsPerSlice = 1000;          // Kubernetes' limit
constexpr int kMaxAddressesPerEndpoint = 100;        // Kubernetes' limit
constexpr int kMaxPortsPerSlice = 100;               // Kubernetes' limit

// Collects the first error of a resource, formatted as
//   Service "shop/web": spec.ports[1].nodePort: 29999 is outside 30000-32767
class Checker {
 public:
  explicit Checker(const api::Resource& r) : who_(QuotedKey(KeyOf(r))) {}

  bool ok() const { return status_.ok(); }
  absl::Status status() const { return status_; }
  // Records an error unless one is recorded already; returns false to chain.
  bool Fail(absl::string_view path, absl::string_view message) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(who_, ": ", path, ": ", message));
    }
    return false;
  }

 private:
  std::string who_;
  absl::Status status_;
};

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::string Index(absl::string_view path, int i) { return absl::StrCat(path, "[", i, "]"); }

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Why an address cannot stand for a host, or nullptr: the classes Kubernetes
// rejects for endpoints (ValidateEndpointIP).
const char* SpecialAddress(const lb::IpAddr& a) {
  if (a.IsUnspecified()) return "the unspecified address";
  if (a.IsV4()) {
    const uint8_t* b = a.v4_bytes();
    if (b[0] == 127) return "a loopback address";
    if (b[0] == 169 && b[1] == 254) return "a link-local address";
    if ((b[0] & 0xf0) == 224) return "a multicast address";
    if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) return "the broadcast address";
    return nullptr;
  }
  lb::IpAddr loopback;
  loopback.bytes[15] = 1;
  if (a == loopback) return "a loopback address";
  if (a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80) return "a link-local address";
  if (a.bytes[0] == 0xff) return "a multicast address";
  return nullptr;
}

absl::string_view FamilyName(bool v4) { return v4 ? "IPv4" : "IPv6"; }

// An address that names a host: parses and is not special.
std::optional<lb::IpAddr> CheckHostAddress(Checker& c, absl::string_view path,
                                           absl::string_view text) {
  std::optional<lb::IpAddr> a = lb::IpAddr::Parse(std::string_view(text.data(), text.size()));
  if (!a) {
    c.Fail(path, absl::StrCat(Quote(text), " is not an IP address"));
    return std::nullopt;
  }
  if (const char* why = SpecialAddress(*a)) {
    c.Fail(path, absl::StrCat(text, " is ", why));
    return std::nullopt;
  }
  return a;
}

// An address that must stay out of the cluster's own ranges (node and egress
// addresses): traffic to it would be taken for pod or service traffic.
bool CheckOutsideClusterRanges(Checker& c, absl::string_view path, const lb::IpAddr& a,
                               const ClusterConfig& config) {
  if (config.pod_cidr.Contains(a)) {
    return c.Fail(
        path, absl::StrCat(a.ToString(), " is inside the pod CIDR ", config.pod_cidr.ToString()));
  }
  for (const lb::IpPrefix& s : config.service_cidrs) {
    if (s.Contains(a)) {
      return c.Fail(path, absl::StrCat(a.ToString(), " is inside the service CIDR ", s.ToString()));
    }
  }
  return true;
}

bool CheckLabel(Checker& c, absl::string_view path, absl::string_view s) {
  if (IsDns1123Label(s)) return true;
  return c.Fail(path, absl::StrCat(Quote(s),
                                   " is not a DNS-1123 label (at most 63 lowercase letters, "
                                   "digits and '-', starting and ending with a letter or digit)"));
}

bool CheckSubdomain(Checker& c, absl::string_view path, absl::string_view s) {
  if (IsDns1123Subdomain(s)) return true;
  return c.Fail(path, absl::StrCat(Quote(s),
                                   " is not a DNS-1123 subdomain (at most 253 characters: "
                                   "DNS-1123 labels joined by '.')"));
}

bool CheckPort(Checker& c, absl::string_view path, uint32_t port) {
  if (port >= 1 && port <= 65535) return true;
  return c.Fail(path, absl::StrCat(port, " is outside 1-65535"));
}

// Proto3 enums are open: a client may send a number no name stands for.
bool CheckEnum(Checker& c, absl::string_view path, int value, bool (*valid)(int)) {
  if (value != 0 && valid(value)) return true;
  return c.Fail(path, absl::StrCat(value, " is not a valid value"));
}

absl::string_view ProtocolName(api::Protocol p) {
  switch (p) {
    case api::PROTOCOL_TCP:
      return "TCP";
    case api::PROTOCOL_UDP:
      return "UDP";
    case api::PROTOCOL_SCTP:
      return "SCTP";
    default:
      return "UNSPECIFIED";
  }
}

absl::string_view TypeName(api::ServiceType t) {
  switch (t) {
    case api::SERVICE_TYPE_CLUSTER_IP:
      return "ClusterIP";
    case api::SERVICE_TYPE_NODE_PORT:
      return "NodePort";
    case api::SERVICE_TYPE_LOAD_BALANCER:
      return "LoadBalancer";
    default:
      return "UNSPECIFIED";
  }
}

// An IANA service name (RFC 6335 section 5.1), as a targetPort may name a
// container port: at most 15 of [a-z0-9-], at least one letter, no leading,
// trailing or doubled '-'.
bool IsIanaServiceName(absl::string_view s) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
  bool letter = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    if (ch == '-') {
      if (s[i - 1] == '-') return false;
    } else if (!IsAlnum(ch)) {
      return false;
    }
    letter |= ch >= 'a' && ch <= 'z';
  }
  return letter;
}

std::string CanonicalAddress(const std::string& text) {
  std::optional<lb::IpAddr> a = lb::IpAddr::Parse(text);
  return a ? a->ToString() : text;
}

std::string CanonicalPrefix(const std::string& text) {
  std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(text);
  return p ? p->ToString() : text;
}

void CanonicalizeAll(google::protobuf::RepeatedPtrField<std::string>* list) {
  for (std::string& s : *list) s = CanonicalAddress(s);
}

// --- Per kind --------------------------------------------------------------

void ValidateNamespace(Checker& c, const api::Namespace& ns, const ClusterConfig& config) {
  CheckLabel(c, "metadata.name", ns.name());
  CheckEnum(c, "spec.isolation", ns.isolation(), api::Isolation_IsValid);
  for (int i = 0; i < ns.admitted_namespaces_size(); ++i) {
    CheckLabel(c, Index("spec.admittedNamespaces", i), ns.admitted_namespaces(i));
  }
  if (!ns.egress_ip().empty()) {
    if (std::optional<lb::IpAddr> a = CheckHostAddress(c, "spec.egressIP", ns.egress_ip())) {
      CheckOutsideClusterRanges(c, "spec.egressIP", *a, config);
    }
  }
  if (!ns.cidr().empty()) {
    std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(ns.cidr());
    if (!p) {
      c.Fail("spec.cidr", absl::StrCat(Quote(ns.cidr()),
                                       " is not a CIDR (an address and a prefix length, with "
                                       "the host bits zero)"));
    } else if (p->family() != config.pod_cidr.family() || p->len < config.pod_cidr.len ||
               !config.pod_cidr.Contains(p->addr)) {
      c.Fail("spec.cidr", absl::StrCat(p->ToString(), " is not inside the pod CIDR ",
                                       config.pod_cidr.ToString()));
    } else if (p->len > config.node_block_len) {
      // Pods get addresses through node blocks; a CIDR that holds none is useless.
      c.Fail("spec.cidr", absl::StrCat(p->ToString(), " is smaller than one node block (/",
                                       config.node_block_len, ")"));
    }
  }
}

void ValidateServicePorts(Checker& c, const api::Service& svc, const ClusterConfig& config,
                          bool headless) {
  const bool wants_node_ports =
      svc.type() == api::SERVICE_TYPE_NODE_PORT || svc.type() == api::SERVICE_TYPE_LOAD_BALANCER;
  if (svc.ports_size() == 0 && !headless) {
    c.Fail("spec.ports", "at least one port is required (unless clusterIP is None)");
    return;
  }
  absl::flat_hash_map<std::string, int> names;
  absl::flat_hash_map<std::pair<int, uint32_t>, int> ports;
  absl::flat_hash_map<std::pair<int, uint32_t>, int> node_ports;
  for (int i = 0; i < svc.ports_size(); ++i) {
    const api::ServicePort& p = svc.ports(i);
    const std::string path = Index("spec.ports", i);
    if (p.name().empty()) {
      if (svc.ports_size() > 1) c.Fail(path + ".name", "required when there is more than one port");
    } else if (CheckLabel(c, path + ".name", p.name())) {
      auto [it, fresh] = names.emplace(p.name(), i);
      if (!fresh) {
        c.Fail(path + ".name", absl::StrCat(Quote(p.name()), " is also the name of ",
                                            Index("spec.ports", it->second)));
      }
    }
    CheckEnum(c, path + ".protocol", p.protocol(), api::Protocol_IsValid);
    if (CheckPort(c, path + ".port", p.port())) {
      auto [it, fresh] = ports.emplace(std::pair(static_cast<int>(p.protocol()), p.port()), i);
      if (!fresh) {
        c.Fail(path, absl::StrCat("port ", p.port(), "/", ProtocolName(p.protocol()), " is also ",
                                  Index("spec.ports", it->second)));
      }
    }
    uint32_t target = 0;
    if (absl::SimpleAtoi(p.target_port(), &target)) {
      CheckPort(c, path + ".targetPort", target);
    } else if (!IsIanaServiceName(p.target_port())) {
      c.Fail(path + ".targetPort",
             absl::StrCat(Quote(p.target_port()),
                          " is neither a port number nor a port name (at most 15 lowercase "
                          "letters, digits and '-', with at least one letter)"));
    }
    if (p.node_port() != 0) {
      if (!wants_node_ports) {
        c.Fail(path + ".nodePort",
               absl::StrCat(p.node_port(), " is not allowed for type ", TypeName(svc.type())));
      } else if (p.node_port() < config.node_port_min || p.node_port() > config.node_port_max) {
        c.Fail(path + ".nodePort", absl::StrCat(p.node_port(), " is outside ", config.node_port_min,
                                                "-", config.node_port_max));
      } else {
        auto [it, fresh] =
            node_ports.emplace(std::pair(static_cast<int>(p.protocol()), p.node_port()), i);
        if (!fresh) {
          c.Fail(path + ".nodePort",
                 absl::StrCat(p.node_port(), "/", ProtocolName(p.protocol()),
                              " is also the nodePort of ", Index("spec.ports", it->second)));
        }
      }
    }
  }
}

// The ClusterIPs; returns whether the service is headless.
bool ValidateClusterIps(Checker& c, const api::Service& svc, const ClusterConfig& config) {
  bool seen_v4 = false;
  bool seen_v6 = false;
  for (int i = 0; i < svc.cluster_ips_size(); ++i) {
    const std::string path = Index("spec.clusterIPs", i);
    const std::string& text = svc.cluster_ips(i);
    if (text == "None") {
      if (svc.cluster_ips_size() != 1) c.Fail(path, "\"None\" must be the only clusterIP");
      continue;
    }
    std::optional<lb::IpAddr> a = lb::IpAddr::Parse(text);
    if (!a) {
      c.Fail(path, absl::StrCat(Quote(text), " is not an IP address or \"None\""));
      continue;
    }
    bool& seen = a->IsV4() ? seen_v4 : seen_v6;
    if (seen) c.Fail(path, absl::StrCat(text, " is a second ", FamilyName(a->IsV4()), " address"));
    seen = true;
    const lb::IpPrefix* range = nullptr;
    for (const lb::IpPrefix& s : config.service_cidrs) {
      if (s.family() == a->family()) range = &s;
    }
    if (range == nullptr) {
      c.Fail(path, absl::StrCat(text, " is ", FamilyName(a->IsV4()), " but no IPv",
                                a->IsV4() ? "4" : "6", " service CIDR is configured"));
    } else if (!range->Contains(*a)) {
      c.Fail(path, absl::StrCat(text, " is not inside the service CIDR ", range->ToString()));
    } else if (!AddressAllocator(*range).Allocatable(*a)) {
      c.Fail(path,
             absl::StrCat(text, " is the network or broadcast address of ", range->ToString()));
    }
  }
  return svc.cluster_ips_size() == 1 && svc.cluster_ips(0) == "None";
}

void ValidateService(Checker& c, const api::Service& svc, const ClusterConfig& config) {
  CheckLabel(c, "metadata.namespace", svc.namespace_());
  if (!IsDns1035Label(svc.name())) {
    c.Fail("metadata.name", absl::StrCat(Quote(svc.name()),
                                         " is not a DNS-1035 label (at most 63 lowercase "
                                         "letters, digits and '-', starting with a letter and "
                                         "ending with a letter or digit)"));
  }
  CheckEnum(c, "spec.type", svc.type(), api::ServiceType_IsValid);
  const bool headless = ValidateClusterIps(c, svc, config);
  if (headless && svc.type() != api::SERVICE_TYPE_CLUSTER_IP) {
    c.Fail("spec.type", absl::StrCat(TypeName(svc.type()),
                                     " is not allowed for a headless service (clusterIP None)"));
  }
  ValidateServicePorts(c, svc, config, headless);

  CheckEnum(c, "spec.sessionAffinity", svc.session_affinity(), api::SessionAffinity_IsValid);
  constexpr absl::string_view kTimeout = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
  const uint32_t timeout = svc.session_affinity_timeout_seconds();
  if (svc.session_affinity() == api::SESSION_AFFINITY_CLIENT_IP) {
    if (timeout < 1 || timeout > kMaxAffinityTimeout) {
      c.Fail(kTimeout, absl::StrCat(timeout, " is outside 1-", kMaxAffinityTimeout));
    }
  } else if (timeout != 0) {
    c.Fail(kTimeout, absl::StrCat(timeout, " is only allowed with sessionAffinity ClientIP"));
  }

  CheckEnum(c, "spec.externalTrafficPolicy", svc.external_traffic_policy(),
            api::TrafficPolicy_IsValid);
  CheckEnum(c, "spec.internalTrafficPolicy", svc.internal_traffic_policy(),
            api::TrafficPolicy_IsValid);
  const bool external = svc.type() == api::SERVICE_TYPE_NODE_PORT ||
                        svc.type() == api::SERVICE_TYPE_LOAD_BALANCER ||
                        svc.external_ips_size() > 0;
  if (svc.external_traffic_policy() == api::TRAFFIC_POLICY_LOCAL && !external) {
    c.Fail("spec.externalTrafficPolicy",
           "Local is only allowed for NodePort and LoadBalancer services or with externalIPs");
  }
  for (int i = 0; i < svc.external_ips_size(); ++i) {
    CheckHostAddress(c, Index("spec.externalIPs", i), svc.external_ips(i));
  }
  for (int i = 0; i < svc.load_balancer_ips_size(); ++i) {
    const std::string path = Index("spec.loadBalancerIPs", i);
    if (svc.type() != api::SERVICE_TYPE_LOAD_BALANCER) {
      c.Fail(path,
             absl::StrCat(svc.load_balancer_ips(i), " is only allowed for type LoadBalancer"));
    }
    CheckHostAddress(c, path, svc.load_balancer_ips(i));
  }
}

void ValidateEndpointSlice(Checker& c, const api::EndpointSlice& slice) {
  CheckLabel(c, "metadata.namespace", slice.namespace_());
  CheckSubdomain(c, "metadata.name", slice.name());
  if (slice.service_name().empty()) {
    c.Fail("serviceName", "required (the kubernetes.io/service-name label)");
  } else if (!IsDns1035Label(slice.service_name())) {
    c.Fail("serviceName", absl::StrCat(Quote(slice.service_name()), " is not a Service name"));
  }
  if (!CheckEnum(c, "addressType", slice.address_type(), api::AddressType_IsValid)) {
    return;
  }
  const bool v4 = slice.address_type() == api::ADDRESS_TYPE_IPV4;
  if (slice.endpoints_size() > kMaxEndpointsPerSlice) {
    c.Fail("endpoints", absl::StrCat(slice.endpoints_size(), " endpoints exceed the limit of ",
                                     kMaxEndpointsPerSlice));
  }
  for (int i = 0; i < slice.endpoints_size() && c.ok(); ++i) {
    const api::Endpoint& ep = slice.endpoints(i);
    const std::string path = Index("endpoints", i);
    if (ep.addresses_size() < 1 || ep.addresses_size() > kMaxAddressesPerEndpoint) {
      c.Fail(path + ".addresses", absl::StrCat(ep.addresses_size(), " addresses; 1-",
                                               kMaxAddressesPerEndpoint, " are allowed"));
    }
    for (int j = 0; j < ep.addresses_size(); ++j) {
      const std::string apath = Index(path + ".addresses", j);
      std::optional<lb::IpAddr> a = CheckHostAddress(c, apath, ep.addresses(j));
      if (a && a->IsV4() != v4) {
        c.Fail(apath, absl::StrCat(ep.addresses(j), " is not an ", FamilyName(v4),
                                   " address (addressType ", FamilyName(v4), ")"));
      }
    }
    if (!ep.node_name().empty()) CheckSubdomain(c, path + ".nodeName", ep.node_name());
    // KEP-1672: ready means serving and not terminating.
    const api::EndpointConditions& cond = ep.conditions();
    if (cond.has_ready() && cond.ready() && cond.has_terminating() && cond.terminating()) {
      c.Fail(path + ".conditions", "ready cannot be true while terminating is true");
    }
  }
  if (slice.ports_size() > kMaxPortsPerSlice) {
    c.Fail("ports",
           absl::StrCat(slice.ports_size(), " ports exceed the limit of ", kMaxPortsPerSlice));
  }
  absl::flat_hash_map<std::string, int> names;
  for (int i = 0; i < slice.ports_size(); ++i) {
    const api::EndpointPort& p = slice.ports(i);
    const std::string path = Index("ports", i);
    if (!p.name().empty()) CheckLabel(c, path + ".name", p.name());
    auto [it, fresh] = names.emplace(p.name(), i);
    if (!fresh) {
      c.Fail(path + ".name",
             absl::StrCat(Quote(p.name()), " is also the name of ", Index("ports", it->second)));
    }
    CheckEnum(c, path + ".protocol", p.protocol(), api::Protocol_IsValid);
    CheckPort(c, path + ".port", p.port());
  }
}

void ValidateNode(Checker& c, const api::Node& node, const ClusterConfig& config) {
  CheckSubdomain(c, "metadata.name", node.name());
  if (node.underlay_address().empty()) {
    c.Fail("spec.underlayAddress", "required");
  } else if (std::optional<lb::IpAddr> a =
                 CheckHostAddress(c, "spec.underlayAddress", node.underlay_address())) {
    CheckOutsideClusterRanges(c, "spec.underlayAddress", *a, config);
  }
  for (int i = 0; i < node.blocks_size(); ++i) {
    const api::NodeBlock& b = node.blocks(i);
    const std::string path = Index("spec.blocks", i);
    CheckLabel(c, path + ".namespace", b.namespace_());
    std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(b.cidr());
    if (!p) {
      c.Fail(path + ".cidr", absl::StrCat(Quote(b.cidr()), " is not a CIDR"));
    } else if (p->len != config.node_block_len || p->family() != config.pod_cidr.family() ||
               !config.pod_cidr.Contains(p->addr)) {
      c.Fail(path + ".cidr", absl::StrCat(p->ToString(), " is not a /", config.node_block_len,
                                          " block of the pod CIDR ", config.pod_cidr.ToString()));
    }
  }
}

}  // namespace

bool IsDns1123Label(absl::string_view s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char ch : s) {
    if (!IsAlnum(ch) && ch != '-') return false;
  }
  return true;
}

bool IsDns1123Subdomain(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (!IsDns1123Label(label)) return false;
  }
  return true;
}

bool IsDns1035Label(absl::string_view s) {
  return IsDns1123Label(s) && s.front() >= 'a' && s.front() <= 'z';
}

void ApplyDefaults(api::Resource& r) {
  switch (r.kind_case()) {
    case api::Resource::kNamespace: {
      api::Namespace& ns = *r.mutable_namespace_();
      if (ns.isolation() == api::ISOLATION_UNSPECIFIED) ns.set_isolation(api::ISOLATION_ISOLATED);
      if (!ns.egress_ip().empty()) ns.set_egress_ip(CanonicalAddress(ns.egress_ip()));
      if (!ns.cidr().empty()) ns.set_cidr(CanonicalPrefix(ns.cidr()));
      break;
    }
    case api::Resource::kService: {
      api::Service& svc = *r.mutable_service();
      if (svc.type() == api::SERVICE_TYPE_UNSPECIFIED) svc.set_type(api::SERVICE_TYPE_CLUSTER_IP);
      if (svc.session_affinity() == api::SESSION_AFFINITY_UNSPECIFIED) {
        svc.set_session_affinity(api::SESSION_AFFINITY_NONE);
      }
      if (svc.session_affinity() == api::SESSION_AFFINITY_CLIENT_IP &&
          svc.session_affinity_timeout_seconds() == 0) {
        svc.set_session_affinity_timeout_seconds(kDefaultAffinityTimeout);
      }
      if (svc.external_traffic_policy() == api::TRAFFIC_POLICY_UNSPECIFIED) {
        svc.set_external_traffic_policy(api::TRAFFIC_POLICY_CLUSTER);
      }
      if (svc.internal_traffic_policy() == api::TRAFFIC_POLICY_UNSPECIFIED) {
        svc.set_internal_traffic_policy(api::TRAFFIC_POLICY_CLUSTER);
      }
      for (api::ServicePort& p : *svc.mutable_ports()) {
        if (p.protocol() == api::PROTOCOL_UNSPECIFIED) p.set_protocol(api::PROTOCOL_TCP);
        if (p.target_port().empty()) p.set_target_port(std::to_string(p.port()));
      }
      CanonicalizeAll(svc.mutable_cluster_ips());
      CanonicalizeAll(svc.mutable_external_ips());
      CanonicalizeAll(svc.mutable_load_balancer_ips());
      break;
    }
    case api::Resource::kEndpointSlice: {
      api::EndpointSlice& slice = *r.mutable_endpoint_slice();
      if (slice.address_type() == api::ADDRESS_TYPE_UNSPECIFIED) {
        slice.set_address_type(api::ADDRESS_TYPE_IPV4);
      }
      for (api::Endpoint& ep : *slice.mutable_endpoints()) CanonicalizeAll(ep.mutable_addresses());
      for (api::EndpointPort& p : *slice.mutable_ports()) {
        if (p.protocol() == api::PROTOCOL_UNSPECIFIED) p.set_protocol(api::PROTOCOL_TCP);
      }
      break;
    }
    case api::Resource::kNode: {
      api::Node& node = *r.mutable_node();
      if (!node.underlay_address().empty()) {
        node.set_underlay_address(CanonicalAddress(node.underlay_address()));
      }
      for (api::NodeBlock& b : *node.mutable_blocks()) b.set_cidr(CanonicalPrefix(b.cidr()));
      break;
    }
    case api::Resource::kSegment:
    case api::Resource::KIND_NOT_SET:
      break;
  }
}

absl::Status ValidateResource(const api::Resource& r, const ClusterConfig& config) {
  Checker c(r);
  switch (r.kind_case()) {
    case api::Resource::kNamespace:
      ValidateNamespace(c, r.namespace_(), config);
      break;
    case api::Resource::kService:
      ValidateService(c, r.service(), config);
      break;
    case api::Resource::kEndpointSlice:
      ValidateEndpointSlice(c, r.endpoint_slice());
      break;
    case api::Resource::kNode:
      ValidateNode(c, r.node(), config);
      break;
    case api::Resource::kSegment:
      return absl::InvalidArgumentError(absl::StrCat(
          QuotedKey(KeyOf(r)), ": segments are managed by the controller and cannot be applied"));
    case api::Resource::KIND_NOT_SET:
      return absl::InvalidArgumentError("a resource without a kind was applied");
  }
  return c.status();
}

}  // namespace atl::controller
