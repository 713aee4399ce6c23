#include "agent/renderer.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lb/maglev.h"

namespace atl::agent {
namespace {

// Kubernetes' default for sessionAffinityConfig.clientIP.timeoutSeconds.
constexpr uint32_t kDefaultAffinityTimeoutS = 10800;
// The VXLAN Network Identifier is 24 bits (RFC 7348 section 5).
constexpr uint32_t kMaxVni = (1u << 24) - 1;
constexpr uint32_t kMaxPort = 65535;

std::string ServiceOwner(absl::string_view ns, absl::string_view name) {
  return absl::StrCat("Service ", ns, "/", name);
}
std::string NodeOwner(absl::string_view name) { return absl::StrCat("Node ", name); }

// --- What OwnedObjects needs to know of the objects it holds.

const lb::FrontendKey& ObjectKey(const dataplane::Frontend& f) { return f.key; }
const lb::IpPrefix& ObjectKey(const dataplane::Route& r) { return r.cidr; }

bool Same(const dataplane::Frontend& a, const dataplane::Frontend& b) {
  return a.key == b.key && a.name == b.name && a.config.backends == b.config.backends &&
         a.config.external_policy == b.config.external_policy &&
         a.config.internal_policy == b.config.internal_policy &&
         a.config.affinity_timeout_s == b.config.affinity_timeout_s &&
         a.config.maglev_size == b.config.maglev_size;
}
bool Same(const dataplane::Route& a, const dataplane::Route& b) { return a == b; }

std::string DescribeObject(const dataplane::Frontend& f) {
  return absl::StrCat("frontend ", f.key.ToString(), " of ", f.name);
}
std::string DescribeObject(const dataplane::Route& r) {
  return absl::StrCat("route ", r.cidr.ToString(), " to node ", r.node);
}

// --- Parsing what the controller sent; every error names the resource and value.

absl::StatusOr<lb::IpAddr> ParseAddr(const std::string& text, absl::string_view where,
                                     absl::string_view what) {
  std::optional<lb::IpAddr> addr = lb::IpAddr::Parse(text);
  if (!addr.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", what, " \"", text, "\" is not an IP address"));
  }
  return *addr;
}

absl::StatusOr<lb::IpPrefix> ParsePrefix(const std::string& text, absl::string_view where,
                                         absl::string_view what) {
  std::optional<lb::IpPrefix> prefix = lb::IpPrefix::Parse(text);
  if (!prefix.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", what, " \"", text, "\" is not a CIDR"));
  }
  return *prefix;
}

// Kubernetes' default for an omitted protocol is TCP.
absl::StatusOr<lb::IpProto> ParseProtocol(api::Protocol p, absl::string_view where) {
  switch (p) {
    case api::PROTOCOL_UNSPECIFIED:
    case api::PROTOCOL_TCP:
      return lb::IpProto::kTcp;
    case api::PROTOCOL_UDP:
      return lb::IpProto::kUdp;
    case api::PROTOCOL_SCTP:
      return lb::IpProto::kSctp;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": protocol ", static_cast<int>(p), " is not TCP, UDP or SCTP"));
  }
}

absl::StatusOr<lb::Family> SliceFamily(const api::EndpointSlice& slice, absl::string_view where) {
  switch (slice.address_type()) {
    case api::ADDRESS_TYPE_UNSPECIFIED:
    case api::ADDRESS_TYPE_IPV4:
      return lb::Family::kIpv4;
    case api::ADDRESS_TYPE_IPV6:
      return lb::Family::kIpv6;
    default:
      return absl::InvalidArgumentError(absl::StrCat(where, ": address type ",
                                                     static_cast<int>(slice.address_type()),
                                                     " is not IPv4 or IPv6"));
  }
}

lb::TrafficPolicy ToPolicy(api::TrafficPolicy p) {
  return p == api::TRAFFIC_POLICY_LOCAL ? lb::TrafficPolicy::kLocal : lb::TrafficPolicy::kCluster;
}

