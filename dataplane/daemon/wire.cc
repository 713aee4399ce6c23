#include "dataplane/daemon/wire.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lb/status_macros.h"

namespace atl::dataplane {
namespace {

// --- To the wire ------------------------------------------------------------

void Encode(const lb::FrontendKey& key, v1::FrontendKey* out) {
  out->set_address(key.addr.ToString());
  out->set_port(key.port);
  out->set_protocol(static_cast<uint32_t>(key.proto));
  out->set_scope(key.scope == lb::Scope::kExternal ? v1::SCOPE_EXTERNAL : v1::SCOPE_INTERNAL);
}

v1::TrafficPolicy Encode(lb::TrafficPolicy p) {
  return p == lb::TrafficPolicy::kLocal ? v1::TRAFFIC_POLICY_LOCAL : v1::TRAFFIC_POLICY_CLUSTER;
}

void Encode(const Frontend& f, v1::Frontend* out) {
  Encode(f.key, out->mutable_key());
  out->set_name(f.name);
  for (const lb::Backend& b : f.config.backends) {
    v1::Backend* w = out->add_backends();
    w->set_address(b.endpoint.addr.ToString());
    w->set_port(b.endpoint.port);
    w->set_weight(b.weight);
    w->set_serving(b.serving);
    w->set_terminating(b.terminating);
    w->set_node_local(b.node_local);
  }
  out->set_external_policy(Encode(f.config.external_policy));
  out->set_internal_policy(Encode(f.config.internal_policy));
  out->set_affinity_timeout_s(f.config.affinity_timeout_s);
  out->set_maglev_size(f.config.maglev_size);
}

void Encode(const Segment& s, v1::Segment* out) {
  out->set_name(s.name);
  out->set_vni(s.vni);
  for (const lb::IpPrefix& c : s.cidrs) out->add_cidrs(c.ToString());
  out->set_gateway(s.gateway.ToString());
  out->set_isolated(s.isolated);
  for (const std::string& a : s.admitted) out->add_admitted(a);
  out->set_egress_ip(s.egress_ip.ToString());
}

void Encode(const Route& r, v1::Route* out) {
  out->set_cidr(r.cidr.ToString());
  out->set_vni(r.vni);
  out->set_node(r.node);
  out->set_underlay(r.underlay.ToString());
}

void Encode(const PodPort& p, v1::PodPort* out) {
  out->set_host_ifname(p.host_ifname);
  out->set_host_ifindex(p.host_ifindex);
  out->set_mac(std::string(p.mac.begin(), p.mac.end()));
  out->set_address(p.address.ToString());
  out->set_segment(p.segment);
  out->set_pod(p.pod);
}

// --- From the wire ----------------------------------------------------------
// `field` names where a value sits, as a person would look for it:
// "upsert_frontends[3].backends[1].address".

absl::StatusOr<lb::IpAddr> DecodeAddr(const std::string& text, const std::string& field) {
  std::optional<lb::IpAddr> a = lb::IpAddr::Parse(text);
  if (!a) return absl::InvalidArgumentError(absl::StrCat(field, ": \"", text, "\" is no address"));
  return *a;
}

absl::StatusOr<lb::IpPrefix> DecodePrefix(const std::string& text, const std::string& field) {
  std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(text);
  if (!p) return absl::InvalidArgumentError(absl::StrCat(field, ": \"", text, "\" is no CIDR"));
  return *p;
}

absl::StatusOr<uint16_t> DecodePort(uint32_t port, const std::string& field) {
  if (port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": port ", port, " is above 65535"));
  }
  return static_cast<uint16_t>(port);
}

absl::StatusOr<lb::FrontendKey> Decode(const v1::FrontendKey& w, const std::string& field) {
  lb::FrontendKey key;
  ATL_ASSIGN_OR_RETURN(key.addr, DecodeAddr(w.address(), field + ".address"));
  ATL_ASSIGN_OR_RETURN(key.port, DecodePort(w.port(), field + ".port"));
  switch (w.protocol()) {
    case static_cast<uint32_t>(lb::IpProto::kTcp):
    case static_cast<uint32_t>(lb::IpProto::kUdp):
    case static_cast<uint32_t>(lb::IpProto::kSctp):
      key.proto = static_cast<lb::IpProto>(w.protocol());
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(field, ".protocol: ", w.protocol(),
                                                     " is not TCP (6), UDP (17) or SCTP (132)"));
  }
  switch (w.scope()) {
    case v1::SCOPE_INTERNAL:
      key.scope = lb::Scope::kInternal;
      break;
    case v1::SCOPE_EXTERNAL:
      key.scope = lb::Scope::kExternal;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".scope: ", static_cast<int>(w.scope()), " is no scope"));
  }
  return key;
}