// The backends of one Service port in one address family, from every
// EndpointSlice of the Service: the slice port of the same name and protocol
// gives the port (targetPort is resolved by whoever wrote the slice).
absl::StatusOr<std::vector<lb::Backend>> RenderBackends(
    std::span<const api::EndpointSlice* const> slices, const api::ServicePort& port,
    lb::IpProto proto, lb::Family family, const std::string& node_name) {
  std::vector<lb::Backend> backends;
  // An endpoint may sit in two slices while the controller moves it; the first
  // slice by name wins, the same on every host.
  std::set<lb::Endpoint> seen;
  for (const api::EndpointSlice* slice : slices) {
    const std::string where =
        absl::StrCat("EndpointSlice ", slice->namespace_(), "/", slice->name());
    absl::StatusOr<lb::Family> slice_family = SliceFamily(*slice, where);
    if (!slice_family.ok()) return slice_family.status();
    if (*slice_family != family) continue;
    const api::EndpointPort* match = nullptr;
    for (const api::EndpointPort& p : slice->ports()) {
      absl::StatusOr<lb::IpProto> p_proto = ParseProtocol(p.protocol(), where);
      if (!p_proto.ok()) return p_proto.status();
      if (p.name() == port.name() && *p_proto == proto) {
        match = &p;
        break;
      }
    }
    if (match == nullptr) continue;
    if (match->port() == 0 || match->port() > kMaxPort) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": port \"", match->name(), "\" has number ", match->port()));
    }
    for (const api::Endpoint& e : slice->endpoints()) {
      if (e.addresses().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": an endpoint has no address"));
      }
      // The addresses of one endpoint are one pod's, and Kubernetes lets
      // consumers use the first alone (kube-proxy does): listing all would give
      // that pod a share per address.
      absl::StatusOr<lb::IpAddr> addr = ParseAddr(e.addresses(0), where, "endpoint address");
      if (!addr.ok()) return addr.status();
      if (addr->family() != family) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": endpoint address \"", e.addresses(0), "\" is not ",
                         family == lb::Family::kIpv4 ? "IPv4" : "IPv6", " as its address type"));
      }
      lb::Backend b;
      b.endpoint = {*addr, static_cast<uint16_t>(match->port())};
      if (!seen.insert(b.endpoint).second) continue;
      // Unset conditions as Kubernetes reads them: ready and serving unknown
      // are true, terminating unknown is false.
      const api::EndpointConditions& c = e.conditions();
      const bool ready = !c.has_ready() || c.ready();
      const bool serving = c.has_serving() ? c.serving() : ready;
      b.terminating = c.has_terminating() && c.terminating();
      // kube-proxy takes a non-terminating endpoint when it is ready and a
      // terminating one when it is serving; for a non-terminating endpoint
      // Kubernetes keeps ready == serving, and when a writer did not, ready wins.
      b.serving = b.terminating ? serving : ready;
      b.node_local = !e.node_name().empty() && e.node_name() == node_name;
      b.weight = e.weight() == 0 ? 1 : e.weight();
      backends.push_back(b);
    }
  }
  // Kept for as long as the service is programmed: no growth slack.
  backends.shrink_to_fit();
  return backends;
}

lb::IpAddr Unspecified(lb::Family family) {
  return family == lb::Family::kIpv4 ? lb::IpAddr::V4(0) : lb::IpAddr{};
}

}  // namespace

template <typename Key, typename Object, typename Hash>
absl::Status OwnedObjects<Key, Object, Hash>::Diff(const Rendering& rendering,
                                                   std::vector<Key>& removals,
                                                   std::vector<Object>& upserts) const {
  absl::flat_hash_map<Key, const std::string*, Hash> claimed;
  for (const auto& [owner, objects] : rendering) {
    for (const Object& object : objects) {
      const Key& key = ObjectKey(object);
      auto [it, inserted] = claimed.emplace(key, &owner);
      if (!inserted) {
        if (*it->second == owner) continue;
        return absl::InvalidArgumentError(
            absl::StrCat(DescribeObject(object), " is also claimed by ", *it->second));
      }
      auto held = objects_.find(key);
      if (held != objects_.end() && !rendering.contains(held->second.owner)) {
        return absl::InvalidArgumentError(
            absl::StrCat(DescribeObject(object), " is also claimed by ", held->second.owner));
      }
      if (held == objects_.end() || held->second.owner != owner ||
          !Same(held->second.object, object)) {
        upserts.push_back(object);
      }
    }
  }
  for (const auto& [owner, objects] : rendering) {
    auto it = keys_of_.find(owner);
    if (it == keys_of_.end()) continue;
    for (const Key& key : it->second) {
      if (!claimed.contains(key)) removals.push_back(key);
    }
  }
  return absl::OkStatus();
}

template <typename Key, typename Object, typename Hash>
void OwnedObjects<Key, Object, Hash>::Commit(Rendering rendering) {
  // All of the owners' old keys go before any new one lands, so that a key
  // moving between two of them is not erased by the one that lost it.
  for (const auto& [owner, objects] : rendering) {
    auto it = keys_of_.find(owner);
    if (it == keys_of_.end()) continue;
    for (const Key& key : it->second) objects_.erase(key);
    keys_of_.erase(it);
  }
  for (auto& [owner, objects] : rendering) {
    std::vector<Key> keys;
    for (Object& object : objects) {
      const Key key = ObjectKey(object);
      if (objects_.try_emplace(key, Entry{owner, std::move(object)}).second) keys.push_back(key);
    }
    if (!keys.empty()) keys_of_.emplace(owner, std::move(keys));
  }
}

absl::StatusOr<dataplane::Update> Renderer::Render(const DesiredState& state,
                                                   std::span<const Change> changes) {
  pending_.reset();
  // What the changes affect. Ordered sets, so that the Update and any error
  // come out the same every time.
  std::set<std::pair<std::string, std::string>> services;
  std::set<std::string> segments;
  std::set<std::string> nodes;
  std::set<std::string> segments_changed;
  bool this_node = false;
  for (const Change& change : changes) {
    const api::ResourceKey& key = change.key;
    switch (key.kind()) {
      case api::KIND_SERVICE:
        services.emplace(key.namespace_(), key.name());
        break;
      case api::KIND_ENDPOINT_SLICE:
        // The slice may have moved between Services: both re-render.
        for (const api::Resource* r : {change.before.get(), change.after.get()}) {
          if (r != nullptr) services.emplace(key.namespace_(), r->endpoint_slice().service_name());
        }
        break;
      case api::KIND_NAMESPACE:
        segments.insert(key.name());
        break;
      case api::KIND_SEGMENT:
        segments.insert(key.name());
        segments_changed.insert(key.name());
        break;
      case api::KIND_NODE:
        if (key.name() == node_name_) {
          this_node = true;
        } else {
          nodes.insert(key.name());
        }
        break;
      default:
        break;
    }
  }
  if (!segments_changed.empty()) {
    // Remote blocks take their VNI from their namespace's segment, and wait
    // for it when it is not there yet. Nodes are few next to services.
    for (const api::Node* node : state.Nodes()) {
      if (node->name() == node_name_ || nodes.contains(node->name())) continue;
      for (const api::NodeBlock& block : node->blocks()) {
        if (segments_changed.contains(block.namespace_())) {
          nodes.insert(node->name());
          break;
        }
      }
    }
  }

  Pending pending;
  for (const auto& [ns, name] : services) {
    absl::StatusOr<std::vector<dataplane::Frontend>> frontends = RenderService(state, ns, name);
    if (!frontends.ok()) return frontends.status();
    pending.frontends.emplace(ServiceOwner(ns, name), *std::move(frontends));
  }
  for (const std::string& node : nodes) {
    absl::StatusOr<std::vector<dataplane::Route>> routes = RenderRoutes(state, node);
    if (!routes.ok()) return routes.status();
    pending.routes.emplace(NodeOwner(node), *std::move(routes));
  }
  for (const std::string& ns : segments) {
    absl::StatusOr<std::optional<dataplane::Segment>> segment = RenderSegment(state, ns);
    if (!segment.ok()) return segment.status();
    pending.segments.emplace(ns, *std::move(segment));
  }

  dataplane::Update update;
  if (absl::Status s =
          frontends_.Diff(pending.frontends, update.remove_frontends, update.upsert_frontends);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = routes_.Diff(pending.routes, update.remove_routes, update.upsert_routes);
      !s.ok()) {
    return s;
  }
  for (const std::string& ns : segments) {
    const std::optional<dataplane::Segment>& now = pending.segments[ns];
    auto held = segments_.find(ns);
    if (now.has_value() && (held == segments_.end() || held->second != *now)) {
      update.upsert_segments.push_back(*now);
    } else if (!now.has_value() && held != segments_.end()) {
      update.remove_segments.push_back(ns);
    }
  }
  if (this_node) {
    absl::StatusOr<std::vector<lb::IpAddr>> addrs = RenderNodeAddresses(state);
    if (!addrs.ok()) return addrs.status();
    if (*addrs != node_addresses_) {
      update.set_node_addresses = true;
      update.node_addresses = *addrs;
      pending.node_addresses = *std::move(addrs);
    }
  }
  pending_ = std::move(pending);
  return update;
}

void Renderer::Commit() {
  if (!pending_.has_value()) return;
  frontends_.Commit(std::move(pending_->frontends));
  routes_.Commit(std::move(pending_->routes));
  for (auto& [ns, segment] : pending_->segments) {
    if (segment.has_value()) {
      segments_.insert_or_assign(ns, *std::move(segment));
    } else {
      segments_.erase(ns);
    }
  }
  if (pending_->node_addresses.has_value()) node_addresses_ = *std::move(pending_->node_addresses);
  pending_.reset();
}