absl::StatusOr<lb::TrafficPolicy> Decode(v1::TrafficPolicy p, const std::string& field) {
  switch (p) {
    case v1::TRAFFIC_POLICY_CLUSTER:
      return lb::TrafficPolicy::kCluster;
    case v1::TRAFFIC_POLICY_LOCAL:
      return lb::TrafficPolicy::kLocal;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", static_cast<int>(p), " is no traffic policy"));
  }
}

absl::StatusOr<Frontend> Decode(const v1::Frontend& w, const std::string& field) {
  Frontend f;
  ATL_ASSIGN_OR_RETURN(f.key, Decode(w.key(), field + ".key"));
  f.name = w.name();
  for (int i = 0; i < w.backends_size(); ++i) {
    const v1::Backend& b = w.backends(i);
    const std::string at = absl::StrCat(field, ".backends[", i, "]");
    lb::Backend backend;
    ATL_ASSIGN_OR_RETURN(backend.endpoint.addr, DecodeAddr(b.address(), at + ".address"));
    ATL_ASSIGN_OR_RETURN(backend.endpoint.port, DecodePort(b.port(), at + ".port"));
    backend.weight = b.weight();
    backend.serving = b.serving();
    backend.terminating = b.terminating();
    backend.node_local = b.node_local();
    f.config.backends.push_back(backend);
  }
  ATL_ASSIGN_OR_RETURN(f.config.external_policy,
                       Decode(w.external_policy(), field + ".external_policy"));
  ATL_ASSIGN_OR_RETURN(f.config.internal_policy,
                       Decode(w.internal_policy(), field + ".internal_policy"));
  f.config.affinity_timeout_s = w.affinity_timeout_s();
  f.config.maglev_size = w.maglev_size();
  return f;
}

absl::StatusOr<Segment> Decode(const v1::Segment& w, const std::string& field) {
  Segment s;
  s.name = w.name();
  s.vni = w.vni();
  for (int i = 0; i < w.cidrs_size(); ++i) {
    ATL_ASSIGN_OR_RETURN(lb::IpPrefix c,
                         DecodePrefix(w.cidrs(i), absl::StrCat(field, ".cidrs[", i, "]")));
    s.cidrs.push_back(c);
  }
  ATL_ASSIGN_OR_RETURN(s.gateway, DecodeAddr(w.gateway(), field + ".gateway"));
  s.isolated = w.isolated();
  s.admitted.assign(w.admitted().begin(), w.admitted().end());
  ATL_ASSIGN_OR_RETURN(s.egress_ip, DecodeAddr(w.egress_ip(), field + ".egress_ip"));
  return s;
}

absl::StatusOr<Route> Decode(const v1::Route& w, const std::string& field) {
  Route r;
  ATL_ASSIGN_OR_RETURN(r.cidr, DecodePrefix(w.cidr(), field + ".cidr"));
  r.vni = w.vni();
  r.node = w.node();
  ATL_ASSIGN_OR_RETURN(r.underlay, DecodeAddr(w.underlay(), field + ".underlay"));
  return r;
}

absl::StatusOr<PodPort> Decode(const v1::PodPort& w, const std::string& field) {
  PodPort p;
  p.host_ifname = w.host_ifname();
  p.host_ifindex = w.host_ifindex();
  if (w.mac().size() != p.mac.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".mac: ", w.mac().size(), " bytes, not ", p.mac.size()));
  }
  std::copy(w.mac().begin(), w.mac().end(), p.mac.begin());
  ATL_ASSIGN_OR_RETURN(p.address, DecodeAddr(w.address(), field + ".address"));
  p.segment = w.segment();
  p.pod = w.pod();
  return p;
}

// Each element of `in` decoded into `out`, named `field`[i].
template <typename Wire, typename T>
absl::Status DecodeAll(const google::protobuf::RepeatedPtrField<Wire>& in, const char* field,
                       std::vector<T>* out) {
  for (int i = 0; i < in.size(); ++i) {
    ATL_ASSIGN_OR_RETURN(T t, Decode(in.Get(i), absl::StrCat(field, "[", i, "]")));
    out->push_back(std::move(t));
  }
  return absl::OkStatus();
}

absl::Status DecodeAddrs(const google::protobuf::RepeatedPtrField<std::string>& in,
                         const char* field, std::vector<lb::IpAddr>* out) {
  for (int i = 0; i < in.size(); ++i) {
    ATL_ASSIGN_OR_RETURN(lb::IpAddr a, DecodeAddr(in.Get(i), absl::StrCat(field, "[", i, "]")));
    out->push_back(a);
  }
  return absl::OkStatus();
}

}  // namespace