void Renderer::Abort() { pending_.reset(); }

absl::StatusOr<std::vector<dataplane::Frontend>> Renderer::RenderService(
    const DesiredState& state, const std::string& ns, const std::string& name) const {
  std::vector<dataplane::Frontend> frontends;
  const api::Service* svc = state.FindService(ns, name);
  if (svc == nullptr) return frontends;
  const std::string where = ServiceOwner(ns, name);
  // A headless Service is resolved by DNS to its endpoints; nothing balances it.
  if (std::find(svc->cluster_ips().begin(), svc->cluster_ips().end(), "None") !=
      svc->cluster_ips().end()) {
    return frontends;
  }

  // Frontend addresses and the scope whose traffic policy applies to each.
  std::vector<std::pair<lb::IpAddr, lb::Scope>> addresses;
  std::vector<lb::Family> families;  // of the ClusterIPs: where NodePorts answer
  for (const std::string& text : svc->cluster_ips()) {
    absl::StatusOr<lb::IpAddr> addr = ParseAddr(text, where, "cluster IP");
    if (!addr.ok()) return addr.status();
    addresses.emplace_back(*addr, lb::Scope::kInternal);
    if (std::find(families.begin(), families.end(), addr->family()) == families.end()) {
      families.push_back(addr->family());
    }
  }
  for (const std::string& text : svc->external_ips()) {
    absl::StatusOr<lb::IpAddr> addr = ParseAddr(text, where, "external IP");
    if (!addr.ok()) return addr.status();
    addresses.emplace_back(*addr, lb::Scope::kExternal);
  }
  // Load-balancer addresses belong to type LoadBalancer alone (kube-proxy
  // ignores them on a Service whose type changed away from it).
  if (svc->type() == api::SERVICE_TYPE_LOAD_BALANCER) {
    for (const std::string& text : svc->load_balancer_ips()) {
      absl::StatusOr<lb::IpAddr> addr = ParseAddr(text, where, "load-balancer IP");
      if (!addr.ok()) return addr.status();
      addresses.emplace_back(*addr, lb::Scope::kExternal);
    }
  }
  const bool node_port =
      svc->type() == api::SERVICE_TYPE_NODE_PORT || svc->type() == api::SERVICE_TYPE_LOAD_BALANCER;
  if (families.empty()) families.push_back(lb::Family::kIpv4);

  lb::ServiceConfig base;
  base.external_policy = ToPolicy(svc->external_traffic_policy());
  base.internal_policy = ToPolicy(svc->internal_traffic_policy());
  if (svc->session_affinity() == api::SESSION_AFFINITY_CLIENT_IP) {
    base.affinity_timeout_s = svc->session_affinity_timeout_seconds() == 0
                                  ? kDefaultAffinityTimeoutS
                                  : svc->session_affinity_timeout_seconds();
  }

  const std::vector<const api::EndpointSlice*> slices = state.SlicesOf(ns, name);
  for (const api::ServicePort& port : svc->ports()) {
    const std::string port_name = port.name().empty() ? absl::StrCat(port.port()) : port.name();
    const std::string frontend_name = absl::StrCat(ns, "/", name, ":", port_name);
    const std::string port_where = absl::StrCat(where, " port \"", port_name, "\"");
    if (port.port() == 0 || port.port() > kMaxPort) {
      return absl::InvalidArgumentError(
          absl::StrCat(port_where, ": port number ", port.port(), " is not in 1..", kMaxPort));
    }
    if (port.node_port() > kMaxPort) {
      return absl::InvalidArgumentError(
          absl::StrCat(port_where, ": node port ", port.node_port(), " is not in 1..", kMaxPort));
    }
    absl::StatusOr<lb::IpProto> proto = ParseProtocol(port.protocol(), port_where);
    if (!proto.ok()) return proto.status();

    // One config per family, shared by that family's frontends.
    std::optional<lb::ServiceConfig> configs[2];
    auto config_for = [&](lb::Family family) -> absl::StatusOr<const lb::ServiceConfig*> {
      std::optional<lb::ServiceConfig>& config = configs[family == lb::Family::kIpv4 ? 0 : 1];
      if (!config.has_value()) {
        absl::StatusOr<std::vector<lb::Backend>> backends =
            RenderBackends(slices, port, *proto, family, node_name_);
        if (!backends.ok()) return backends.status();
        config = base;
        config->maglev_size = lb::MaglevSizeFor(*backends);
        config->backends = *std::move(backends);
      }
      return &*config;
    };
    auto add = [&](const lb::IpAddr& addr, lb::Scope scope, uint16_t port_number) -> absl::Status {
      absl::StatusOr<const lb::ServiceConfig*> config = config_for(addr.family());
      if (!config.ok()) return config.status();
      frontends.push_back(
          {lb::FrontendKey{addr, port_number, *proto, scope}, **config, frontend_name});
      return absl::OkStatus();
    };
    for (const auto& [addr, scope] : addresses) {
      if (absl::Status s = add(addr, scope, static_cast<uint16_t>(port.port())); !s.ok()) return s;
    }
    // An unallocated node port (0) is the controller's to fill in: nothing to
    // answer on until it does.
    if (node_port && port.node_port() != 0) {
      for (lb::Family family : families) {
        if (absl::Status s = add(Unspecified(family), lb::Scope::kExternal,
                                 static_cast<uint16_t>(port.node_port()));
            !s.ok()) {
          return s;
        }
      }
    }
  }
  return frontends;
}

absl::StatusOr<std::vector<dataplane::Route>> Renderer::RenderRoutes(
    const DesiredState& state, const std::string& node_name) const {
  std::vector<dataplane::Route> routes;
  const api::Node* node = state.FindNode(node_name);
  // A node that has not told its address yet cannot be tunnelled to.
  if (node == nullptr || node->underlay_address().empty()) return routes;
  const std::string where = NodeOwner(node_name);
  absl::StatusOr<lb::IpAddr> underlay =
      ParseAddr(node->underlay_address(), where, "underlay address");
  if (!underlay.ok()) return underlay.status();
  for (const api::NodeBlock& block : node->blocks()) {
    absl::StatusOr<lb::IpPrefix> cidr = ParsePrefix(
        block.cidr(), where, absl::StrCat("block of namespace \"", block.namespace_(), "\""));
    if (!cidr.ok()) return cidr.status();
    // The block is routed once its segment (and so its VNI) arrives; the
    // segment's arrival re-renders this node.
    const api::Segment* segment = state.FindSegment(block.namespace_());
    if (segment == nullptr) continue;
    routes.push_back({*cidr, segment->id(), node_name, *underlay});
  }
  return routes;
}

absl::StatusOr<std::optional<dataplane::Segment>> Renderer::RenderSegment(
    const DesiredState& state, const std::string& ns) const {
  const api::Segment* segment = state.FindSegment(ns);
  if (segment == nullptr) return std::nullopt;
  const std::string where = absl::StrCat("Segment ", ns);
  dataplane::Segment out;
  out.name = ns;
  if (segment->id() == 0 || segment->id() > kMaxVni) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": id ", segment->id(), " is not a VNI in 1..", kMaxVni));
  }
  out.vni = segment->id();
  for (const std::string& text : segment->cidrs()) {
    absl::StatusOr<lb::IpPrefix> cidr = ParsePrefix(text, where, "CIDR");
    if (!cidr.ok()) return cidr.status();
    out.cidrs.push_back(*cidr);
  }
  if (!segment->gateway().empty()) {
    absl::StatusOr<lb::IpAddr> gateway = ParseAddr(segment->gateway(), where, "gateway");
    if (!gateway.ok()) return gateway.status();
    out.gateway = *gateway;
  }
  // A segment whose Namespace has not arrived keeps the defaults: isolated,
  // admitting no one, SNAT to the node address.
  if (const api::Namespace* namespace_ = state.FindNamespace(ns)) {
    out.isolated = namespace_->isolation() != api::ISOLATION_OPEN;
    out.admitted.assign(namespace_->admitted_namespaces().begin(),
                        namespace_->admitted_namespaces().end());
    if (!namespace_->egress_ip().empty()) {
      absl::StatusOr<lb::IpAddr> egress =
          ParseAddr(namespace_->egress_ip(), absl::StrCat("Namespace ", ns), "egress IP");
      if (!egress.ok()) return egress.status();
      out.egress_ip = *egress;
    }
  }
  return out;
}

absl::StatusOr<std::vector<lb::IpAddr>> Renderer::RenderNodeAddresses(
    const DesiredState& state) const {
  std::vector<lb::IpAddr> addrs;
  const api::Node* node = state.FindNode(node_name_);
  if (node == nullptr || node->underlay_address().empty()) return addrs;
  absl::StatusOr<lb::IpAddr> addr =
      ParseAddr(node->underlay_address(), NodeOwner(node_name_), "underlay address");
  if (!addr.ok()) return addr.status();
  addrs.push_back(*addr);
  return addrs;
}

}  // namespace atl::agent