v1::Update ToWire(const Update& u) {
  v1::Update w;
  for (const Frontend& f : u.upsert_frontends) Encode(f, w.add_upsert_frontends());
  for (const lb::FrontendKey& k : u.remove_frontends) Encode(k, w.add_remove_frontends());
  for (const Segment& s : u.upsert_segments) Encode(s, w.add_upsert_segments());
  for (const std::string& s : u.remove_segments) w.add_remove_segments(s);
  for (const Route& r : u.upsert_routes) Encode(r, w.add_upsert_routes());
  for (const lb::IpPrefix& c : u.remove_routes) w.add_remove_routes(c.ToString());
  for (const PodPort& p : u.upsert_pod_ports) Encode(p, w.add_upsert_pod_ports());
  for (const std::string& p : u.remove_pod_ports) w.add_remove_pod_ports(p);
  w.set_set_node_addresses(u.set_node_addresses);
  for (const lb::IpAddr& a : u.node_addresses) w.add_node_addresses(a.ToString());
  w.set_full_sync(u.full_sync);
  w.set_full_sync_pod_ports(u.full_sync_pod_ports);
  return w;
}

absl::StatusOr<Update> FromWire(const v1::Update& w) {
  Update u;
  ATL_RETURN_IF_ERROR(DecodeAll(w.upsert_frontends(), "upsert_frontends", &u.upsert_frontends));
  ATL_RETURN_IF_ERROR(DecodeAll(w.remove_frontends(), "remove_frontends", &u.remove_frontends));
  ATL_RETURN_IF_ERROR(DecodeAll(w.upsert_segments(), "upsert_segments", &u.upsert_segments));
  u.remove_segments.assign(w.remove_segments().begin(), w.remove_segments().end());
  ATL_RETURN_IF_ERROR(DecodeAll(w.upsert_routes(), "upsert_routes", &u.upsert_routes));
  for (int i = 0; i < w.remove_routes_size(); ++i) {
    ATL_ASSIGN_OR_RETURN(lb::IpPrefix c,
                         DecodePrefix(w.remove_routes(i), absl::StrCat("remove_routes[", i, "]")));
    u.remove_routes.push_back(c);
  }
  ATL_RETURN_IF_ERROR(DecodeAll(w.upsert_pod_ports(), "upsert_pod_ports", &u.upsert_pod_ports));
  u.remove_pod_ports.assign(w.remove_pod_ports().begin(), w.remove_pod_ports().end());
  u.set_node_addresses = w.set_node_addresses();
  ATL_RETURN_IF_ERROR(DecodeAddrs(w.node_addresses(), "node_addresses", &u.node_addresses));
  u.full_sync = w.full_sync();
  u.full_sync_pod_ports = w.full_sync_pod_ports();
  return u;
}

v1::Programmed ToWire(const Programmed& p) {
  v1::Programmed w;
  for (const Frontend& f : p.frontends) Encode(f, w.add_frontends());
  for (const Segment& s : p.segments) Encode(s, w.add_segments());
  for (const Route& r : p.routes) Encode(r, w.add_routes());
  for (const PodPort& port : p.pod_ports) Encode(port, w.add_pod_ports());
  for (const lb::IpAddr& a : p.node_addresses) w.add_node_addresses(a.ToString());
  return w;
}

absl::StatusOr<Programmed> FromWire(const v1::Programmed& w) {
  Programmed p;
  ATL_RETURN_IF_ERROR(DecodeAll(w.frontends(), "frontends", &p.frontends));
  ATL_RETURN_IF_ERROR(DecodeAll(w.segments(), "segments", &p.segments));
  ATL_RETURN_IF_ERROR(DecodeAll(w.routes(), "routes", &p.routes));
  ATL_RETURN_IF_ERROR(DecodeAll(w.pod_ports(), "pod_ports", &p.pod_ports));
  ATL_RETURN_IF_ERROR(DecodeAddrs(w.node_addresses(), "node_addresses", &p.node_addresses));
  return p;
}

void ToWire(const Dataplane::Counters& counters,
            google::protobuf::RepeatedPtrField<v1::Counter>* out) {
  for (const auto& [name, value] : counters) {
    v1::Counter* c = out->Add();
    c->set_name(name);
    c->set_value(value);
  }
}

Dataplane::Counters FromWire(const google::protobuf::RepeatedPtrField<v1::Counter>& counters) {
  Dataplane::Counters out;
  for (const v1::Counter& c : counters) out.emplace_back(c.name(), c.value());
  return out;
}

}  // namespace atl::dataplane
